"""Per-stage and end-to-end latency (p50/p90/p99) and throughput of the AU engines, CPU and GPU (issue 5).

    python benchmarks/latency.py [--frames 200] [--cpu-frames 3] [--cpu-members 12] [--compile]
                                 [--out benchmarks/results]

Rows (each on the bundled clip's frames, one face, the box YuNet finds in the first frame):

* ``cpu-default``: the CPU path of the default engine (crop, DIS flow, compose, ONNX Runtime), if the embedded
  engine is present.
* ``cpu-faithful-vgg16x12``: the faithful AUNets view ensemble (12 independent VGG16s, 224x448 RGB|flow,
  **random weights**) in float32 torch on the CPU, ``--cpu-frames`` frames; ``--cpu-members`` < 12 runs fewer
  members and scales the engine time by 12 / members (marked ``extrapolated``).
* GPU rows, when CUDA is present: the same ensemble through :class:`aunets.engines.runtime_cuda.CudaRuntime` presets
  (``eager-fp32``, ``eager-fp16``, ``fp16-cl-graph``, ``fp16-cl-graph-streams``, ``bf16-cl-graph``,
  ``fp16-compile-graph`` with ``--compile``), engine alone on a device tensor and the whole GPU frame path
  (:class:`aunets.stream.gpu_path.GpuFramePath`: upload, crop, TV-L1 flow, normalise, infer, download), and
  ``trt`` when torch-tensorrt imports.

Times come from CUDA events (GPU) or ``perf_counter`` (CPU) around each call, after warm-up. Throughput is
frames/s of back-to-back sequential frames (1000 / mean ms). Writes ``latency.json`` and ``latency.md``
(device, versions, date) and ``latency.png`` under ``--out``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import platform
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402
from bench_clip import load_frames  # noqa: E402  (benchmarks/bench_clip.py)
from tqdm import tqdm  # noqa: E402

from aunets.core.au import BP4D_AUS  # noqa: E402
from aunets.core.crop import crop_square  # noqa: E402
from aunets.core.flow import DISFlow, encode_flow  # noqa: E402
from aunets.engines.manifest import InputSpec, Manifest  # noqa: E402
from aunets.engines.preprocess import compose_input  # noqa: E402
from aunets.engines.registry import create_model  # noqa: E402
from aunets.engines.runtime_cuda import CUDA_PRESETS, CudaRuntime, CudaRuntimeConfig  # noqa: E402
from aunets.stream.gpu_path import GpuFramePath, GpuPathConfig  # noqa: E402

ARCH = "aunet_vgg16_horizontal"
N_AUS = len(BP4D_AUS)
GPU_PRESETS = ("eager-fp32", "eager-fp16", "fp16-cl-graph", "fp16-cl-graph-streams", "bf16-cl-graph")


def stats(ms: list[float]) -> dict[str, float]:
    a = np.asarray(ms, dtype=np.float64)
    return {"n": int(a.size), "p50_ms": float(np.percentile(a, 50)), "p90_ms": float(np.percentile(a, 90)),
            "p99_ms": float(np.percentile(a, 99)), "mean_ms": float(a.mean()), "fps": float(1000.0 / a.mean())}


def faithful_manifest() -> Manifest:
    return Manifest(name="faithful-random", architecture=ARCH, aus=BP4D_AUS, detectors={4: "view4.safetensors"},
                    files={"view4.safetensors": "0" * 64}, input=InputSpec(fusion="horizontal", height=224, width=224),
                    architecture_kwargs={"independent": True})


def make_ensemble(members: int, device: str, seed: int = 0) -> torch.nn.Module:
    """The faithful per-view ensemble with random weights, built directly on ``device``."""
    torch.manual_seed(seed)
    with torch.device(device):
        return create_model(ARCH, members, independent=True).eval()


# --- CPU rows ------------------------------------------------------------------------------------------------
def cpu_inputs(frames: list[np.ndarray], box: tuple[float, float, float, float], spec: InputSpec,
               timings: dict[str, list[float]]) -> list[np.ndarray]:
    dis = DISFlow("fast")
    out = []
    prev = cv2.cvtColor(frames[0], cv2.COLOR_BGR2GRAY)
    for frame in frames:
        t0 = time.perf_counter()
        crop = crop_square(frame, box, 1.3, spec.height)
        pcrop = crop_square(prev, box, 1.3, spec.height)
        t1 = time.perf_counter()
        flow = encode_flow(dis.compute(pcrop, cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)))
        t2 = time.perf_counter()
        out.append(compose_input(cv2.cvtColor(crop, cv2.COLOR_BGR2RGB), flow, spec))
        t3 = time.perf_counter()
        prev = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        for k, a, b in (("crop", t0, t1), ("flow", t1, t2), ("normalise", t2, t3)):
            timings.setdefault(k, []).append((b - a) * 1000)
    return out


def row(name: str, where: str, e2e: list[float], stages: dict[str, list[float]], **extra: Any) -> dict[str, Any]:
    return {"name": name, "device": where, "end_to_end": stats(e2e),
            "stages_p50_ms": {k: float(np.percentile(v, 50)) for k, v in stages.items() if v}, **extra}


def bench_cpu_default(frames: list[np.ndarray], box: Any) -> dict[str, Any]:
    from aunets.engines.engine import load_engine

    try:
        engine = load_engine(None)
    except Exception as exc:  # the embedded engine may not be built yet
        return {"name": "cpu-default", "skipped": str(exc)}
    spec = engine.manifest.input
    stages: dict[str, list[float]] = {}
    samples = cpu_inputs(frames, box, spec, stages)
    e2e = []
    for i, x in enumerate(tqdm(samples, desc="cpu-default", leave=False)):
        t0 = time.perf_counter()
        engine.predict(x[None], [engine.manifest.default_view])
        t1 = time.perf_counter()
        stages.setdefault("infer", []).append((t1 - t0) * 1000)
        e2e.append(stages["crop"][i] + stages["flow"][i] + stages["normalise"][i] + (t1 - t0) * 1000)
    return row("cpu-default", "cpu", e2e, stages, engine=engine.manifest.name, layout=spec.layout,
               threads=1)


def bench_cpu_faithful(frames: list[np.ndarray], box: Any, n_frames: int, members: int) -> dict[str, Any]:
    threads = torch.get_num_threads()
    model = make_ensemble(members, "cpu")
    spec = faithful_manifest().input
    stages: dict[str, list[float]] = {}
    samples = cpu_inputs(frames[: n_frames + 1], box, spec, stages)
    e2e = []
    scale = N_AUS / members
    with torch.inference_mode():
        model(torch.from_numpy(samples[0][None]))  # warm-up
        for i, x in enumerate(tqdm(samples[1:], desc="cpu-faithful", leave=False), start=1):
            t0 = time.perf_counter()
            model(torch.from_numpy(x[None]))
            ms = (time.perf_counter() - t0) * 1000 * scale
            stages.setdefault("infer", []).append(ms)
            e2e.append(stages["crop"][i] + stages["flow"][i] + stages["normalise"][i] + ms)
    del model
    gc.collect()
    return row("cpu-faithful-vgg16x12", "cpu", e2e, stages, members_run=members,
               extrapolated=members != N_AUS, torch_threads=threads, weights="random", flow="dis-fast")


# --- GPU rows ------------------------------------------------------------------------------------------------
def cuda_time(fn: Callable[[], Any], n: int, desc: str) -> list[float]:
    out = []
    for _ in tqdm(range(n), desc=desc, leave=False):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        out.append(float(a.elapsed_time(b)))
    return out


def bench_gpu_preset(preset: str, cfg: CudaRuntimeConfig, frames: list[np.ndarray], box: Any,
                     n: int, flow_compile: bool = False) -> dict[str, Any]:
    model = make_ensemble(N_AUS, "cuda")
    t_build = time.perf_counter()
    rt = CudaRuntime(module=model, config=cfg)
    x = torch.randn((1, 3, 224, 448), device="cuda")
    for _ in range(3):
        rt.run_tensor(x)  # warm-up (and graph capture / compilation)
    torch.cuda.synchronize()
    warmup_s = time.perf_counter() - t_build
    engine_ms = cuda_time(partial(rt.run_tensor, x), n, f"{preset} engine")
    # reference check against float32 eager on the same weights is done in tests/test_gpu.py
    path_cfg = GpuPathConfig(runtime=CudaRuntimeConfig(**{**cfg.to_json(), "cuda_graph": False}),
                             cuda_graph=cfg.cuda_graph, flow_compile=flow_compile)
    gp = GpuFramePath(faithful_manifest(), {"view4.safetensors": rt}, path_cfg)
    seq = [frames[i % len(frames)] for i in range(n + 5)]
    for f in seq[:5]:
        gp.infer(f, [box])
    torch.cuda.synchronize()
    e2e = []
    for f in tqdm(seq[5:], desc=f"{preset} path", leave=False):
        t0 = time.perf_counter()
        gp.infer(f, [box])  # returns numpy: synchronised
        e2e.append((time.perf_counter() - t0) * 1000)
    # per-stage breakdown: the same path without the whole-path graph, synchronised after each stage
    gp_stage = GpuFramePath(faithful_manifest(), {"view4.safetensors": rt},
                            GpuPathConfig(runtime=path_cfg.runtime, cuda_graph=False, flow_compile=flow_compile))
    gp_stage.profile = True
    for f in seq[: min(n, 50)]:
        gp_stage.infer(f, [box])
    stages = {k: v[5:] for k, v in gp_stage.stage_ms.items()}
    stages["engine_only"] = engine_ms
    name = preset + ("+flow-compile" if flow_compile else "")
    result = row(name, "cuda", e2e, stages, config=cfg.to_json(), warmup_s=warmup_s,
                 engine_only=stats(engine_ms), weights="random",
                 flow="torch-tvl1-fast (GPU" + (", compiled)" if flow_compile else ")"))
    del gp, gp_stage, rt, model
    gc.collect()
    torch.cuda.empty_cache()
    return result


def bench_flow_gpu(n: int) -> dict[str, Any]:
    from aunets.core.flow_torch import TVL1_PRESETS, TorchTVL1

    out: dict[str, Any] = {}
    for preset, comp in (("fast", False), ("medium", False), ("fast", True)):
        solver = TorchTVL1(TVL1_PRESETS[preset], compile=comp)
        preset = preset + ("+compile" if comp else "")
        a = torch.rand((1, 1, 224, 224), device="cuda") * 255
        b = torch.rand((1, 1, 224, 224), device="cuda") * 255
        with torch.inference_mode():
            for _ in range(3):
                solver(a, b, 255.0)
            eager = cuda_time(partial(solver, a, b, 255.0), min(n, 50), f"tvl1-{preset} eager")
            s = torch.cuda.Stream()
            s.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(s):
                solver(a, b, 255.0)
            torch.cuda.current_stream().wait_stream(s)
            g = torch.cuda.CUDAGraph()
            with torch.cuda.graph(g):
                solver(a, b, 255.0)
            graph = cuda_time(g.replay, n, f"tvl1-{preset} graph")
        out[preset] = {"eager": stats(eager), "graph": stats(graph)}
    return out


def bench_trt(n: int) -> dict[str, Any]:
    try:
        import torch_tensorrt
    except ImportError as exc:
        return {"name": "trt", "skipped": f"torch_tensorrt does not import here ({exc}); not measured"}
    model = make_ensemble(N_AUS, "cuda").half()
    x = torch.randn((1, 3, 224, 448), device="cuda", dtype=torch.half)
    trt = torch_tensorrt.compile(model, ir="dynamo", inputs=[x], use_explicit_typing=True)
    for _ in range(3):
        trt(x)
    ms = cuda_time(lambda: trt(x), n, "trt")
    return {"name": "trt", "device": "cuda", "engine_only": stats(ms), "torch_tensorrt": torch_tensorrt.__version__}


# --- report --------------------------------------------------------------------------------------------------
def environment() -> dict[str, Any]:
    env: dict[str, Any] = {"date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                           "python": platform.python_version(), "torch": torch.__version__,
                           "opencv": cv2.__version__, "cpu": platform.processor() or platform.machine(),
                           "cpu_threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        major, minor = torch.cuda.get_device_capability()
        env.update(gpu=torch.cuda.get_device_name(), compute_capability=f"{major}.{minor}",
                   cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version())
    return env


def markdown(result: dict[str, Any]) -> str:
    env = result["environment"]
    lines = [f"# Latency benchmark ({env['date']})", "",
             f"GPU: {env.get('gpu', 'none')} (cc {env.get('compute_capability', '-')}), CUDA {env.get('cuda', '-')}, "
             f"torch {env['torch']}, OpenCV {env['opencv']}, Python {env['python']}, CPU threads {env['cpu_threads']}.",
             "Faithful = 12 independent VGG16 (one per AU), 224x448 RGB|flow, **random weights** (timing only). "
             "End to end = frame upload (GPU) or crop (CPU) to probabilities; one face.", "",
             "| row | device | e2e p50 ms | p90 | p99 | frames/s | engine-only p50 ms | stages p50 ms |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in result["rows"]:
        if "skipped" in r:
            lines.append(f"| {r['name']} | - | skipped: {r['skipped']} | | | | | |")
            continue
        e = r.get("end_to_end")
        eng = r.get("engine_only")
        st = ", ".join(f"{k} {v:.2f}" for k, v in r.get("stages_p50_ms", {}).items() if k != "engine_only")
        extra = f" (extrapolated from {r['members_run']} members)" if r.get("extrapolated") else ""
        name = r["name"] + extra
        cells = [name, r.get("device", "-")]
        cells += [f"{e[k]:.2f}" for k in ("p50_ms", "p90_ms", "p99_ms")] + [f"{e['fps']:.1f}"] if e else ["-"] * 4
        cells += [f"{eng['p50_ms']:.2f}" if eng else "-", st]
        lines.append("| " + " | ".join(cells) + " |")
    if "flow_gpu" in result:
        lines += ["", "| GPU TV-L1 (224x224, 1 pair) | eager p50 ms | graph p50 ms |", "| --- | --- | --- |"]
        for preset, v in result["flow_gpu"].items():
            lines.append(f"| {preset} | {v['eager']['p50_ms']:.2f} | {v['graph']['p50_ms']:.2f} |")
    if "speedup_vs_eager_fp32" in result:
        lines += ["", "Engine-only speed-up over eager fp32: "
                  + ", ".join(f"{k} {v:.2f}x" for k, v in result["speedup_vs_eager_fp32"].items())]
    return "\n".join(lines) + "\n"


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in result["rows"] if "end_to_end" in r]
    if not rows:
        return
    fig, ax = plt.subplots(figsize=(9, 0.6 * len(rows) + 1.5))
    names = [r["name"] for r in rows]
    p50 = [r["end_to_end"]["p50_ms"] for r in rows]
    p99 = [r["end_to_end"]["p99_ms"] for r in rows]
    y = np.arange(len(rows))
    ax.barh(y, p50, color="tab:blue", label="p50")
    ax.scatter(p99, y, color="tab:red", marker="|", s=200, label="p99")
    ax.set_yticks(y, names)
    ax.set_xscale("log")
    ax.set_xlabel("end-to-end latency per frame, ms (log scale)")
    ax.axvline(10, color="gray", ls="--", lw=1, label="10 ms target")
    ax.set_title(f"AUNets latency, {result['environment'].get('gpu', 'CPU only')}")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def save(result: dict[str, Any], out: Path, stem: str) -> None:
    (out / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=200, help="timed frames per GPU row")
    ap.add_argument("--cpu-frames", type=int, default=3, help="timed frames of the faithful CPU row")
    ap.add_argument("--cpu-members", type=int, default=12, help="VGG16 members run on the CPU (scaled to 12)")
    ap.add_argument("--skip-cpu", action="store_true", help="leave the CPU rows out")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile of the engine (slow to build)")
    ap.add_argument("--flow-compile", action="store_true", help="also time the path with the flow torch.compile'd")
    ap.add_argument("--presets", nargs="*", default=None, help=f"GPU presets (default {GPU_PRESETS})")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    ap.add_argument("--tag", default="", help="suffix of the output file names")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    frames, box = load_frames(max(args.frames, args.cpu_frames + 1, 20))
    result: dict[str, Any] = {"environment": environment(), "box": list(box), "rows": []}
    stem = "latency" + (f"_{args.tag}" if args.tag else "")
    if not args.skip_cpu:
        result["rows"].append(bench_cpu_default(frames, box))
        result["rows"].append(bench_cpu_faithful(frames, box, args.cpu_frames, args.cpu_members))
    if torch.cuda.is_available():
        presets = [(p, False) for p in (args.presets or GPU_PRESETS)]
        presets += [("fp16-cl-graph-streams", True)] if args.flow_compile else []
        presets += [("fp16-compile-graph", False)] if args.compile else []
        for preset, flow_compile in presets:
            try:
                result["rows"].append(bench_gpu_preset(preset, CUDA_PRESETS[preset], frames, box, args.frames,
                                                       flow_compile))
            except Exception as exc:  # keep the other rows; the error is reported
                result["rows"].append({"name": preset, "skipped": f"failed: {type(exc).__name__}: {exc}"})
                torch.cuda.empty_cache()
            r = result["rows"][-1]
            print(preset, flow_compile, json.dumps({k: r.get(k) for k in ("end_to_end", "engine_only", "stages_p50_ms",
                                                                         "skipped")})[:900], flush=True)
            save(result, args.out, stem)
        try:
            result["flow_gpu"] = bench_flow_gpu(args.frames)
            print(json.dumps(result["flow_gpu"])[:600], flush=True)
        except Exception as exc:
            result["flow_gpu_error"] = f"{type(exc).__name__}: {exc}"
            print(result["flow_gpu_error"], flush=True)
        try:
            result["rows"].append(bench_trt(args.frames))
        except Exception as exc:
            result["rows"].append({"name": "trt", "skipped": f"failed: {type(exc).__name__}: {exc}"})
        by = {r["name"]: r for r in result["rows"] if "engine_only" in r}
        if "eager-fp32" in by:
            base = by["eager-fp32"]["engine_only"]["p50_ms"]
            result["speedup_vs_eager_fp32"] = {k: base / r["engine_only"]["p50_ms"] for k, r in by.items()}
    save(result, args.out, stem)
    md = markdown(result)
    (args.out / f"{stem}.md").write_text(md, encoding="utf-8")
    plot(result, args.out / f"{stem}.png")
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
