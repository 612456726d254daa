"""bench/reach.py at a tiny size, so it cannot rot: the poll runs with every option OFF and ON (the fakes in process,
Discord's limits enforced) and its claims, never its timings: the options add no Twitch request to any cycle, and the
ON run's extra Discord requests (crossposts, scheduled events, opt-in roles) are counted by kind, with no 429."""

from bench import reach
from bench.common import FakeOptions

FAST = FakeOptions(twitch_rate_limit=800, twitch_latency=0.005, discord_limits=True)
TINY = reach.World(servers=4, streamers=4, follows=2, live=2, ends=1, restarts=1, presses=2, probes=1, quiet=0.1)


async def test_reach_options_add_no_twitch_request_and_their_discord_requests_are_counted():
    result = await reach.measure(TINY, fakes=FAST, parts=("poll",))
    off, on = result["off"], result["on"]
    cycles_off, cycles_on = reach._cycles(off), reach._cycles(on)
    assert [c["step"] for c in cycles_off] == [c["step"] for c in cycles_on]
    for a, b in zip(cycles_off, cycles_on, strict=True):
        assert a["twitch_by_path"] == b["twitch_by_path"], b["step"]
        assert b["twitch_by_path"].get("/helix/streams") == 1 or b["step"].startswith("start-up")
    total_off, total_on = reach.totals(off), reach.totals(on)
    assert total_off["by_kind"].get("crosspost", 0) == total_off["by_kind"].get("event create", 0) == 0
    for kind in ("message post", "crosspost", "event create", "event patch", "member role add"):
        assert total_on["by_kind"].get(kind, 0) > 0, kind
    for run, total in ((off, total_off), (on, total_on)):
        assert total["global_429"] == total["route_429"] == 0
        assert total["max_1s"] <= 50
        assert run["duplicates"] == 0
        assert run["errors"] == []
        assert run["unhandled"] == 0
    assert on["crossposted"] > 0
    assert on["scheduled_events"] > 0
    text = reach.report(result)
    assert "(a) Twitch requests per poll cycle, by path (options OFF vs ON):" in text
    assert "| Cycle | Twitch path | OFF | ON | Same |" in " ".join(text.split())
    assert "Findings: " in text
