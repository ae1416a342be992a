"""The GPU frame path: one upload per frame, everything else on the GPU, only probabilities come back.

Per frame: the decoded ``uint8`` BGR frame is copied once to the GPU (through a pinned buffer); there the
face crops are cut and resized (bilinear sampling, supersampled ``k x k`` and averaged when the crop is
shrunk, which approximates OpenCV's ``INTER_AREA``), converted to grey, the TV-L1 flow is computed between
the previous frame's grey image cropped with the *current* box and the current crop (the same pairing as
the CPU :class:`~aunets.stream.pipeline.Pipeline`), encoded (:func:`aunets.core.flow.encode_flow`'s encodings),
normalised, laid out as the manifest's :class:`~aunets.engines.manifest.InputSpec` says and run through the
per-view detectors; ``N x n_aus`` probabilities are copied back. The previous grey frame stays on the GPU.

With ``cuda_graph`` the whole path (crop to probabilities) is captured once per (frame size, number of
faces, supersampling, detector assignment) and replayed, so a frame costs two small copies in, one graph
launch and one small copy out.

The same code runs on the CPU (``device="cpu"``, no graph), which is how the tests check it against the
CPU pipeline's :func:`~aunets.core.crop.crop_square` and :func:`~aunets.engines.preprocess.compose_input`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from aunets.core.errors import ConfigError, EngineError, MissingExtraError
from aunets.core.face import Box
from aunets.core.flow_torch import TVL1_PRESETS, TorchTVL1
from aunets.engines.engine import weight_file
from aunets.engines.manifest import Manifest, load_manifest
from aunets.engines.runtime_cuda import CudaRuntime, CudaRuntimeConfig

if TYPE_CHECKING:
    from torch import Tensor

log = logging.getLogger(__name__)

STAGES: tuple[str, ...] = ("upload", "crop", "flow", "normalise", "infer", "download")


@dataclass(frozen=True)
class GpuPathConfig:
    """Settings of :class:`GpuFramePath`.

    ``margin``: crop side / face box side (as :class:`~aunets.stream.pipeline.PipelineConfig`). ``flow_preset``:
    a key of :data:`aunets.core.flow_torch.TVL1_PRESETS`. ``flow_dtype``: arithmetic type of the flow solver.
    ``flow_compile``: fuse the solver's steps with ``torch.compile`` (None: on CUDA only; 7.0 -> 1.4 ms per
    pair on an H100). ``runtime``: how the detectors run. ``cuda_graph``: capture the whole path in one CUDA
    graph. ``max_supersample``: bound on ``k`` (see the module docstring). ``device``: torch device string.
    """

    margin: float = 1.3
    flow_preset: str = "fast"
    flow_dtype: str = "float32"
    flow_compile: bool | None = None
    runtime: CudaRuntimeConfig = field(default_factory=lambda: CudaRuntimeConfig(cuda_graph=False))
    cuda_graph: bool = True
    max_supersample: int = 4
    device: str = "cuda"

    def __post_init__(self) -> None:
        if self.flow_preset not in TVL1_PRESETS:
            raise ConfigError(f"unknown flow preset {self.flow_preset!r}; choose one of {sorted(TVL1_PRESETS)}")
        if self.max_supersample < 1:
            raise ConfigError(f"max_supersample must be >= 1, got {self.max_supersample}")
        if self.cuda_graph and not self.device.startswith("cuda"):
            raise ConfigError("cuda_graph needs device='cuda'; set cuda_graph=False on the CPU")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _torch() -> Any:
    try:
        import torch
    except ImportError as exc:
        raise MissingExtraError("torch", "train") from exc
    return torch


def crop_window(box: Box, margin: float, frame_shape: tuple[int, ...]) -> tuple[int, int, int]:
    """The integer square window (x0, y0, side) that :func:`aunets.core.crop.crop_square` cuts for ``box``."""
    x, y, w, h = box
    side = max(2.0, margin * max(w, h))
    cx, cy = x + w / 2.0, y + h / 2.0
    x0, y0 = round(cx - side / 2.0), round(cy - side / 2.0)
    s = round(side)
    height, width = frame_shape[:2]
    if min(width, x0 + s) <= max(0, x0) or min(height, y0 + s) <= max(0, y0):
        raise ValueError(f"face box {box} lies outside the {width}x{height} frame")
    return x0, y0, s


class GpuFramePath:
    """Frame -> AU probabilities on the GPU for one stream (keeps the previous frame). Not thread-safe.

    ``runtimes``: detector file name (as in ``manifest.detectors``) -> :class:`CudaRuntime`.
    """

    def __init__(self, manifest: Manifest, runtimes: Mapping[str, CudaRuntime], config: GpuPathConfig | None = None):
        torch = _torch()
        self.config = config or GpuPathConfig()
        c = self.config
        if c.device.startswith("cuda") and not torch.cuda.is_available():
            raise EngineError("the GPU frame path needs torch with CUDA and a GPU; use --device cpu")
        missing = set(manifest.detectors.values()) - set(runtimes)
        if missing:
            raise EngineError(f"no runtime for detector file(s) {sorted(missing)}")
        self._torch = torch
        self.manifest = manifest
        self.runtimes = dict(runtimes)
        self.device = torch.device(c.device)
        flow_compile = c.flow_compile if c.flow_compile is not None else self.device.type == "cuda"
        self.flow = TorchTVL1(TVL1_PRESETS[c.flow_preset], getattr(torch, c.flow_dtype), compile=flow_compile)
        spec = manifest.input
        if spec.height != spec.width:
            raise EngineError(f"the GPU path needs square crops, the manifest has {spec.height}x{spec.width}")
        self.size = spec.height
        self._mean = torch.tensor(spec.mean, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
        self._inv_std = 1.0 / torch.tensor(spec.std, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
        self._gray_w = torch.tensor([0.114, 0.587, 0.299], dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
        self._frame: Tensor | None = None  # uint8 (H, W, 3) on the device
        self._pinned: Tensor | None = None
        self._prev_gray: Tensor | None = None  # float32 (1, 1, H, W) on the device (a graph input)
        self._has_prev = False
        self.profile = False
        """Set True to record per-stage times (ms) in :attr:`stage_ms`; synchronises after every stage, and
        with ``cuda_graph`` only ``upload`` and ``download`` are separate (the graph replays the rest)."""
        self._graphs: dict[tuple[Any, ...], tuple[Any, Tensor, Tensor]] = {}
        self._windows: dict[int, Tensor] = {}
        self.stage_ms: dict[str, list[float]] = {s: [] for s in STAGES}

    @classmethod
    def from_bundle(cls, bundle: Path | str, config: GpuPathConfig | None = None) -> GpuFramePath:
        """Load an engine bundle's ``.safetensors`` detectors onto the GPU."""
        bundle = Path(bundle)
        manifest = load_manifest(bundle)
        config = config or GpuPathConfig()
        runtimes: dict[str, CudaRuntime] = {}
        for name in sorted(set(manifest.detectors.values())):
            heads = [h for v, h in manifest.detector_heads.items() if manifest.detectors[v] == name]
            weights = weight_file(manifest, name, "cuda")
            if not weights.endswith(".safetensors"):
                raise EngineError(
                    f"the GPU path runs torch weights, and {bundle} has no .safetensors twin of {name}; rebuild the "
                    f"bundle with `aunets build-engine` (it writes both) or use --device cpu"
                )
            runtimes[name] = CudaRuntime(
                bundle / weights,
                architecture=manifest.architecture,
                # an intensity block follows the presence blocks; this path reads the presence blocks only
                num_outputs=(1 + max(heads, default=0)) * len(manifest.aus) * (2 if manifest.intensity else 1),
                architecture_kwargs=manifest.architecture_kwargs,
                config=config.runtime,
            )
        return cls(manifest, runtimes, config)

    # --- public API --------------------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget the previous frame (the next frame's flow is computed against itself: zero motion)."""
        self._has_prev = False

    def infer(self, frame_bgr: np.ndarray, boxes: Sequence[Box], views: Sequence[int] | None = None) -> np.ndarray:
        """AU probabilities ``float32`` (len(boxes), n_aus) for the faces ``boxes`` (x, y, w, h px) of
        ``frame_bgr`` (``uint8`` HxWx3); ``views[i]`` picks face i's detector (default: the manifest's).
        With no boxes the frame is still uploaded and kept as the previous frame."""
        with self._torch.inference_mode():  # every buffer is made and updated in inference mode
            return self._infer_frame(frame_bgr, boxes, views)

    def _infer_frame(self, frame_bgr: np.ndarray, boxes: Sequence[Box], views: Sequence[int] | None) -> np.ndarray:
        torch = self._torch
        m = self.manifest
        views = list(views) if views is not None else [m.default_view] * len(boxes)
        if len(views) != len(boxes):
            raise ValueError(f"{len(boxes)} boxes but {len(views)} views")
        frame = self._upload(frame_bgr)
        if not boxes:
            self._set_prev(frame)
            return np.zeros((0, len(m.aus)), dtype=np.float32)
        windows = [crop_window(b, self.config.margin, frame_bgr.shape) for b in boxes]
        k = min(self.config.max_supersample, max(1, math.ceil(max(s for *_, s in windows) / self.size)))
        win = self._window_tensor(windows)
        if not self._has_prev:
            self._set_prev(frame)
        resolved = tuple(v if v in m.detectors else m.default_view for v in views)
        with torch.inference_mode():
            if self.config.cuda_graph:
                key = (tuple(frame.shape), len(boxes), k, resolved)
                if key not in self._graphs:
                    self._graphs[key] = self._capture(frame, win, k, resolved)
                graph, _static_in, static_out = self._graphs[key]
                graph.replay()
                probs = static_out
            else:
                probs = self._path(frame, win, k, resolved, timed=True)
            t = self._event()
            out = probs.cpu().numpy()
            self._record("download", t)
        return np.asarray(out, dtype=np.float32)

    def prepare(self, frame_bgr: np.ndarray, boxes: Sequence[Box]) -> Tensor:
        """The detector input batch ``float32`` (N, C, H, W) for ``boxes`` (updates the previous frame)."""
        with self._torch.inference_mode():
            frame = self._upload(frame_bgr)
            windows = [crop_window(b, self.config.margin, frame_bgr.shape) for b in boxes]
            k = min(self.config.max_supersample, max(1, math.ceil(max(s for *_, s in windows) / self.size)))
            if not self._has_prev:
                self._set_prev(frame)
            x: Tensor = self._inputs(frame, self._window_tensor(windows), k)
            return x

    # --- stages ------------------------------------------------------------------------------------------
    def _upload(self, frame_bgr: np.ndarray) -> Tensor:
        torch = self._torch
        if frame_bgr.dtype != np.uint8 or frame_bgr.ndim != 3 or frame_bgr.shape[2] != 3:
            raise ValueError(f"expected a uint8 HxWx3 BGR frame, got {frame_bgr.shape} {frame_bgr.dtype}")
        t = self._event()
        if self._frame is None or tuple(self._frame.shape) != frame_bgr.shape:
            self._frame = torch.empty(frame_bgr.shape, dtype=torch.uint8, device=self.device)
            pin = self.device.type == "cuda"
            self._pinned = torch.empty(frame_bgr.shape, dtype=torch.uint8, pin_memory=pin)
            self._prev_gray = torch.empty((1, 1, *frame_bgr.shape[:2]), dtype=torch.float32, device=self.device)
            self._has_prev = False
            self._graphs.clear()
        assert self._pinned is not None
        self._pinned.numpy()[...] = frame_bgr
        self._frame.copy_(self._pinned, non_blocking=True)
        self._record("upload", t)
        return self._frame

    def _set_prev(self, frame: Tensor) -> None:
        assert self._prev_gray is not None
        with self._torch.inference_mode():
            self._prev_gray.copy_(self._gray(frame.permute(2, 0, 1).unsqueeze(0).float()))
        self._has_prev = True

    def _window_tensor(self, windows: list[tuple[int, int, int]]) -> Tensor:
        """(N, 3) float32 device tensor of (x0, y0, side), in a persistent buffer per N (graph input)."""
        torch = self._torch
        n = len(windows)
        if n not in self._windows:
            self._windows[n] = torch.empty((n, 3), dtype=torch.float32, device=self.device)
        host = torch.tensor(windows, dtype=torch.float32)
        self._windows[n].copy_(host.pin_memory() if self.device.type == "cuda" else host, non_blocking=True)
        return self._windows[n]

    def _gray(self, bgr: Tensor) -> Tensor:
        """(N, 3, H, W) float BGR 0..255 -> (N, 1, H, W) grey as OpenCV's ``COLOR_BGR2GRAY``, rounded."""
        return self._torch.round((bgr * self._gray_w).sum(dim=1, keepdim=True))

    def _grid(self, win: Tensor, k: int, height: int, width: int) -> Tensor:
        """Sampling grid (N, S*k, S*k, 2) in grid_sample's normalised coordinates for the windows ``win``."""
        torch = self._torch
        n = win.shape[0]
        sk = self.size * k
        steps = (torch.arange(sk, device=self.device, dtype=torch.float32) + 0.5) / sk  # fractions of the side
        xs = win[:, 0:1] + steps.view(1, -1) * win[:, 2:3] - 0.5  # pixel coordinates, centres at integers
        ys = win[:, 1:2] + steps.view(1, -1) * win[:, 2:3] - 0.5
        gx = (2.0 * xs + 1.0) / width - 1.0
        gy = (2.0 * ys + 1.0) / height - 1.0
        return torch.stack([gx.view(n, 1, sk).expand(n, sk, sk), gy.view(n, sk, 1).expand(n, sk, sk)], dim=-1)

    def _crop(self, image: Tensor, grid: Tensor, k: int) -> Tensor:
        """Sample (1, C, H, W) ``image`` on ``grid`` (border replicated), average k x k, round (as uint8)."""
        torch = self._torch
        f = torch.nn.functional
        n = grid.shape[0]
        out = f.grid_sample(image.expand(n, -1, -1, -1), grid, mode="bilinear", padding_mode="border",
                            align_corners=False)
        if k > 1:
            out = f.avg_pool2d(out, k)
        return torch.round(out)

    def _encode(self, flow: Tensor) -> Tensor:
        """(N, 2, S, S) flow in pixels -> (N, 3, S, S) float 0..255 flow image (RGB), as encode_flow."""
        torch = self._torch
        fc = self.manifest.flow
        u, v = flow[:, 0:1], flow[:, 1:2]
        if fc.encoding == "paper":
            scale = 1.0 / (fc.clip_fraction * flow.shape[3])
            r = 128.0 + 127.0 * torch.clamp(u * scale, -1.0, 1.0)
            g = 128.0 + 127.0 * torch.clamp(v * scale, -1.0, 1.0)
            b = 255.0 * torch.clamp(torch.sqrt(u * u + v * v) * scale, 0.0, 1.0)
        else:  # aunets_original: each component scaled by this sample's own peak
            def channel(comp: Tensor) -> Tensor:
                peak = comp.abs().amax(dim=(1, 2, 3), keepdim=True)
                scaled = 128.0 + 127.0 * comp / torch.clamp(peak, min=1e-6)
                return torch.where(peak > 1e-6, scaled, torch.full_like(comp, 128.0))

            r, g, b = channel(u), channel(-v), torch.zeros_like(u)
        return torch.floor(torch.clamp(torch.cat([r, g, b], dim=1), 0.0, 255.0))  # uint8 assignment truncates

    def _inputs(self, frame: Tensor, win: Tensor, k: int, timed: bool = False) -> Tensor:
        """Crop, flow, encode, normalise and lay out: the detector input (N, C, S, S|2S) float32."""
        torch = self._torch
        spec = self.manifest.input
        t = self._event() if timed else None
        bgr = frame.permute(2, 0, 1).unsqueeze(0).float()
        height, width = frame.shape[0], frame.shape[1]
        grid = self._grid(win, k, height, width)
        crop_bgr = self._crop(bgr, grid, k)
        rgb = crop_bgr.flip(1)
        gray_full = self._gray(bgr)
        if timed:
            self._record("crop", t)
            t = self._event()
        flow_img = None
        if spec.uses_flow:
            assert self._prev_gray is not None
            prev = self._crop(self._prev_gray, grid, k)
            cur = self._gray(crop_bgr)
            flow_img = self._encode(self.flow(prev, cur, value_range=255.0))
        if timed:
            self._record("flow", t)
            t = self._event()
        assert self._prev_gray is not None
        self._prev_gray.copy_(gray_full)
        parts = []
        if spec.fusion in ("rgb", "channels", "horizontal"):
            parts.append((rgb - self._mean) * self._inv_std)
        if flow_img is not None:
            parts.append((flow_img - self._mean) * self._inv_std)
        x = parts[0] if len(parts) == 1 else torch.cat(parts, dim=3 if spec.fusion == "horizontal" else 1)
        if timed:
            self._record("normalise", t)
        return x

    def _infer(self, x: Tensor, views: tuple[int, ...]) -> Tensor:
        """Detector logits -> (N, n_aus) float32 probabilities; faces sharing a file run in one batch."""
        torch = self._torch
        m = self.manifest
        n_aus = len(m.aus)
        groups: dict[str, list[int]] = {}
        for i, view in enumerate(views):
            groups.setdefault(m.detectors[view], []).append(i)
        rows: list[Tensor] = [x.new_empty(0)] * len(views)
        for name, idx in groups.items():
            rt = self.runtimes[name]
            batch = x if len(idx) == len(views) else torch.cat([x[i : i + 1] for i in idx])  # no host index: graph-safe
            logits = rt.forward(rt.prepare_input(batch)).float()
            for row, i in enumerate(idx):
                head = m.detector_heads.get(views[i], 0)
                rows[i] = logits[row, head * n_aus : (head + 1) * n_aus]
        return torch.sigmoid(torch.stack(rows))

    def _path(self, frame: Tensor, win: Tensor, k: int, views: tuple[int, ...], timed: bool) -> Any:
        x = self._inputs(frame, win, k, timed=timed)
        t = self._event() if timed else None
        probs = self._infer(x, views)
        if timed:
            self._record("infer", t)
        return probs

    def _capture(self, frame: Tensor, win: Tensor, k: int, views: tuple[int, ...]) -> Any:
        torch = self._torch
        assert self._prev_gray is not None
        saved = self._prev_gray.clone()
        side = torch.cuda.Stream(device=self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            for _ in range(3):  # warm-up: cuDNN autotuning, compilation, lazy allocations
                self._prev_gray.copy_(saved)
                self._path(frame, win, k, views, timed=False)
        torch.cuda.current_stream(self.device).wait_stream(side)
        self._prev_gray.copy_(saved)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            out = self._path(frame, win, k, views, timed=False)
        self._prev_gray.copy_(saved)  # capture does not execute: the replay will update it
        log.info("GPU path: captured a CUDA graph for frame %s, %d face(s), k=%d", tuple(frame.shape), len(views), k)
        return graph, win, out

    # --- timing ------------------------------------------------------------------------------------------
    def _event(self) -> Any:
        """A start marker for a stage (a CUDA event, or a host clock on the CPU)."""
        torch = self._torch
        if not self.profile:
            return None
        if self.device.type == "cuda":
            ev = torch.cuda.Event(enable_timing=True)
            ev.record()
            return ev
        import time

        return time.perf_counter()

    def _record(self, stage: str, start: Any) -> None:
        """Record the stage's time since ``start`` in ms (synchronising: only for profiling runs)."""
        if start is None or not self.profile:
            return
        torch = self._torch
        if self.device.type == "cuda":
            end = torch.cuda.Event(enable_timing=True)
            end.record()
            end.synchronize()
            self.stage_ms[stage].append(float(start.elapsed_time(end)))
        else:
            import time

            self.stage_ms[stage].append((time.perf_counter() - start) * 1000.0)
