"""The GPU frame path: one upload per frame, everything else on the GPU, only probabilities come back.

Per frame: the decoded ``uint8`` BGR frame is copied once to the GPU (through a pinned buffer); there the
face crops are cut and resized as :func:`~aunets.core.crop.crop_square` does (its halvings, ``INTER_AREA``
and ``INTER_LINEAR`` as separable taps, :mod:`aunets.core.crop_taps`: within one or two grey levels),
converted to grey, the TV-L1 flow is computed between
the previous frame's grey image cropped with the *current* box and the current crop (the same pairing as
the CPU :class:`~aunets.stream.pipeline.Pipeline`), encoded (:func:`aunets.core.flow.encode_flow`'s encodings),
normalised, laid out as the manifest's :class:`~aunets.engines.manifest.InputSpec` says and run through the
per-view detectors; ``N x n_aus`` probabilities (and, for an engine with intensity heads, ``N x n_aus``
intensities 0..5, as :meth:`aunets.engines.engine.AUEngine.infer`) are copied back. The previous grey frame
stays on the GPU.

With ``cuda_graph`` the whole path (crop to probabilities) is captured once per (frame size, number of
faces, tap class, detector *file* per face) and replayed, so a frame costs a few small copies in (frame, crop
taps, head indices), one graph launch and one small copy out. The view picks its head inside the graph
(a gather on a head-index input), so a change of view among views sharing a detector file (the shipped
engine: one file, nine heads) replays the same graph. :meth:`GpuFramePath.warmup` compiles and captures
every graph a stream of a given frame size can need before its first frame.

The same code runs on the CPU (``device="cpu"``, no graph), which is how the tests check it against the
CPU pipeline's :func:`~aunets.core.crop.crop_square` and :func:`~aunets.engines.preprocess.compose_input`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from aunets.core.crop_taps import apply_taps_tensor, crop_taps
from aunets.core.errors import ConfigError, EngineError, MissingExtraError
from aunets.core.face import Box
from aunets.core.flow import compute_flows
from aunets.core.flow_registry import create_flow_backend
from aunets.core.flow_torch import TVL1_PRESETS, TorchTVL1, encode_flow_tensor
from aunets.engines.engine import weight_file
from aunets.engines.manifest import Manifest, load_manifest
from aunets.engines.runtime_cuda import CudaRuntime, CudaRuntimeConfig
from aunets.stream.stage_clock import stage_ms_since, stage_start

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
    graph. ``device``: torch device string. ``host_flow``: a flow backend (:mod:`aunets.core.flow_registry`,
    e.g. the engine's ``dis``) run on the host on the grey crops (downloaded, then the flow uploaded): the CPU
    path's flow exactly, at the cost of two small copies and no whole-path graph; None: TV-L1 on the device.
    """

    margin: float = 1.3
    flow_preset: str = "fast"
    flow_dtype: str = "float32"
    flow_compile: bool | None = None
    runtime: CudaRuntimeConfig = field(default_factory=lambda: CudaRuntimeConfig(cuda_graph=False))
    cuda_graph: bool = True
    device: str = "cuda"
    host_flow: str | None = None

    def __post_init__(self) -> None:
        if self.flow_preset not in TVL1_PRESETS:
            raise ConfigError(f"unknown flow preset {self.flow_preset!r}; choose one of {sorted(TVL1_PRESETS)}")
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
        self._flow_compiled = flow_compile
        self.host_flow = None if c.host_flow is None else create_flow_backend(c.host_flow)
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
        self._taps: dict[tuple[int, int], tuple[Tensor, ...]] = {}
        self._heads: dict[int, Tensor] = {}
        self.startup: dict[str, float] = {}
        self.keys_run: set[tuple[Any, ...]] = set()
        """Graph keys (frame shape, faces, supersampling, detector file per face) run so far, on any device: with
        ``cuda_graph`` a frame whose key is new captures a graph; after :meth:`warmup` a stream adds none."""
        """Start-up seconds (``import_s``, ``load_s`` from :func:`open_frame_path`, ``warmup_s``)."""
        n_aus = len(manifest.aus)
        # presence logits per sample of each detector file: one block of n_aus per head
        self._presence_width = {name: n_aus * (1 + max((h for v, h in manifest.detector_heads.items()
                                                      if manifest.detectors[v] == name), default=0))
                                for name in set(manifest.detectors.values())}
        self.stage_ms: dict[str, list[float]] = {s: [] for s in STAGES}

    def sibling(self) -> GpuFramePath:
        """A frame path for another stream that shares this one's detectors and flow solver (one engine on the
        device for several streams) and keeps its own previous frame; see :func:`infer_streams`."""
        other = GpuFramePath(self.manifest, self.runtimes, self.config)
        other.flow = self.flow
        return other

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

    @property
    def has_intensity(self) -> bool:
        """True when the detectors have intensity heads (:meth:`infer_full` then returns intensities)."""
        return self.manifest.intensity

    @property
    def graphs_captured(self) -> int:
        """CUDA graphs captured so far (0 on the CPU device)."""
        return len(self._graphs)

    def infer(self, frame_bgr: np.ndarray, boxes: Sequence[Box], views: Sequence[int] | None = None) -> np.ndarray:
        """AU probabilities ``float32`` (len(boxes), n_aus) for the faces ``boxes`` (x, y, w, h px) of
        ``frame_bgr`` (``uint8`` HxWx3); ``views[i]`` picks face i's detector (default: the manifest's).
        With no boxes the frame is still uploaded and kept as the previous frame."""
        return self.infer_full(frame_bgr, boxes, views)[0]

    def infer_full(self, frame_bgr: np.ndarray, boxes: Sequence[Box],
                   views: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """Like :meth:`infer`, plus AU intensities ``float32`` (len(boxes), n_aus) in 0..5 when the engine has
        them (:attr:`has_intensity`), else None: ``(probabilities, intensities)``."""
        with self._torch.inference_mode():  # every buffer is made and updated in inference mode
            out = self._infer_frame(frame_bgr, boxes, views)
        n_aus = len(self.manifest.aus)
        return out[:, :n_aus], (out[:, n_aus:] if self.has_intensity else None)

    def warmup(self, frame_shape: tuple[int, ...], max_faces: int = 1) -> float:
        """Compile and (with ``cuda_graph``) capture, before the first frame, every graph that frames of
        ``frame_shape`` (H, W, 3) with 1..``max_faces`` faces can need: each supersampling factor a face of
        that frame can give, and each detector file (all faces on one file; a frame whose faces use
        different files captures its graph when it first occurs). The stream's state is left as it was.
        Returns the seconds spent."""
        from aunets.stream.frame_path_warmup import warm_up

        return warm_up(self, frame_shape, max_faces)

    def _infer_frame(self, frame_bgr: np.ndarray, boxes: Sequence[Box], views: Sequence[int] | None) -> np.ndarray:
        """(N, n_aus) probabilities, or (N, 2 n_aus) probabilities | intensities for an engine with intensity."""
        torch = self._torch
        m = self.manifest
        views = list(views) if views is not None else [m.default_view] * len(boxes)
        if len(views) != len(boxes):
            raise ValueError(f"{len(boxes)} boxes but {len(views)} views")
        frame = self._upload(frame_bgr)
        if not boxes:
            self._set_prev(frame)
            return np.zeros((0, len(m.aus) * (2 if m.intensity else 1)), dtype=np.float32)
        taps = self._tap_tensors(boxes, frame_bgr.shape)
        resolved = tuple(v if v in m.detectors else m.default_view for v in views)
        heads = self._head_tensor([m.detector_heads.get(v, 0) for v in resolved])
        files = tuple(m.detectors[v] for v in resolved)
        if not self._has_prev:
            self._set_prev(frame)
        key = (tuple(frame.shape), len(boxes), taps[0].shape[2], files)
        self.keys_run.add(key)
        with torch.inference_mode():
            if self.config.cuda_graph and self.host_flow is None:
                if key not in self._graphs:
                    self._graphs[key] = self._capture(frame, taps, files, heads)
                graph, _static_in, static_out = self._graphs[key]
                graph.replay()
                probs = static_out
            else:
                probs = self._path(frame, taps, files, heads, timed=True)
            t = self._event()
            out = probs.cpu().numpy()
            self._record("download", t)
        return np.asarray(out, dtype=np.float32)

    def prepare(self, frame_bgr: np.ndarray, boxes: Sequence[Box]) -> Tensor:
        """The detector input batch ``float32`` (N, C, H, W) for ``boxes`` (updates the previous frame)."""
        with self._torch.inference_mode():
            frame = self._upload(frame_bgr)
            taps = self._tap_tensors(boxes, frame_bgr.shape)
            if not self._has_prev:
                self._set_prev(frame)
            x: Tensor = self._inputs(frame, taps)
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

    def _tap_tensors(self, boxes: Sequence[Box], frame_shape: tuple[int, ...]) -> tuple[Tensor, ...]:
        """The faces' crop taps (:func:`aunets.core.crop_taps.crop_taps`): row indices, row weights, column
        indices, column weights, each (N, S, T), and rounding offsets (N,), on the device, in persistent buffers
        per (N, T) (graph inputs)."""
        torch = self._torch
        host = crop_taps(list(boxes), self.config.margin, frame_shape, self.size)
        key = (len(boxes), host[0].shape[2])
        if key not in self._taps:
            self._taps[key] = tuple(torch.empty(a.shape, dtype=torch.int64 if a.dtype == np.int64 else torch.float32,
                                                device=self.device) for a in host)
        for buf, a in zip(self._taps[key], host, strict=True):
            t = torch.from_numpy(a)
            buf.copy_(t.pin_memory() if self.device.type == "cuda" else t, non_blocking=True)
        return self._taps[key]

    def _head_tensor(self, heads: list[int]) -> Tensor:
        """(N,) int64 device tensor of each face's head index, in a persistent buffer per N (graph input)."""
        torch = self._torch
        n = len(heads)
        if n not in self._heads:
            self._heads[n] = torch.empty((n,), dtype=torch.int64, device=self.device)
        host = torch.tensor(heads, dtype=torch.int64)
        self._heads[n].copy_(host.pin_memory() if self.device.type == "cuda" else host, non_blocking=True)
        return self._heads[n]

    def _gray(self, bgr: Tensor) -> Tensor:
        """(N, 3, H, W) float BGR 0..255 -> (N, 1, H, W) grey as OpenCV's ``COLOR_BGR2GRAY``, rounded."""
        return self._torch.round((bgr * self._gray_w).sum(dim=1, keepdim=True))

    def _crop(self, image: Tensor, taps: tuple[Tensor, ...]) -> Tensor:
        return apply_taps_tensor(image, taps)

    def _encode(self, flow: Tensor) -> Tensor:
        fc = self.manifest.flow
        return encode_flow_tensor(flow, fc.encoding, fc.clip_fraction)

    def _inputs(self, frame: Tensor, taps: tuple[Tensor, ...], timed: bool = False) -> Tensor:
        """Crop, flow, encode, normalise and lay out: the detector input (N, C, S, S|2S) float32."""
        t = self._event() if timed else None
        rgb, prev, cur = self._crops(frame, taps)
        if timed:
            self._record("crop", t)
            t = self._event()
        flow_img = None if prev is None or cur is None else self._encode(self._flow(prev, cur))
        if timed:
            self._record("flow", t)
            t = self._event()
        x = self._compose(rgb, flow_img)
        if timed:
            self._record("normalise", t)
        return x

    def _flow(self, prev: Tensor, cur: Tensor) -> Tensor:
        """Flow (N, 2, S, S) px between grey crops (N, 1, S, S) 0..255: TV-L1 on the device, or ``host_flow`` on
        the host (the crops go down as ``uint8``, one pair per face, the flow comes back up)."""
        torch = self._torch
        if self.host_flow is None:
            n = prev.shape[0]
            if self._flow_compiled and n & (n - 1):
                # the compiled solver compiles once per batch size (and runs eagerly after 8): pad the batch to
                # a power of two, so 16 faces need 5 compilations, not 16
                pad = (1 << n.bit_length()) - n
                prev = torch.cat([prev, prev[:1].expand(pad, -1, -1, -1)])
                cur = torch.cat([cur, cur[:1].expand(pad, -1, -1, -1)])
            flow: Tensor = self.flow(prev, cur, value_range=255.0)
            return flow[:n]
        pair = torch.cat([prev, cur], dim=1).to(torch.uint8).cpu().numpy()  # crops are rounded 0..255
        flows = compute_flows(self.host_flow, [p[0] for p in pair], [p[1] for p in pair])
        host = torch.from_numpy(np.ascontiguousarray(np.stack(flows).transpose(0, 3, 1, 2), dtype=np.float32))
        return host.to(self.device, non_blocking=False)

    def _crops(self, frame: Tensor, taps: tuple[Tensor, ...]) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """RGB crops (N, 3, S, S) 0..255 and, for an engine using flow, the previous and current grey crops
        (N, 1, S, S); the frame becomes the previous one."""
        bgr = frame.permute(2, 0, 1).unsqueeze(0).float()
        crop_bgr = self._crop(bgr, taps)
        prev = cur = None
        assert self._prev_gray is not None
        if self.manifest.input.uses_flow:
            prev = self._crop(self._prev_gray, taps)
            cur = self._gray(crop_bgr)
        self._prev_gray.copy_(self._gray(bgr))
        return crop_bgr.flip(1), prev, cur

    def _compose(self, rgb: Tensor, flow_img: Tensor | None) -> Tensor:
        """Normalise and lay out RGB crops and flow images (N, 3, S, S) as the manifest's input spec."""
        spec = self.manifest.input
        parts = []
        if spec.fusion in ("rgb", "channels", "horizontal"):
            parts.append((rgb - self._mean) * self._inv_std)
        if flow_img is not None:
            parts.append((flow_img - self._mean) * self._inv_std)
        return parts[0] if len(parts) == 1 else self._torch.cat(parts, dim=3 if spec.fusion == "horizontal" else 1)

    def _infer(self, x: Tensor, files: tuple[str, ...], heads: Tensor) -> Tensor:
        """Detector logits -> (N, n_aus) float32 probabilities, or (N, 2 n_aus) probabilities | intensities
        (0..5) for an engine with intensity heads. Faces sharing a detector file run in one batched call;
        each face's head is gathered with ``heads`` (N,) int64, a device tensor, so the view is data, not
        part of a captured graph."""
        torch = self._torch
        m = self.manifest
        n_aus = len(m.aus)
        groups: dict[str, list[int]] = {}
        for i, name in enumerate(files):
            groups.setdefault(name, []).append(i)
        rows: list[Tensor] = [x.new_empty(0)] * len(files)
        for name, idx in groups.items():
            rt = self.runtimes[name]
            whole = len(idx) == len(files)
            batch = x if whole else torch.cat([x[i : i + 1] for i in idx])  # no host index: graph-safe
            head = heads if whole else torch.cat([heads[i : i + 1] for i in idx])
            logits = rt.forward(rt.prepare_input(batch)).float()
            width = self._presence_width[name]
            pick = head.view(-1, 1, 1).expand(-1, 1, n_aus)
            probs = torch.sigmoid(logits[:, :width].reshape(-1, width // n_aus, n_aus).gather(1, pick).squeeze(1))
            if m.intensity:
                raw = logits[:, width : 2 * width].reshape(-1, width // n_aus, n_aus).gather(1, pick).squeeze(1)
                probs = torch.cat([probs, 5.0 * torch.sigmoid(raw)], dim=1)
            if len(groups) == 1:
                return probs
            for row, i in enumerate(idx):
                rows[i] = probs[row : row + 1]
        return torch.cat(rows)

    def _path(self, frame: Tensor, taps: tuple[Tensor, ...], files: tuple[str, ...], heads: Tensor,
              timed: bool) -> Any:
        x = self._inputs(frame, taps, timed=timed)
        t = self._event() if timed else None
        probs = self._infer(x, files, heads)
        if timed:
            self._record("infer", t)
        return probs

    def _capture(self, frame: Tensor, taps: tuple[Tensor, ...], files: tuple[str, ...], heads: Tensor) -> Any:
        torch = self._torch
        assert self._prev_gray is not None
        saved = self._prev_gray.clone()
        side = torch.cuda.Stream(device=self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            for _ in range(3):  # warm-up: cuDNN autotuning, compilation, lazy allocations
                self._prev_gray.copy_(saved)
                self._path(frame, taps, files, heads, timed=False)
        torch.cuda.current_stream(self.device).wait_stream(side)
        self._prev_gray.copy_(saved)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            out = self._path(frame, taps, files, heads, timed=False)
        self._prev_gray.copy_(saved)  # capture does not execute: the replay will update it
        log.info("GPU path: captured a CUDA graph for frame %s, %d face(s), %d taps", tuple(frame.shape), len(files),
                 taps[0].shape[2])
        return graph, taps[0], out

    # --- timing ------------------------------------------------------------------------------------------
    def _event(self) -> Any:
        """A start marker for a stage when :attr:`profile` is set (see :mod:`aunets.stream.stage_clock`)."""
        return stage_start(self._torch, self.device) if self.profile else None

    def _record(self, stage: str, start: Any) -> None:
        if start is not None and self.profile:
            self.stage_ms[stage].append(stage_ms_since(self._torch, self.device, start))
