"""The end of a training run: tune the per-AU thresholds and the median window on validation, write ``final/``
(weights and ``engine_spec.json``, what ``aunets build-engine`` exports) and ``curves.png``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from aunets.engines.manifest import InputSpec
from aunets.models.checkpoint import load_weights, save_weights
from aunets.models.data.cache import FrameCache
from aunets.models.metrics import best_thresholds, mean_ignoring_nan, tune_median
from aunets.models.train_config import TrainConfig
from aunets.models.units import Unit

if TYPE_CHECKING:
    import torch
    from torch import nn


class TrainedRun(Protocol):
    """What the end of a run reads of it (:class:`aunets.models.train.Trainer` after training every unit)."""

    config: TrainConfig
    out: Path
    device: torch.device
    progress: bool
    spec: InputSpec
    views: list[int]
    n_views: int
    history: dict[str, list[dict[str, float]]]

    def make_model(self, unit: Unit, n_classes: int) -> nn.Module:
        """A fresh network for ``unit`` with ``n_classes`` outputs (weights are loaded after)."""
        ...

    def head_of(self, unit: Unit, view: int) -> int:
        """The output head of ``unit`` that serves ``view``."""
        ...

    def predict(self, unit: Unit, model: nn.Module, cache: FrameCache, indices: np.ndarray) -> np.ndarray:
        """Probabilities of the cache's frames ``indices``: (n, K)."""
        ...


def finalise(trainer: TrainedRun, units: list[Unit], val: FrameCache) -> Path:
    """Tune thresholds + median on validation and write ``final/`` (weights and engine_spec.json)."""
    from tqdm import tqdm

    c = trainer.config
    final = trainer.out / "final"
    final.mkdir(parents=True, exist_ok=True)
    aus = tuple(c.data.aus)
    probs = np.full((len(val), len(aus)), np.nan, dtype=np.float32)
    detectors: dict[int, str] = {}
    heads: dict[int, int] = {}
    files: dict[str, dict[str, Any]] = {}
    arch = {"architecture": c.model.architecture, "architecture_kwargs": dict(c.model.kwargs)}
    au_units = [u for u in units if u.kind == "au"]
    if c.model.layout == "shared":
        unit = au_units[-1]
        model = trainer.make_model(unit, unit.num_outputs())
        load_weights(trainer.out / "checkpoints" / unit.name / "best.safetensors", model)
        model.to(trainer.device)
        probs = trainer.predict(unit, model, val, np.arange(len(val)))
        save_weights(final / "detector.safetensors", model)
        files["detector.safetensors"] = {"num_outputs": unit.num_outputs(), **arch}
        for v in trainer.views:
            detectors[v] = "detector.safetensors"
            heads[v] = trainer.head_of(unit, v)
    else:
        for v in tqdm(trainer.views, desc="validation predictions", disable=not trainer.progress):
            members = [u for u in au_units if u.views == (v,)]
            mask = val.views == v
            name = f"view{v}.safetensors"
            models = []
            for u in members:
                m = trainer.make_model(u, u.num_outputs())
                load_weights(trainer.out / "checkpoints" / u.name / "best.safetensors", m)
                models.append(m.to(trainer.device))
                if mask.any():
                    cols = [aus.index(a) for a in u.aus]
                    rows = np.flatnonzero(mask)
                    probs[np.ix_(rows, np.asarray(cols))] = trainer.predict(u, m, val, rows)
            if c.model.layout == "per_au_view":
                from aunets.engines.nets.ensemble import Ensemble

                save_weights(final / name, Ensemble(models))  # = create_model(arch, K, independent=True)
                entry = {"architecture": c.model.architecture,
                         "architecture_kwargs": {**c.model.kwargs, "independent": True}}
            else:
                save_weights(final / name, models[0])
                entry = dict(arch)
            files[name] = {"num_outputs": len(aus), **entry}
            detectors[v] = name
    valid = ~np.isnan(probs).any(axis=1)
    labels = val.labels
    seq = val.sequence_ids
    tuned = tune_median(labels[valid], probs[valid], seq[valid], c.tuning.median_windows, c.tuning.causal)
    _, f_raw = best_thresholds(labels[valid], probs[valid])
    tuning = {
        "median_window": tuned["window"],
        "thresholds": {str(a): float(t) for a, t in zip(aus, tuned["thresholds"], strict=True)},
        "val_f1_per_au": {str(a): float(f) for a, f in zip(aus, tuned["f1"], strict=True)},
        "val_mean_f1": tuned["mean_f1"],
        "val_mean_f1_by_window": tuned["by_window"],
        "val_mean_f1_no_median": mean_ignoring_nan(f_raw),
        "causal": c.tuning.causal,
    }
    (trainer.out / "tuning.json").write_text(json.dumps(tuning, indent=2), encoding="utf-8")
    view_entry = None
    if any(u.kind == "view" for u in units):
        vc = c.view_classifier
        vu = next(u for u in units if u.kind == "view")
        m = trainer.make_model(vu, trainer.n_views)
        load_weights(trainer.out / "checkpoints" / "view_classifier" / "best.safetensors", m)
        save_weights(final / "view_classifier.safetensors", m)
        view_entry = {"file": "view_classifier.safetensors", "architecture": vc.architecture,
                      "architecture_kwargs": dict(vc.kwargs), "num_outputs": trainer.n_views}
    spec = {
        "name": c.name,
        "aus": list(aus),
        "layout": c.model.layout,
        "input": {"fusion": trainer.spec.fusion, "height": trainer.spec.height, "width": trainer.spec.width},
        "margin": c.input.margin,
        "flow": {"backend": c.flow.backend, "encoding": c.flow.encoding, "clip_fraction": c.flow.clip_fraction},
        "detectors": {str(k): v for k, v in detectors.items()},
        "detector_heads": {str(k): v for k, v in heads.items()},
        "files": files,
        "thresholds": tuning["thresholds"],
        "median_window": tuned["window"],
        "default_view": c.cascade.frontal_view if c.cascade.frontal_view in detectors else trainer.views[0],
        "intensity": any(u.intensity for u in au_units),
        "view_classifier": view_entry,
        "provenance": {"config": c.to_json(), "validation": tuning,
                       "units": {u.name: trainer.history.get(u.name, []) for u in units}},
    }
    (final / "engine_spec.json").write_text(json.dumps(spec, indent=2), encoding="utf-8")
    return final


def plot_curves(trainer: TrainedRun) -> Path | None:
    """``curves.png``: training loss and validation score per epoch of every unit."""
    if not trainer.history:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    last = 1.0
    for name, hist in trainer.history.items():
        ep = [h["epoch"] for h in hist]
        last = max(last, *ep)
        for ax, key in ((ax1, "train_loss"), (ax2, "val")):
            values = [h[key] for h in hist]
            ax.plot(ep, values, marker="o", label=name)
            if len(ep) <= 5:  # few epochs (a short fine-tuning run): print the values beside the points
                for x, y in zip(ep, values, strict=True):
                    ax.annotate(f"{y:.3f}", (x, y), textcoords="offset points", xytext=(6, 4), fontsize=8)
    ax1.set(xlabel="epoch", ylabel="training loss", title="training loss")
    ax2.set(xlabel="epoch", ylabel="validation score", title="validation (AU: mean F1; others: accuracy)")
    from matplotlib.ticker import MaxNLocator

    for ax in (ax1, ax2):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        ax.set_xlim(0.5, last + 0.5)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"{trainer.config.name}: training curves")
    fig.tight_layout()
    path = trainer.out / "curves.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
