"""Unit tests for templates.py: ping parsing and allowed_mentions, template validation and safe substitution."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from twitch_notifier.rendering.pings import PingChoice, parse_ping, ping_allowed_mentions, ping_mention
from twitch_notifier.rendering.templates import (
    DEFAULT_TEMPLATE,
    STRAY_CLOSING_BRACE,
    STRAY_OPENING_BRACE,
    TEMPLATE_MAX_LENGTH,
    UNREADABLE_BRACES,
    TemplateError,
    parse_game_list,
    render_template,
    validate_template,
)

ROLE = "123456789012345678"


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("none", PingChoice("")),
        ("", PingChoice("")),
        ("@everyone", PingChoice("everyone")),
        ("Everyone", PingChoice("everyone")),
        ("@here", PingChoice("here")),
        (f"<@&{ROLE}>", PingChoice(ROLE, int(ROLE))),
        (ROLE, PingChoice(ROLE, int(ROLE))),
        (f"role:{ROLE}", PingChoice(ROLE, int(ROLE))),
        ("999999999999999999", PingChoice("everyone")),  # the guild's @everyone role
    ],
)
def test_parse_ping(typed, expected):
    assert parse_ping(typed, everyone_role_id=999999999999999999) == expected


@pytest.mark.parametrize("typed", ["mods", "<@123456789012345678>", "12", "@everyone @here"])
def test_parse_ping_rejects(typed):
    with pytest.raises(TemplateError):
        parse_ping(typed)


def test_allowed_mentions_allow_exactly_the_one_ping():
    assert ping_allowed_mentions("") == {"parse": [], "replied_user": False}
    assert ping_allowed_mentions(None) == {"parse": [], "replied_user": False}
    assert ping_allowed_mentions("everyone") == {"parse": ["everyone"], "replied_user": False}
    assert ping_allowed_mentions("here") == {"parse": ["everyone"], "replied_user": False}
    assert ping_allowed_mentions(ROLE) == {"parse": [], "roles": [ROLE], "replied_user": False}
    assert (ping_mention(ROLE), ping_mention("here"), ping_mention("")) == (f"<@&{ROLE}>", "@here", "")


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{streamer} {nope}", "Unknown placeholder `{nope}`"),
        ("{a} {b} {a}", "Unknown placeholders `{a}`, `{b}`"),
        ("{title", "stray"),
        ("title}", "stray"),
        ("{title:>30}", "is not a placeholder"),
        ("{title.upper}", "Unknown placeholder"),
        ("{0}", "Unknown placeholder `{0}`"),
        ("   ", "can't be empty"),
        ("x" * (TEMPLATE_MAX_LENGTH + 1), "at most 1,000"),
    ],
)
def test_validation_names_the_problem(template, message):
    with pytest.raises(TemplateError) as info:
        validate_template(template)
    assert message in str(info.value)


def test_valid_templates_and_literal_braces():
    assert validate_template("  {ping} {streamer} is live: {title} {{not a placeholder}} ") == (
        "{ping} {streamer} is live: {title} {{not a placeholder}}"
    )
    values = {"streamer": "A", "title": "T", "game": "G", "url": "U", "viewers": "1", "ping": ""}
    assert render_template("{streamer}: {title} {{x}}", values) == "A: T {x}"
    assert render_template(None, values) == DEFAULT_TEMPLATE.format_map(values)


@given(
    template=st.sampled_from(["{title}", "{title} {title} {game}", "x" * 999 + "{title}", "{ping}{url}{viewers}"]),
    title=st.text(min_size=0, max_size=3000),
)
def test_rendering_never_exceeds_discords_limit(template, title):
    values = {"streamer": "s", "title": title, "game": "g" * 500, "url": "https://www.twitch.tv/s", "viewers": "1"}
    assert len(render_template(template, values)) <= 2000


def test_short_values_are_kept_whole():
    values = {"title": "t" * 3000, "url": "https://www.twitch.tv/s"}
    out = render_template("{title} {url}", values)
    assert len(out) == 2000
    assert out.endswith("… https://www.twitch.tv/s")


def test_game_list():
    assert parse_game_list("VALORANT, Minecraft ,, VALORANT") == ["VALORANT", "Minecraft"]
    assert parse_game_list("any") is None
    assert parse_game_list(" , ") is None


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("}", STRAY_CLOSING_BRACE),
        ("{title}}", STRAY_CLOSING_BRACE),
        ("{{title}", STRAY_CLOSING_BRACE),
        ("{", STRAY_OPENING_BRACE),
        ("{title} is live {", STRAY_OPENING_BRACE),
        ("{ti{tle}", UNREADABLE_BRACES),
    ],
)
def test_an_unpaired_brace_is_named_in_our_words(template, message):
    with pytest.raises(TemplateError) as info:
        validate_template(template)
    assert str(info.value) == message
    assert "format string" not in str(info.value)


def test_the_brace_wording_says_which_brace_and_how_to_write_it():
    assert STRAY_CLOSING_BRACE == (
        "The message has a stray `}` without its `{`: placeholders look like `{title}`; write `}}` for a literal brace."
    )
    assert "write `{{` for a literal brace" in STRAY_OPENING_BRACE


@given(st.text(alphabet="{}ab", max_size=12))
def test_every_template_is_accepted_or_refused_in_our_words(template):
    message = ""
    try:
        validate_template(template)
    except TemplateError as exc:
        message = str(exc)
    assert "format string" not in message
    assert "expected '}'" not in message
