"""Warming the GPU frame path up before a stream's first frame (:meth:`GpuFramePath.warmup`, issue 26).

Compiling the flow solver and capturing CUDA graphs takes seconds; done on the first frames it stalls the stream.
:func:`warm_up` runs, on a synthetic frame of the stream's size, every (faces, crop tap class, detector file)
combination the stream can meet, so the frame loop compiles and captures nothing.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import numpy as np

from aunets.core.crop_taps import tap_count

log = logging.getLogger(__name__)


def warm_up(path: Any, frame_shape: tuple[int, ...], max_faces: int = 1) -> float:
    """:meth:`GpuFramePath.warmup`: every (faces, tap class, detector file) key of ``frame_shape`` frames."""
    t0 = time.perf_counter()
    height, width = int(frame_shape[0]), int(frame_shape[1])
    if max_faces < 1 or height < 2 or width < 2:
        raise ValueError(f"warm-up needs a frame of at least 2x2 px and max_faces >= 1, got {frame_shape}, "
                         f"{max_faces}")
    # tap classes of crop sides from 2 px to margin x the frame's larger side (a face inside the frame)
    sides: dict[int, int] = {}
    for side in range(2, math.ceil(path.config.margin * max(height, width)) + 1):
        sides.setdefault(tap_count(side, path.size), side)
    m = path.manifest
    view_of_file: dict[str, int] = {}
    for view, name in sorted(m.detectors.items()):
        view_of_file.setdefault(name, view)
    frame = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    saved_prev = path._prev_gray.clone() if path._prev_gray is not None and path._has_prev else None
    saved_shape = None if path._frame is None else tuple(path._frame.shape)
    shown = path.profile
    path.profile = False
    try:
        for crop_side in sides.values():
            box_side = crop_side / path.config.margin
            box = ((width - box_side) / 2.0, (height - box_side) / 2.0, box_side, box_side)
            for n in range(1, max_faces + 1):
                for view in view_of_file.values():
                    path.reset()
                    path.infer(frame, [box] * n, [view] * n)  # captures (graph) or compiles (flow)
    finally:
        path.profile = shown
        path.reset()
        if saved_prev is not None and saved_shape == (height, width, 3):
            assert path._prev_gray is not None
            with path._torch.inference_mode():
                path._prev_gray.copy_(saved_prev)
            path._has_prev = True
        for stage in path.stage_ms.values():
            stage.clear()
    seconds = time.perf_counter() - t0
    path.startup["warmup_s"] = round(seconds, 3)
    log.info("GPU path (%s): warm-up for %dx%d frames, up to %d face(s), tap classes %s: %.2f s, %d graph(s)",
             path.device, width, height, max_faces, sorted(sides), seconds, len(path._graphs))
    return seconds
