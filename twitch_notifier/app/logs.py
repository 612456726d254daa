"""Logging for the running bot: one format, discord.py's chatter quietened, and secrets redacted."""

from __future__ import annotations

import logging
from collections.abc import Sequence

__all__ = ["MIN_SECRET_LENGTH", "ReconnectNoise", "SecretRedactor", "setup_logging"]

MIN_SECRET_LENGTH = 6
"""Shorter values are not redacted: replacing them would garble ordinary words."""


class SecretRedactor(logging.Filter):
    """Last line of defence: replace any secret that slipped into a log record."""

    def __init__(self, secrets: Sequence[str]) -> None:
        super().__init__()
        self._secrets = [s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH]

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        message = record.getMessage()
        redacted = message
        for secret in self._secrets:
            redacted = redacted.replace(secret, "[redacted]")
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


class ReconnectNoise(logging.Filter):
    """discord.py logs every gateway reconnect attempt at ERROR with a full traceback; in an outage that
    is a page of tracebacks per minute for something the bot survives by design. Keep one WARNING line
    naming the error instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "discord.client" and str(record.msg).startswith("Attempting a reconnect"):
            error = record.exc_info[1] if record.exc_info else None
            record.msg = f"{record.getMessage()} after {type(error).__name__}: {error}" if error else record.msg
            record.args = None if error else record.args
            record.exc_info = record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def setup_logging(level: str, secrets: Sequence[str] = ()) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-8s %(name)s: %(message)s"))
    handler.addFilter(ReconnectNoise())
    handler.addFilter(SecretRedactor(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("discord.http").setLevel(logging.WARNING)
    logging.getLogger("discord.gateway").setLevel(max(logging.INFO, root.level))
