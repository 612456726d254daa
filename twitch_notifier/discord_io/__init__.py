"""Everything that talks to Discord through discord.py: the announcer, channel checks, replies, the
command tree's error handling, pacing under the global rate limit, and the endpoint seam for mocks."""
