"""The GPU frame path run on torch's CPU device (issue 26): the same outputs as the CPU path (intensity too),
warm-up before the first frame with no new graph on a view change, N faces in one batched call, the
compile cache folder, and start-up figures in the run summary. ``--device torch-cpu`` is the same code as
``--device cuda`` but for the device, so CI checks the path without a GPU; the GPU-only parts (graph capture
counts) are marked ``gpu``."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from aunets.core.frame import Frame  # noqa: E402
from aunets.engines.engine import default_engine_path  # noqa: E402
from aunets.engines.runtime_cuda import CudaRuntime  # noqa: E402
from aunets.stream.frame_path_start import CPU_RUNTIME, open_frame_path  # noqa: E402
from aunets.stream.gpu_path import GpuFramePath, GpuPathConfig  # noqa: E402
from aunets.stream.pipeline import Pipeline, PipelineConfig  # noqa: E402
from tests.conftest import CLIP, REPO, clip_frames  # noqa: E402

HAS_CUDA = torch.cuda.is_available()
BOX = (250.0, 60.0, 150.0, 170.0)  # a face-sized box inside the bundled clip's frames


def _results(pipeline: Pipeline, frames: list[np.ndarray]) -> list[Any]:
    results = []
    for i, f in enumerate(frames):
        results += pipeline.process(Frame(i, 0, 0.0, f, t_media=i / 25.0))  # the clip's 25 fps: states' durations
    return [r for r in results if not r.no_face and not r.events_only]


def _matrix(results: list[Any], field: str, aus: tuple[int, ...]) -> np.ndarray:
    return np.array([[getattr(r, field)[a] for a in aus] for r in results], dtype=np.float32)


def agreement(cpu: Pipeline, path: Pipeline, frames: list[np.ndarray]) -> dict[str, float]:
    """Mean |delta p| and presence agreement (after the median and thresholds) of two pipelines on ``frames``."""
    a, b = _results(cpu, frames), _results(path, frames)
    assert [r.frame_index for r in a] == [r.frame_index for r in b] and a
    aus = cpu.aus
    pa, pb = _matrix(a, "probabilities", aus), _matrix(b, "probabilities", aus)
    sa, sb = _matrix(a, "states", aus), _matrix(b, "states", aus)
    ia, ib = _matrix(a, "intensity", aus), _matrix(b, "intensity", aus)
    return {"mean_abs_dp": float(np.abs(pa - pb).mean()), "presence_equal": float((sa == sb).mean()),
            "mean_abs_d_intensity": float(np.abs(ia - ib).mean()), "rows": len(a),
            "intensity_min": float(ib.min()), "intensity_max": float(ib.max())}


@pytest.mark.slow
def test_torch_cpu_path_gives_the_cpu_paths_outputs_with_intensity() -> None:
    """The frame path (torch's CPU device, float32: the arithmetic of ``--device cuda`` less fp16) against the
    ONNX CPU path on 60 frames of the bundled clip: probabilities, presences and intensities. The two use
    different optical flow (TV-L1 in the path, the engine's DIS on the CPU), so they are close, not equal."""
    frames = clip_frames(60)
    cpu = Pipeline(PipelineConfig(device="cpu", threads=1))
    path = Pipeline(PipelineConfig(device="torch-cpu", threads=1))
    assert path.gpu is not None and path.gpu.has_intensity and cpu.engine.has_intensity
    got = agreement(cpu, path, frames)
    assert got["rows"] == 60
    assert got["intensity_min"] >= 0.0 and got["intensity_max"] <= 5.0 and got["intensity_max"] > 0.1, got
    assert got["mean_abs_dp"] < 0.06, got  # 0.048 measured; the flow (TV-L1 vs DIS) is most of it
    assert got["presence_equal"] > 0.9, got
    assert got["mean_abs_d_intensity"] < 0.25, got


def test_path_intensity_equals_the_engines_on_the_same_input() -> None:
    """Given the same detector input, the path's heads and intensities are exactly AUEngine.infer's (the
    shipped engine: one file, nine heads, an intensity block after the presence blocks)."""
    from aunets.engines.engine import load_engine

    engine = load_engine(None, "torch")
    gp = open_frame_path(default_engine_path(), "torch-cpu", threads=1)
    f0, f1 = clip_frames(2)
    boxes = [BOX, (60.0, 40.0, 120.0, 120.0)]
    views = [2, 7]
    gp.infer(f0, [])
    probs, intensity = gp.infer_full(f1, boxes, views)
    gp.reset()
    gp.infer(f0, [])
    x = gp.prepare(f1, boxes).numpy()
    ref_p, ref_i = engine.infer(x, views)
    assert intensity is not None and ref_i is not None and intensity.shape == (2, len(engine.aus))
    np.testing.assert_allclose(probs, ref_p, atol=1e-4)
    np.testing.assert_allclose(intensity, ref_i, atol=5e-4)
    assert not np.allclose(probs[0], probs[1])


def test_warmup_prepares_every_key_a_stream_needs_and_leaves_state() -> None:
    """After warm-up, frames of that size with 1..max_faces faces, any size and any view, need no new graph
    key (on the GPU: no capture in the frame loop); warm-up does not change what the stream computes."""
    f0, f1, f2 = clip_frames(3)
    gp = open_frame_path(default_engine_path(), "torch-cpu", threads=1)
    cold = [gp.infer(f, [BOX], [4]) for f in (f0, f1, f2)]
    gp = open_frame_path(default_engine_path(), "torch-cpu", threads=1)
    gp.infer(f0, [BOX], [4])
    seconds = gp.warmup(f0.shape, max_faces=2)
    assert seconds > 0 and gp.startup["warmup_s"] == pytest.approx(seconds, abs=1e-3)
    warm_keys = set(gp.keys_run)
    height, width = f0.shape[:2]
    # views 0..8 share one file: one key per (faces, supersampling) whatever the view
    assert {key[1] for key in warm_keys} == {1, 2}
    assert len(warm_keys) == 2 * len({key[2] for key in warm_keys})
    warm = [gp.infer(f, [BOX], [4]) for f in (f1, f2)]
    np.testing.assert_allclose(warm, cold[1:], atol=1e-6)  # the previous frame survived the warm-up
    rng = np.random.default_rng(0)
    for i in range(16):
        n = 1 + i % 2
        sides = rng.uniform(20, min(height, width), size=n)
        boxes = [(float(rng.uniform(0, width - s)), float(rng.uniform(0, height - s)), float(s), float(s))
                 for s in sides]
        gp.infer(f1 if i % 2 else f2, boxes, list(rng.integers(0, 9, size=n)))
    assert gp.keys_run == warm_keys


def test_n_faces_are_one_batched_detector_call() -> None:
    """A frame with N faces runs the detector file once, on a batch of N, whatever their views."""
    from aunets.engines.manifest import load_manifest
    from aunets.engines.runtime import load_registry_model

    manifest = load_manifest(default_engine_path())
    bundle = default_engine_path()
    calls: list[tuple[int, ...]] = []

    class CountingRuntime(CudaRuntime):
        def forward(self, x: Any) -> Any:
            calls.append(tuple(x.shape))
            return super().forward(x)

    module = load_registry_model(bundle / "detector.safetensors", manifest.architecture,
                                 9 * len(manifest.aus) * 2, manifest.architecture_kwargs, "cuda")
    gp = GpuFramePath(manifest, {"detector.onnx": CountingRuntime(module=module, config=CPU_RUNTIME)},
                      GpuPathConfig(device="cpu", cuda_graph=False, runtime=CPU_RUNTIME))
    (frame,) = clip_frames(1)
    boxes = [BOX, (10.0, 10.0, 100.0, 100.0), (400.0, 100.0, 90.0, 90.0), (200.0, 200.0, 60.0, 60.0)]
    probs = gp.infer(frame, boxes, [0, 3, 4, 8])
    assert probs.shape == (4, len(manifest.aus))
    assert len(calls) == 1 and calls[0][0] == 4


def test_compile_cache_cli_shows_and_clears_the_folder(tmp_path: Path) -> None:
    env = {**os.environ, "AUNETS_CACHE_DIR": str(tmp_path / "cache")}
    for var in ("TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR"):
        env.pop(var, None)

    def cache(*args: str) -> dict[str, Any]:
        done = subprocess.run([sys.executable, "-m", "aunets", "cache", *args], env=env, capture_output=True,
                              text=True, timeout=60, check=True)
        return dict(json.loads(done.stdout))

    empty = cache()
    assert empty["path"] == str(tmp_path / "cache" / "torch-compile") and empty["files"] == 0
    # what use_compile_cache() tells inductor, in a fresh process as the frame path calls it
    code = "from aunets.core.compile_cache import use_compile_cache; import os; use_compile_cache(); " \
           "print(os.environ['TORCHINDUCTOR_CACHE_DIR'])"
    inductor = Path(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                   timeout=60, check=True).stdout.strip())
    assert inductor.parent == tmp_path / "cache" / "torch-compile"
    inductor.mkdir(parents=True)
    (inductor / "kernel.so").write_bytes(b"x" * 100)
    assert cache()["files"] == 1 and cache()["bytes"] == 100
    cleared = cache("--clear")
    assert cleared["cleared"] and cleared["files"] == 1 and not inductor.exists()
    assert cache()["files"] == 0


@pytest.mark.slow
def test_process_cli_on_torch_cpu_writes_intensity_and_startup(tmp_path: Path) -> None:
    """`aunets process --device torch-cpu` (the --device cuda wiring on torch's CPU device): the CSV has its
    AUxx_r columns filled, and the summary its start-up figures."""
    out = tmp_path / "clip.csv"
    command = [sys.executable, "-m", "aunets", "process", str(CLIP), "--csv", str(out), "--device", "torch-cpu",
               "--threads", "1", "--max-frames", "12", "--no-progress"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=REPO,
                          env={**os.environ, "AUNETS_CACHE_DIR": str(tmp_path / "cache")})
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    startup = summary["startup_s"]
    assert set(startup) == {"import_s", "load_s", "warmup_s", "first_result_s"}, startup
    assert startup["warmup_s"] > 0 and startup["first_result_s"] > 0
    with out.open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 12
    r_cols = [c for c in rows[0] if c.strip().endswith("_r")]
    assert len(r_cols) == 12
    values = np.array([[float(row[c]) for c in r_cols] for row in rows])
    assert np.isfinite(values).all() and values.min() >= 0.0 and values.max() <= 5.0
    config = json.loads(out.with_suffix(".csv.config.json").read_text())
    assert config["stats"]["startup_s"]["warmup_s"] == startup["warmup_s"]


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="needs an NVIDIA GPU with CUDA (torch.cuda.is_available() is False)")
def test_cuda_path_captures_up_front_and_never_in_the_frame_loop() -> None:
    frames = clip_frames(30)
    gp = open_frame_path(default_engine_path(), "cuda", flow="torch-tvl1")  # all on the GPU: one graph per key
    gp.warmup(frames[0].shape, max_faces=2)
    captured = gp.graphs_captured
    assert captured == len(gp.keys_run) > 0
    for i, f in enumerate(frames):
        gp.infer(f, [BOX] * (1 + i % 2), [i % 9] * (1 + i % 2))
    assert gp.graphs_captured == captured


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="needs an NVIDIA GPU with CUDA (torch.cuda.is_available() is False)")
def test_cuda_path_gives_the_cpu_paths_outputs_on_the_clip() -> None:
    """The bounds torch's CPU device meets (the issue's targets, 0.03 and 97 %, are measured by
    benchmarks/frame_path_agreement.py: on the CPU device the path gets 0.042 and 95 %), now in fp16."""
    frames = clip_frames(120)
    got = agreement(Pipeline(PipelineConfig(device="cpu")), Pipeline(PipelineConfig(device="cuda")), frames)
    assert got["intensity_max"] > 0.1
    assert got["mean_abs_dp"] < 0.06, got
    assert got["presence_equal"] > 0.9, got


def test_streams_share_one_engine_in_one_batched_call() -> None:
    """Two streams of the bundled clip (different parts of it) through one engine: each round, one detector
    call for the faces of both, and each stream's results are what its own path alone gives."""
    from aunets.stream.stream_batcher import infer_streams

    clip = clip_frames(3) + clip_frames(3, start=200)
    streams = [clip[:3], clip[3:]]
    alone = []
    for frames in streams:
        own = open_frame_path(default_engine_path(), "torch-cpu", threads=1)
        alone.append([own.infer_full(f, [BOX], [4]) for f in frames])
    base = open_frame_path(default_engine_path(), "torch-cpu", threads=1)
    paths = [base, base.sibling()]
    calls: list[int] = []
    runtime = base.runtimes["detector.onnx"]
    forward = runtime.forward

    def counting(x: Any) -> Any:
        calls.append(int(x.shape[0]))
        return forward(x)

    runtime.forward = counting  # type: ignore[method-assign]
    for i in range(3):
        out = infer_streams(paths, [streams[0][i], streams[1][i]], [[BOX], [BOX, BOX]] if i == 1 else [[BOX], [BOX]],
                            [[4], [4, 4]] if i == 1 else [[4], [4]])
        for s in range(2):
            probs, intensity = out[s]
            assert intensity is not None and probs.shape == intensity.shape == ((2 if i == 1 and s == 1 else 1), 12)
            # float32 kernels differ with the batch size: equal to ~1e-4, far below frame-to-frame changes
            np.testing.assert_allclose(probs[:1], alone[s][i][0], atol=2e-3)
            assert alone[s][i][1] is not None
            np.testing.assert_allclose(intensity[:1], alone[s][i][1], atol=1e-2)
    assert calls == [2, 3, 2]
    assert not np.allclose(out[0][0], out[1][0])
    with pytest.raises(Exception, match="share one engine"):
        infer_streams([base, open_frame_path(default_engine_path(), "torch-cpu", threads=1)], clip[:2], [[BOX], [BOX]])


def test_flow_choice_engine_flow_on_the_host_or_tvl1_on_the_device() -> None:
    """By default the path uses the engine's flow (DIS) on the host, as the CPU path; ``torch-tvl1*`` runs TV-L1
    on the device; an unknown name is refused naming the choices."""
    from aunets.core.errors import ConfigError

    engine_flow = open_frame_path(default_engine_path(), "torch-cpu", threads=1)
    assert engine_flow.config.host_flow == "dis" and engine_flow.host_flow is not None
    tvl1 = open_frame_path(default_engine_path(), "torch-cpu", threads=1, flow="torch-tvl1-medium")
    assert tvl1.config.host_flow is None and tvl1.config.flow_preset == "medium"
    import cv2

    from aunets.core.crop import crop_square
    from aunets.core.flow import compute_flows, encode_flow
    from aunets.core.flow_registry import create_flow_backend
    from aunets.engines.preprocess import compose_input

    f0, f1 = clip_frames(10)[::9]  # a pair with motion
    m = engine_flow.manifest
    size = m.input.height
    rgb = cv2.cvtColor(crop_square(f1, BOX, 1.3, size), cv2.COLOR_BGR2RGB)
    prev = crop_square(cv2.cvtColor(f0, cv2.COLOR_BGR2GRAY), BOX, 1.3, size)
    (flow,) = compute_flows(create_flow_backend("dis"), [prev], [cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)])
    cpu_flow = compose_input(rgb, encode_flow(flow, m.flow.encoding, m.flow.clip_fraction), m.input)[:, :, size:]
    errors = {}
    for name, path in (("dis", engine_flow), ("tvl1", tvl1)):
        path.prepare(f0, [BOX])
        errors[name] = float(np.abs(path.prepare(f1, [BOX]).numpy()[0][:, :, size:] - cpu_flow).mean())
    assert errors["dis"] < 0.5 * errors["tvl1"], errors  # the CPU path's flow, up to the crops' last grey level
    with pytest.raises(ConfigError, match="unknown flow backend"):
        open_frame_path(default_engine_path(), "torch-cpu", threads=1, flow="nope")


def _csv_matrix(path: Path, suffix: str) -> np.ndarray:
    with path.open() as fh:
        rows = list(csv.DictReader(fh))
    return np.array([[float(r[c]) for c in r if c.endswith(suffix)] for r in rows])


@pytest.mark.slow
def test_multi_cli_runs_two_streams_through_one_engine_as_process_would(tmp_path: Path) -> None:
    """`aunets multi` with two bundled videos (two capture processes, one batcher): the faces of both streams go
    through the engine together, and each stream's CSV holds what `aunets process` writes for that video alone."""
    videos = [CLIP, REPO / "media" / "realfaces_trio.mp4"]
    common = ["--device", "torch-cpu", "--threads", "1", "--max-frames", "8"]
    env = {**os.environ, "AUNETS_CACHE_DIR": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, "-m", "aunets", "multi", *map(str, videos), "--out", str(tmp_path / "multi"),
                           "--max-wait-ms", "2000", *common], capture_output=True, text=True, timeout=300, cwd=REPO,
                          env=env)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert [s["rows"] for s in summary["streams"]] == [8, 8]
    assert summary["streams_per_batch_max"] == 2 and summary["streams_per_batch_mean"] > 1.5
    for i, video in enumerate(videos):
        alone = tmp_path / f"alone{i}.csv"
        single = subprocess.run([sys.executable, "-m", "aunets", "process", str(video), "--csv", str(alone),
                                 "--no-progress", *common], capture_output=True, text=True, timeout=300, cwd=REPO,
                                env=env)
        assert single.returncode == 0, single.stderr
        shared = tmp_path / "multi" / f"{i}_{video.stem}.csv"
        for suffix, tol in (("_p", 2e-3), ("_r", 1e-2)):
            a, b = _csv_matrix(shared, suffix), _csv_matrix(alone, suffix)
            assert a.shape == b.shape == (8, 12)
            np.testing.assert_allclose(a, b, atol=tol)


def test_padding_the_flow_batch_to_a_power_of_two_changes_nothing() -> None:
    """A compiled TV-L1 pads 3 faces to 4 (one compilation per power of two): the 3 faces' results are the same."""
    f0, f1 = clip_frames(2)
    boxes = [BOX, (60.0, 40.0, 120.0, 120.0), (400.0, 100.0, 90.0, 90.0)]
    out = {}
    for padded in (False, True):
        gp = open_frame_path(default_engine_path(), "torch-cpu", threads=1, flow="torch-tvl1")
        gp._flow_compiled = padded  # what a compiled solver sets (compiling itself needs a GPU to be worth it)
        out[padded] = [gp.infer(f, boxes) for f in (f0, f1)]
    np.testing.assert_allclose(out[True], out[False], atol=1e-5)
