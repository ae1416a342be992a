"""Per-AU ensembles: N independent one-logit detectors run as one module (the paper's one network per AU).

``Ensemble([m_1, ..., m_N])`` maps ``(N_batch, C, H, W)`` to ``(N_batch, N)`` by concatenating the members'
``(N_batch, 1)`` logits, so one ONNX call runs all AU detectors of a view. With one ensemble of 12 VGG16s per
view and 9 views this is the faithful 108-network layout; it is meant for GPUs, not the CPU default.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn

from aunets.engines.nets.detector import Detector


class Ensemble(nn.Module):
    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = nn.ModuleList(members)

    @property
    def num_outputs(self) -> int:
        return len(self.members)

    def set_outputs(self, num_outputs: int) -> None:
        """``num_outputs`` members, each a copy of member 0 with a fresh one-logit head (e.g. after EmoNet)."""
        template = self.members[0]
        members = []
        for _ in range(num_outputs):
            member = copy.deepcopy(template)
            if isinstance(member, Detector):
                member.head = nn.Linear(member.feature_dim, 1)
            members.append(member)
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([member(x) for member in self.members], dim=1)
