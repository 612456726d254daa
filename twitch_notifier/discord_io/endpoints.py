"""The seam for a Discord mock: point discord.py's REST base and gateway URL elsewhere (the test suite's
fake Discord, the demo). Empty settings leave the real Discord in place."""

from __future__ import annotations

import discord
import yarl

__all__ = ["use_discord_endpoints"]


def use_discord_endpoints(api_base: str = "", gateway_url: str = "") -> None:
    """Point discord.py at a Discord mock when configured; discord.py keeps these process-wide."""
    if api_base:
        discord.http.Route.BASE = api_base
    if gateway_url:
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url)
