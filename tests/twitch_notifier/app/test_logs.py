"""app.logs: secrets redacted from every record, discord.py's reconnect tracebacks folded into one line."""

import logging

from twitch_notifier.app.logs import ReconnectNoise, SecretRedactor


def record(name: str, level: int, msg: str, *args: object, exc: BaseException | None = None) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else None
    return logging.LogRecord(name, level, __file__, 1, msg, args, exc_info)


def test_a_secret_in_the_message_or_its_arguments_is_redacted():
    redactor = SecretRedactor(["token-abcdef", "s3cret-value", "short"])
    rec = record("x", logging.INFO, "sent %s with %s", "token-abcdef", "s3cret-value")
    assert redactor.filter(rec)
    assert rec.getMessage() == "sent [redacted] with [redacted]"
    untouched = record("x", logging.INFO, "a short word")
    redactor.filter(untouched)
    assert untouched.getMessage() == "a short word"  # values under 6 characters are not redacted


def test_discord_reconnect_noise_becomes_one_warning_without_a_traceback():
    try:
        raise OSError("connection refused")
    except OSError as exc:
        rec = record("discord.client", logging.ERROR, "Attempting a reconnect in %.2fs", 1.5, exc=exc)
    assert ReconnectNoise().filter(rec)
    assert rec.levelno == logging.WARNING
    assert rec.exc_info is None
    assert rec.getMessage() == "Attempting a reconnect in 1.50s after OSError: connection refused"


def test_other_records_pass_unchanged():
    rec = record("discord.client", logging.ERROR, "something else")
    ReconnectNoise().filter(rec)
    assert (rec.levelno, rec.getMessage()) == (logging.ERROR, "something else")
