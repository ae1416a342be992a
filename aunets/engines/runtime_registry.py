"""Engine runtimes by name: the one table :func:`open_runtime` looks names up in.

Each runtime module hands over a ``RUNTIMES`` table (name -> factory) and never imports this one:
:mod:`aunets.engines.runtime` (``onnx``, ``torch``) always, and the GPU ones, :mod:`aunets.engines.runtime_cuda`
(``cuda``) and :mod:`aunets.engines.runtime_trt` (``trt``), on the first call here (they guard their own
optional imports). A new runtime is a module with a ``RUNTIMES`` table plus its name in :data:`_PLUGINS`.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import Any

from aunets.core.errors import ConfigError
from aunets.engines.runtime import RUNTIMES, EngineRuntime, RuntimeFactory

log = logging.getLogger(__name__)

_RUNTIMES: dict[str, RuntimeFactory] = dict(RUNTIMES)
_PLUGINS = ("aunets.engines.runtime_cuda", "aunets.engines.runtime_trt")


def register_runtime(kind: str, factory: RuntimeFactory) -> None:
    """Register ``factory(path, threads=..., **kw) -> EngineRuntime`` under ``kind``."""
    _RUNTIMES[kind] = factory


def runtime_names() -> list[str]:
    _load_plugins()
    return sorted(_RUNTIMES)


def open_runtime(path: Path, kind: str = "onnx", threads: int = 1, **kwargs: Any) -> EngineRuntime:
    """Load the weight file ``path`` with the runtime ``kind``."""
    _load_plugins()
    if kind not in _RUNTIMES:
        raise ConfigError(f"unknown engine runtime {kind!r}; choose one of {sorted(_RUNTIMES)}")
    return _RUNTIMES[kind](path, threads=threads, **kwargs)


def _load_plugins() -> None:
    """Add the optional GPU runtimes' tables (a name registered by hand keeps its factory)."""
    for module in _PLUGINS:
        try:
            table: dict[str, RuntimeFactory] = importlib.import_module(module).RUNTIMES
        except ModuleNotFoundError as exc:
            if exc.name != module:
                log.debug("runtime plugin %s unavailable: %s", module, exc)
            continue
        for kind, factory in table.items():
            _RUNTIMES.setdefault(kind, factory)
