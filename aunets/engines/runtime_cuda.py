"""The ``cuda`` engine runtime: PyTorch on an NVIDIA GPU, needing nothing but torch with CUDA.

Weights (``.safetensors``) are rebuilt through :func:`aunets.engines.registry.create_model` and run in
float16/bfloat16 (or float32), channels-last, optionally through ``torch.compile``, and replayed from a CUDA
graph captured once per batch size, so a frame costs one graph launch instead of hundreds of kernel
launches.

Two layouts for an ensemble of independent detectors (one network per AU, the faithful AUNets):

``single``
    the ensemble is one module; its members run one after another inside one graph.
``streams``
    each member runs on its own CUDA stream (forked from and joined into the capture stream, so the
    graph records them as parallel branches); the GPU can overlap the small late layers of one member
    with another's.

``auto`` picks ``streams`` for an ensemble (measured faster on an H100: 5.7 vs 7.5 ms for the 12 VGG16s,
``benchmarks/results/latency.md``) and ``single`` otherwise.

:data:`RUNTIMES` is what :mod:`aunets.engines.runtime_registry` adds (``cuda``); torch is imported only when a
runtime is opened.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from aunets.core.errors import ConfigError, EngineError, MissingExtraError
from aunets.engines.runtime import EngineRuntime, RuntimeFactory, load_registry_model

if TYPE_CHECKING:
    from torch import Tensor

log = logging.getLogger(__name__)

DTYPES: tuple[str, ...] = ("float32", "float16", "bfloat16")
LAYOUTS: tuple[str, ...] = ("auto", "single", "streams")
# attribute names under which an ensemble of independent detectors keeps its members (nn.ModuleList)
MEMBER_ATTRS: tuple[str, ...] = ("members", "detectors", "nets", "networks", "models")


@dataclass(frozen=True)
class CudaRuntimeConfig:
    """How the ``cuda`` runtime runs a network.

    ``dtype``: ``float32`` | ``float16`` | ``bfloat16`` (weights and activations). ``channels_last``: NHWC
    memory layout (tensor-core friendly). ``compile``: ``torch.compile`` (inductor) the forward.
    ``cuda_graph``: capture one CUDA graph per batch size and replay it. ``layout``: see the module docstring.
    ``device``: a torch device string. ``allow_tf32``: TF32 matrix maths for ``float32``.
    """

    dtype: str = "float16"
    channels_last: bool = True
    compile: bool = False
    cuda_graph: bool = True
    layout: str = "auto"
    device: str = "cuda"
    allow_tf32: bool = True

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ConfigError(f"cuda runtime dtype must be one of {DTYPES}, got {self.dtype!r}")
        if self.layout not in LAYOUTS:
            raise ConfigError(f"cuda runtime layout must be one of {LAYOUTS}, got {self.layout!r}")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# Named settings used by the benchmark and by --runtime cuda (the default).
CUDA_PRESETS: dict[str, CudaRuntimeConfig] = {
    "eager-fp32": CudaRuntimeConfig(dtype="float32", channels_last=False, cuda_graph=False, layout="single"),
    "eager-fp16": CudaRuntimeConfig(dtype="float16", channels_last=False, cuda_graph=False, layout="single"),
    "fp16-cl-graph": CudaRuntimeConfig(dtype="float16", channels_last=True, cuda_graph=True, layout="single"),
    "fp16-cl-graph-streams": CudaRuntimeConfig(dtype="float16", cuda_graph=True, layout="streams"),
    "bf16-cl-graph": CudaRuntimeConfig(dtype="bfloat16", channels_last=True, cuda_graph=True, layout="single"),
    "fp16-compile-graph": CudaRuntimeConfig(dtype="float16", compile=True, cuda_graph=True, layout="single"),
}


def _torch() -> Any:
    try:
        import torch
    except ImportError as exc:
        raise MissingExtraError("torch", "train") from exc
    return torch


def cuda_available() -> bool:
    """True when torch is installed with CUDA and sees a GPU."""
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def ensemble_members(model: Any) -> list[Any] | None:
    """The independent member networks of an ensemble module (an ``nn.ModuleList`` under one of
    :data:`MEMBER_ATTRS`), or None for an ordinary network."""
    torch = _torch()
    for name in MEMBER_ATTRS:
        members = getattr(model, name, None)
        if isinstance(members, torch.nn.ModuleList) and len(members) > 1:
            return list(members)
    return None


class CudaRuntime:
    """A network on the GPU. ``run`` maps ``float32`` numpy (N, C, H, W) to ``float32`` numpy (N, K) logits;
    :meth:`run_tensor` does the same on device tensors without leaving the GPU; :meth:`forward` is the plain
    (un-captured) forward that a caller may record inside its own CUDA graph.
    """

    def __init__(
        self,
        path: Path | None = None,
        threads: int = 1,
        architecture: str | None = None,
        num_outputs: int | None = None,
        architecture_kwargs: dict[str, Any] | None = None,
        config: CudaRuntimeConfig | None = None,
        module: Any = None,
        **_: Any,
    ) -> None:
        torch = _torch()
        self.config = config or CudaRuntimeConfig()
        c = self.config
        if c.device.startswith("cuda") and not torch.cuda.is_available():
            raise EngineError(
                "the cuda runtime needs torch with CUDA and an NVIDIA GPU, and none is visible; "
                "use --runtime onnx (CPU) or install a CUDA build of torch"
            )
        self._torch = torch
        self.device = torch.device(c.device)
        self.dtype = getattr(torch, c.dtype)
        if c.dtype == "float32":
            torch.backends.cuda.matmul.allow_tf32 = c.allow_tf32
            torch.backends.cudnn.allow_tf32 = c.allow_tf32
        torch.backends.cudnn.benchmark = True
        if module is None:
            module = self._load(path, architecture, num_outputs, architecture_kwargs)
        self.path = path
        self.module = self._prepare(module)
        use_streams = c.layout == "streams" or (c.layout == "auto" and self.device.type == "cuda")
        self.members = ensemble_members(self.module) if use_streams else None
        if c.layout == "streams" and self.members is None:
            log.warning("layout 'streams' needs an ensemble of independent detectors; running it as 'single'")
        self._forward = self._build_forward()
        self._graphs: dict[tuple[int, ...], tuple[Any, Tensor, Tensor]] = {}

    # --- construction ------------------------------------------------------------------------------------
    def _load(
        self, path: Path | None, architecture: str | None, num_outputs: int | None, kwargs: dict[str, Any] | None
    ) -> Any:
        if path is None:
            raise EngineError("the cuda runtime needs a weight file or a module")
        if Path(path).suffix != ".safetensors":
            raise EngineError(
                f"the cuda runtime runs .safetensors detectors, got {path}; build the bundle with safetensors "
                f"weights (`aunets build-engine`) or use --runtime onnx"
            )
        return load_registry_model(path, architecture, num_outputs, kwargs, "cuda")

    def _prepare(self, module: Any) -> Any:
        torch = self._torch
        module = module.eval().to(device=self.device, dtype=self.dtype)
        if self.config.channels_last:
            module = module.to(memory_format=torch.channels_last)
        for p in module.parameters():
            p.requires_grad_(False)
        return module

    def _build_forward(self) -> Callable[[Tensor], Tensor]:
        torch = self._torch
        c = self.config

        def compiled(fn: Any) -> Any:
            return torch.compile(fn, dynamic=False) if c.compile else fn

        if self.members is None:
            return compiled(self.module)
        members = [compiled(m) for m in self.members]
        streams = [torch.cuda.Stream(device=self.device) for _ in members]

        def forward(x: Tensor) -> Tensor:
            main = torch.cuda.current_stream(self.device)
            outs: list[Tensor] = []
            for member, stream in zip(members, streams, strict=True):
                stream.wait_stream(main)
                with torch.cuda.stream(stream):
                    outs.append(member(x))
            for stream in streams:  # each member stream waits on main before its next use, so no record_stream
                main.wait_stream(stream)
            return torch.cat([o.reshape(o.shape[0], -1) for o in outs], dim=1)

        return forward

    # --- running -----------------------------------------------------------------------------------------
    def prepare_input(self, x: Tensor) -> Tensor:
        """Cast a (N, C, H, W) device tensor to the runtime's dtype and memory layout."""
        x = x.to(device=self.device, dtype=self.dtype, non_blocking=True)
        if self.config.channels_last:
            x = x.contiguous(memory_format=self._torch.channels_last)
        return x

    def forward(self, x: Tensor) -> Tensor:
        """Plain forward of a prepared (N, C, H, W) device tensor -> (N, K) logits in the runtime's dtype."""
        return self._forward(x)

    def run_tensor(self, x: Tensor) -> Tensor:
        """(N, C, H, W) tensor on the GPU -> ``float32`` (N, K) logits on the GPU (graph replay if enabled)."""
        torch = self._torch
        with torch.inference_mode():
            if not self.config.cuda_graph:
                return self._forward(self.prepare_input(x)).float()
            key = tuple(x.shape)
            if key not in self._graphs:
                self._graphs[key] = self._capture(key)
            graph, static_in, static_out = self._graphs[key]
            static_in.copy_(x)
            graph.replay()
            return static_out.float()

    def _capture(self, shape: tuple[int, ...]) -> tuple[Any, Tensor, Tensor]:
        torch = self._torch
        static_in = self.prepare_input(torch.randn(shape, device=self.device))
        side = torch.cuda.Stream(device=self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            for _ in range(3):  # warm-up: cuDNN autotuning, compilation, lazy allocations
                self._forward(static_in)
        torch.cuda.current_stream(self.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_out = self._forward(static_in)
        log.info("cuda runtime: captured a CUDA graph for input %s", shape)
        return graph, static_in, static_out

    def run(self, batch: np.ndarray) -> np.ndarray:
        torch = self._torch
        x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device, non_blocking=False)
        out = self.run_tensor(x)
        return np.asarray(out.cpu().numpy(), dtype=np.float32)


def _cuda_factory(path: Path, threads: int = 1, **kwargs: Any) -> EngineRuntime:
    """``cuda``: safetensors detectors through :class:`CudaRuntime`; ``preset`` picks a :data:`CUDA_PRESETS`."""
    preset = kwargs.pop("preset", None)
    if preset is not None and "config" not in kwargs:
        if preset not in CUDA_PRESETS:
            raise ConfigError(f"unknown cuda runtime preset {preset!r}; choose one of {sorted(CUDA_PRESETS)}")
        kwargs["config"] = CUDA_PRESETS[preset]
    return CudaRuntime(path, threads=threads, **kwargs)


RUNTIMES: dict[str, RuntimeFactory] = {"cuda": _cuda_factory}
