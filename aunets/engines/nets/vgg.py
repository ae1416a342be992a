"""AUNet-VGG16, as in the paper: VGG16 without batch norm, fc6/fc7 of 4096, one logit per AU.

Input ``(N, C, H, W)`` float32 normalised as :class:`aunets.engines.manifest.InputSpec` says. Stages of the encoder:

=========  =====================================================  ==========================
stage      layers                                                 output
=========  =====================================================  ==========================
conv1_4    conv1_1 .. conv4_3 (ReLU after each), pool1 .. pool4   (N, 512, H/16, W/16)
conv5      conv5_1 .. conv5_3, pool5, adaptive average pool        (N, 512, gh, gw)
fc6        flatten, Linear(512*gh*gw, 4096), ReLU, Dropout          (N, 4096)
fc7        Linear(4096, 4096), ReLU, Dropout                        (N, 4096)
=========  =====================================================  ==========================

The pool grid ``(gh, gw)`` is 7x7 (7x14 for ``horizontal`` 224x448 input), so at the paper's 224x224 crop the
adaptive pool is the identity; ONNX export needs H/32 and W/32 to be multiples of the grid (224 or 448 crops).
Convolution weights can come from HED (:mod:`aunets.engines.nets.pretrained`); HED has no fc layers, so fc6/fc7 are
always
randomly initialised.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from aunets.engines.nets.detector import StageNet

#: output channels of the five VGG16 blocks and the number of convolutions in each
VGG16_BLOCKS: tuple[tuple[int, int], ...] = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))
#: tiny variant (tests): the same 13 convolutions, 16x fewer channels
TINY_BLOCKS: tuple[tuple[int, int], ...] = ((4, 2), (8, 2), (16, 3), (32, 3), (32, 3))
VGG16_CONV_NAMES: tuple[str, ...] = tuple(
    f"conv{b + 1}_{i + 1}" for b, (_c, n) in enumerate(VGG16_BLOCKS) for i in range(n)
)
#: stage index after which each two-stream variant fuses, and the default HydraNet split
FUSION_POINTS: dict[str, int] = {"pi_conv": 2, "pi_fc6": 3, "pi_fc7": 4}
HYDRA_SPLIT = 1


def _block_layers(
    in_channels: int, blocks: tuple[tuple[int, int], ...], first_block: int
) -> tuple[OrderedDict[str, nn.Module], int]:
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    c_in = in_channels
    for b, (c_out, n) in enumerate(blocks, start=first_block):
        for i in range(1, n + 1):
            layers[f"conv{b}_{i}"] = nn.Conv2d(c_in, c_out, kernel_size=3, padding=1)
            layers[f"relu{b}_{i}"] = nn.ReLU(inplace=True)
            c_in = c_out
        layers[f"pool{b}"] = nn.MaxPool2d(kernel_size=2, stride=2)
    return layers, c_in


def vgg16_encoder(
    in_channels: int = 3,
    *,
    tiny: bool = False,
    horizontal: bool = False,
    fc_dim: int | None = None,
    dropout: float = 0.5,
    pool_grid: tuple[int, int] | None = None,
) -> StageNet:
    """The VGG16 encoder: ``(N, in_channels, H, W)`` -> ``(N, fc_dim)`` (4096, or 32 when ``tiny``)."""
    blocks = TINY_BLOCKS if tiny else VGG16_BLOCKS
    fc = fc_dim if fc_dim is not None else (32 if tiny else 4096)
    gh, gw = pool_grid if pool_grid is not None else ((1, 1) if tiny else (7, 7))
    if horizontal and pool_grid is None:
        gw *= 2
    low, c = _block_layers(in_channels, blocks[:4], 1)
    high, c = _block_layers(c, blocks[4:], 5)
    high["grid"] = nn.AdaptiveAvgPool2d((gh, gw))
    stages: OrderedDict[str, nn.Module] = OrderedDict(
        conv1_4=nn.Sequential(low),
        conv5=nn.Sequential(high),
        fc6=nn.Sequential(
            OrderedDict(
                flatten=nn.Flatten(),
                fc6=nn.Linear(c * gh * gw, fc),
                relu6=nn.ReLU(inplace=True),
                drop6=nn.Dropout(dropout),
            )
        ),
        fc7=nn.Sequential(
            OrderedDict(fc7=nn.Linear(fc, fc), relu7=nn.ReLU(inplace=True), drop7=nn.Dropout(dropout))
        ),
    )
    net = StageNet(stages, [blocks[3][0], c, fc, fc], vector_from=2)
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.01)
            nn.init.zeros_(m.bias)
    return net


def vgg16_convs(encoder: nn.Module) -> dict[str, nn.Conv2d]:
    """The 13 convolutions of a VGG16 encoder by their paper names (``conv1_1`` .. ``conv5_3``)."""
    convs = {name.rpartition(".")[2]: m for name, m in encoder.named_modules() if isinstance(m, nn.Conv2d)}
    return {k: v for k, v in convs.items() if k in VGG16_CONV_NAMES}
