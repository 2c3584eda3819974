"""Free text from users (names): which characters it may not carry.

A control character (CR, LF, NUL, the C0/C1 ranges), an invisible format
character (bidi overrides, U+FEFF...) or a Unicode line/paragraph separator
(U+2028, U+2029) has no place in a name: it splits a line of a mail or a log,
hides text, or reorders what a person reads. ZWJ and ZWNJ (U+200C, U+200D) are
format characters too, but they are part of how names are written in Persian
and the Indic scripts and cannot break a line, so they are allowed.
"""

from __future__ import annotations

import unicodedata

# Cs: a lone surrogate (JSON "\ud800") cannot even be encoded to UTF-8.
FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
ALLOWED_FORMAT = frozenset({"\u200c", "\u200d"})  # ZWNJ, ZWJ: spelling, not control


def forbidden_characters(text: str) -> list[str]:
    """The characters of `text` a name may not carry, as `U+000A` labels, each once, in order."""
    found: list[str] = []
    for char in text:
        if char not in ALLOWED_FORMAT and unicodedata.category(char) in FORBIDDEN_CATEGORIES:
            label = f"U+{ord(char):04X}"
            if label not in found:
                found.append(label)
    return found


def one_line(text: str) -> str:
    """`text` with every forbidden character turned into a space and runs of spaces collapsed:
    what a mail header may show of it (the header cannot be split, whatever the input)."""
    cleaned = "".join(
        " " if char not in ALLOWED_FORMAT and unicodedata.category(char) in FORBIDDEN_CATEGORIES
        else char
        for char in text
    )
    return " ".join(cleaned.split())
