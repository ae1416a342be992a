"""The detector shape every registry model shares: an encoder producing a feature vector, then a linear head.

:class:`Detector` maps ``(N, C, H, W)`` float32 to logits ``(N, num_outputs)``. ``encoder`` maps the input to
``(N, feature_dim)`` and ``head`` is one ``nn.Linear(feature_dim, num_outputs)``, so training can put a
different head on the same encoder (expression pretraining, "EmoNet") with :func:`replace_head`.

:class:`StageNet` is an encoder cut into named stages (e.g. ``conv``, ``fc6``, ``fc7``); input fusion
(two-stream networks) and HydraNet split an encoder at a stage boundary.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn


class StageNet(nn.Module):
    """An encoder made of named stages run in order.

    ``stages`` maps names to modules; the last stage must output a feature vector ``(N, out_dim)``.
    ``stage_dims[i]`` is the channel count (maps) or width (vectors) after stage ``i``.
    """

    def __init__(self, stages: OrderedDict[str, nn.Module], stage_dims: list[int], vector_from: int) -> None:
        super().__init__()
        if len(stages) != len(stage_dims):
            raise ValueError("one dimension per stage is needed")
        self.stages = nn.ModuleDict(stages)
        self.stage_dims = list(stage_dims)
        #: index of the first stage whose *output* is a vector (stages before it output feature maps)
        self.vector_from = vector_from

    @property
    def out_dim(self) -> int:
        return self.stage_dims[-1]

    def stage_names(self) -> list[str]:
        return list(self.stages.keys())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for stage in self.stages.values():
            x = stage(x)
        return x


class Detector(nn.Module):
    """``head(encoder(x))``: input ``(N, C, H, W)`` float32 -> logits ``(N, num_outputs)``."""

    def __init__(self, encoder: nn.Module, feature_dim: int, num_outputs: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.feature_dim = feature_dim
        self.head = nn.Linear(feature_dim, num_outputs)

    @property
    def num_outputs(self) -> int:
        return self.head.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))


def first_conv(module: nn.Module) -> tuple[nn.Module, str, nn.Conv2d]:
    """The first ``nn.Conv2d`` in definition order, with its parent module and attribute name."""
    for name, sub in module.named_modules():
        if isinstance(sub, nn.Conv2d):
            parent_name, _, attr = name.rpartition(".")
            parent = module.get_submodule(parent_name) if parent_name else module
            return parent, attr, sub
    raise ValueError("module has no Conv2d")


def widen_first_conv(module: nn.Module, copies: int) -> None:
    """Replace the first conv's input channels C by ``copies * C``, each copy initialised with its filters.

    Used for ``channels`` fusion: RGB filters copied onto the flow channels (the paper's initialisation).
    """
    parent, attr, conv = first_conv(module)
    wide = nn.Conv2d(
        conv.in_channels * copies,
        conv.out_channels,
        kernel_size=conv.kernel_size,  # type: ignore[arg-type]
        stride=conv.stride,  # type: ignore[arg-type]
        padding=conv.padding,  # type: ignore[arg-type]
        groups=conv.groups,
        bias=conv.bias is not None,
    )
    if conv.groups != 1:
        raise ValueError("cannot widen a grouped first convolution")
    with torch.no_grad():
        wide.weight.copy_(torch.cat([conv.weight] * copies, dim=1))
        if conv.bias is not None and wide.bias is not None:
            wide.bias.copy_(conv.bias)
    setattr(parent, attr, wide)


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, batches: list[torch.Tensor]) -> nn.Module:
    """Reset every BatchNorm's running statistics to the exact mean/variance over ``batches`` (inputs
    ``(N, C, H, W)`` as the model takes them); returns ``model`` in eval mode.

    An untrained BN network in eval mode (running variance 1) shrinks activations towards zero; use this
    after random init (tests, timing) or to re-estimate statistics on new data (e.g. after changing the input).
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m, m.momentum, m.training) for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
        m.train()
    for x in batches:
        model(x)
    for m, momentum, _training in saved:
        m.momentum = momentum
    return model.eval()
