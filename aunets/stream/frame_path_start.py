"""Opening the GPU frame path for a pipeline device (issue 26).

:func:`open_frame_path` loads an engine bundle's detectors for ``--device cuda`` or ``torch-cpu`` (the same path on
torch's CPU device), picks the flow and records start-up seconds in :attr:`GpuFramePath.startup`.
"""

from __future__ import annotations

import logging
from pathlib import Path

from aunets.core.compile_cache import use_compile_cache
from aunets.core.errors import ConfigError
from aunets.engines.manifest import load_manifest
from aunets.engines.runtime_cuda import CudaRuntimeConfig
from aunets.stream.gpu_path import GpuFramePath, GpuPathConfig, _torch

log = logging.getLogger(__name__)

DEVICES: tuple[str, ...] = ("cuda", "torch-cpu")
"""Pipeline devices served by this path: ``cuda``, or ``torch-cpu`` (the same path on torch's CPU device)."""

CPU_RUNTIME = CudaRuntimeConfig(dtype="float32", channels_last=False, cuda_graph=False, device="cpu")
"""How the detectors run on torch's CPU device (``--device torch-cpu``)."""


def open_frame_path(bundle: Path | str, device: str, margin: float = 1.3, threads: int = 2,
                    flow: str | None = None) -> GpuFramePath:
    """The frame path of a pipeline ``device`` (see :data:`DEVICES`) for ``bundle``; its :attr:`GpuFramePath.startup`
    holds ``import_s`` (importing torch, 0 when it was already imported) and ``load_s`` (the detectors).

    ``flow``: a flow backend name as ``--flow`` takes; None: the engine's (its manifest's ``flow.backend``).
    ``torch-tvl1[-fast|-medium|-accurate][-cuda]`` runs TV-L1 on the device (all on the GPU, one CUDA graph);
    any other backend runs on the host on the grey crops (``host_flow``), as the CPU path does."""
    import sys
    import time

    if device not in DEVICES:
        raise ConfigError(f"unknown device {device!r}; choose cpu, {' or '.join(DEVICES)}")
    use_compile_cache()
    t0 = time.perf_counter()
    imported = "torch" in sys.modules
    torch = _torch()
    t1 = time.perf_counter()
    name = flow or load_manifest(Path(bundle)).flow.backend
    host_flow: str | None = name
    preset = "fast"
    if name.startswith("torch-tvl1"):
        host_flow = None
        preset = name.removeprefix("torch-tvl1").removesuffix("-cuda").lstrip("-") or "fast"
    if device == "torch-cpu":
        torch.set_num_threads(threads)
        config = GpuPathConfig(margin=margin, flow_preset=preset, device="cpu", cuda_graph=False,
                               runtime=CPU_RUNTIME, host_flow=host_flow)
    else:
        # with a host flow the path cannot be one CUDA graph (it leaves the device in the middle): eager
        config = GpuPathConfig(margin=margin, flow_preset=preset, cuda_graph=host_flow is None, host_flow=host_flow)
    path = GpuFramePath.from_bundle(bundle, config)
    path.startup = {"import_s": 0.0 if imported else round(t1 - t0, 3),
                    "load_s": round(time.perf_counter() - t1, 3)}
    return path

