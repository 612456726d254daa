"""cogs.streamers: the words of each outcome of the add/find rules (pure functions, no gateway)."""

from twitch_notifier.cogs.streamers import add_reply, category_error_text, target_problem
from twitch_notifier.core.subscriptions import (
    AddOutcome,
    AddRefusal,
    AddResult,
    Target,
    TooManyCategories,
    UnknownCategory,
)
from twitch_notifier.models import Category, Streamer, Subscription

SHROUD = Streamer("1", "shroud", "Shroud_*")


def test_added_names_the_channel_the_filter_and_the_other_channels():
    result = AddResult(AddOutcome.ADDED, SHROUD, channel_id=10, also_in=(11,), categories=(Category("5", "VALORANT"),))
    text = add_reply(result)
    assert text.startswith("Now following **Shroud\\_\\***")  # markdown escaped
    assert "announce in <#10>" in text
    assert "only while they stream VALORANT." in text
    assert "also announced in <#11>" in text


def test_each_refusal_has_its_own_words():
    words = {refusal: add_reply(AddResult.refused(refusal, 10, "x")) for refusal in AddRefusal}
    assert len(set(words.values())) == len(AddRefusal)
    assert "/setchannel" in words[AddRefusal.NO_CHANNEL]
    assert "x streamers" in words[AddRefusal.LIMIT_REACHED]


def test_category_and_target_problems():
    assert "At most 10" in category_error_text(TooManyCategories())
    assert "**Chess\\_**" in category_error_text(UnknownCategory("Chess_"))
    subs = tuple(Subscription(i, 1, c, SHROUD) for i, c in ((1, 10), (2, 11)))
    assert "<#10>, <#11>" in target_problem(Target(None, subs))
    assert "isn't followed here" in target_problem(Target(None))
