"""Training: domain adaptation (EmoNet), AU detectors with the multi-view cascade, the view classifier, and
validation tuning of the thresholds and median window. Resumable at any checkpoint.

Run layout (``OUT``)::

    config.json                 the resolved TrainConfig
    cache/                      uint8 crop + flow memmaps (models.data.cache), unless data.cache_dir is set
    checkpoints/<unit>/         last.safetensors (model + Adam tensors + torch RNG), last.json (counters),
                                best.safetensors (best validation F1), done marker inside last.json
    history.json, curves.png    per-epoch loss / validation F1 of every unit
    tuning.json                 per-AU thresholds and median window chosen on validation
    final/                      weights + engine_spec.json: what ``aunets build-engine --run OUT`` exports

Units (each one network trained to convergence, in this order): ``emonet`` (expression classes; optional),
then by ``model.layout``: ``shared`` -> ``frontal`` (frontal view only, cascade) and ``all`` (every view,
initialised from ``frontal``; one head block per view when ``view_heads``); ``per_view`` -> ``view<v>``
(frontal first, the others from it); ``per_au_view`` -> ``view<v>_au<a>``; finally ``view_classifier``.

Recipe (the paper's): Adam(0.5, 0.999), lr linearly to 0 over the unit's epochs, early stop after
``patience`` epochs without validation-F1 gain, positives balanced by box-jittered oversampling. Every
random draw is seeded from (seed, unit, epoch, position), so resuming continues exactly.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from engines.manifest import InputSpec
from engines.preprocess import compose_input, normalise
from models.data import FrameSet, load_dataset
from models.data.cache import CacheSpec, FrameCache, build_cache
from models.data.expressions import expression_labels
from models.data.sample import concat_sets
from models.metrics import best_thresholds, mean_ignoring_nan, tune_median
from models.train_config import TrainConfig
from stream.errors import AunetsError, ConfigError, MissingExtraError

if TYPE_CHECKING:
    import torch
    from torch import nn

log = logging.getLogger(__name__)


def _torch() -> Any:
    try:
        import torch
    except ImportError as exc:
        raise MissingExtraError("torch", "train") from exc
    return torch


@dataclass(frozen=True)
class Unit:
    """One network to train. ``kind``: ``au`` | ``expression`` | ``view``; ``views``: training views (None: all);
    ``aus``: AU columns it predicts; ``heads``: head blocks (per view) in its output; ``init_from``: unit whose
    best weights start it; ``epochs``: its epoch budget."""

    name: str
    kind: str
    aus: tuple[int, ...]
    views: tuple[int, ...] | None
    heads: int
    epochs: int
    init_from: str | None = None
    lr: float = 1e-4
    samples_per_epoch: int = 0

    intensity: bool = False

    def num_outputs(self, n_classes: int = 0) -> int:
        """Output width: ``n_classes`` for expression/view units; for AU units ``heads * len(aus)`` presence
        logits, then as many intensity logits when ``intensity``."""
        return n_classes if self.kind != "au" else self.heads * len(self.aus) * (2 if self.intensity else 1)


INIT_ENGINE = "<model.init>"
"""``Unit.init_from`` of a unit that starts from the weights named by ``model.init``."""


def plan_units(config: TrainConfig, views: Sequence[int]) -> list[Unit]:
    """The ordered units of a run (see the module docstring)."""
    c = config
    aus = tuple(c.data.aus)
    views = tuple(sorted(views))
    frontal = c.cascade.frontal_view if c.cascade.frontal_view in views else views[len(views) // 2]
    units: list[Unit] = []
    da = c.domain_adaptation
    if c.model.init:  # fine-tuning an existing engine: its weights replace the EmoNet and cascade stages
        heads = len(views) if c.model.layout == "shared" and c.model.view_heads else 1
        if c.model.layout != "shared":
            raise ConfigError("model.init (fine-tuning an engine) supports model.layout = 'shared' only")
        units.append(Unit("all", "au", aus, None, heads, c.optim.epochs, INIT_ENGINE, c.optim.lr,
                          c.optim.samples_per_epoch, c.model.intensity))
        da = replace(da, enabled=False)
    elif da.enabled:
        units.append(Unit("emonet", "expression", aus, None, 1, da.epochs, None, da.lr, da.samples_per_epoch))
    base = "emonet" if da.enabled else None
    o = c.optim
    frontal_epochs = c.cascade.frontal_epochs or o.epochs
    cascade = c.cascade.enabled and len(views) > 1
    if c.model.init:
        pass
    elif c.model.layout == "shared":
        heads = len(views) if c.model.view_heads else 1
        if cascade:
            units.append(Unit("frontal", "au", aus, (frontal,), heads, frontal_epochs, base, o.lr, o.samples_per_epoch,
                              c.model.intensity))
            base = "frontal"
        units.append(Unit("all", "au", aus, None, heads, o.epochs, base, o.lr, o.samples_per_epoch,
                          c.model.intensity))
    elif c.model.layout == "per_view":
        order = [frontal, *[v for v in views if v != frontal]]
        for v in order:
            init = f"view{frontal}" if cascade and v != frontal else base
            units.append(Unit(f"view{v}", "au", aus, (v,), 1, frontal_epochs if v == frontal else o.epochs, init,
                              o.lr, o.samples_per_epoch))
    else:
        order = [frontal, *[v for v in views if v != frontal]]
        for v in order:
            for a in aus:
                init = f"view{frontal}_au{a}" if cascade and v != frontal else base
                units.append(Unit(f"view{v}_au{a}", "au", (a,), (v,), 1, o.epochs, init, o.lr, o.samples_per_epoch))
    vc = c.view_classifier
    if vc.enabled and len(views) > 1:
        units.append(Unit("view_classifier", "view", aus, None, 1, vc.epochs, None, vc.lr, vc.samples_per_epoch))
    return units


# ----------------------------------------------------------------------------------------------- samples


class SampleSource:
    """Builds input batches from a :class:`FrameCache` (RGB + flow crops) with :func:`compose_input`."""

    def __init__(self, cache: FrameCache, spec: InputSpec, shift: float, scale: float) -> None:
        self.cache = cache
        self.spec = spec
        self.shift = shift
        self.scale = scale
        self.rgb_spec = replace(spec, fusion="rgb")

    def batch(self, indices: Sequence[int] | np.ndarray, rngs: Sequence[np.random.Generator] | None,
              rgb_only: bool = False) -> np.ndarray:
        """``float32`` (B, C, H, W): jittered when ``rngs`` (one per sample) are given, else centre crops."""
        out = []
        for j, i in enumerate(indices):
            rgb, flow = (self.cache.jittered(int(i), rngs[j], self.shift, self.scale) if rngs is not None
                         else self.cache.centre(int(i)))
            if rgb_only:
                out.append(normalise(rgb, self.rgb_spec))
            else:
                out.append(compose_input(rgb, flow, self.spec))
        return np.stack(out)


def balanced_weights(labels: np.ndarray) -> np.ndarray:
    """Sampling weight per frame so that, for every AU, positives and negatives are drawn equally often on
    average: mean over annotated AUs of ``0.5 / p`` (positive) or ``0.5 / (1 - p)`` (negative), ``p`` the AU's
    positive rate. ``labels`` int (N, K) 1/0/-1 -> float64 (N,), normalised to sum 1."""
    lab = np.asarray(labels)
    valid = lab >= 0
    pos = (lab == 1) & valid
    p = np.clip(pos.sum(0) / np.maximum(valid.sum(0), 1), 1e-3, 1 - 1e-3)
    w = np.where(pos, 0.5 / p, 0.5 / (1 - p))
    w = np.where(valid, w, 0.0).sum(1) / np.maximum(valid.sum(1), 1)
    w = np.where(w > 0, w, 1.0)
    return np.asarray(w / w.sum())


def _unit_seed(seed: int, name: str) -> int:
    return int(hashlib.sha256(f"{seed}:{name}".encode()).hexdigest()[:8], 16)


def epoch_order(n_draws: int, pool: np.ndarray, weights: np.ndarray | None, seed: int, epoch: int) -> np.ndarray:
    """Frame indices drawn for one epoch (deterministic in ``seed`` and ``epoch``)."""
    rng = np.random.default_rng([seed, epoch])
    if weights is None:
        reps = -(-n_draws // len(pool))
        return np.concatenate([rng.permutation(pool) for _ in range(reps)])[:n_draws]
    return np.asarray(rng.choice(pool, size=n_draws, replace=True, p=weights))


# -------------------------------------------------------------------------------------------- checkpoints


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def save_checkpoint(directory: Path, model: nn.Module, optimizer: torch.optim.Optimizer | None,
                    counters: dict[str, Any]) -> None:
    """``last.safetensors`` (model.*, optim.<param>.<state>, rng.torch) + ``last.json`` (counters)."""
    torch = _torch()
    from safetensors.torch import save

    tensors: dict[str, Any] = {f"model.{k}": v.detach().cpu().contiguous() for k, v in
                                        model.state_dict().items()}
    if optimizer is not None:
        for idx, state in optimizer.state_dict()["state"].items():
            for key, value in state.items():
                t = value if isinstance(value, torch.Tensor) else torch.tensor(value)
                tensors[f"optim.{idx}.{key}"] = t.detach().cpu().contiguous()
    tensors["rng.torch"] = torch.get_rng_state()
    directory.mkdir(parents=True, exist_ok=True)
    _atomic_write_bytes(directory / "last.safetensors", save(tensors))
    _atomic_write_bytes(directory / "last.json", json.dumps(counters, indent=1).encode())


def load_checkpoint(directory: Path, model: nn.Module, optimizer: torch.optim.Optimizer | None
                    ) -> dict[str, Any] | None:
    """Restore what :func:`save_checkpoint` wrote; returns the counters (None when there is no checkpoint)."""
    if not (directory / "last.json").is_file():
        return None
    torch = _torch()
    from safetensors.torch import load_file

    tensors = load_file(str(directory / "last.safetensors"))
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")}, strict=True)
    if optimizer is not None:
        sd = optimizer.state_dict()
        state: dict[int, dict[str, Any]] = {}
        for key, value in tensors.items():
            if key.startswith("optim."):
                _, idx, name = key.split(".", 2)
                state.setdefault(int(idx), {})[name] = value
        sd["state"] = state
        optimizer.load_state_dict(sd)
    torch.set_rng_state(tensors["rng.torch"])
    counters: dict[str, Any] = json.loads((directory / "last.json").read_text(encoding="utf-8"))
    return counters


def save_weights(path: Path, model: nn.Module) -> None:
    from safetensors.torch import save

    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write_bytes(path, save({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}))


def load_weights(path: Path, model: nn.Module, strict: bool = True) -> None:
    from safetensors.torch import load_file

    state = load_file(str(path))
    if not strict:
        own = model.state_dict()
        state = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(state, strict=strict)


def last_linear(model: nn.Module) -> nn.Module:
    """The model's output layer (its last ``nn.Linear`` or 1x1 ``nn.Conv2d``)."""
    torch = _torch()
    last = None
    for m in model.modules():
        if isinstance(m, torch.nn.Linear | torch.nn.Conv2d):
            last = m
    if last is None:
        raise ConfigError("the model has no Linear/Conv2d output layer to copy head blocks in")
    return last


def replicate_head_block(model: nn.Module, source_block: int, n_blocks: int, block_size: int) -> None:
    """Copy the output rows of head block ``source_block`` into every block (cascade: views start from
    the frontal head)."""
    torch = _torch()
    layer: Any = last_linear(model)
    with torch.no_grad():
        w = layer.weight
        src = slice(source_block * block_size, (source_block + 1) * block_size)
        for b in range(n_blocks):
            if b != source_block:
                dst = slice(b * block_size, (b + 1) * block_size)
                w[dst] = w[src]
                if layer.bias is not None:
                    layer.bias[dst] = layer.bias[src]


def group_shares(groups: np.ndarray, shares: Sequence[float], weights: np.ndarray | None) -> np.ndarray:
    """Sampling weights (sum 1) that give source ``g >= 1`` the share ``shares[g - 1]`` of the draws and source 0
    the rest, keeping ``weights`` (or uniform) within each source. ``groups`` int (N,) -> float64 (N,)."""
    w = np.ones(len(groups)) if weights is None else np.asarray(weights, dtype=np.float64)
    out = np.zeros_like(w)
    targets = [1.0 - float(sum(shares)), *shares]
    for g, share in enumerate(targets):
        sel = groups == g
        if sel.any() and w[sel].sum() > 0:
            out[sel] = share * w[sel] / w[sel].sum()
    return out / out.sum()


def init_from_engine(source: Path, model: nn.Module, presence_width: int) -> None:
    """Start ``model`` from the detector weights of an engine bundle (its ``.safetensors`` twin) or a run's
    ``final/``: every tensor of the same shape is copied; an output layer that is wider (an added intensity
    block) gets the source's rows in its first ``presence_width`` rows and keeps its fresh rows after them."""
    torch = _torch()
    from safetensors.torch import load_file

    candidates = [source / "detector.safetensors", *sorted(source.glob("*.safetensors"))]
    file = next((p for p in candidates if p.is_file() and p.name != "view_classifier.safetensors"), None)
    if file is None:
        raise ConfigError(f"model.init {source} holds no detector .safetensors; name an engine bundle built with torch "
                          f"twins (`aunets build-engine`) or a training run's final/ folder")
    state = load_file(str(file))
    own = model.state_dict()
    merged = {}
    for key, value in own.items():
        src = state.get(key)
        if src is None:
            raise ConfigError(f"model.init {file}: no tensor {key!r}; it was trained with another architecture")
        if src.shape == value.shape:
            merged[key] = src
        elif src.shape[0] == presence_width and src.shape[1:] == value.shape[1:] and value.shape[0] > presence_width:
            widened = value.clone()
            with torch.no_grad():
                widened[:presence_width] = src
            merged[key] = widened
        else:
            raise ConfigError(f"model.init {file}: {key} is {tuple(src.shape)}, the model needs {tuple(value.shape)}; "
                              f"use the same architecture, AUs and views")
    model.load_state_dict(merged, strict=True)
    log.info("initialised from %s", file)


# --------------------------------------------------------------------------------------------- trainer


def create_model_default() -> Callable[..., nn.Module]:
    from models.registry import create_model

    return create_model


class TrainingPaused(AunetsError):
    """Training stopped early on request (``stop_after_steps`` / ``max_minutes``); its checkpoint is saved and
    running the same command again resumes it."""


class Trainer:
    """Runs (or resumes) a whole training run into ``out``.

    ``stop_after_steps`` / ``max_minutes``: pause (checkpoint, then raise :class:`TrainingPaused`) after that
    many optimisation steps / minutes in this session; the next run resumes exactly where it stopped.
    """

    def __init__(self, config: TrainConfig, out: Path | str, progress: bool = True,
                 model_factory: Callable[..., nn.Module] | None = None, stop_after_steps: int | None = None,
                 max_minutes: float | None = None) -> None:
        torch = _torch()
        self.config = config
        self.out = Path(out)
        self.progress = progress
        if config.device.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError("device 'cuda' was asked for but torch sees no CUDA GPU; use --device cpu")
        self.device = torch.device(config.device)
        torch.set_num_threads(config.threads)
        if model_factory is None:
            model_factory = create_model_default()
        self._create = model_factory
        self.spec = InputSpec(fusion=config.input.fusion, height=config.input.size, width=config.input.size)
        if model_factory is create_model_default():
            from models.registry import model_spec

            fusion = model_spec(config.model.architecture).fusion
            if fusion != config.input.fusion:
                raise ConfigError(f"model {config.model.architecture!r} takes {fusion!r} input but input.fusion is "
                                  f"{config.input.fusion!r}; set input.fusion = {fusion!r} or pick a "
                                  f"{config.input.fusion} model")
            if config.view_classifier.enabled and model_spec(config.view_classifier.architecture).fusion != "rgb":
                raise ConfigError(f"view_classifier.architecture {config.view_classifier.architecture!r} must take "
                                  f"RGB crops (e.g. view_mobilenetv2)")
        self.history: dict[str, list[dict[str, float]]] = {}
        self.stop_after_steps = stop_after_steps
        self.deadline = time.monotonic() + 60.0 * max_minutes if max_minutes else None
        self.session_steps = 0

    # ------------------------------------------------------------------ data
    def _load_frames(self) -> tuple[FrameSet, FrameSet]:
        d = self.config.data
        options: dict[str, Any] = {}
        frames = None
        try:
            from models.data import detect_layout

            kind = detect_layout(d.path) if d.kind == "auto" else d.kind
        except ConfigError:
            raise
        if kind == "bp4d":
            options = {"fold": d.fold, "mode": d.mode, "path_map": d.path_map or None}
        sets = [load_dataset(d.path, kind, **options).select_aus(d.aus)]
        sets += [load_dataset(p).select_aus(d.aus) for p in d.extra]
        for extra in sets[1:]:
            if not len(extra.filter(split=d.train_split)):
                raise ConfigError(f"data.extra {extra.source} has no {d.train_split!r} frames; give it a split column")
        frames = concat_sets(sets)
        train = frames.filter(split=d.train_split, views=d.views)
        val = frames.filter(split=d.val_split, views=d.views)
        if not len(train):
            raise ConfigError(f"no training frames in {d.path} for split {d.train_split!r} and views {d.views}")
        if not len(val):
            raise ConfigError(f"no validation frames in {d.path} for split {d.val_split!r}; validation tunes the "
                              f"thresholds and early stopping, so the dataset needs a {d.val_split!r} split")
        if d.max_train_frames:
            train = train.subsample_sequences(d.max_train_frames * max(1, d.train_stride), self.config.seed)
        if d.train_stride > 1:
            train = replace(train, records=tuple(r for r in train.records if r.frame % d.train_stride == 0))
        if d.max_val_frames:
            val = val.subsample_sequences(d.max_val_frames, self.config.seed + 1)
        return train, val

    def _caches(self) -> tuple[FrameCache, FrameCache]:
        train, val = self._load_frames()
        c = self.config
        spec = CacheSpec(size=c.input.size, margin=c.input.margin, pad=c.input.pad,
                         with_flow=c.input.fusion != "rgb", flow=c.flow)
        root = Path(c.data.cache_dir) if c.data.cache_dir else self.out / "cache"
        log.info("training frames: %d, validation frames: %d", len(train), len(val))
        self.n_views = train.n_views
        return (build_cache(train, root, spec, self.progress, name="train"),
                build_cache(val, root, replace(spec, pad=1.0), self.progress, name="val"))

    # ----------------------------------------------------------------- run
    def run(self) -> Path:
        """Train every unit (skipping finished ones), tune, and write ``final/``. Returns ``final/``."""
        self.out.mkdir(parents=True, exist_ok=True)
        config_path = self.out / "config.json"
        resolved = json.dumps(self.config.to_json(), indent=2, sort_keys=True)
        if config_path.is_file() and json.loads(config_path.read_text()) != json.loads(resolved):
            raise ConfigError(f"{self.out} holds a run with a different config; use a new --out or delete it")
        config_path.write_text(resolved + "\n", encoding="utf-8")
        train, val = self._caches()
        views = sorted({int(v) for v in np.unique(train.views) if v >= 0}) or [self.config.cascade.frontal_view]
        self.views = views
        units = plan_units(self.config, views)
        self._load_history()
        for unit in units:
            self.train_unit(unit, train, val)
        final = self.finalise(units, val)
        self.plot_curves()
        return final

    def _load_history(self) -> None:
        path = self.out / "history.json"
        self.history = json.loads(path.read_text()) if path.is_file() else {}

    def _save_history(self) -> None:
        (self.out / "history.json").write_text(json.dumps(self.history, indent=1), encoding="utf-8")

    def _make_model(self, unit: Unit, n_classes: int) -> nn.Module:
        c = self.config
        if unit.kind == "view":
            vc = c.view_classifier
            return self._create(vc.architecture, n_classes, pretrained=vc.pretrained, **vc.kwargs)
        return self._create(c.model.architecture, n_classes, pretrained=c.model.pretrained, **c.model.kwargs)

    def _head_of(self, unit: Unit, view: int) -> int:
        if unit.heads == 1:
            return 0
        return self.views.index(view) if view in self.views else self.views.index(self.config.cascade.frontal_view)

    def _unit_targets(self, unit: Unit, cache: FrameCache) -> tuple[np.ndarray, int]:
        """Targets per frame: AU labels (N, K) for ``au``, class ids (N,) otherwise; and the class count."""
        if unit.kind == "expression":
            y, names = expression_labels(cache.labels, cache.aus)
            return y, len(names)
        if unit.kind == "view":
            return cache.views.astype(np.int64), self.n_views
        cols = [cache.aus.index(a) for a in unit.aus]
        return cache.labels[:, cols], unit.num_outputs()

    def train_unit(self, unit: Unit, train: FrameCache, val: FrameCache) -> None:
        """Train one unit to its epoch budget or early stop, resuming from its checkpoint."""
        torch = _torch()
        from tqdm import tqdm

        c = self.config
        ckpt = self.out / "checkpoints" / unit.name
        counters_path = ckpt / "last.json"
        if counters_path.is_file() and json.loads(counters_path.read_text()).get("done"):
            log.info("unit %s already trained", unit.name)
            return
        y_train, n_out = self._unit_targets(unit, train)
        y_val, _ = self._unit_targets(unit, val)
        pool = np.arange(len(train))
        val_pool = np.arange(len(val))
        if unit.views is not None:
            pool = pool[np.isin(train.views, unit.views)]
            val_pool = val_pool[np.isin(val.views, unit.views)]
        if not len(pool):
            raise ConfigError(f"unit {unit.name}: no training frames of views {unit.views}")
        if unit.kind == "au":
            y_pool = y_train[pool]
            cols = [train.aus.index(a) for a in unit.aus]
            keep = (y_pool >= 0).any(axis=1) | ~np.isnan(train.soft[pool][:, cols]).all(axis=1)
            pool = pool[keep]
        weights = None
        if unit.kind == "au" and c.optim.balance == "jitter":
            weights = balanced_weights(y_train[pool])
        if unit.kind == "au" and c.data.extra:
            weights = group_shares(train.groups[pool], c.data.extra_share, weights)
        elif unit.kind in ("expression", "view"):
            counts = np.bincount(y_train[pool], minlength=n_out).astype(np.float64)
            w = 1.0 / np.maximum(counts[y_train[pool]], 1)
            weights = w / w.sum()
        seed = _unit_seed(c.seed, unit.name)
        torch.manual_seed(seed)  # initial weights (new heads) depend only on (seed, unit)
        if unit.init_from == "emonet":
            from models.registry import replace_head

            _, n_expr = self._unit_targets(replace(unit, kind="expression"), train)
            model = self._make_model(unit, n_expr)
            load_weights(self.out / "checkpoints" / "emonet" / "best.safetensors", model, strict=True)
            replace_head(model, n_out)  # the EmoNet encoder, a fresh AU head
        else:
            model = self._make_model(unit, n_out)
        if unit.init_from == INIT_ENGINE:
            init_from_engine(Path(c.model.init), model, unit.heads * len(unit.aus))
        elif unit.init_from and unit.init_from != "emonet":
            src = self.out / "checkpoints" / unit.init_from / "best.safetensors"
            load_weights(src, model, strict=True)
            if unit.heads > 1 and unit.init_from == "frontal":
                replicate_head_block(model, self._head_of(unit, c.cascade.frontal_view), unit.heads, len(unit.aus))
        model.to(self.device)
        optimizer = torch.optim.Adam(model.parameters(), lr=unit.lr, betas=c.optim.betas,
                                     weight_decay=c.optim.weight_decay)
        counters = load_checkpoint(ckpt, model, optimizer) or {
            "epoch": 0, "step": 0, "global_step": 0, "best": -1.0, "best_epoch": -1, "bad_epochs": 0,
            "done": False, "history": [], "loss_sum": 0.0, "loss_n": 0,
        }
        bs = c.optim.batch_size
        draws = unit.samples_per_epoch or len(pool)
        steps_per_epoch = max(1, draws // bs)
        total_steps = steps_per_epoch * unit.epochs
        source = SampleSource(train, self.spec, c.input.jitter_shift, c.input.jitter_scale)
        last_save = time.monotonic()
        for epoch in range(int(counters["epoch"]), unit.epochs):
            order = epoch_order(steps_per_epoch * bs, pool, weights, seed, epoch)
            model.train()
            bar = tqdm(total=steps_per_epoch, initial=int(counters["step"]), desc=f"{unit.name} epoch {epoch + 1}/"
                       f"{unit.epochs}", unit="batch", disable=not self.progress, leave=False)
            for step in range(int(counters["step"]), steps_per_epoch):
                idx = order[step * bs : (step + 1) * bs]
                rngs = [np.random.default_rng([seed, epoch, step * bs + j]) for j in range(len(idx))]
                x = torch.from_numpy(source.batch(idx, rngs, rgb_only=unit.kind == "view")).to(self.device)
                lr = unit.lr * (1.0 - counters["global_step"] / total_steps)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                logits = model(x)
                loss = self._loss(unit, logits, y_train[idx], train, idx)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                counters["global_step"] += 1
                counters["step"] = step + 1
                counters["loss_sum"] += float(loss.detach())
                counters["loss_n"] += 1
                bar.update(1)
                bar.set_postfix(loss=f"{counters['loss_sum'] / counters['loss_n']:.4f}")
                self.session_steps += 1
                if time.monotonic() - last_save > c.checkpoint_every_s:
                    save_checkpoint(ckpt, model, optimizer, counters)
                    last_save = time.monotonic()
                if (self.stop_after_steps is not None and self.session_steps >= self.stop_after_steps) or (
                    self.deadline is not None and time.monotonic() > self.deadline
                ):
                    save_checkpoint(ckpt, model, optimizer, counters)
                    bar.close()
                    raise TrainingPaused(f"training paused in {unit.name} epoch {epoch + 1} step {step + 1}; run the "
                                         f"same command again to resume from {ckpt}")
            bar.close()
            score = self.validate(unit, model, val, val_pool, y_val)
            entry = {"epoch": epoch + 1, "train_loss": counters["loss_sum"] / max(1, counters["loss_n"]),
                     "val": score, "lr": unit.lr * (1.0 - counters["global_step"] / total_steps)}
            counters["history"].append(entry)
            log.info("%s epoch %d: loss %.4f, validation %.4f", unit.name, epoch + 1, entry["train_loss"], score)
            if score > counters["best"]:
                counters.update(best=score, best_epoch=epoch + 1, bad_epochs=0)
                save_weights(ckpt / "best.safetensors", model)
            else:
                counters["bad_epochs"] += 1
            counters.update(epoch=epoch + 1, step=0, loss_sum=0.0, loss_n=0)
            stop = unit.kind == "au" and counters["bad_epochs"] >= c.optim.patience
            if stop or epoch + 1 == unit.epochs:
                counters["done"] = True
                counters["stopped_early"] = stop
            save_checkpoint(ckpt, model, optimizer, counters)
            last_save = time.monotonic()
            self.history[unit.name] = counters["history"]
            self._save_history()
            self.plot_curves()
            if stop:
                log.info("%s: early stop after %d epochs without validation gain", unit.name, c.optim.patience)
                break

    def _loss(self, unit: Unit, logits: torch.Tensor, y: np.ndarray, cache: FrameCache, idx: np.ndarray
              ) -> torch.Tensor:
        """Cross-entropy (expression, view units), or for AU units binary cross-entropy of each sample's view
        head against its labels (soft targets where a label is unknown), plus ``optim.intensity_weight`` times
        the intensity block's against the known intensities."""
        torch = _torch()
        f = torch.nn.functional
        if unit.kind != "au":
            return f.cross_entropy(logits, torch.from_numpy(np.asarray(y, dtype=np.int64)).to(logits.device))
        k = len(unit.aus)
        cols_np = [cache.aus.index(a) for a in unit.aus]
        heads = torch.as_tensor([self._head_of(unit, int(v)) for v in cache.views[idx]], device=logits.device)
        cols = heads[:, None] * k + torch.arange(k, device=logits.device)[None, :]

        def masked_bce(out: Any, target_np: np.ndarray) -> Any:
            target = torch.from_numpy(np.nan_to_num(target_np, nan=-1.0).astype(np.float32)).to(out.device)
            mask = (target >= 0).float()
            loss = f.binary_cross_entropy_with_logits(out, target.clamp(min=0), reduction="none")
            return (loss * mask).sum() / mask.sum().clamp(min=1.0)

        labels = y.astype(np.float32)
        soft = cache.soft[idx][:, cols_np]
        target = np.where(labels >= 0, labels, np.where(np.isnan(soft), -1.0, soft))
        loss = masked_bce(torch.gather(logits, 1, cols), target)
        if unit.intensity:
            loss = loss + self.config.optim.intensity_weight * masked_bce(
                torch.gather(logits, 1, cols + unit.heads * k), cache.intensity[idx][:, cols_np])
        return loss

    def predict(self, unit: Unit, model: nn.Module, cache: FrameCache, indices: np.ndarray) -> np.ndarray:
        """Probabilities of ``indices`` (centre crops): (n, K) sigmoid for AU units (the sample's view head),
        (n, C) softmax otherwise."""
        torch = _torch()
        source = SampleSource(cache, self.spec, 0.0, 0.0)
        model.eval()
        outs = []
        k = len(unit.aus)
        with torch.inference_mode():
            for s in range(0, len(indices), 64):
                idx = indices[s : s + 64]
                x = torch.from_numpy(source.batch(idx, None, rgb_only=unit.kind == "view")).to(self.device)
                logits = model(x).float()
                if unit.kind != "au":
                    outs.append(torch.softmax(logits, 1).cpu().numpy())
                    continue
                if unit.heads > 1:
                    heads = torch.as_tensor([self._head_of(unit, int(v)) for v in cache.views[idx]])
                    cols = (heads[:, None] * k + torch.arange(k)[None, :]).to(self.device)
                    logits = torch.gather(logits, 1, cols)
                outs.append(torch.sigmoid(logits[:, :k]).cpu().numpy())
        return np.concatenate(outs) if outs else np.zeros((0, k), dtype=np.float32)

    def validate(self, unit: Unit, model: nn.Module, val: FrameCache, pool: np.ndarray, y: np.ndarray) -> float:
        """AU units: mean over AUs of the F1 at the best per-AU threshold; others: accuracy."""
        if not len(pool):
            return 0.0
        probs = self.predict(unit, model, val, pool)
        if unit.kind != "au":
            return float(np.mean(np.argmax(probs, 1) == y[pool]))
        cols_y = y[pool]
        _, f1 = best_thresholds(cols_y, probs)
        return mean_ignoring_nan(f1)

    # ---------------------------------------------------------------- final
    def finalise(self, units: list[Unit], val: FrameCache) -> Path:
        """Tune thresholds + median on validation and write ``final/`` (weights and engine_spec.json)."""
        from tqdm import tqdm

        c = self.config
        final = self.out / "final"
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
            model = self._make_model(unit, unit.num_outputs())
            load_weights(self.out / "checkpoints" / unit.name / "best.safetensors", model)
            model.to(self.device)
            probs = self.predict(unit, model, val, np.arange(len(val)))
            save_weights(final / "detector.safetensors", model)
            files["detector.safetensors"] = {"num_outputs": unit.num_outputs(), **arch}
            for v in self.views:
                detectors[v] = "detector.safetensors"
                heads[v] = self._head_of(unit, v)
        else:
            for v in tqdm(self.views, desc="validation predictions", disable=not self.progress):
                members = [u for u in au_units if u.views == (v,)]
                mask = val.views == v
                name = f"view{v}.safetensors"
                models = []
                for u in members:
                    m = self._make_model(u, u.num_outputs())
                    load_weights(self.out / "checkpoints" / u.name / "best.safetensors", m)
                    models.append(m.to(self.device))
                    if mask.any():
                        cols = [aus.index(a) for a in u.aus]
                        rows = np.flatnonzero(mask)
                        probs[np.ix_(rows, np.asarray(cols))] = self.predict(u, m, val, rows)
                if c.model.layout == "per_au_view":
                    from models.nets.ensemble import Ensemble

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
        (self.out / "tuning.json").write_text(json.dumps(tuning, indent=2), encoding="utf-8")
        view_entry = None
        if any(u.kind == "view" for u in units):
            vc = c.view_classifier
            vu = next(u for u in units if u.kind == "view")
            m = self._make_model(vu, self.n_views)
            load_weights(self.out / "checkpoints" / "view_classifier" / "best.safetensors", m)
            save_weights(final / "view_classifier.safetensors", m)
            view_entry = {"file": "view_classifier.safetensors", "architecture": vc.architecture,
                          "architecture_kwargs": dict(vc.kwargs), "num_outputs": self.n_views}
        spec = {
            "name": c.name,
            "aus": list(aus),
            "layout": c.model.layout,
            "input": {"fusion": self.spec.fusion, "height": self.spec.height, "width": self.spec.width},
            "margin": c.input.margin,
            "flow": {"backend": c.flow.backend, "encoding": c.flow.encoding, "clip_fraction": c.flow.clip_fraction},
            "detectors": {str(k): v for k, v in detectors.items()},
            "detector_heads": {str(k): v for k, v in heads.items()},
            "files": files,
            "thresholds": tuning["thresholds"],
            "median_window": tuned["window"],
            "default_view": c.cascade.frontal_view if c.cascade.frontal_view in detectors else self.views[0],
            "intensity": any(u.intensity for u in au_units),
            "view_classifier": view_entry,
            "provenance": {"config": c.to_json(), "validation": tuning,
                           "units": {u.name: self.history.get(u.name, []) for u in units}},
        }
        (final / "engine_spec.json").write_text(json.dumps(spec, indent=2), encoding="utf-8")
        return final

    def plot_curves(self) -> Path | None:
        """``curves.png``: training loss and validation score per epoch of every unit."""
        if not self.history:
            return None
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
        for name, hist in self.history.items():
            ep = [h["epoch"] for h in hist]
            ax1.plot(ep, [h["train_loss"] for h in hist], marker="o", label=name)
            ax2.plot(ep, [h["val"] for h in hist], marker="o", label=name)
        ax1.set(xlabel="epoch", ylabel="training loss", title="training loss")
        ax2.set(xlabel="epoch", ylabel="validation score", title="validation (AU: mean F1; others: accuracy)")
        from matplotlib.ticker import MaxNLocator

        for ax in (ax1, ax2):
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
        fig.suptitle(f"{self.config.name}: training curves")
        fig.tight_layout()
        path = self.out / "curves.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        return path


def train(config: TrainConfig, out: Path | str, progress: bool = True) -> Path:
    """Train (or resume) ``config`` into ``out``; returns the ``final/`` directory for ``build-engine``."""
    return Trainer(config, out, progress).run()


def iter_units(config: TrainConfig, views: Sequence[int]) -> Iterator[str]:
    """Names of the units a config trains (for display)."""
    for u in plan_units(config, views):
        yield u.name
