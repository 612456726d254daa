"""A short run of bench/soak.py so the soak harness cannot rot: random faults and restarts, nothing lost."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import soak


async def test_short_soak_has_no_duplicates_misses_or_crashes(capsys):
    assert await soak.soak(cycles=40, seed=7) == 0
    out = capsys.readouterr().out
    assert "duplicates: 0" in out
    assert "misses:     0" in out
    assert "crashes:    0" in out
