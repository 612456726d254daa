"""Start-up: build the bot from its services, run it until a signal stops it, `--check`, and logging."""
