"""The per-vertex stage of the synthetic renderer, JIT-compiled with numba (CPU).

Per frame: :func:`blend_shapes` adds the active blendshapes (sparse, only the vertices they move);
:func:`vertex_stage` poses, projects and lights every vertex in one pass (normals and surface compression from one
loop over the triangles, shared with :func:`vertex_area`). :func:`vertex_area` and :func:`near_points` serve
the subject and mouth set-up.
Single-threaded: the generator parallelises over processes.
"""

from __future__ import annotations

import numpy as np

from aunets.core.errors import MissingExtraError

try:
    from numba import njit
except ImportError as exc:  # pragma: no cover - numba is a dependency of the generator
    raise MissingExtraError("numba", "synth") from exc


@njit(cache=True, fastmath=True)
def vertex_area(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:  # pragma: no cover - jitted
    """Per-vertex sum of adjacent triangle areas (V,) float32, in squared mesh units."""
    return _normals_and_areas(verts, faces)[1]


@njit(cache=True, fastmath=True)
def _normals_and_areas(verts: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover
    """One loop over the triangles of ``verts`` (V, 3) float32: per vertex, the sum of its triangles' normals
    (cross products, area-weighted, unnormalised) (V, 3) and of their areas (V,), both float32. The rest areas
    (:func:`vertex_area`) and each frame's (:func:`vertex_stage`) come from this one expression."""
    nv = verts.shape[0]
    nrm = np.zeros((nv, 3), np.float32)
    area = np.zeros(nv, np.float32)
    for f in range(faces.shape[0]):
        a, b, c = faces[f, 0], faces[f, 1], faces[f, 2]
        e1x, e1y, e1z = verts[b, 0] - verts[a, 0], verts[b, 1] - verts[a, 1], verts[b, 2] - verts[a, 2]
        e2x, e2y, e2z = verts[c, 0] - verts[a, 0], verts[c, 1] - verts[a, 1], verts[c, 2] - verts[a, 2]
        nx = e1y * e2z - e1z * e2y
        ny = e1z * e2x - e1x * e2z
        nz = e1x * e2y - e1y * e2x
        ar = 0.5 * np.sqrt(nx * nx + ny * ny + nz * nz)
        for v in (a, b, c):
            nrm[v, 0] += nx
            nrm[v, 1] += ny
            nrm[v, 2] += nz
            area[v] += ar
    return nrm, area


@njit(cache=True, fastmath=True)
def blend_shapes(
    base: np.ndarray, weights: np.ndarray, ptr: np.ndarray, vert: np.ndarray, delta: np.ndarray
) -> np.ndarray:  # pragma: no cover - jitted
    """``base`` (V, 3) float32 plus the blendshapes with non-zero ``weights`` (K,), stored sparsely (CSR): shape k
    moves vertices ``vert[ptr[k]:ptr[k + 1]]`` by ``delta[ptr[k]:ptr[k + 1]]`` (N, 3) float32. Returns (V, 3)."""
    out = base.copy()
    for k in range(weights.shape[0]):
        w = np.float32(weights[k])
        if w == 0.0:
            continue
        for j in range(ptr[k], ptr[k + 1]):
            v = vert[j]
            out[v, 0] += w * delta[j, 0]
            out[v, 1] += w * delta[j, 1]
            out[v, 2] += w * delta[j, 2]
    return out


@njit(cache=True, fastmath=True)
def vertex_stage(
    verts: np.ndarray,
    faces: np.ndarray,
    rot: np.ndarray,
    trans: np.ndarray,
    camera_distance: float,
    to_px: np.ndarray,
    rest_area: np.ndarray,
    ldir: np.ndarray,
    half: np.ndarray,
    ambient: np.ndarray,
    colour: np.ndarray,
    intensity: float,
    crease_power: float,
    specular: np.ndarray,
    spec_gain: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:  # pragma: no cover - jitted
    """Pose, project and light the mesh in one pass.

    verts (V, 3) float32 cm (model space); faces (F, 3) int32; rot (3, 3), trans (3,) the head pose; the camera on
    +z at ``camera_distance`` cm; to_px (3,) = (s, ox, oy): pixel = s * (x / depth, -y / depth) + (ox, oy);
    rest_area (V,) neutral vertex areas; ldir, half (3,) unit light and Blinn half vectors (camera space); ambient,
    colour (3,); specular (V,) per-vertex strength, times ``spec_gain``. Lighting: ``(ambient + intensity *
    max(n.l, 0) * colour) * crease``, where crease from the area ratio r = area / rest_area is
    ``clip(r, 0.4, 1) ** crease_power`` when r < 1 else ``1 + 0.15 * clip(r - 1, 0, 0.6)``; specular
    ``specular * spec_gain * max(n.h, 0) ** 24 * min(crease, 1)``. Returns px (V, 2), depth (V,) cm, light (V, 3),
    spec (V,), all float32.
    """
    nv = verts.shape[0]
    nrm, area = _normals_and_areas(verts, faces)
    px = np.empty((nv, 2), np.float32)
    depth = np.empty(nv, np.float32)
    light = np.empty((nv, 3), np.float32)
    spec = np.empty(nv, np.float32)
    s, ox, oy = to_px[0], to_px[1], to_px[2]
    for v in range(nv):
        x, y, z = verts[v, 0], verts[v, 1], verts[v, 2]
        qx = rot[0, 0] * x + rot[0, 1] * y + rot[0, 2] * z + trans[0]
        qy = rot[1, 0] * x + rot[1, 1] * y + rot[1, 2] * z + trans[1]
        qz = rot[2, 0] * x + rot[2, 1] * y + rot[2, 2] * z + trans[2]
        d = np.float32(camera_distance - qz)
        depth[v] = d
        px[v, 0] = s * (qx / d) + ox
        px[v, 1] = s * (-qy / d) + oy
        mx, my, mz = nrm[v, 0], nrm[v, 1], nrm[v, 2]
        inv = 1.0 / (np.sqrt(mx * mx + my * my + mz * mz) + 1e-12)
        mx, my, mz = mx * inv, my * inv, mz * inv
        cx = rot[0, 0] * mx + rot[0, 1] * my + rot[0, 2] * mz
        cy = rot[1, 0] * mx + rot[1, 1] * my + rot[1, 2] * mz
        cz = rot[2, 0] * mx + rot[2, 1] * my + rot[2, 2] * mz
        ndotl = max(cx * ldir[0] + cy * ldir[1] + cz * ldir[2], 0.0)
        ndoth = max(cx * half[0] + cy * half[1] + cz * half[2], 0.0)
        r = area[v] / max(rest_area[v], 1e-9)
        cr = max(r, 0.4) ** crease_power if r < 1.0 else 1.0 + 0.15 * min(r - 1.0, 0.6)
        for ch in range(3):
            light[v, ch] = (ambient[ch] + intensity * ndotl * colour[ch]) * cr
        h3 = ndoth * ndoth * ndoth
        h6 = h3 * h3
        h12 = h6 * h6
        spec[v] = specular[v] * spec_gain * (h12 * h12) * min(cr, 1.0)
    return px, depth, light, spec


@njit(cache=True)
def near_points(points: np.ndarray, targets: np.ndarray, radius: float) -> np.ndarray:  # pragma: no cover - jitted
    """(N,) bool: which of ``points`` (N, 3) lie within ``radius`` of any of ``targets`` (M, 3) (brute force)."""
    out = np.zeros(points.shape[0], np.bool_)
    r2 = radius * radius
    for i in range(points.shape[0]):
        for j in range(targets.shape[0]):
            dx = points[i, 0] - targets[j, 0]
            dy = points[i, 1] - targets[j, 1]
            dz = points[i, 2] - targets[j, 2]
            if dx * dx + dy * dy + dz * dz <= r2:
                out[i] = True
                break
    return out
