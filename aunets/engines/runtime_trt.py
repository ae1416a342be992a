"""The ``trt`` engine runtime: TensorRT engines built ahead of time with torch-tensorrt (extra ``[trt]``).

A TensorRT engine only runs on the GPU model and the software it was built with, so it is not part of the
portable bundle: :func:`build_trt` compiles each ``.safetensors`` detector of a bundle into
``<bundle>/trt/<stem>.ep`` (``torch_tensorrt.compile(..., ir="dynamo")`` then ``torch_tensorrt.save``, an
ExportedProgram) and writes ``<bundle>/trt/trt_build.json``: the GPU name, compute capability, TensorRT,
torch and torch-tensorrt versions, precision and batch range (:class:`TrtBuildInfo`), plus each file's
sha256. The runtime refuses to load when any of these differ from the machine it runs on, naming the
command that rebuilds them::

    python -m aunets.engines.runtime_trt BUNDLE [--max-batch 4] [--dtype float16]

Precision comes from the model's dtype (the network is cast to float16 before export and compiled with
``use_explicit_typing=True``): recent torch-tensorrt removed ``enabled_precisions`` on the dynamo path.
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from aunets.core.errors import EngineError, MissingExtraError
from aunets.engines.manifest import load_manifest, sha256_file
from aunets.engines.runtime import EngineRuntime, RuntimeFactory

log = logging.getLogger(__name__)

TRT_DIR = "trt"
BUILD_INFO = "trt_build.json"
# fields that must match between the build and the machine that loads it
MATCH_FIELDS: tuple[str, ...] = ("gpu_name", "compute_capability", "tensorrt", "torch", "torch_tensorrt")


@dataclass(frozen=True)
class TrtBuildInfo:
    """Where and how a TensorRT engine was built (saved as ``trt/trt_build.json``)."""

    gpu_name: str
    compute_capability: str
    tensorrt: str
    torch: str
    torch_tensorrt: str
    dtype: str = "float16"
    max_batch: int = 4

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrtBuildInfo:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def _trt_modules() -> tuple[Any, Any, Any]:
    try:
        import tensorrt
        import torch
        import torch_tensorrt
    except ImportError as exc:
        raise MissingExtraError(exc.name or "torch_tensorrt", "trt") from exc
    return torch, torch_tensorrt, tensorrt


def current_build_info(dtype: str = "float16", max_batch: int = 4) -> TrtBuildInfo:
    """This machine's GPU and software versions."""
    torch, torch_tensorrt, tensorrt = _trt_modules()
    if not torch.cuda.is_available():
        raise EngineError("TensorRT needs an NVIDIA GPU and torch with CUDA; use --runtime onnx on this machine")
    major, minor = torch.cuda.get_device_capability()
    return TrtBuildInfo(
        gpu_name=torch.cuda.get_device_name(),
        compute_capability=f"{major}.{minor}",
        tensorrt=str(tensorrt.__version__),
        torch=str(torch.__version__),
        torch_tensorrt=str(torch_tensorrt.__version__),
        dtype=dtype,
        max_batch=max_batch,
    )


def check_build_info(saved: TrtBuildInfo, current: TrtBuildInfo, bundle: Path | str = "BUNDLE") -> None:
    """Raise :class:`EngineError` naming every difference (and the rebuild command) when they do not match."""
    diffs = [f"{k}: built with {getattr(saved, k)!r}, this machine has {getattr(current, k)!r}"
             for k in MATCH_FIELDS if getattr(saved, k) != getattr(current, k)]
    if diffs:
        raise EngineError(
            "the TensorRT engines do not fit this machine (" + "; ".join(diffs) + "); rebuild them with "
            f"`python -m aunets.engines.runtime_trt {bundle}` or use --runtime cuda"
        )


def build_trt(bundle: Path | str, dtype: str = "float16", max_batch: int = 4, opt_batch: int = 1) -> Path:
    """Compile every ``.safetensors`` detector of ``bundle`` to ``bundle/trt/<stem>.ep``; returns ``bundle/trt``."""
    torch, torch_tensorrt, _ = _trt_modules()
    from safetensors.torch import load_file

    from aunets.engines.registry import create_model

    bundle = Path(bundle)
    manifest = load_manifest(bundle)
    info = current_build_info(dtype, max_batch)
    out = bundle / TRT_DIR
    out.mkdir(exist_ok=True)
    torch_dtype = getattr(torch, dtype)
    shape = manifest.input.tensor_shape
    files: dict[str, str] = {}
    for name in sorted(set(manifest.detectors.values())):
        if not name.endswith(".safetensors"):
            raise EngineError(f"TensorRT builds need .safetensors detectors, {name} is not; rebuild the bundle "
                              f"with `aunets build-engine --format safetensors`")
        heads = [h for v, h in manifest.detector_heads.items() if manifest.detectors[v] == name]
        blocks = 2 if manifest.intensity else 1  # presence blocks, then the intensity block when present
        model = create_model(manifest.architecture, (1 + max(heads, default=0)) * len(manifest.aus) * blocks,
                             **manifest.architecture_kwargs)
        model.load_state_dict(load_file(str(bundle / name)), strict=True)
        model = model.eval().cuda().to(torch_dtype)
        spec = torch_tensorrt.Input(min_shape=(1, *shape), opt_shape=(opt_batch, *shape),
                                    max_shape=(max_batch, *shape), dtype=torch_dtype)
        example = torch.randn((opt_batch, *shape), device="cuda", dtype=torch_dtype)
        log.info("compiling %s with TensorRT (%s, batch 1..%d)", name, dtype, max_batch)
        trt_module = torch_tensorrt.compile(model, ir="dynamo", inputs=[spec], use_explicit_typing=True)
        target = out / (Path(name).stem + ".ep")
        torch_tensorrt.save(trt_module, str(target), output_format="exported_program", inputs=[example])
        files[target.name] = sha256_file(target)
    data = {**info.to_json(), "files": files}
    (out / BUILD_INFO).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return out


class TrtRuntime:
    """Runs ``bundle/trt/<stem>.ep`` for the detector file ``path`` after checking ``trt_build.json``."""

    def __init__(self, path: Path, threads: int = 1, **_: Any) -> None:
        torch, torch_tensorrt, _ = _trt_modules()
        path = Path(path)
        bundle = path.parent
        info_path = bundle / TRT_DIR / BUILD_INFO
        target = bundle / TRT_DIR / (path.stem + ".ep")
        if not info_path.is_file() or not target.is_file():
            raise EngineError(f"{bundle} has no TensorRT build for {path.name}; build it with "
                              f"`python -m aunets.engines.runtime_trt {bundle}`")
        data = json.loads(info_path.read_text(encoding="utf-8"))
        saved = TrtBuildInfo.from_json(data)
        check_build_info(saved, current_build_info(saved.dtype, saved.max_batch), bundle)
        digest = data.get("files", {}).get(target.name)
        if digest != sha256_file(target):
            raise EngineError(
                f"{target} does not match {info_path}; rebuild with `python -m aunets.engines.runtime_trt {bundle}`"
            )
        self._torch = torch
        self.dtype = getattr(torch, saved.dtype)
        self.max_batch = saved.max_batch
        self.module = torch_tensorrt.load(str(target)).module()

    def run_tensor(self, x: Any) -> Any:
        """(N, C, H, W) device tensor -> ``float32`` (N, K) logits on the device."""
        if x.shape[0] > self.max_batch:
            raise EngineError(f"batch {x.shape[0]} exceeds the TensorRT build's max_batch {self.max_batch}; "
                              f"rebuild with --max-batch {x.shape[0]}")
        with self._torch.inference_mode():
            return self.module(x.to(device="cuda", dtype=self.dtype)).float()

    def run(self, batch: np.ndarray) -> np.ndarray:
        x = self._torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).cuda()
        return np.asarray(self.run_tensor(x).cpu().numpy(), dtype=np.float32)


def _trt_factory(path: Path, threads: int = 1, **kwargs: Any) -> EngineRuntime:
    return TrtRuntime(path, threads=threads, **kwargs)


RUNTIMES: dict[str, RuntimeFactory] = {"trt": _trt_factory}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m aunets.engines.runtime_trt",
                                     description="build TensorRT engines for a bundle's safetensors detectors")
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--dtype", choices=("float16", "bfloat16", "float32"), default="float16")
    parser.add_argument("--max-batch", type=int, default=4)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    out = build_trt(args.bundle, args.dtype, args.max_batch)
    print(f"TensorRT engines written to {out}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
