"""Training configuration: frozen dataclasses read from a TOML file (``aunets train CONFIG``).

Every section and key is optional except ``data.path``; see ``configs/default.toml`` for a commented
example. The resolved configuration is saved as ``config.json`` beside every training output.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any

from aunets.core.au import BP4D_AUS
from aunets.core.errors import ConfigError
from aunets.core.flow import FlowConfig

LAYOUTS: tuple[str, ...] = ("shared", "per_view", "per_au_view")


@dataclass(frozen=True)
class DataConfig:
    """Where the frames come from. ``path``: a dataset (any layout of :mod:`aunets.models.data`), relative paths are
    relative to the config file. ``train_stride``: keep every k-th training frame (neighbours are near
    duplicates; flow still uses the true previous frame). ``max_*_frames``: cap by whole sequences (0: all).
    ``fold``/``mode``/``path_map``: BP4D options. ``cache_dir``: crop/flow cache (default ``<out>/cache``).
    ``extra``: more datasets (any layout, same AUs, their own train/val splits) joined to ``path``'s; ``extra_share``:
    the share of the training draws each of them gets (the same length as ``extra``; ``path`` gets the rest), so a
    small real-face set is not drowned by a large synthetic one."""

    path: str = ""
    extra: tuple[str, ...] = ()
    extra_share: tuple[float, ...] = ()
    kind: str = "auto"
    train_split: str = "train"
    val_split: str = "val"
    aus: tuple[int, ...] = BP4D_AUS
    views: tuple[int, ...] | None = None
    train_stride: int = 1
    max_train_frames: int = 0
    max_val_frames: int = 0
    fold: int = 0
    mode: str | None = None
    path_map: dict[str, str] = field(default_factory=dict)
    cache_dir: str | None = None


@dataclass(frozen=True)
class InputConfig:
    """Network input. ``fusion``: rgb | flow | channels | horizontal; ``size``: crop side (px); ``margin``: crop
    side / face box side; ``pad``: extra field of view cached for the box jitter; ``jitter_shift`` (fraction of
    the crop side) and ``jitter_scale`` (log-scale) bound the box jitter."""

    fusion: str = "horizontal"
    size: int = 112
    margin: float = 1.3
    pad: float = 1.15
    jitter_shift: float = 0.05
    jitter_scale: float = 0.08


@dataclass(frozen=True)
class ModelConfig:
    """``architecture``: a name of :func:`aunets.engines.registry.list_models`; ``kwargs`` go to ``create_model``.
    ``layout``: ``shared`` (one network, all AUs; with ``view_heads`` one head block per view in the same
    file), ``per_view`` (one network per view) or ``per_au_view`` (the paper's one network per AU per view).
    ``intensity``: the AU networks also output an intensity per AU (a second block of logits after the presence
    blocks: sigmoid in [0, 1] = FACS intensity / 5), trained where the data has intensities. ``init``: an engine
    bundle or a training run's ``final/`` whose detector weights (``.safetensors``) start the AU units, instead of
    the EmoNet/cascade stages (fine-tuning; output rows that are new, such as intensity, start fresh)."""

    architecture: str = "mobilenetv2_horizontal"
    pretrained: bool = True
    kwargs: dict[str, Any] = field(default_factory=dict)
    layout: str = "shared"
    view_heads: bool = True
    intensity: bool = False
    init: str = ""


@dataclass(frozen=True)
class OptimConfig:
    """Adam(``betas``), ``lr`` decayed linearly to 0 over ``epochs``; early stop after ``patience`` epochs
    without a validation-F1 gain. ``samples_per_epoch``: draws per epoch (0: the training set size).
    ``balance``: ``jitter`` draws positives more often (each draw a new box jitter) so every AU's positives
    and negatives weigh the same; ``none`` plain shuffling. ``intensity_weight``: weight of the intensity loss
    (binary cross-entropy against intensity in [0, 1]) beside the presence loss, when the model has intensity."""

    lr: float = 1e-4
    betas: tuple[float, float] = (0.5, 0.999)
    weight_decay: float = 0.0
    epochs: int = 12
    patience: int = 3
    batch_size: int = 32
    samples_per_epoch: int = 0
    balance: str = "jitter"
    intensity_weight: float = 1.0


@dataclass(frozen=True)
class DomainAdaptationConfig:
    """The EmoNet stage: train the encoder on expression classes (AU prototypes) before the AU stage."""

    enabled: bool = True
    epochs: int = 2
    lr: float = 1e-4
    samples_per_epoch: int = 0


@dataclass(frozen=True)
class CascadeConfig:
    """Multi-view cascade: the frontal view trains first; every other view starts from it.
    ``frontal_epochs``: epochs of the frontal stage (0: ``optim.epochs``)."""

    enabled: bool = True
    frontal_view: int = 4
    frontal_epochs: int = 0


@dataclass(frozen=True)
class ViewClassifierConfig:
    """The view classifier (RGB crop -> view), trained on all views with the same input size."""

    enabled: bool = True
    architecture: str = "view_mobilenetv2"
    pretrained: bool = True
    kwargs: dict[str, Any] = field(default_factory=dict)
    epochs: int = 3
    lr: float = 1e-4
    samples_per_epoch: int = 0


@dataclass(frozen=True)
class TuningConfig:
    """Per-AU thresholds and the median window, tuned on validation (causal median unless ``causal`` false)."""

    median_windows: tuple[int, ...] = (3, 5, 7, 9, 11)
    causal: bool = True


@dataclass(frozen=True)
class TrainConfig:
    """A whole training run; ``name`` becomes the engine's name."""

    name: str = "aunets"
    data: DataConfig = field(default_factory=DataConfig)
    input: InputConfig = field(default_factory=InputConfig)
    flow: FlowConfig = field(default_factory=FlowConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    domain_adaptation: DomainAdaptationConfig = field(default_factory=DomainAdaptationConfig)
    cascade: CascadeConfig = field(default_factory=CascadeConfig)
    view_classifier: ViewClassifierConfig = field(default_factory=ViewClassifierConfig)
    tuning: TuningConfig = field(default_factory=TuningConfig)
    seed: int = 0
    device: str = "cpu"
    threads: int = 2
    checkpoint_every_s: float = 120.0

    def validate(self) -> None:
        if not self.data.path:
            raise ConfigError("the config has no data.path; name the training dataset directory")
        if self.model.layout not in LAYOUTS:
            raise ConfigError(f"model.layout {self.model.layout!r} is unknown; choose one of {LAYOUTS}")
        if self.input.fusion not in ("rgb", "flow", "channels", "horizontal"):
            raise ConfigError(f"input.fusion {self.input.fusion!r} is unknown; use rgb, flow, channels or horizontal")
        if self.optim.balance not in ("jitter", "none"):
            raise ConfigError(f"optim.balance must be 'jitter' or 'none', got {self.optim.balance!r}")
        if self.optim.epochs < 1 or self.optim.batch_size < 1:
            raise ConfigError("optim.epochs and optim.batch_size must be >= 1")
        if self.device not in ("cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ConfigError(f"device must be cpu or cuda, got {self.device!r}")
        if len(self.data.extra_share) != len(self.data.extra) or sum(self.data.extra_share) >= 1 or any(
            w <= 0 for w in self.data.extra_share
        ):
            raise ConfigError(f"data.extra_share needs one share in (0, 1) per data.extra path, summing to < 1; got "
                              f"{list(self.data.extra_share)} for {len(self.data.extra)} path(s)")
        if any(w < 1 or w % 2 == 0 for w in self.tuning.median_windows):
            raise ConfigError(f"tuning.median_windows must be odd, got {self.tuning.median_windows}")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _build(cls: Any, data: dict[str, Any], where: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"[{where}] must be a table")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(f"unknown key(s) {unknown} in [{where}]; known: {sorted(known)}")
    values: dict[str, Any] = {}
    defaults = cls()
    for name, value in data.items():
        default = getattr(defaults, name)
        if is_dataclass(default):
            values[name] = _build(type(default), value, f"{where}.{name}" if where else name)
        elif isinstance(default, tuple) or (name in ("views",) and value is not None):
            values[name] = tuple(value)
        else:
            values[name] = value
    try:
        return replace(defaults, **values)
    except (TypeError, ValueError, ConfigError) as exc:
        raise ConfigError(f"invalid [{where}]: {exc}") from exc


def config_from_dict(data: dict[str, Any]) -> TrainConfig:
    config: TrainConfig = _build(TrainConfig, data, "")
    config.validate()
    return config


def load_config(path: Path | str, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Read a TOML (or JSON) config; ``data.path`` relative to the file is made absolute. ``overrides``:
    ``{"section.key": value}``."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"training config {path} does not exist; see configs/default.toml")
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path} is not valid {'JSON' if path.suffix == '.json' else 'TOML'}: {exc}") from exc
    for dotted, value in (overrides or {}).items():
        node = data
        *parents, last = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    def resolve(p: str) -> str:
        return str((path.parent / p).resolve()) if not Path(p).is_absolute() and not Path(p).exists() else p

    section = data.get("data", {})
    if section.get("path"):
        section["path"] = resolve(section["path"])
    if section.get("extra"):
        section["extra"] = [resolve(p) for p in section["extra"]]
    model = data.get("model", {})
    if model.get("init"):
        model["init"] = resolve(model["init"])
    return config_from_dict(data)
