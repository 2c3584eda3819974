"""One module per consumer: thin tasks that declare their consumer and call a handler."""
