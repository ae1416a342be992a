"""Timing one stage of a device computation: CUDA events on a GPU, the host clock on the CPU (profiling only)."""

from __future__ import annotations

import time
from typing import Any


def stage_start(torch: Any, device: Any) -> Any:
    """A start marker: a recorded CUDA event on a CUDA ``device``, else ``time.perf_counter()``."""
    if device.type == "cuda":
        event = torch.cuda.Event(enable_timing=True)
        event.record()
        return event
    return time.perf_counter()


def stage_ms_since(torch: Any, device: Any, start: Any) -> float:
    """Milliseconds since ``start`` (synchronising with the device: for profiling runs only)."""
    if device.type == "cuda":
        end = torch.cuda.Event(enable_timing=True)
        end.record()
        end.synchronize()
        return float(start.elapsed_time(end))
    return (time.perf_counter() - start) * 1000.0
