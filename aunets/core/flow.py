"""Dense optical flow between two face crops, and its encoding as a 3-channel image.

A pair is the previous and the current frame, both cropped with the *current* face box, so the flow
shows facial motion rather than the box's movement. Flow is measured in pixels of the crop.

Encodings (the image a network sees, ``uint8`` HxWx3 in RGB channel order):

``paper`` (default)
    R, G = x and y motion, normalised: ``128 + 127 * clip(u / c, -1, 1)`` with ``c = clip_fraction * W``;
    B = magnitude, ``255 * clip(|(u, v)| / c, 0, 1)``. A fixed scale, so the same motion always gives
    the same colour.
``aunets_original``
    As the original AUNets code: R = u, G = -v, B = 0, each scaled by the frame's own maximum absolute
    value (``128 + 127 * u / max|u|``), so the image always spans the full range.

The encoding is recorded in every engine manifest and checked when the engine loads. Backends by name
(``dis``, ``torch-tvl1``...) come from :func:`aunets.core.flow_registry.create_flow_backend`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal, Protocol, runtime_checkable

import cv2
import numpy as np

from aunets.core.errors import ConfigError

FlowEncoding = Literal["paper", "aunets_original"]
FLOW_ENCODINGS: tuple[str, ...] = ("paper", "aunets_original")


@runtime_checkable
class FlowBackend(Protocol):
    """Computes dense flow from ``prev`` to ``cur``.

    Both inputs are ``uint8`` grayscale HxW images of equal size. Returns ``float32`` HxWx2 (u, v) in
    pixels: ``cur(x + u, y + v) ~ prev(x, y)``.
    """

    name: str

    def compute(self, prev: np.ndarray, cur: np.ndarray) -> np.ndarray: ...


@runtime_checkable
class BatchFlowBackend(FlowBackend, Protocol):
    """A backend that computes several pairs in one call (the torch TV-L1 backends): lists of N ``uint8``
    HxW images (all of one size) -> N ``float32`` HxWx2 flows, as N calls of ``compute`` would."""

    def compute_batch(self, prevs: Sequence[np.ndarray], curs: Sequence[np.ndarray]) -> list[np.ndarray]: ...


def compute_flows(backend: FlowBackend, prevs: Sequence[np.ndarray], curs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Flow of every pair (one per face of a frame): one batched call where the backend has one (see
    :class:`BatchFlowBackend`), else one ``compute`` per pair (DIS and Farneback work on one pair at a time)."""
    if len(prevs) != len(curs):
        raise ValueError(f"{len(prevs)} previous crops but {len(curs)} current ones")
    if not prevs:
        return []
    if len(prevs) > 1 and isinstance(backend, BatchFlowBackend):
        return backend.compute_batch(prevs, curs)
    return [backend.compute(p, c) for p, c in zip(prevs, curs, strict=True)]


class DISFlow:
    """OpenCV's DIS optical flow (CPU default). ``preset`` is ``ultrafast``, ``fast`` or ``medium``."""

    _PRESETS: ClassVar[dict[str, int]] = {
        "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
        "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
        "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
    }

    def __init__(self, preset: str = "fast") -> None:
        if preset not in self._PRESETS:
            raise ConfigError(f"unknown DIS preset {preset!r}; choose one of {sorted(self._PRESETS)}")
        self.name = f"dis-{preset}"
        self._dis = cv2.DISOpticalFlow.create(self._PRESETS[preset])

    def compute(self, prev: np.ndarray, cur: np.ndarray) -> np.ndarray:
        check_pair(prev, cur)
        flow = self._dis.calc(prev, cur, None)  # type: ignore[call-overload]
        return np.asarray(flow, dtype=np.float32)


class FarnebackFlow:
    """OpenCV's Farneback polynomial-expansion flow (CPU alternative, slower than DIS)."""

    name = "farneback"

    def compute(self, prev: np.ndarray, cur: np.ndarray) -> np.ndarray:
        check_pair(prev, cur)
        flow = cv2.calcOpticalFlowFarneback(prev, cur, None, 0.5, 3, 15, 3, 5, 1.2, 0)  # type: ignore[call-overload]
        return np.asarray(flow, dtype=np.float32)


def check_pair(prev: np.ndarray, cur: np.ndarray) -> None:
    """What every backend needs: two ``uint8`` grayscale HxW images of equal size, each one C-contiguous."""
    if prev.shape != cur.shape or prev.ndim != 2 or prev.dtype != np.uint8 or cur.dtype != np.uint8:
        raise ValueError(
            f"flow needs two uint8 grayscale images of equal size, got {prev.shape} {prev.dtype} "
            f"and {cur.shape} {cur.dtype}"
        )
    for name, image in (("prev", prev), ("cur", cur)):
        if not image.flags.c_contiguous:
            raise ValueError(
                f"flow needs C-contiguous images, but {name} is a strided view (e.g. a slice of a frame); "
                f"pass np.ascontiguousarray({name}) or a crop from aunets.core.crop.crop_square"
            )


@dataclass(frozen=True)
class FlowConfig:
    """How flow is computed and encoded. Saved in every engine manifest.

    ``clip_fraction``: motion (in crop pixels) that saturates the ``paper`` encoding, as a fraction of the
    crop width (0.02 of 224 px = 4.5 px per frame).
    """

    backend: str = "dis"
    encoding: FlowEncoding = "paper"
    clip_fraction: float = 0.02

    def __post_init__(self) -> None:
        if self.encoding not in FLOW_ENCODINGS:
            raise ConfigError(f"unknown flow encoding {self.encoding!r}; choose one of {FLOW_ENCODINGS}")
        if not 0 < self.clip_fraction <= 1:
            raise ConfigError(f"flow clip_fraction must be in (0, 1], got {self.clip_fraction}")


def encode_flow(flow: np.ndarray, encoding: str = "paper", clip_fraction: float = 0.02) -> np.ndarray:
    """Encode ``float32`` HxWx2 flow (pixels) as a ``uint8`` HxWx3 RGB image; see the module docstring."""
    if flow.ndim != 3 or flow.shape[2] != 2:
        raise ValueError(f"flow must be HxWx2, got shape {flow.shape}")
    u = flow[..., 0]
    v = flow[..., 1]
    out = np.empty((*flow.shape[:2], 3), dtype=np.uint8)
    if encoding == "paper":
        scale = 1.0 / (clip_fraction * flow.shape[1])
        out[..., 0] = np.rint(128.0 + 127.0 * np.clip(u * scale, -1.0, 1.0))
        out[..., 1] = np.rint(128.0 + 127.0 * np.clip(v * scale, -1.0, 1.0))
        out[..., 2] = np.rint(255.0 * np.clip(cv2.magnitude(u, v) * scale, 0.0, 1.0))
    elif encoding == "aunets_original":
        for channel, comp in ((0, u), (1, -v)):
            peak = float(np.max(np.abs(comp)))
            out[..., channel] = np.rint(128.0 + 127.0 * comp / peak) if peak > 1e-6 else 128
        out[..., 2] = 0
    else:
        raise ConfigError(f"unknown flow encoding {encoding!r}; choose one of {FLOW_ENCODINGS}")
    return out


def flow_image(prev_crop: np.ndarray, cur_crop: np.ndarray, backend: FlowBackend, config: FlowConfig) -> np.ndarray:
    """Flow image (``uint8`` HxWx3 RGB) between two BGR or grayscale crops of the same size."""
    prev = prev_crop if prev_crop.ndim == 2 else cv2.cvtColor(prev_crop, cv2.COLOR_BGR2GRAY)
    cur = cur_crop if cur_crop.ndim == 2 else cv2.cvtColor(cur_crop, cv2.COLOR_BGR2GRAY)
    return encode_flow(backend.compute(prev, cur), config.encoding, config.clip_fraction)
