"""The units of a training run: each one network trained to convergence, planned from the config
(EmoNet, the multi-view cascade, per-view and per-AU layouts, the view classifier, fine-tuning from an engine)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from aunets.core.errors import ConfigError
from aunets.models.train_config import TrainConfig


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
