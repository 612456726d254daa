"""The Twitch -> Discord live notifier, as a package: one sub-package per layer.

Imports run one way, down this list; a module never imports from a layer below it in the list:
    models, twitch/   the domain types and Twitch's vocabulary (pure data, no I/O)
    core/             what the bot decides: tracker, notifier, poller, housekeeping, subscription rules
    rendering/        what the bot shows: messages, templates, pings, Discord's limits
    db/               the schema's migrations, as data (the queries live in the top-level database.py)
    ops/              health endpoint and Prometheus metrics
    discord_io/       everything that talks to Discord through discord.py (announcer, replies, pacing)
    cogs/             the slash commands, one cog per feature
    app/              start-up: build the bot, run it, logging, signals, `--check`
Only discord_io/, cogs/ and bot.py import discord (tests/test_architecture.py checks every rule here).
"""
