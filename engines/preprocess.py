"""Turning a face crop and its flow image into the detector's input tensor (shared by runtime and training)."""

from __future__ import annotations

import cv2
import numpy as np

from engines.manifest import InputSpec


def compose_input(rgb: np.ndarray | None, flow: np.ndarray | None, spec: InputSpec) -> np.ndarray:
    """Build one detector input sample.

    ``rgb``: ``uint8`` HxWx3 face crop in **RGB** order; ``flow``: ``uint8`` HxWx3 flow image (see
    :mod:`stream.flow`). Either is resized to ``spec.height x spec.width`` if needed and may be ``None`` when
    the fusion does not use it. Returns ``float32`` (C, H, W) per ``spec.fusion``, normalised with
    ``(x - mean) / std`` (RGB order, 0..255 scale).
    """
    parts: list[np.ndarray] = []
    if spec.fusion in ("rgb", "channels", "horizontal"):
        if rgb is None:
            raise ValueError(f"fusion {spec.fusion!r} needs the RGB crop")
        parts.append(_fit(rgb, spec))
    if spec.fusion in ("flow", "channels", "horizontal"):
        if flow is None:
            raise ValueError(f"fusion {spec.fusion!r} needs the flow image")
        parts.append(_fit(flow, spec))
    axis = 1 if spec.fusion == "horizontal" else 2
    image = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=axis)
    return normalise(image, spec)


def normalise(image: np.ndarray, spec: InputSpec) -> np.ndarray:
    """``uint8`` HxWxC (C a multiple of 3, RGB order) -> ``float32`` CxHxW, ``(x - mean) / std``."""
    reps = image.shape[2] // 3
    mean = np.tile(np.asarray(spec.mean, dtype=np.float32), reps)
    inv_std = np.tile(1.0 / np.asarray(spec.std, dtype=np.float32), reps)
    out = (image.astype(np.float32) - mean) * inv_std
    return np.ascontiguousarray(out.transpose(2, 0, 1))


def _fit(image: np.ndarray, spec: InputSpec) -> np.ndarray:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected a uint8 HxWx3 image, got {image.shape} {image.dtype}")
    if image.shape[:2] != (spec.height, spec.width):
        image = cv2.resize(image, (spec.width, spec.height), interpolation=cv2.INTER_AREA)
    return image
