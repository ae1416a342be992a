"""HydraNet: one shared, frozen lower encoder and, per AU, its own upper layers and head.

Input ``(N, C, H, W)`` -> logits ``(N, num_outputs)``: branch ``k`` computes output ``k`` from the shared
lower features. ``encoder`` is the shared lower part (frozen by default: no gradients, and kept in eval mode
so batch-norm statistics do not move); ``branches[k]`` is a :class:`~aunets.engines.nets.detector.Detector` with its
own copy of the upper stages and a one-logit head. All branches start as copies of the (pretrained) upper
stages, so every AU starts from the same ImageNet-close features.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from aunets.engines.nets.detector import Detector, StageNet


class HydraNet(nn.Module):
    def __init__(self, encoder: StageNet, split: int, num_outputs: int, *, freeze: bool = True) -> None:
        super().__init__()
        names = encoder.stage_names()
        if not 1 <= split < len(names):
            raise ValueError(f"split must be in 1..{len(names) - 1}, got {split}")
        stages = [encoder.stages[n] for n in names]
        self.encoder = nn.Sequential(*stages[:split])
        self.feature_dim = encoder.out_dim
        self.frozen = freeze
        if freeze:
            for p in self.encoder.parameters():
                p.requires_grad_(False)
        upper = nn.Sequential(*stages[split:])
        self.branches = nn.ModuleList(
            Detector(copy.deepcopy(upper), self.feature_dim, 1) for _ in range(num_outputs)
        )

    def set_outputs(self, num_outputs: int) -> None:
        """``num_outputs`` branches, each a copy of branch 0's upper layers with a fresh one-logit head."""
        first = self.branches[0]
        assert isinstance(first, Detector)
        upper = first.encoder
        self.branches = nn.ModuleList(
            Detector(copy.deepcopy(upper), self.feature_dim, 1) for _ in range(num_outputs)
        )

    @property
    def num_outputs(self) -> int:
        return len(self.branches)

    @property
    def head(self) -> nn.ModuleList:
        """The per-branch one-logit heads."""
        return nn.ModuleList(b.head for b in self.branches if isinstance(b, Detector))

    def train(self, mode: bool = True) -> HydraNet:
        super().train(mode)
        if self.frozen:
            self.encoder.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.encoder(x)
        return torch.cat([branch(z) for branch in self.branches], dim=1)
