"""Two-stream input fusion (``pi_conv``, ``pi_fc6``, ``pi_fc7``): an RGB and a flow stream joined at one depth.

The input is the ``channels`` tensor ``(N, 6, H, W)``: RGB crop in channels 0..2, flow image in 3..5; the
encoder splits it. Both streams are the same backbone up to the fusion point; the flow stream starts as a
copy of the RGB stream (after pretrained weights are loaded, so it is initialised from RGB). The two outputs
are concatenated along channels; then

* feature maps: a 1x1 convolution ``2C -> C`` (initialised to the average of the two streams) feeds the
  remaining stages (conv fusion of Feichtenhofer et al. 2016);
* feature vectors: the next fully connected layer takes ``2D`` inputs (initialised with half its weights on
  each stream), or, when fusing after the last stage, the head sees the ``2D`` concatenation.

The other single-tensor layouts (``rgb``, ``flow``, ``channels`` with a 6-channel first layer, ``horizontal``)
need no wrapper: see :func:`aunets.engines.nets.detector.widen_first_conv` and the registry.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from aunets.engines.nets.detector import StageNet


def _widen_first_linear(module: nn.Sequential) -> None:
    for name, sub in module.named_modules():
        if isinstance(sub, nn.Linear):
            wide = nn.Linear(2 * sub.in_features, sub.out_features)
            with torch.no_grad():
                wide.weight.copy_(0.5 * torch.cat([sub.weight, sub.weight], dim=1))
                wide.bias.copy_(sub.bias)
            parent_name, _, attr = name.rpartition(".")
            parent = module.get_submodule(parent_name) if parent_name else module
            setattr(parent, attr, wide)
            return
    raise ValueError("no Linear layer after a vector fusion point")


class TwoStreamEncoder(nn.Module):
    """``(N, 6, H, W)`` -> ``(N, out_dim)``: RGB and flow streams fused after stage ``fuse_after`` of ``encoder``.

    ``fuse_after`` counts stages (1 = after the first stage; ``len(stages)`` = late fusion of the vectors).
    ``encoder`` (a 3-channel :class:`StageNet`, possibly pretrained) becomes the RGB stream and the shared top.
    """

    out_dim: int

    def __init__(self, encoder: StageNet, fuse_after: int) -> None:
        super().__init__()
        names = encoder.stage_names()
        if not 1 <= fuse_after <= len(names):
            raise ValueError(f"fuse_after must be in 1..{len(names)}, got {fuse_after}")
        stages = [encoder.stages[n] for n in names]
        self.fuse_after = fuse_after
        self.rgb_stream = nn.Sequential(*stages[:fuse_after])
        self.flow_stream = copy.deepcopy(self.rgb_stream)
        self.shared = nn.Sequential(*stages[fuse_after:])
        dim = encoder.stage_dims[fuse_after - 1]
        self.fuse: nn.Module
        if fuse_after - 1 < encoder.vector_from:
            conv = nn.Conv2d(2 * dim, dim, kernel_size=1)
            with torch.no_grad():
                eye = torch.eye(dim).reshape(dim, dim, 1, 1)
                conv.weight.copy_(0.5 * torch.cat([eye, eye], dim=1))
                if conv.bias is not None:
                    nn.init.zeros_(conv.bias)
            self.fuse = conv
            self.out_dim = encoder.out_dim
        else:
            self.fuse = nn.Identity()
            if fuse_after < len(names):
                _widen_first_linear(self.shared)
                self.out_dim = encoder.out_dim
            else:
                self.out_dim = 2 * dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rgb = self.rgb_stream(x[:, :3])
        flow = self.flow_stream(x[:, 3:])
        return self.shared(self.fuse(torch.cat([rgb, flow], dim=1)))
