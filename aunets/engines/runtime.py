"""Engine runtimes: one loaded weight file that maps an input batch to logits.

Runtimes are pluggable (:class:`EngineRuntime`) and opened by name through
:func:`aunets.engines.runtime_registry.open_runtime`. Here: ``onnx`` (ONNX Runtime on the CPU, the default) and
``torch`` (safetensors weights rebuilt through the model registry, or ONNX files run by ONNX Runtime); the GPU
runtimes ``cuda`` and ``trt`` live in :mod:`aunets.engines.runtime_cuda` and :mod:`aunets.engines.runtime_trt`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from aunets.core.errors import EngineError, MissingExtraError


class EngineRuntime(Protocol):
    """One loaded weight file. ``run`` maps ``float32`` (N, C, H, W) to ``float32`` (N, K) logits."""

    def run(self, batch: np.ndarray) -> np.ndarray: ...


RuntimeFactory = Callable[..., EngineRuntime]
"""``factory(path, threads=..., **kw) -> EngineRuntime``."""


class OnnxRuntime:
    """ONNX Runtime on the CPU, ``threads`` intra-op threads, no spinning (spinning steals the other core)."""

    def __init__(self, path: Path, threads: int = 1, **_: Any) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:  # pragma: no cover - a core dependency
            raise MissingExtraError("onnxruntime", "dev") from exc
        if Path(path).suffix != ".onnx":
            raise EngineError(f"the onnx runtime needs an .onnx file, got {path}; use --runtime torch for safetensors")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
        try:
            self._session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise EngineError(f"ONNX Runtime cannot load {path}: {exc}; rebuild it with `aunets build-engine`") from exc
        self._input = self._session.get_inputs()[0].name
        self._output = self._session.get_outputs()[0].name
        # declared shapes, e.g. ("N", 3, 112, 224): ints are fixed by the graph, strings/None are free
        self.input_shape: tuple[int | str | None, ...] = tuple(self._session.get_inputs()[0].shape)
        self.output_shape: tuple[int | str | None, ...] = tuple(self._session.get_outputs()[0].shape)

    def run(self, batch: np.ndarray) -> np.ndarray:
        out = self._session.run([self._output], {self._input: np.ascontiguousarray(batch, dtype=np.float32)})[0]
        return np.asarray(out, dtype=np.float32)


class TorchRuntime:
    """PyTorch on the CPU: safetensors weights rebuilt with the model registry (``architecture`` kwargs)."""

    def __init__(
        self,
        path: Path,
        threads: int = 1,
        architecture: str | None = None,
        num_outputs: int | None = None,
        architecture_kwargs: dict[str, Any] | None = None,
        device: str = "cpu",
        **_: Any,
    ) -> None:
        try:
            import torch
        except ImportError as exc:
            raise MissingExtraError("torch", "train") from exc
        if Path(path).suffix != ".safetensors":
            raise EngineError(f"the torch runtime needs a .safetensors file, got {path}; use --runtime onnx")
        torch.set_num_threads(threads)
        self._torch = torch
        self._device = torch.device(device)
        model = load_registry_model(path, architecture, num_outputs, architecture_kwargs, "torch")
        self._model = model.eval().to(self._device)

    def run(self, batch: np.ndarray) -> np.ndarray:
        with self._torch.inference_mode():
            out = self._model(self._torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self._device))
        return np.asarray(out.float().cpu().numpy(), dtype=np.float32)


def load_registry_model(
    path: Path, architecture: str | None, num_outputs: int | None, kwargs: dict[str, Any] | None, runtime: str
) -> Any:
    """Rebuild ``architecture`` through the model registry and load the safetensors weights ``path`` into it
    (strictly: every tensor must fit). Used by the torch-based runtimes."""
    if architecture is None or num_outputs is None:
        raise EngineError(f"the {runtime} runtime needs the manifest's architecture and AU count")
    from safetensors.torch import load_file

    from aunets.engines.registry import create_model

    model = create_model(architecture, num_outputs, **(kwargs or {}))
    try:
        model.load_state_dict(load_file(str(path)), strict=True)
    except RuntimeError as exc:
        raise EngineError(
            f"{path} does not fit architecture {architecture!r}: {exc}; rebuild with `aunets build-engine`"
        ) from exc
    return model


def _torch_factory(path: Path, threads: int = 1, **kwargs: Any) -> EngineRuntime:
    """``torch`` runs safetensors through torch; ONNX files in a torch-runtime bundle fall back to ONNX Runtime."""
    if Path(path).suffix == ".onnx":
        return OnnxRuntime(path, threads=threads)
    return TorchRuntime(path, threads=threads, **kwargs)


RUNTIMES: dict[str, RuntimeFactory] = {"onnx": OnnxRuntime, "torch": _torch_factory}
