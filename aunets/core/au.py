"""Facial Action Units (FACS) that AUNets Live detects, with their names.

BP4D's 12 AUs are the default; FERA 2017 uses a subset of 10.
"""

from __future__ import annotations

AU_NAMES: dict[int, str] = {
    1: "Inner brow raiser",
    2: "Outer brow raiser",
    4: "Brow lowerer",
    6: "Cheek raiser",
    7: "Lid tightener",
    10: "Upper lip raiser",
    12: "Lip corner puller",
    14: "Dimpler",
    15: "Lip corner depressor",
    17: "Chin raiser",
    23: "Lip tightener",
    24: "Lip pressor",
}

BP4D_AUS: tuple[int, ...] = (1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 24)
FERA2017_AUS: tuple[int, ...] = (1, 4, 6, 7, 10, 12, 14, 15, 17, 23)


def au_key(au: int) -> str:
    """Column/JSON key of an AU, OpenFace style: ``au_key(1) == "AU01"``."""
    return f"AU{au:02d}"


def parse_au(key: str | int) -> int:
    """Inverse of :func:`au_key`; accepts ``"AU01"``, ``"au1"``, ``"1"`` or ``1``."""
    if isinstance(key, int):
        return key
    text = key.strip().upper()
    if text.startswith("AU"):
        text = text[2:]
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"not an AU key: {key!r} (expected e.g. 'AU01' or 1)") from None
