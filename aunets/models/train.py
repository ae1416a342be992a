"""Training: domain adaptation (EmoNet), AU detectors with the multi-view cascade, the view classifier, and
validation tuning of the thresholds and median window. Resumable at any checkpoint.

Run layout (``OUT``)::

    config.json                 the resolved TrainConfig
    cache/                      uint8 crop + flow memmaps (aunets.models.data.cache), unless data.cache_dir is set
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

import json
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from aunets.core.errors import AunetsError, ConfigError, MissingExtraError
from aunets.engines.manifest import InputSpec
from aunets.models.checkpoint import load_checkpoint, load_weights, save_checkpoint, save_weights
from aunets.models.data import FrameSet, load_dataset
from aunets.models.data.cache import CacheSpec, FrameCache, build_cache
from aunets.models.data.expressions import expression_labels
from aunets.models.data.sample import concat_sets
from aunets.models.finalise import finalise, plot_curves
from aunets.models.finetune import init_from_engine, replicate_head_block
from aunets.models.metrics import best_thresholds, mean_ignoring_nan
from aunets.models.sampling import SampleSource, balanced_weights, epoch_order, group_shares, unit_seed
from aunets.models.train_config import TrainConfig
from aunets.models.units import INIT_ENGINE, Unit, plan_units

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


def create_model_default() -> Callable[..., nn.Module]:
    from aunets.engines.registry import create_model

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
            from aunets.engines.registry import model_spec

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
            from aunets.models.data import detect_layout

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
        final = finalise(self, units, val)
        plot_curves(self)
        return final

    def _load_history(self) -> None:
        path = self.out / "history.json"
        self.history = json.loads(path.read_text()) if path.is_file() else {}

    def _save_history(self) -> None:
        (self.out / "history.json").write_text(json.dumps(self.history, indent=1), encoding="utf-8")

    def make_model(self, unit: Unit, n_classes: int) -> nn.Module:
        c = self.config
        if unit.kind == "view":
            vc = c.view_classifier
            return self._create(vc.architecture, n_classes, pretrained=vc.pretrained, **vc.kwargs)
        return self._create(c.model.architecture, n_classes, pretrained=c.model.pretrained, **c.model.kwargs)

    def head_of(self, unit: Unit, view: int) -> int:
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
        seed = unit_seed(c.seed, unit.name)
        torch.manual_seed(seed)  # initial weights (new heads) depend only on (seed, unit)
        if unit.init_from == "emonet":
            from aunets.engines.registry import replace_head

            _, n_expr = self._unit_targets(replace(unit, kind="expression"), train)
            model = self.make_model(unit, n_expr)
            load_weights(self.out / "checkpoints" / "emonet" / "best.safetensors", model, strict=True)
            replace_head(model, n_out)  # the EmoNet encoder, a fresh AU head
        else:
            model = self.make_model(unit, n_out)
        if unit.init_from == INIT_ENGINE:
            init_from_engine(Path(c.model.init), model, unit.heads * len(unit.aus))
        elif unit.init_from and unit.init_from != "emonet":
            src = self.out / "checkpoints" / unit.init_from / "best.safetensors"
            load_weights(src, model, strict=True)
            if unit.heads > 1 and unit.init_from == "frontal":
                replicate_head_block(model, self.head_of(unit, c.cascade.frontal_view), unit.heads, len(unit.aus))
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
            plot_curves(self)
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
        heads = torch.as_tensor([self.head_of(unit, int(v)) for v in cache.views[idx]], device=logits.device)
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
                    heads = torch.as_tensor([self.head_of(unit, int(v)) for v in cache.views[idx]])
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

def train(config: TrainConfig, out: Path | str, progress: bool = True) -> Path:
    """Train (or resume) ``config`` into ``out``; returns the ``final/`` directory for ``build-engine``."""
    return Trainer(config, out, progress).run()


