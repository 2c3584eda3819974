"""The `orderflow` command line: operator commands over bootstrap's services."""
