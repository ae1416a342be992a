"""Every registry entry exports to ONNX whose outputs match torch, with a dynamic batch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from aunets.core.errors import EngineError
from aunets.engines.manifest import InputSpec
from aunets.engines.nets.detector import recalibrate_batchnorm
from aunets.engines.registry import create_model, list_models, model_spec
from aunets.models.export import export_onnx, ort_session, verify_onnx

pytestmark = pytest.mark.slow  # every test exports a network to ONNX and runs it


def _shape(name: str) -> tuple[int, int, int]:
    return InputSpec(fusion=model_spec(name).fusion, height=32, width=32).tensor_shape


@pytest.mark.parametrize("name", list_models())
def test_exports_and_matches_torch(name: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    shape = _shape(name)
    calibration = torch.randn((4, *shape), generator=torch.Generator().manual_seed(2))
    model = recalibrate_batchnorm(create_model(name, 4, tiny=True), [calibration])
    path = export_onnx(model, tmp_path / f"{name}.onnx", shape)
    graph = onnx.load(str(path)).graph
    assert [i.name for i in graph.input] == ["input"] and [o.name for o in graph.output] == ["logits"]
    # a batch size other than the export's, and inputs other than the export's
    x = np.random.default_rng(1).normal(size=(3, *shape)).astype(np.float32)
    (onnx_out,) = ort_session(path).run(["logits"], {"input": x})  # type: ignore[attr-defined]
    with torch.no_grad():
        torch_out = model(torch.from_numpy(x)).numpy()
    assert onnx_out.shape == (3, 4)
    assert np.ptp(torch_out, axis=0).max() > 1e-6, "outputs do not depend on the input: comparison is vacuous"
    # the same criterion as export_onnx: max abs diff within 1e-3 of the output scale
    assert np.abs(onnx_out - torch_out).max() <= 1e-3 * max(1.0, np.abs(torch_out).max())


def test_ensemble_exports_as_one_call(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = create_model("aunet_vgg16_horizontal", 3, tiny=True, independent=True)
    path = export_onnx(model, tmp_path / "ens.onnx", _shape("aunet_vgg16_horizontal"))
    x = np.random.default_rng(2).normal(size=(1, *_shape("aunet_vgg16_horizontal"))).astype(np.float32)
    (out,) = ort_session(path).run(["logits"], {"input": x})  # type: ignore[attr-defined]
    assert out.shape == (1, 3)


def test_verify_detects_a_mismatch(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = create_model("mobilenetv2_rgb", 2, tiny=True)
    path = export_onnx(model, tmp_path / "m.onnx", _shape("mobilenetv2_rgb"))
    with torch.no_grad():
        model.head.bias.add_(5.0)  # type: ignore[union-attr,operator]
    x = np.zeros((1, *_shape("mobilenetv2_rgb")), np.float32)
    with pytest.raises(EngineError, match="differs from torch"):
        verify_onnx(model, path, x)
