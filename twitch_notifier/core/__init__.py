"""What the bot decides, with no discord, aiohttp or SQL: the live tracker, the notifier, the poller and
housekeeping, and the rules of adding, editing and removing streamers. It speaks to the world only
through the Protocols in ports.py."""
