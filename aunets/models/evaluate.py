"""Evaluating an engine bundle on a labelled dataset, through the code users run (:class:`AUEngine`).

Every frame becomes the engine's input exactly as in :class:`aunets.stream.pipeline.Pipeline`: the face crop
``crop_square(frame, box, margin, size)`` with the dataset's face box, the flow between the previous and the
current frame both cropped with the current box (the manifest's backend and encoding), :func:`compose_input`.
The detector of each frame is chosen by the view classifier (``view_source="classifier"``: the running mean
of its probabilities over the sequence so far, as the live pipeline does) or by the true view (``truth``).

Reported (paper Tables 4-6): F1-frame and accuracy per AU, per (true) view and overall, with no median, the
centred median (look-ahead (w-1)/2) and the causal median (look-ahead 0), ``w`` and the per-AU thresholds
from the manifest; the view classifier's precision/recall per view, per frame and per video (a video's view
= argmax of its mean probabilities).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from aunets.core.au import au_key
from aunets.core.crop import crop_square
from aunets.core.errors import ConfigError
from aunets.core.flow import encode_flow
from aunets.core.flow_registry import create_flow_backend
from aunets.engines.engine import AUEngine
from aunets.engines.manifest import Manifest
from aunets.engines.preprocess import compose_input, normalise
from aunets.models.data import FrameSet
from aunets.models.data.sample import FrameRecord
from aunets.models.metrics import (
    accuracy_per_column,
    f1_per_column,
    mean_ignoring_nan,
    precision_recall,
    smooth_sequences,
)

log = logging.getLogger(__name__)
VARIANTS: tuple[str, ...] = ("none", "centred", "causal")


@dataclass(frozen=True)
class EvalConfig:
    """``margin``: crop side / face box side (the runtime's default); ``view_source``: ``classifier`` or
    ``truth`` (see the module docstring); ``batch_size``: frames per engine call; ``max_frames``: cap by whole
    sequences (0: all)."""

    margin: float = 1.3
    view_source: str = "classifier"
    batch_size: int = 32
    max_frames: int = 0
    seed: int = 0


class _Reader:
    def __init__(self) -> None:
        self._last: tuple[str, np.ndarray] | None = None

    def __call__(self, path: Path) -> np.ndarray:
        if self._last is not None and self._last[0] == str(path):
            return self._last[1]
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise ConfigError(f"cannot read image {path}; is the dataset complete?")
        self._last = (str(path), image)
        return image


def record_inputs(records: list[FrameRecord], manifest: Manifest, margin: float) -> Iterator[tuple[np.ndarray,
                                                                                                   np.ndarray]]:
    """Per record (in order): (detector input float32 (C,H,W), view-classifier input float32 (3,H,W))."""
    spec = manifest.input
    backend = create_flow_backend(manifest.flow.backend) if spec.uses_flow else None
    read, read_prev = _Reader(), _Reader()
    for r in records:
        image = read(r.image)
        box = r.box
        if box is None:  # a face crop: its centre square of side 1/margin is the face
            h, w = image.shape[:2]
            side = min(h, w) / margin
            box = ((w - side) / 2.0, (h - side) / 2.0, side, side)
        crop = crop_square(image, box, margin, spec.height)
        rgb = cv2.cvtColor(crop, cv2.COLOR_BGR2RGB)
        flow = None
        if spec.uses_flow and backend is not None:
            if r.flow_image is not None:
                f = read_prev(r.flow_image)
                flow = cv2.cvtColor(cv2.resize(f, (spec.width, spec.height), interpolation=cv2.INTER_AREA),
                                    cv2.COLOR_BGR2RGB)
            else:
                cur = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
                if r.prev_image is not None:
                    prev = crop_square(cv2.cvtColor(read_prev(r.prev_image), cv2.COLOR_BGR2GRAY), box, margin,
                                       spec.height)
                else:
                    prev = cur
                flow = encode_flow(backend.compute(prev, cur), manifest.flow.encoding, manifest.flow.clip_fraction)
        yield compose_input(rgb, flow, spec), normalise(rgb, spec)


def predict_frames(engine: AUEngine, frames: FrameSet, config: EvalConfig, progress: bool = True
                   ) -> dict[str, np.ndarray]:
    """Run the engine over every sequence. Returns ``probs`` (N, n_aus), ``view_probs`` (N, n_views) or empty,
    ``used_view`` (N,), ``sequence_ids`` (N,), in ``frames`` order."""
    from tqdm import tqdm

    m = engine.manifest
    n = len(frames)
    probs = np.zeros((n, len(m.aus)), dtype=np.float32)
    n_views = m.view_grid.n_views
    view_probs = np.zeros((n, n_views), dtype=np.float32) if engine.has_view_classifier else np.zeros((n, 0))
    used = np.zeros(n, dtype=np.int64)
    seq_ids = np.zeros(n, dtype=np.int64)
    true_views = frames.views()
    if config.view_source == "classifier" and not engine.has_view_classifier:
        log.warning("engine %s has no view classifier: using the true views", m.name)
    if config.view_source not in ("classifier", "truth"):
        raise ConfigError(f"view_source must be 'classifier' or 'truth', got {config.view_source!r}")
    bar = tqdm(total=n, desc=f"evaluating {m.name}", unit="frame", disable=not progress)
    for s, (_, idx) in enumerate(sorted(frames.sequences().items())):
        seq_ids[idx] = s
        running: np.ndarray | None = None
        recs = [frames.records[i] for i in idx]
        stream = record_inputs(recs, m, config.margin)
        for start in range(0, len(idx), config.batch_size):
            chunk = idx[start : start + config.batch_size]
            xs, rgbs = zip(*(next(stream) for _ in chunk), strict=True)
            batch = np.stack(xs)
            views = []
            if engine.has_view_classifier:
                vp = engine.classify_view(np.stack(rgbs))
                assert vp is not None
                view_probs[chunk] = vp
                for row in vp:
                    running = row if running is None else running + row
                    views.append(int(np.argmax(running)))
            if config.view_source == "truth" or not engine.has_view_classifier:
                views = [int(v) if v >= 0 else m.default_view for v in true_views[chunk]]
            used[chunk] = views
            probs[chunk] = engine.predict(batch, views)
            bar.update(len(chunk))
    bar.close()
    return {"probs": probs, "view_probs": view_probs, "used_view": used, "sequence_ids": seq_ids}


def score(frames: FrameSet, manifest: Manifest, pred: dict[str, np.ndarray]) -> dict[str, Any]:
    """Metrics of :func:`predict_frames`'s output against the labels (see the module docstring)."""
    aus = manifest.aus
    cols = [frames.aus.index(a) for a in aus]
    labels = frames.labels()[:, cols]
    w = manifest.median_window
    thr = np.array([manifest.threshold(a) for a in aus], dtype=np.float32)
    smoothed = {
        "none": pred["probs"],
        "centred": smooth_sequences(pred["probs"], pred["sequence_ids"], w, (w - 1) // 2),
        "causal": smooth_sequences(pred["probs"], pred["sequence_ids"], w, 0),
    }
    decided = {k: v >= thr for k, v in smoothed.items()}
    f1 = {k: f1_per_column(labels, d) for k, d in decided.items()}
    acc = {k: accuracy_per_column(labels, d) for k, d in decided.items()}
    per_au = {
        au_key(a): {
            "f1": {k: _num(f1[k][j]) for k in VARIANTS},
            "accuracy": {k: _num(acc[k][j]) for k in VARIANTS},
            "positives": int(np.sum(labels[:, j] == 1)),
            "frames": int(np.sum(labels[:, j] >= 0)),
            "threshold": float(thr[j]),
        }
        for j, a in enumerate(aus)
    }
    true_views = frames.views()
    per_view: dict[str, Any] = {}
    for v in sorted({int(x) for x in true_views if x >= 0}):
        mask = true_views == v
        vf1 = {k: f1_per_column(labels[mask], d[mask]) for k, d in decided.items()}
        vacc = {k: accuracy_per_column(labels[mask], d[mask]) for k, d in decided.items()}
        per_view[str(v)] = {
            "frames": int(mask.sum()),
            "mean_f1": {k: _num(mean_ignoring_nan(vf1[k])) for k in VARIANTS},
            "mean_accuracy": {k: _num(mean_ignoring_nan(vacc[k])) for k in VARIANTS},
            "f1": {au_key(a): _num(vf1["causal"][j]) for j, a in enumerate(aus)},
        }
    report: dict[str, Any] = {
        "engine": manifest.name,
        "data": frames.source,
        "frames": len(frames),
        "sequences": len(frames.sequences()),
        "median_window": w,
        "mean_f1": _num(mean_ignoring_nan(f1["causal"])),
        "mean_f1_centred": _num(mean_ignoring_nan(f1["centred"])),
        "mean_f1_none": _num(mean_ignoring_nan(f1["none"])),
        "mean_accuracy": _num(mean_ignoring_nan(acc["causal"])),
        "per_au": per_au,
        "per_view": per_view,
        "view_accuracy_video": None,
        "view_accuracy_frame": None,
        "view_classifier": None,
    }
    vp = pred["view_probs"]
    known = true_views >= 0
    if vp.shape[1] and known.any():
        n_views = vp.shape[1]
        frame_pr = precision_recall(true_views[known], np.argmax(vp[known], 1), n_views)
        seq = pred["sequence_ids"]
        vid_true, vid_pred = [], []
        for s in np.unique(seq[known]):
            sel = known & (seq == s)
            vid_true.append(int(np.bincount(true_views[sel]).argmax()))
            vid_pred.append(int(np.argmax(vp[sel].mean(0))))
        video_pr = precision_recall(np.asarray(vid_true), np.asarray(vid_pred), n_views)
        report["view_accuracy_frame"] = _num(float(frame_pr["accuracy"]))
        report["view_accuracy_video"] = _num(float(video_pr["accuracy"]))
        report["view_classifier"] = {
            level: {
                "accuracy": _num(float(pr["accuracy"])),
                "precision": {str(v): _num(x) for v, x in enumerate(pr["precision"])},
                "recall": {str(v): _num(x) for v, x in enumerate(pr["recall"])},
            }
            for level, pr in (("frame", frame_pr), ("video", video_pr))
        }
        report["detector_view_accuracy_frame"] = _num(float(np.mean(pred["used_view"][known] == true_views[known])))
    return report


def _num(x: float) -> float | None:
    """JSON-safe number: NaN becomes None (null)."""
    x = float(x)
    return None if np.isnan(x) else round(x, 6)


def evaluate(engine: AUEngine, frames: FrameSet, config: EvalConfig | None = None, progress: bool = True
             ) -> dict[str, Any]:
    """Evaluate ``engine`` on ``frames`` (already restricted to the split to score); see the module docstring."""
    config = config or EvalConfig()
    missing = [a for a in engine.manifest.aus if a not in frames.aus]
    if missing:
        raise ConfigError(f"the dataset has no labels for the engine's AU(s) {missing}; it labels {list(frames.aus)}")
    if config.max_frames:
        frames = frames.subsample_sequences(config.max_frames, config.seed)
    if not len(frames):
        raise ConfigError(f"no frames to evaluate in {frames.source}; check --split / --fold")
    pred = predict_frames(engine, frames, config, progress)
    report = score(frames, engine.manifest, pred)
    report["config"] = asdict(config)
    return report


def _fmt(x: Any) -> str:
    return "–" if x is None else f"{x:.3f}"


def to_markdown(report: dict[str, Any]) -> str:
    """The report as markdown tables."""
    lines = [
        f"## Evaluation of `{report['engine']}` on `{report['data']}`",
        "",
        f"{report['frames']} frames in {report['sequences']} sequences; median window {report['median_window']} "
        f"frames. Mean F1 over AUs: **{_fmt(report['mean_f1'])} causal median**, {_fmt(report['mean_f1_centred'])} "
        f"centred median, {_fmt(report['mean_f1_none'])} no median.",
        "",
        "| AU | F1 none | F1 centred | F1 causal | acc. causal | positives / frames | threshold |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, r in report["per_au"].items():
        lines.append(f"| {key} | {_fmt(r['f1']['none'])} | {_fmt(r['f1']['centred'])} | {_fmt(r['f1']['causal'])} | "
                     f"{_fmt(r['accuracy']['causal'])} | {r['positives']} / {r['frames']} | {r['threshold']:.3f} |")
    lines.append(f"| **mean** | {_fmt(report['mean_f1_none'])} | {_fmt(report['mean_f1_centred'])} | "
                 f"**{_fmt(report['mean_f1'])}** | {_fmt(report['mean_accuracy'])} | | |")
    if report["per_view"]:
        lines += ["", "| view | frames | mean F1 none | mean F1 centred | mean F1 causal | mean acc. causal |",
                  "|---|---|---|---|---|---|"]
        for v, r in report["per_view"].items():
            lines.append(f"| {v} | {r['frames']} | {_fmt(r['mean_f1']['none'])} | {_fmt(r['mean_f1']['centred'])} | "
                         f"{_fmt(r['mean_f1']['causal'])} | {_fmt(r['mean_accuracy']['causal'])} |")
    vc = report.get("view_classifier")
    if vc:
        lines += ["", f"View classifier: accuracy {_fmt(vc['frame']['accuracy'])} per frame, "
                      f"**{_fmt(vc['video']['accuracy'])} per video**.", "",
                  "| view | precision (frame) | recall (frame) | precision (video) | recall (video) |",
                  "|---|---|---|---|---|"]
        for v in vc["frame"]["precision"]:
            lines.append(f"| {v} | {_fmt(vc['frame']['precision'][v])} | {_fmt(vc['frame']['recall'][v])} | "
                         f"{_fmt(vc['video']['precision'][v])} | {_fmt(vc['video']['recall'][v])} |")
    return "\n".join(lines) + "\n"


def plot_report(report: dict[str, Any], path: Path) -> Path:
    """Bar chart of F1 per AU for the three median variants (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = list(report["per_au"])
    x = np.arange(len(keys))
    fig, ax = plt.subplots(figsize=(max(6, 0.7 * len(keys) + 2), 4))
    for k, variant in enumerate(VARIANTS):
        vals = [report["per_au"][a]["f1"][variant] or 0.0 for a in keys]
        ax.bar(x + (k - 1) * 0.27, vals, 0.27, label=f"{variant} median" if variant != "none" else "no median")
    ax.set_xticks(x, keys, rotation=45)
    ax.set_ylim(0, 1.12)  # headroom for the legend above the bars
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.set_ylabel("F1 (frame)")
    ax.set_title(f"{report['engine']}: mean F1 {_fmt(report['mean_f1'])} (causal median, w={report['median_window']})")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper center", ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
