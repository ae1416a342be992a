"""Expression classes derived from AU combinations (the domain-adaptation stage's labels).

A frame gets the prototype whose AUs are all present, preferring the prototype with the most AUs;
``neutral`` when no AU is present and ``other`` otherwise. Prototypes are restricted to the AUs the dataset
labels (a prototype left with no AU is dropped).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

EXPRESSION_PROTOTYPES: dict[str, tuple[int, ...]] = {
    "happy": (6, 12),
    "surprise": (1, 2, 26),
    "sad": (1, 4, 15),
    "anger": (4, 5, 7, 23),
    "disgust": (9, 10, 17),
    "fear": (1, 2, 4, 5, 20, 26),
    "contempt": (14,),
}


def expression_classes(aus: Sequence[int]) -> list[tuple[str, tuple[int, ...]]]:
    """(name, AUs within ``aus``) per usable prototype, then ``neutral`` and ``other`` (empty AU tuples)."""
    out = []
    seen: set[tuple[int, ...]] = set()
    for name, proto in EXPRESSION_PROTOTYPES.items():
        kept = tuple(a for a in proto if a in aus)
        if kept and kept not in seen:
            out.append((name, kept))
            seen.add(kept)
    return [*out, ("neutral", ()), ("other", ())]


def expression_labels(labels: np.ndarray, aus: Sequence[int]) -> tuple[np.ndarray, list[str]]:
    """``labels`` int (N, n_aus) with 1/0/-1 -> (int64 (N,) class ids, class names)."""
    classes = expression_classes(aus)
    names = [n for n, _ in classes]
    present = labels == 1
    out = np.full(len(labels), names.index("other"), dtype=np.int64)
    best = np.zeros(len(labels), dtype=np.int64)
    for k, (_, proto) in enumerate(classes):
        if not proto:
            continue
        cols = [list(aus).index(a) for a in proto]
        match = present[:, cols].all(axis=1) & (len(proto) > best)
        out[match] = k
        best[match] = len(proto)
    out[~present.any(axis=1)] = names.index("neutral")
    return out, names
