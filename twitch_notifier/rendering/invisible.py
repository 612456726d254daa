"""Invisible and direction-changing characters taken out of text from Twitch before the bot shows it, so a
title or a name can neither reverse nor hide the text around it in Discord."""

from __future__ import annotations

import re
import unicodedata

__all__ = ["strip_invisible"]

# Stripped, not replaced by a visible marker: every legitimate use of these characters (a right-to-left mark in
# a Hebrew title, a zero-width non-joiner in a Persian name, a soft hyphen or a byte-order mark pasted along
# with the text) would then show as damage, while removing them only costs a hint to the text's shaping or
# direction; Unicode's bidirectional algorithm still lays out right-to-left words correctly without them.
# What goes: every control (Cc), format (Cf) and lone surrogate (Cs) character, and the line and paragraph
# separators; line breaks and tabs become one space, so words stay apart and a one-line entry stays one line.
# Two format characters stay where emoji need them, by rules simple enough to check by eye: the zero-width
# joiner between two emoji (👨‍👩‍👧, 🏳️‍🌈), and the tag characters of a subdivision flag (🏴 England).
# Zero-width non-joiners go everywhere: keeping them would need a per-script rule, and the words they sit in
# stay readable without them. The zero-width space the bot puts after `@` to defuse mentions is added after
# this step (messages.py), so it survives.

ZERO_WIDTH_JOINER = "\u200d"
_STRIPPED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
# Line breaks and tabs (all Cc, or Zl/Zp) keep words apart: each run of them becomes one space.
_BREAKS = frozenset("\t\n\v\f\r\x1c\x1d\x1e\x1f\x85\u2028\u2029")
# Waving black flag, a region's two letters and up to four more (Unicode's emoji tag sequences, e.g. `gbeng`),
# then CANCEL TAG. Bounded, so tag characters cannot carry a hidden sentence after a flag.
_SUBDIVISION_FLAG = re.compile(
    "\U0001f3f4[\U000e0061-\U000e007a]{2}[\U000e0030-\U000e0039\U000e0061-\U000e007a]{1,4}\U000e007f"
)
_VARIATION_SELECTOR_16 = "\ufe0f"  # asks for emoji presentation: ❤️‍🔥 has it just before the joiner
_SKIN_TONES = range(0x1F3FB, 0x1F400)  # emoji modifiers (Sk): 👩🏽‍💻 has one just before the joiner


def strip_invisible(text: str) -> str:
    """`text` without the characters that reorder or hide text; emoji sequences kept whole."""
    if text.isprintable():  # false for every character removed here, so the common case costs one scan
        return text
    kept = {index for match in _SUBDIVISION_FLAG.finditer(text) for index in range(match.start(), match.end())}
    out: list[str] = []
    for index, char in enumerate(text):
        if index in kept or unicodedata.category(char) not in _STRIPPED_CATEGORIES:
            out.append(char)
        elif char in _BREAKS:
            if out and out[-1] != " ":
                out.append(" ")
        elif char == ZERO_WIDTH_JOINER and _joins_emoji(text, index):
            out.append(char)
    return "".join(out)


def _joins_emoji(text: str, index: int) -> bool:
    """Whether the joiner at `index` sits between two emoji, as in a ZWJ sequence (👨‍👩‍👧)."""
    if index == 0 or index == len(text) - 1:
        return False
    before, after = text[index - 1], text[index + 1]
    before_is_emoji = (
        unicodedata.category(before) == "So" or before == _VARIATION_SELECTOR_16 or ord(before) in _SKIN_TONES
    )
    return before_is_emoji and unicodedata.category(after) == "So"
