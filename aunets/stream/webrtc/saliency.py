"""``aunets serve``'s saliency overlay and occlusion sheet (see :mod:`aunets.stream.explain`).

The overlay is the Grad-CAM map of one AU, chosen in the page, computed **off the AU path**: one shared
worker thread (niced +10 on Linux, so the AU workers win the CPU when both want it) takes only the newest
processed frame of each session that asked for it; a frame that arrives while a map is being computed replaces
the waiting one, so the overlay runs at whatever rate is left over and never queues. The map goes to the page
on the data channel as a small grid of 0..255 values with the crop window it covers (frame pixels), and the
page draws it, blue to red, over the face. The occlusion sheet (``POST /sessions/ID/occlusion``) is computed
on the same worker from the latest frame and returned as a PNG.

The worker builds the Grad-CAM model (torch's import, the weights, a first backward pass) as soon as the server
starts, so turning the overlay on the first time costs the AU path nothing more than later times.

Without torch (the ``[train]`` extra) or torch weights in the bundle, :func:`unavailable_reason` says why and
the page shows it instead of the toggle.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from aunets.core.au import au_key
from aunets.core.errors import ConfigError
from aunets.engines.engine import weight_file

if TYPE_CHECKING:
    from aunets.core.face import Box
    from aunets.engines.engine import AUEngine
    from aunets.stream.explain import GradCam

log = logging.getLogger(__name__)

GRID = 28
"""Side of the grid of values sent to the page per map (the default engine's finest map: 7x7 cells per crop)."""
NICE = 10
PACE = 2.0
"""After a map that took t seconds, the session's next one starts no sooner than ``PACE * t`` later: the overlay
uses at most a third of one core, whatever the camera's rate."""


@dataclass(frozen=True)
class Snapshot:
    """The latest processed frame of a session: ``bgr`` and ``prev_bgr`` ``uint8`` (H, W, 3) frames (prev None
    on the first), ``boxes``: track id -> face box (x, y, w, h) in frame pixels, largest face first; ``views``:
    track id -> the detector view the pipeline used (so the overlay never runs the view classifier: ONNX
    Runtime's threads are the AU path's)."""

    index: int
    bgr: np.ndarray
    prev_bgr: np.ndarray | None
    boxes: dict[int, Box]
    views: dict[int, int] = field(default_factory=dict)


def unavailable_reason(engine: AUEngine) -> str | None:
    """None when the overlay can run; else one sentence naming what is missing and how to get it."""
    if importlib.util.find_spec("torch") is None:
        return "the saliency overlay needs torch: pip install -e '.[train]'"
    m = engine.manifest
    names = sorted(set(m.detectors.values()))
    if not all(weight_file(m, n, "torch").endswith(".safetensors") for n in names):
        return f"the saliency overlay needs the engine's torch weights (.safetensors); {m.name} has only ONNX"
    return None


def crop_window(box: Box, margin: float) -> tuple[float, float, float]:
    """(x0, y0, side) in frame pixels of the square crop :func:`aunets.core.crop.crop_square` takes around ``box``."""
    x, y, w, h = box
    side = max(2.0, margin * max(w, h))
    return x + w / 2 - side / 2, y + h / 2 - side / 2, side


class SaliencyService:
    """One per server: the lazily built :class:`~aunets.stream.explain.GradCam` and the niced worker thread."""

    def __init__(self, engine: AUEngine, margin: float = 1.3) -> None:
        self.engine = engine
        self.margin = margin
        self.reason = unavailable_reason(engine)
        self._cam: GradCam | None = None
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aunets-saliency",
                                            initializer=_lower_priority)  # fmt: skip
        self.warm = threading.Event()
        """Set once the Grad-CAM model is built and has run one map (on the worker, at start)."""
        if self.reason is None:
            self._executor.submit(self._warm_up)

    def _cam_model(self) -> GradCam:
        """Under ``_lock``: the Grad-CAM model, built on first use."""
        if self._cam is None:
            from aunets.stream.explain import GradCam

            # one torch thread, unless the AU path runs on torch itself (its thread count is process-wide)
            self._cam = GradCam(self.engine, threads=1 if self.engine.runtime == "onnx" else None)
        return self._cam

    def _warm_up(self) -> None:
        """Worker thread, at start: build the model and run one map on a grey crop (the first backward pass
        allocates), off the AU path and before any page asks."""
        from aunets.stream.explain import FaceInput, still_flow_colour

        spec = self.engine.manifest.input
        try:
            t0 = time.perf_counter()
            with self._lock:
                cam = self._cam_model()
                crop = np.full((spec.height, spec.width, 3), 128, np.uint8)
                flow = np.broadcast_to(still_flow_colour(self.engine), crop.shape).copy() if spec.uses_flow else None
                cam.maps(FaceInput(crop, flow, (0.0, 0.0, float(spec.width), float(spec.height))),
                         (self.engine.aus[0],), self.engine.manifest.default_view)
            log.info("saliency overlay ready in %.1f s", time.perf_counter() - t0)
        except Exception:
            log.exception("the saliency overlay could not be prepared; it will try again when turned on")
        finally:
            self.warm.set()

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def gradcam(self, snap: Snapshot, au: int, track: int | None) -> dict[str, Any] | None:
        """Worker thread: the overlay message for ``au`` on ``track``'s face (None: no face in the frame)."""
        from aunets.stream.explain import face_input

        if self.reason is not None:
            raise ConfigError(self.reason)
        box = snap.boxes.get(track) if track is not None else None
        if box is None:
            if not snap.boxes:
                return None
            track, box = next(iter(snap.boxes.items()))
        t0 = time.perf_counter()
        with self._lock:
            cam = self._cam_model()
            face = face_input(self.engine, snap.bgr, snap.prev_bgr, box, self.margin)
            view = snap.views.get(track, self.engine.manifest.default_view) if track is not None \
                else self.engine.manifest.default_view  # fmt: skip
            ex = cam.maps(face, (au,), view)
        import cv2

        heat = ex.rgb[0]
        top = float(heat.max())
        grid = cv2.resize(heat, (GRID, GRID), interpolation=cv2.INTER_AREA)
        values = np.clip(grid / top * 255.0, 0, 255).astype(np.uint8) if top > 0 else np.zeros((GRID, GRID), np.uint8)
        return {
            "type": "saliency",
            "au": au_key(au),
            "frame": snap.index,
            "track": track,
            "window": [round(v, 1) for v in crop_window(box, self.margin)],
            "grid": GRID,
            "map": values.ravel().tolist(),
            "max": round(top, 6),
            "probability": round(float(ex.probabilities[0]), 4),
            "compute_ms": round(1000 * (time.perf_counter() - t0), 1),
        }

    def occlusion_png(self, snap: Snapshot, track: int | None) -> bytes:
        """Worker thread: the 12-AU occlusion sheet of the latest frame as PNG bytes."""
        import cv2

        from aunets.stream.explain import ExplainConfig, face_input, largest_face, occlusion_maps, pick_view
        from aunets.stream.explain_sheet import draw_sheet
        from aunets.stream.tracking import YuNetDetector

        box = snap.boxes.get(track) if track is not None else None
        if box is None:
            box = next(iter(snap.boxes.values())) if snap.boxes else largest_face(snap.bgr, YuNetDetector(),
                                                                                   "the current frame")
        face = face_input(self.engine, snap.bgr, snap.prev_bgr, box, self.margin)
        ex = occlusion_maps(self.engine, face, ExplainConfig(), pick_view(self.engine, face.crop))
        sheet = draw_sheet(ex, title=f"aunets serve, frame {snap.index}")
        ok, png = cv2.imencode(".png", cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
        assert ok
        return bytes(png.tobytes())


def _lower_priority() -> None:
    """Nice the saliency thread ``NICE`` steps below the process (Linux: priorities are per thread), so the AU
    workers come first when both want the CPU."""
    with contextlib.suppress(AttributeError, OSError):
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + NICE))


class SessionSaliency:
    """One session's overlay state, used only from the event loop: the chosen AU (None: off), the track, and
    at most one map in flight; :meth:`offer` keeps only the newest frame while one is computed."""

    def __init__(self, service: SaliencyService | None, send: Callable[[dict[str, Any]], None]) -> None:
        self.service = service
        self.au: int | None = None
        self.track: int | None = None
        self.sent = 0
        self.skipped = 0
        self.errors = 0
        self.latest: Snapshot | None = None
        self._send = send
        self._waiting: Snapshot | None = None
        self._task: asyncio.Task[None] | None = None
        self._times: deque[float] = deque(maxlen=50)

    @property
    def rate(self) -> float:
        """Overlay maps sent per second over the last (up to 50) maps."""
        if len(self._times) < 2:
            return 0.0
        return (len(self._times) - 1) / max(1e-9, self._times[-1] - self._times[0])

    def configure(self, data: dict[str, Any]) -> None:
        """A ``{"type": "saliency", "au": "AU12" | null, "track": id | null}`` message from the page."""
        au = data.get("au")
        track = data.get("track")
        self.track = track if isinstance(track, int) and not isinstance(track, bool) else None
        if au is None or au is False:
            self.au = None
            return
        if self.service is None or self.service.reason is not None:
            reason = "no engine" if self.service is None else self.service.reason
            self._send({"type": "saliency", "au": None, "error": reason})
            return
        try:
            number = int(str(au).upper().removeprefix("AU"))
        except ValueError:
            number = -1
        if number not in self.service.engine.aus:
            self._send({"type": "saliency", "au": None, "error": f"unknown AU {au!r}"})
            return
        self.au = number

    def offer(self, snap: Snapshot) -> None:
        """A newly processed frame (loop thread)."""
        self.latest = snap
        if self.au is None or self.service is None or self.service.reason is not None:
            return
        if self._task is not None and not self._task.done():
            if self._waiting is not None:
                self.skipped += 1
            self._waiting = snap
            return
        self._task = asyncio.get_running_loop().create_task(self._compute(snap), name="saliency")

    async def _compute(self, snap: Snapshot | None) -> None:
        assert self.service is not None
        while snap is not None and self.au is not None:
            try:
                message = await self.service.run(self.service.gradcam, snap, self.au, self.track)
            except Exception:
                self.errors += 1
                log.exception("saliency map failed")
                message = None
            if message is not None and self.au is not None:
                self._times.append(time.perf_counter())
                message["rate"] = round(self.rate, 2)
                self.sent += 1
                self._send(message)
                # pacing: frames that arrive meanwhile replace the waiting one
                await asyncio.sleep(PACE * float(message.get("compute_ms", 0.0)) / 1000)
            snap, self._waiting = self._waiting, None

    def cancel(self) -> None:
        self.au = None
        self._waiting = None
        if self._task is not None:
            self._task.cancel()
