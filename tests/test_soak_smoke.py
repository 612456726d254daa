"""A short run of bench/soak.py so the soak harness cannot rot: random faults and restarts, nothing lost.

40 cycles with the denser SMOKE mix, so that every fault kind turns up (hangs, poisoned entries, malformed
answers, removals racing a cycle, a start-up with Discord down) and the run stays a few seconds long.
"""

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import soak


def figure(out: str, label: str) -> int:
    match = re.search(rf"^  {re.escape(label)}:?\s+(\d+)", out, re.MULTILINE)
    assert match is not None, f"no {label!r} line in the soak's report:\n{out}"
    return int(match.group(1))


async def test_short_soak_exercises_every_fault_and_loses_doubles_stalls_nothing(capsys):
    status = await soak.soak(cycles=40, seed=1, mix=soak.SMOKE)
    out = capsys.readouterr().out
    hangs = re.search(r"hangs: Discord (\d+) .*, Twitch (\d+) ", out)
    assert hangs is not None, out
    assert int(hangs.group(1)) > 0, out
    assert int(hangs.group(2)) > 0, out
    assert figure(out, "poisoned entries") > 0, out
    assert figure(out, "malformed answers") > 0, out
    assert figure(out, "removal races") > 0, out
    assert figure(out, "start-ups with Discord down") > 0, out
    assert figure(out, "duplicates") == 0, out
    assert figure(out, "misses") == 0, out
    assert figure(out, "crashes") == 0, out
    assert figure(out, "posted after removal") == 0, out
    assert figure(out, "stalls (> 2 intervals of 1 s, beyond Twitch's 429 waits)") == 0, out
    assert status == 0, out
