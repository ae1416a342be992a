"""Z-buffered triangle rasteriser with per-pixel attribute interpolation, JIT-compiled with numba (CPU).

Two passes (deferred shading): :func:`rasterize` writes, per pixel, the nearest front-facing triangle and two
barycentric weights; :func:`shade` interpolates per-vertex attributes (Gouraud lighting) and a UV detail
texture only for the visible pixels. Pixel centres are at integer + 0.5. Single-threaded: the generator
parallelises over processes.
"""

from __future__ import annotations

import numpy as np

from stream.errors import MissingExtraError

try:
    from numba import njit
except ImportError as exc:  # pragma: no cover - numba is a dependency of the generator
    raise MissingExtraError("numba", "synth") from exc


@njit(cache=True, fastmath=True)
def vertex_normals(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:  # pragma: no cover - jitted
    """Area-weighted unit vertex normals (V, 3) float32 of a mesh; triangles wind CCW seen from outside."""
    n = np.zeros((verts.shape[0], 3), np.float32)
    for f in range(faces.shape[0]):
        a, b, c = faces[f, 0], faces[f, 1], faces[f, 2]
        e1x, e1y, e1z = verts[b, 0] - verts[a, 0], verts[b, 1] - verts[a, 1], verts[b, 2] - verts[a, 2]
        e2x, e2y, e2z = verts[c, 0] - verts[a, 0], verts[c, 1] - verts[a, 1], verts[c, 2] - verts[a, 2]
        nx = e1y * e2z - e1z * e2y
        ny = e1z * e2x - e1x * e2z
        nz = e1x * e2y - e1y * e2x
        for v in (a, b, c):
            n[v, 0] += nx
            n[v, 1] += ny
            n[v, 2] += nz
    for v in range(n.shape[0]):
        norm = np.sqrt(n[v, 0] ** 2 + n[v, 1] ** 2 + n[v, 2] ** 2) + 1e-12
        n[v, 0] /= norm
        n[v, 1] /= norm
        n[v, 2] /= norm
    return n


@njit(cache=True, fastmath=True)
def vertex_area(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:  # pragma: no cover - jitted
    """Per-vertex sum of adjacent triangle areas (V,) float32, in squared mesh units."""
    out = np.zeros(verts.shape[0], np.float32)
    for f in range(faces.shape[0]):
        a, b, c = faces[f, 0], faces[f, 1], faces[f, 2]
        e1x, e1y, e1z = verts[b, 0] - verts[a, 0], verts[b, 1] - verts[a, 1], verts[b, 2] - verts[a, 2]
        e2x, e2y, e2z = verts[c, 0] - verts[a, 0], verts[c, 1] - verts[a, 1], verts[c, 2] - verts[a, 2]
        nx = e1y * e2z - e1z * e2y
        ny = e1z * e2x - e1x * e2z
        nz = e1x * e2y - e1y * e2x
        area = 0.5 * np.sqrt(nx * nx + ny * ny + nz * nz)
        out[a] += area
        out[b] += area
        out[c] += area
    return out


@njit(cache=True, fastmath=True)
def rasterize(
    px: np.ndarray, depth: np.ndarray, faces: np.ndarray, draw: np.ndarray, height: int, width: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # pragma: no cover - jitted
    """Z-buffer pass.

    px (V, 2) float32 pixel coordinates (x right, y down); depth (V,) float32 distance from the camera (smaller
    is nearer); faces (F, 3) int32; draw (F,) bool. Triangles that are clockwise on screen (back faces of a CCW
    mesh seen with y down) are culled. Returns tri (H, W) int32 (-1 = empty), b1, b2 (H, W) float32: barycentric
    weights of corners 1 and 2 (corner 0 gets 1 - b1 - b2).
    """
    tri = np.full((height, width), -1, np.int32)
    zbuf = np.full((height, width), np.inf, np.float32)
    b1 = np.zeros((height, width), np.float32)
    b2 = np.zeros((height, width), np.float32)
    for f in range(faces.shape[0]):
        if not draw[f]:
            continue
        i0, i1, i2 = faces[f, 0], faces[f, 1], faces[f, 2]
        x0, y0 = px[i0, 0], px[i0, 1]
        x1, y1 = px[i1, 0], px[i1, 1]
        x2, y2 = px[i2, 0], px[i2, 1]
        area = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)
        if area >= 0.0:  # CCW in 3D (y up) is negative here (y down): cull the rest
            continue
        inv = 1.0 / area
        xmin = max(int(np.floor(min(x0, min(x1, x2)))), 0)
        xmax = min(int(np.ceil(max(x0, max(x1, x2)))), width - 1)
        ymin = max(int(np.floor(min(y0, min(y1, y2)))), 0)
        ymax = min(int(np.ceil(max(y0, max(y1, y2)))), height - 1)
        if xmin > xmax or ymin > ymax:
            continue
        z0, z1, z2 = depth[i0], depth[i1], depth[i2]
        for y in range(ymin, ymax + 1):
            py = y + 0.5
            for x in range(xmin, xmax + 1):
                pxx = x + 0.5
                w1 = ((pxx - x0) * (y2 - y0) - (x2 - x0) * (py - y0)) * inv
                w2 = ((x1 - x0) * (py - y0) - (pxx - x0) * (y1 - y0)) * inv
                w0 = 1.0 - w1 - w2
                if w0 < -1e-6 or w1 < -1e-6 or w2 < -1e-6:
                    continue
                z = w0 * z0 + w1 * z1 + w2 * z2
                if z < zbuf[y, x]:
                    zbuf[y, x] = z
                    tri[y, x] = f
                    b1[y, x] = w1
                    b2[y, x] = w2
    return tri, b1, b2


@njit(cache=True, fastmath=True)
def shade(
    tri: np.ndarray,
    b1: np.ndarray,
    b2: np.ndarray,
    faces: np.ndarray,
    face_uv: np.ndarray,
    uv: np.ndarray,
    albedo: np.ndarray,
    light: np.ndarray,
    spec: np.ndarray,
    face_textured: np.ndarray,
    texture: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - jitted
    """Shading pass: ``albedo * detail(u, v) * light + spec`` at every covered pixel.

    albedo, light (V, 3) float32 linear RGB; spec (V,) float32; face_textured (F,) bool: triangles whose UVs in
    tile 0 (u, v in [0, 1)) look up ``texture`` (TH, TW, 3) float32, a multiplicative albedo detail map (bilinear,
    v = 0 at the bottom row). Returns image (H, W, 3) float32 and coverage (H, W) float32 in {0, 1}.
    """
    h, w = tri.shape
    th, tw = texture.shape[0], texture.shape[1]
    img = np.zeros((h, w, 3), np.float32)
    cov = np.zeros((h, w), np.float32)
    for y in range(h):
        for x in range(w):
            f = tri[y, x]
            if f < 0:
                continue
            cov[y, x] = 1.0
            w1 = b1[y, x]
            w2 = b2[y, x]
            w0 = 1.0 - w1 - w2
            i0, i1, i2 = faces[f, 0], faces[f, 1], faces[f, 2]
            d0 = 1.0
            d1 = 1.0
            d2 = 1.0
            if face_textured[f]:
                t0, t1, t2 = face_uv[f, 0], face_uv[f, 1], face_uv[f, 2]
                u = w0 * uv[t0, 0] + w1 * uv[t1, 0] + w2 * uv[t2, 0]
                v = w0 * uv[t0, 1] + w1 * uv[t1, 1] + w2 * uv[t2, 1]
                if 0.0 <= u < 1.0 and 0.0 <= v < 1.0:
                    fx = u * tw - 0.5
                    fy = (1.0 - v) * th - 0.5
                    ix = min(max(int(np.floor(fx)), 0), tw - 2)
                    iy = min(max(int(np.floor(fy)), 0), th - 2)
                    ax = min(max(fx - ix, 0.0), 1.0)
                    ay = min(max(fy - iy, 0.0), 1.0)
                    c00 = (1 - ax) * (1 - ay)
                    c01 = ax * (1 - ay)
                    c10 = (1 - ax) * ay
                    c11 = ax * ay
                    d0 = (
                        c00 * texture[iy, ix, 0]
                        + c01 * texture[iy, ix + 1, 0]
                        + c10 * texture[iy + 1, ix, 0]
                        + c11 * texture[iy + 1, ix + 1, 0]
                    )
                    d1 = (
                        c00 * texture[iy, ix, 1]
                        + c01 * texture[iy, ix + 1, 1]
                        + c10 * texture[iy + 1, ix, 1]
                        + c11 * texture[iy + 1, ix + 1, 1]
                    )
                    d2 = (
                        c00 * texture[iy, ix, 2]
                        + c01 * texture[iy, ix + 1, 2]
                        + c10 * texture[iy + 1, ix, 2]
                        + c11 * texture[iy + 1, ix + 1, 2]
                    )
            s = w0 * spec[i0] + w1 * spec[i1] + w2 * spec[i2]
            for c in range(3):
                a = w0 * albedo[i0, c] + w1 * albedo[i1, c] + w2 * albedo[i2, c]
                li = w0 * light[i0, c] + w1 * light[i1, c] + w2 * light[i2, c]
                d = d0 if c == 0 else (d1 if c == 1 else d2)
                img[y, x, c] = a * d * li + s
    return img, cov
