"""Flow backends by name: the one table :func:`create_flow_backend` looks names up in.

The OpenCV CPU backends (``dis*``, ``farneback``) are always there. The optional ones come from the
tables their modules hand over, read on the first name that is not yet known (or by
:func:`flow_backend_names`): torch TV-L1 (``torch-tvl1*``, :mod:`aunets.core.flow_torch`; torch itself is
imported when a factory is called) and, where OpenCV has CUDA, ``cv-cuda-*`` (:mod:`aunets.core.flow_cuda_cv`).
The backend modules never import this one, so a new backend is a module with a ``flow_backends()`` table
plus one line in :func:`_load_optional_backends`.
"""

from __future__ import annotations

from collections.abc import Callable

from aunets.core import flow_cuda_cv, flow_torch
from aunets.core.errors import ConfigError
from aunets.core.flow import DISFlow, FarnebackFlow, FlowBackend

_BACKENDS: dict[str, Callable[[], FlowBackend]] = {
    "dis": lambda: DISFlow("fast"),
    "dis-ultrafast": lambda: DISFlow("ultrafast"),
    "dis-fast": lambda: DISFlow("fast"),
    "dis-medium": lambda: DISFlow("medium"),
    "farneback": FarnebackFlow,
}


def register_flow_backend(name: str, factory: Callable[[], FlowBackend]) -> None:
    """Make ``create_flow_backend(name)`` return ``factory()``."""
    _BACKENDS[name] = factory


def flow_backend_names() -> list[str]:
    _load_optional_backends()
    return sorted(_BACKENDS)


def _load_optional_backends() -> None:
    """Add torch TV-L1 (``torch-tvl1*``) and, where OpenCV has CUDA, ``cv-cuda-*`` (a name registered by hand
    keeps its factory)."""
    for name, factory in {**flow_torch.flow_backends(), **flow_cuda_cv.flow_backends()}.items():
        _BACKENDS.setdefault(name, factory)


def create_flow_backend(name: str = "dis") -> FlowBackend:
    """Create a flow backend by name; see :func:`flow_backend_names`."""
    if name not in _BACKENDS:
        _load_optional_backends()
    try:
        factory = _BACKENDS[name]
    except KeyError:
        raise ConfigError(
            f"unknown flow backend {name!r}; choose one of {flow_backend_names()}"
        ) from None
    backend: FlowBackend = factory()
    return backend
