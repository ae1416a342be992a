"""Dense, smooth warp of a photo from moved landmarks: piecewise-affine on a fixed triangulation.

The triangulation (Delaunay, :func:`triangulate`) is made once per person on the neutral landmarks plus anchor
points (a ring outside the face and the frame border), so it never changes topology between frames. Per frame
:func:`backward_maps` rasterises the *moved* triangles and writes, for each output pixel, where to sample the
source photo (``cv2.remap`` maps); pixels outside every triangle sample themselves. Points are (x, y) pixels with
pixel centres at integer + 0.5. JIT-compiled with numba (the ``synth`` extra).
"""

from __future__ import annotations

import cv2
import numpy as np

from aunets.core.errors import MissingExtraError

try:
    from numba import njit
except ImportError as exc:  # pragma: no cover - numba is a dependency of the generator
    raise MissingExtraError("numba", "synth") from exc


def triangulate(points: np.ndarray, width: int, height: int) -> np.ndarray:
    """Delaunay triangles (T, 3) int32 of points (N, 2) px inside a ``width`` x ``height`` frame (points outside
    are clipped into it for the triangulation only; near-duplicate points are nudged apart)."""
    pts = np.asarray(points, np.float64)[:, :2].copy()
    pts[:, 0] = np.clip(pts[:, 0], 0.0, width - 1e-3)
    pts[:, 1] = np.clip(pts[:, 1], 0.0, height - 1e-3)
    pts = pts.astype(np.float32)
    index: dict[tuple[float, float], int] = {}
    rng = np.random.default_rng(0)
    for i in range(len(pts)):
        key = (float(pts[i, 0]), float(pts[i, 1]))
        while key in index:  # coincident points (e.g. closed lips): move the later one a hair
            pts[i] += rng.uniform(-0.01, 0.01, 2).astype(np.float32)
            key = (float(pts[i, 0]), float(pts[i, 1]))
        index[key] = i
    subdiv = cv2.Subdiv2D((0, 0, width, height))
    subdiv.insert([(float(x), float(y)) for x, y in pts])
    tris = []
    for t in subdiv.getTriangleList():
        ids = [index.get((float(np.float32(t[2 * j])), float(np.float32(t[2 * j + 1])))) for j in range(3)]
        if all(i is not None for i in ids):
            tris.append(ids)
    return np.asarray(tris, np.int32).reshape(-1, 3)


@njit(cache=True, fastmath=True)
def _fill_maps(
    map_x: np.ndarray, map_y: np.ndarray, dst: np.ndarray, src: np.ndarray, tris: np.ndarray, x0: int, y0: int
) -> None:  # pragma: no cover - jitted
    h, w = map_x.shape
    for t in range(tris.shape[0]):
        i0, i1, i2 = tris[t, 0], tris[t, 1], tris[t, 2]
        ax, ay = dst[i0, 0] - x0, dst[i0, 1] - y0
        bx, by = dst[i1, 0] - x0, dst[i1, 1] - y0
        cx, cy = dst[i2, 0] - x0, dst[i2, 1] - y0
        area = (bx - ax) * (cy - ay) - (by - ay) * (cx - ax)
        if abs(area) < 1e-9:
            continue
        inv = 1.0 / area
        xmin = max(0, int(np.floor(min(ax, bx, cx))))
        xmax = min(w - 1, int(np.ceil(max(ax, bx, cx))))
        ymin = max(0, int(np.floor(min(ay, by, cy))))
        ymax = min(h - 1, int(np.ceil(max(ay, by, cy))))
        for y in range(ymin, ymax + 1):
            py = y + 0.5
            for x in range(xmin, xmax + 1):
                px = x + 0.5
                w1 = ((px - ax) * (cy - ay) - (py - ay) * (cx - ax)) * inv
                w2 = ((bx - ax) * (py - ay) - (by - ay) * (px - ax)) * inv
                w0 = 1.0 - w1 - w2
                if w0 < -1e-4 or w1 < -1e-4 or w2 < -1e-4:
                    continue
                sx = w0 * src[i0, 0] + w1 * src[i1, 0] + w2 * src[i2, 0]
                sy = w0 * src[i0, 1] + w1 * src[i1, 1] + w2 * src[i2, 1]
                map_x[y, x] = sx - 0.5
                map_y[y, x] = sy - 0.5


def backward_maps(
    dst: np.ndarray, src: np.ndarray, tris: np.ndarray, roi: tuple[int, int, int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """``cv2.remap`` maps (h, w) float32 for the output window ``roi`` = (x0, y0, w, h) px: output pixel (x, y)
    samples the source at ``map[y - y0, x - x0]`` (source px, absolute). ``dst`` (N, 2) moved points, ``src`` (N, 2)
    the same points in the source image, ``tris`` (T, 3). Outside every triangle a pixel samples itself."""
    x0, y0, w, h = roi
    gx, gy = np.meshgrid(np.arange(x0, x0 + w, dtype=np.float32), np.arange(y0, y0 + h, dtype=np.float32))
    _fill_maps(gx, gy, np.ascontiguousarray(dst[:, :2], np.float32), np.ascontiguousarray(src[:, :2], np.float32),
               np.ascontiguousarray(tris, np.int32), int(x0), int(y0))  # fmt: skip
    return gx, gy


def warp_window(
    image: np.ndarray, dst: np.ndarray, src: np.ndarray, tris: np.ndarray, roi: tuple[int, int, int, int]
) -> np.ndarray:
    """``image`` (H, W, C) with the window ``roi`` = (x0, y0, w, h) replaced by the warp that moves ``src`` points
    to ``dst``; returns a new image. The triangulation should put fixed anchors on the window border."""
    x0, y0, w, h = roi
    mx, my = backward_maps(dst, src, tris, roi)
    out = image.copy()
    out[y0 : y0 + h, x0 : x0 + w] = cv2.remap(image, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return out
