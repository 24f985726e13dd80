"""Text from outside (DICOM values, a PACS's answers, file names) made safe to print.

A value may hold ESC, BEL, CR or bidirectional overrides that a terminal or a table would obey
(recolour the screen, hide text, reorder what is shown); :func:`printable` writes each such
character as its escape (``\\x1b``), so the text shows what it holds (docs/architecture.md,
invariant 5).
"""

from __future__ import annotations

import unicodedata

__all__ = ["printable", "one_value"]


def printable(text: object, *, keep: str = "") -> str:
    """``text`` with every control, format (bidi) and unassigned character escaped; the
    characters in ``keep`` (for example ``"\\n"``) are left as they are."""
    s = str(text)
    if s.isprintable():
        return s
    return "".join(ch if ch.isprintable() or ch == " " or ch in keep
                   or unicodedata.category(ch) in ("Zs",) else ascii(ch)[1:-1] for ch in s)


def one_value(v) -> str | None:
    """A DICOM value shown as one text: multiple values joined by ``\\`` (as DICOM writes
    them), None when empty."""
    if v is None or v == "":
        return None
    if isinstance(v, (list, tuple)) or type(v).__name__ == "MultiValue":
        parts = [str(x) for x in v if x not in (None, "")]
        return "\\".join(parts) or None
    return str(v)
