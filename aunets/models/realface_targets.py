"""The issue-24 targets on real faces: cross-talk, stillness, intensity at rest, and the targets table.

Built on the real-face benchmark's per-clip outputs (:class:`~aunets.models.realface_benchmark.ClipOutput`, one per
clip of :mod:`aunets.models.data.realfaces`). Every figure here comes from the photo sets' own labels, never from
OpenFace (whose outputs only give the agreement figures of the targets table):

* **cross-talk**: on the test people's smiles, the mean rise of each AU's raw probability (``AUxx_p``) over the
  same person's neutral level: London, the smiling half (frames 35-49) against the neutral half (10-24); inter-faces,
  a smiling person's frames 5-49 against the mean of the neutral test people's (there is one photo per person).
  A smile may move AU6, 7, 10, 12 and 14 (and AU25, not in the set); every other AU should stay where it was;
* **stillness**: the mean |change| of each AU's probability between consecutive frames of a still photo made into
  a clip (identical frames but for the codec): London within each half, Canada and inter-faces whole, from the
  third frame on (the first frames have no previous frame for the flow). The raw probability (``AUxx_p``) is the
  target; the smoothed one (after calibration and median) is reported beside it;
* **intensity at rest**: the share of neutral frames whose ``AUxx_r`` is 0 (as the CSV writes it, three decimals).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from aunets.core.au import au_key
from aunets.models.data.realfaces import RealItem
from aunets.models.realface_benchmark import LONDON_NEUTRAL, LONDON_SMILE, NEUTRAL_FRAMES, STILL_FRAMES, ClipOutput

SMILE_MAY_MOVE = (6, 7, 10, 12, 14)
"""AUs a smile may raise (the cross-talk target exempts them)."""
CROSS_TALK_MAX = 0.1
STILLNESS_MAX = 0.01
INTENSITY_ZERO_MIN = 0.9
ZERO_INTENSITY = 0.0005
"""An intensity below this is written as 0.000 in the CSV: "AUxx_r = 0"."""


def _field(o: ClipOutput, name: str) -> np.ndarray:
    arr = getattr(o, name)
    if arr is None:
        raise ValueError(f"this output has no {name!r} (only the engine's have raw and smoothed probabilities)")
    return np.asarray(arr)


def _mean_rows(x: np.ndarray, rows: Sequence[int]) -> np.ndarray | None:
    """Per-column mean of ``x[rows]`` over the rows with a face; None if none has one."""
    sub = x[[r for r in rows if r < len(x)]]
    sub = sub[~np.isnan(sub).any(axis=1)]
    return sub.mean(axis=0) if len(sub) else None


def cross_talk(outputs: Mapping[str, ClipOutput], items: Mapping[str, RealItem], field: str = "raw"
               ) -> dict[str, Any]:  # fmt: skip
    """Per AU the mean rise of ``field`` (``raw`` probability by default) on the smiles of ``items`` over the same
    person's neutral level (London: its own neutral half; inter-faces: the neutral people's mean among ``items``).
    Pass the test people only. ``all`` pools every smile (London and inter-faces), the figure the target is on."""
    rises: dict[str, list[np.ndarray]] = {"london": [], "interfaces": []}
    aus: tuple[int, ...] = ()
    portraits_neutral, portraits_smiling = [], []
    for name, item in items.items():
        o = outputs[name]
        aus = o.aus
        x = _field(o, field)
        if item.set == "london":
            n, s = _mean_rows(x, LONDON_NEUTRAL), _mean_rows(x, LONDON_SMILE)
            if n is not None and s is not None:
                rises["london"].append(s - n)
        elif item.set == "interfaces":
            m = _mean_rows(x, STILL_FRAMES)
            if m is None:
                continue
            if item.expression == "N":
                portraits_neutral.append(m)
            elif item.expression in ("S", "L"):
                portraits_smiling.append(m)
    if portraits_neutral:
        level = np.mean(portraits_neutral, axis=0)
        rises["interfaces"] = [m - level for m in portraits_smiling]
    pooled = rises["london"] + rises["interfaces"]
    per_au: dict[str, dict[str, float | None]] = {}
    for k, a in enumerate(aus):
        per_au[au_key(a)] = {
            kind: (float(np.mean([r[k] for r in rs])) if rs else None)
            for kind, rs in (("all", pooled), ("london", rises["london"]), ("interfaces", rises["interfaces"]))
        }
    checked = [v["all"] for a, v in zip(aus, per_au.values(), strict=True) if a not in SMILE_MAY_MOVE]
    worst = max((v for v in checked if v is not None), default=None)
    return {"field": field, "smiles": {k: len(v) for k, v in rises.items()},
            "neutral_portraits": len(portraits_neutral), "per_au": per_au, "max_rise_checked": worst,
            "exempt": [au_key(a) for a in SMILE_MAY_MOVE]}  # fmt: skip


def still_pairs(item: RealItem, n: int) -> list[int]:
    """Frames ``i`` of ``item``'s clip (N frames) whose pair (i - 1, i) shows the same photo, flow included."""
    if item.set == "london":
        half = n // 2
        return [i for i in range(2, n) if i not in (half, half + 1)]
    if item.set in ("canada", "interfaces"):
        return list(range(2, n))
    return []


def stillness(outputs: Mapping[str, ClipOutput], items: Mapping[str, RealItem]) -> dict[str, Any]:
    """Per AU the mean |p(i) - p(i - 1)| over the still pairs of frames (:func:`still_pairs`) of every photo clip in
    ``items``, for the raw and the smoothed probability; pairs with a missing face are left out."""
    out: dict[str, Any] = {}
    aus: tuple[int, ...] = ()
    for field in ("raw", "smoothed"):
        diffs = []
        for name, item in items.items():
            o = outputs[name]
            aus = o.aus
            x = _field(o, field)
            idx = np.array(still_pairs(item, len(x)), dtype=int)
            if not len(idx):
                continue
            d = np.abs(x[idx] - x[idx - 1])
            diffs.append(d[~np.isnan(d).any(axis=1)])
        d = np.concatenate(diffs) if diffs else np.zeros((0, len(aus)))
        per_au = {au_key(a): float(d[:, k].mean()) if len(d) else None for k, a in enumerate(aus)}
        out[field] = {"pairs": len(d), "per_au": per_au, "mean": float(d.mean()) if d.size else None,
                      "max_au": max((v for v in per_au.values() if v is not None), default=None)}  # fmt: skip
    return out


def neutral_rows(item: RealItem) -> range | None:
    """The frames of ``item``'s clip that show a neutral face and are scored (None: no neutral frames)."""
    if item.set in NEUTRAL_FRAMES:
        return NEUTRAL_FRAMES[item.set]
    if item.set == "interfaces" and item.expression == "N":
        return STILL_FRAMES
    return None


def intensity_at_rest(outputs: Mapping[str, ClipOutput], items: Mapping[str, RealItem]) -> dict[str, Any] | None:
    """The share of neutral frames (with a face) whose intensity is 0 as written (< :data:`ZERO_INTENSITY`), over
    every AU and per AU; None where the outputs have no intensity."""
    rows = []
    aus: tuple[int, ...] = ()
    for name, item in items.items():
        o = outputs[name]
        frames = neutral_rows(item)
        if o.intensity is None or frames is None:
            continue
        aus = o.aus
        x = o.intensity[[f for f in frames if f < len(o.intensity)]]
        rows.append(x[~np.isnan(x).any(axis=1)] < ZERO_INTENSITY)
    if not rows:
        return None
    zero = np.concatenate(rows)
    return {"frames": len(zero), "rate": float(zero.mean()) if zero.size else None,
            "per_au": {au_key(a): float(zero[:, k].mean()) if len(zero) else None for k, a in enumerate(aus)}}


def target_figures(outputs: Mapping[str, ClipOutput], items: Mapping[str, RealItem | None]) -> dict[str, Any]:
    """Cross-talk (test people), stillness (every photo clip) and intensity at rest (test people; inter-faces) of
    one engine's outputs."""
    real = {n: it for n, it in items.items() if it is not None}
    test = {n: it for n, it in real.items() if it.split == "test" and it.set in ("london", "interfaces")}
    photos = {n: it for n, it in real.items() if it.set in ("london", "canada", "interfaces")}
    out: dict[str, Any] = {"cross_talk": cross_talk(outputs, test), "stillness": stillness(outputs, photos)}
    rest = {"test": {n: it for n, it in real.items() if it.split == "test" and it.set in NEUTRAL_FRAMES},
            "interfaces": {n: it for n, it in real.items() if it.set == "interfaces"}}
    out["intensity_at_rest"] = {k: intensity_at_rest(outputs, v) for k, v in rest.items()}
    return out


def _get(data: Mapping[str, Any], dotted: str) -> Any:
    node: Any = data
    for key in dotted.split("."):
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return node


def targets(results: Mapping[str, Any], detector: str) -> dict[str, Any]:
    """The issue's targets on one engine's figures (``results[detector]``, as ``benchmarks/real_faces.py`` writes
    them): key -> ``label``, ``value``, ``shown`` (formatted), ``goal`` and ``met`` (``met``/``not met``/``n/a``).
    ``order`` lists the keys in table order. On the bundled clip an AU whose r is undefined (its output never
    changes) counts as r = 0."""
    d = results[detector]
    of = "clip.vs_openface_offline.per_au"
    rows: list[tuple[str, str, str, str, float, bool]] = [  # key, label, path, fmt, bound, at least
        ("clip_mean_r", "bundled clip: mean r vs OpenFace, 11 AUs", "_clip_mean_r", "r", 0.6, True),
        ("clip_au1_r", "bundled clip: AU1 r vs OpenFace", "_clip_r.AU01", "r", 0.4, True),
        ("clip_au2_r", "bundled clip: AU2 r vs OpenFace", "_clip_r.AU02", "r", 0.4, True),
        ("clip_au4_r", "bundled clip: AU4 r vs OpenFace", "_clip_r.AU04", "r", 0.4, True),
        ("clip_min_r", "bundled clip: lowest r vs OpenFace", "_clip_min_r", "r", 0.2, True),
        ("interfaces_auc", "inter-faces, all: AU12 smile AUC", "interfaces.smile_auc.AU12", "r", 0.97, True),
        ("interfaces_test_auc", "inter-faces, test split: AU12 smile AUC", "interfaces_test.smile_auc.AU12", "r",
         0.97, True),
        ("interfaces_fp", "inter-faces, all: neutral false positives, 12 AUs",
         "interfaces.neutral_false_positive.rate", "%", 0.03, False),
        ("interfaces_fp_max_au", "inter-faces, all: neutral false positives, worst AU", "_interfaces_fp_max", "%",
         0.05, False),
        ("interfaces_test_fp", "inter-faces, test split: neutral false positives, 12 AUs",
         "interfaces_test.neutral_false_positive.rate", "%", 0.03, False),
        ("interfaces_test_fp_max_au", "inter-faces, test split: neutral false positives, worst AU",
         "_interfaces_test_fp_max", "%", 0.05, False),
        ("london_auc12", "London test: AU12 smile AUC", "test.smile_auc.AU12", "r", 0.97, True),
        ("london_auc6", "London test: AU6 smile AUC", "test.smile_auc.AU06", "r", 0.90, True),
        ("test_fp", "London/Canada test: neutral false positives", "test.neutral_false_positive.rate", "%", 0.03,
         False),
        ("talking_max", "GRID test, talking: worst of AU12/14/23/24 on", "_talking_max", "%", 0.05, False),
        ("cross_talk", "test smiles: largest rise of an AU other than 6/7/10/12/14", "targets_figures.cross_talk."
         "max_rise_checked", "p", CROSS_TALK_MAX, False),
        ("stillness", "still photos: largest per-AU mean change of raw p between frames",
         "targets_figures.stillness.raw.max_au", "p3", STILLNESS_MAX, False),
        ("intensity_zero", "neutral frames with AUxx_r = 0 (London/Canada test)",
         "targets_figures.intensity_at_rest.test.rate", "%", INTENSITY_ZERO_MIN, True),
        ("intensity_zero_interfaces", "neutral frames with AUxx_r = 0 (inter-faces)",
         "targets_figures.intensity_at_rest.interfaces.rate", "%", INTENSITY_ZERO_MIN, True),
    ]  # fmt: skip

    clip_r = {au: v.get("r") or 0.0 for au, v in (_get(d, of) or {}).items()}  # undefined r (constant output): 0

    def derived(path: str) -> float | None:
        if path == "_clip_min_r":
            return min(clip_r.values(), default=None)
        if path == "_clip_mean_r":
            return float(np.mean(list(clip_r.values()))) if clip_r else None
        if path.startswith("_clip_r."):
            return clip_r.get(path.removeprefix("_clip_r."))
        if path == "_talking_max":
            return max((v for v in (_get(d, "test.talking_on.per_au") or {}).values() if v is not None), default=None)
        group = "interfaces_test" if "test" in path else "interfaces"
        per = _get(d, f"{group}.neutral_false_positive.per_au") or {}
        return max((v for v in per.values() if v is not None), default=None)

    out: dict[str, Any] = {"detector": detector, "order": [r[0] for r in rows]}
    for key, label, path, fmt, bound, at_least in rows:
        value = derived(path) if path.startswith("_") else _get(d, path)
        sign = "≥" if at_least else "≤"
        shown_bound = f"{100 * bound:.0f} %" if fmt == "%" else f"{bound:g}"
        shown = "n/a" if value is None else (f"{100 * value:.1f} %" if fmt == "%" else f"{value:.3f}"
                                             if fmt == "p3" else f"{value:.2f}")  # fmt: skip
        met = "n/a" if value is None else "met" if (value >= bound if at_least else value <= bound) else "not met"
        out[key] = {"label": label, "value": value, "shown": shown, "goal": f"{sign} {shown_bound}", "met": met}
    return out
