"""The GPU path (issue 5). The path's arithmetic is checked on the CPU (device='cpu') against the CPU pipeline;
tests marked ``gpu`` need CUDA and skip elsewhere; TensorRT tests need torch_tensorrt."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from aunets.core.au import BP4D_AUS  # noqa: E402
from aunets.core.crop import crop_square  # noqa: E402
from aunets.core.errors import ConfigError, EngineError  # noqa: E402
from aunets.core.flow import encode_flow  # noqa: E402
from aunets.core.flow_cuda_cv import cv_cuda_flow_status  # noqa: E402
from aunets.core.flow_torch import TorchTVL1Flow  # noqa: E402
from aunets.engines.manifest import InputSpec, Manifest  # noqa: E402
from aunets.engines.preprocess import compose_input  # noqa: E402
from aunets.engines.registry import create_model  # noqa: E402
from aunets.engines.runtime_cuda import CudaRuntime, CudaRuntimeConfig, ensemble_members  # noqa: E402
from aunets.engines.runtime_trt import TrtBuildInfo, check_build_info  # noqa: E402
from aunets.stream.gpu_path import GpuFramePath, GpuPathConfig  # noqa: E402
from tests.conftest import clip_frames  # noqa: E402

HAS_CUDA = torch.cuda.is_available()
gpu = pytest.mark.skipif(not HAS_CUDA, reason="needs an NVIDIA GPU with CUDA (torch.cuda.is_available() is False)")
CPU = CudaRuntimeConfig(dtype="float32", channels_last=False, cuda_graph=False, device="cpu")
S = 32


def _manifest(views: dict[int, str] | None = None, encoding: str = "paper") -> Manifest:
    from aunets.core.flow import FlowConfig

    detectors = views or {4: "v4.safetensors"}
    return Manifest(name="t", architecture="aunet_vgg16_horizontal", aus=tuple(BP4D_AUS), detectors=detectors,
                    files={n: "0" * 64 for n in set(detectors.values())},
                    input=InputSpec(fusion="horizontal", height=S, width=S), flow=FlowConfig(encoding=encoding))  # type: ignore[arg-type]


def _tiny(seed: int = 0) -> Any:
    torch.manual_seed(seed)
    return create_model("aunet_vgg16_horizontal", len(BP4D_AUS), tiny=True, independent=True).eval()


def _frames() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    f0 = cv2.GaussianBlur(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8), (0, 0), 2)
    f1 = cv2.warpAffine(f0, np.array([[1, 0, 1.5], [0, 1, -1]], np.float32), (160, 120), borderMode=cv2.BORDER_REFLECT)
    return f0, f1


def _cpu_reference(f0: np.ndarray, f1: np.ndarray, box: tuple[float, float, float, float], encoding: str) -> np.ndarray:
    crop = crop_square(f1, box, 1.3, S)
    prev = crop_square(cv2.cvtColor(f0, cv2.COLOR_BGR2GRAY), box, 1.3, S)
    flow = TorchTVL1Flow("fast", "cpu").compute(prev, cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY))
    return compose_input(cv2.cvtColor(crop, cv2.COLOR_BGR2RGB), encode_flow(flow, encoding), _manifest().input)


@pytest.mark.parametrize("encoding", ["paper", "aunets_original"])
def test_path_inputs_match_cpu_pipeline(encoding: str) -> None:
    f0, f1 = _frames()
    box = (50.3, 30.7, 40.0, 44.0)  # 57 px crop -> 32: supersampled
    gp = GpuFramePath(_manifest(encoding=encoding), {"v4.safetensors": CudaRuntime(module=_tiny(), config=CPU)},
                      GpuPathConfig(device="cpu", cuda_graph=False, runtime=CPU))
    gp.prepare(f0, [box])
    x = gp.prepare(f1, [box]).numpy()[0]
    ref = _cpu_reference(f0, f1, box, encoding)
    assert x.shape == ref.shape == (3, S, 2 * S)
    rgb_err = np.abs(x[:, :, :S] - ref[:, :, :S])
    assert rgb_err.mean() < 0.02 and rgb_err.max() < 0.1  # normalised units: ~1 and ~6 grey levels
    flow_err = np.abs(x[:, :, S:] - ref[:, :, S:])
    assert flow_err.mean() < 0.05


def test_path_probabilities_match_model_and_follow_views() -> None:
    f0, f1 = _frames()
    boxes = [(50.0, 30.0, 40.0, 44.0), (5.0, 60.0, 30.0, 30.0)]
    models = {"v4.safetensors": _tiny(0), "v1.safetensors": _tiny(1)}
    runtimes = {k: CudaRuntime(module=m, config=CPU) for k, m in models.items()}
    gp = GpuFramePath(_manifest({4: "v4.safetensors", 1: "v1.safetensors"}), runtimes,
                      GpuPathConfig(device="cpu", cuda_graph=False, runtime=CPU))
    assert gp.infer(f0, []).shape == (0, len(BP4D_AUS))
    probs = gp.infer(f1, boxes, views=[4, 1])
    gp.reset()
    gp.infer(f0, [])
    x = gp.prepare(f1, boxes)
    with torch.inference_mode():
        expect = torch.sigmoid(torch.stack([models["v4.safetensors"](x[:1])[0], models["v1.safetensors"](x[1:])[0]]))
    np.testing.assert_allclose(probs, expect.numpy(), atol=1e-5)
    assert not np.allclose(probs[0], probs[1])
    with pytest.raises(ValueError, match="views"):
        gp.infer(f1, boxes, views=[4])


def test_runtime_on_cpu_matches_module_and_finds_ensemble_members() -> None:
    model = _tiny()
    assert ensemble_members(model) is not None and len(ensemble_members(model) or []) == len(BP4D_AUS)
    x = np.random.default_rng(0).normal(size=(2, 3, S, 2 * S)).astype(np.float32)
    rt = CudaRuntime(module=model, config=CPU)
    with torch.inference_mode():
        expect = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(rt.run(x), expect, rtol=1e-5, atol=1e-5)
    with pytest.raises(ConfigError, match="dtype"):
        CudaRuntimeConfig(dtype="int8")
    with pytest.raises(ConfigError, match="cuda_graph"):
        GpuPathConfig(device="cpu", cuda_graph=True)


def test_trt_build_mismatch_is_refused_with_rebuild_command() -> None:
    built = TrtBuildInfo("NVIDIA H100 80GB HBM3", "9.0", "10.13.0", "2.11.0", "2.11.0")
    check_build_info(built, built)
    other = TrtBuildInfo("NVIDIA L4", "8.9", "10.13.0", "2.11.0", "2.11.0")
    with pytest.raises(EngineError, match=r"gpu_name.*compute_capability.*python -m aunets.engines.runtime_trt"):
        check_build_info(built, other, "bundle")
    assert TrtBuildInfo.from_json({**built.to_json(), "files": {}}) == built


def test_cv_cuda_status_names_a_reason() -> None:
    status = cv_cuda_flow_status()
    assert set(status) == {"cv-cuda-brox", "cv-cuda-tvl1", "cv-cuda-nvof"}
    has_cuda = hasattr(cv2, "cuda") and cv2.cuda.getCudaEnabledDeviceCount() > 0
    for state in status.values():
        assert state == "available" or ("CUDA" in state or "cudaoptflow" in state)
        if not has_cuda:
            assert "without CUDA" in state


# --- on the GPU ------------------------------------------------------------------------------------------------
@pytest.mark.gpu
@gpu
@pytest.mark.parametrize("preset", ["fp16-cl-graph", "fp16-cl-graph-streams", "bf16-cl-graph"])
def test_cuda_runtime_matches_float64_reference(preset: str) -> None:
    from aunets.engines.runtime_cuda import CUDA_PRESETS

    model = _tiny()
    x = torch.from_numpy(np.random.default_rng(1).normal(size=(2, 3, S, 2 * S)).astype(np.float32))
    with torch.inference_mode():
        ref = model.double()(x.double()).float()
    rt = CudaRuntime(module=_tiny(), config=CUDA_PRESETS[preset])
    for _ in range(2):  # the second call replays the graph
        out = torch.from_numpy(rt.run(x.numpy()))
    err = float(torch.linalg.norm(out - ref) / torch.linalg.norm(ref))
    assert err < 3e-2, err
    x2 = torch.from_numpy(np.random.default_rng(2).normal(size=(2, 3, S, 2 * S)).astype(np.float32))
    with torch.inference_mode():
        ref2 = model(x2.double()).float()
    err2 = float(torch.linalg.norm(torch.from_numpy(rt.run(x2.numpy())) - ref2) / torch.linalg.norm(ref2))
    assert err2 < 3e-2, err2  # fresh input through the captured graph


@pytest.mark.gpu
@gpu
def test_gpu_path_graph_equals_eager_and_cpu() -> None:
    f0, f1 = _frames()
    box = (50.3, 30.7, 40.0, 44.0)
    fp32 = CudaRuntimeConfig(dtype="float32", channels_last=True, cuda_graph=False, allow_tf32=False)
    results = {}
    for graph in (False, True):
        gp = GpuFramePath(_manifest(), {"v4.safetensors": CudaRuntime(module=_tiny(), config=fp32)},
                          GpuPathConfig(cuda_graph=graph, runtime=fp32))
        results[graph] = [gp.infer(f, [box]) for f in (f0, f1, f0, f1)]
    for a, b in zip(results[False], results[True], strict=True):
        np.testing.assert_allclose(a, b, atol=1e-4)
    cpu = GpuFramePath(_manifest(), {"v4.safetensors": CudaRuntime(module=_tiny(), config=CPU)},
                       GpuPathConfig(device="cpu", cuda_graph=False, runtime=CPU))
    cpu_probs = [cpu.infer(f, [box]) for f in (f0, f1, f0, f1)]
    for a, b in zip(results[True], cpu_probs, strict=True):
        np.testing.assert_allclose(a, b, atol=2e-3)


@pytest.mark.gpu
@gpu
def test_tvl1_on_gpu_matches_cpu_and_fp16_is_safe() -> None:
    from tests.test_flow_torch import _epe, _pair

    prev, cur, truth = _pair(0, (2.5, -1.5))
    cpu = TorchTVL1Flow("fast", "cpu").compute(prev, cur)
    gpu32 = TorchTVL1Flow("fast", "cuda").compute(prev, cur)
    gpu16 = TorchTVL1Flow("fast", "cuda", dtype="float16").compute(prev, cur)
    assert np.abs(cpu - gpu32).mean() < 1e-2
    assert np.isfinite(gpu16).all()
    assert _epe(gpu16, truth) < 1.5 * _epe(gpu32, truth) + 0.05


@pytest.mark.gpu
@gpu
def test_tensorrt_build_and_run(tmp_path: object) -> None:
    torch_tensorrt = pytest.importorskip("torch_tensorrt", reason="torch_tensorrt does not import (extra [trt])")
    model = _tiny().cuda().half()
    x = torch.randn((1, 3, S, 2 * S), device="cuda", dtype=torch.half)
    trt = torch_tensorrt.compile(model, ir="dynamo", inputs=[x], use_explicit_typing=True)
    ref = model(x).float()
    assert float(torch.linalg.norm(trt(x).float() - ref) / torch.linalg.norm(ref)) < 3e-2


def test_pipeline_device_cuda_without_a_gpu_is_a_clear_error() -> None:
    if HAS_CUDA:
        pytest.skip("this machine has CUDA: the GPU test below covers it")
    from aunets.stream.pipeline import Pipeline, PipelineConfig

    with pytest.raises(EngineError, match="needs torch with CUDA"):
        Pipeline(PipelineConfig(device="cuda"))


def _clip_probabilities(pipeline: Any, frames: list[np.ndarray]) -> np.ndarray:
    from aunets.core.frame import Frame

    results = []
    for i, f in enumerate(frames):
        results += pipeline.process(Frame(i, 0, 0.0, f))
    return np.array([[r.probabilities[a] for a in pipeline.aus] for r in results if not r.no_face])


@pytest.mark.slow
def test_pipeline_gpu_branch_on_the_cpu_device_matches_the_cpu_pipeline() -> None:
    """The `--device cuda` wiring (Pipeline -> GpuFramePath.from_bundle with the default engine's per-view
    heads and view classifier) run on torch's CPU device, so that CI checks it without a GPU."""
    from aunets.stream.pipeline import Pipeline, PipelineConfig

    frames = clip_frames(12)
    cpu = _clip_probabilities(Pipeline(PipelineConfig(device="cpu")), frames)
    pipeline = Pipeline(PipelineConfig(device="cpu"))
    pipeline.gpu = GpuFramePath.from_bundle(pipeline.engine.path, GpuPathConfig(device="cpu", cuda_graph=False,
                                                                                runtime=CPU))  # fmt: skip
    via_path = _clip_probabilities(pipeline, frames)
    assert cpu.shape == via_path.shape == (12, 12)
    # TV-L1 (the path's flow) against DIS (the CPU pipeline's): close, not identical
    assert np.abs(cpu - via_path).mean() < 0.1


@gpu
@pytest.mark.gpu
def test_pipeline_device_cuda_matches_the_cpu_pipeline_on_the_clip() -> None:
    """`aunets run --device cuda` end to end with the default engine: same faces, close probabilities."""
    from aunets.stream.pipeline import Pipeline, PipelineConfig

    frames = clip_frames(40)
    out = {device: _clip_probabilities(Pipeline(PipelineConfig(device=device)), frames) for device in ("cpu", "cuda")}
    assert out["cpu"].shape == out["cuda"].shape == (40, 12)
    # TV-L1 on the GPU vs DIS on the CPU and fp16: not identical, but the same detections on average
    assert np.abs(out["cpu"] - out["cuda"]).mean() < 0.1
