"""Drawing explanations: each AU's map coloured from blue (no effect) to red (its maximum) over the face crop,
tiles with the AU's name and probability, sheets of all AUs with a colour bar, and the PNG/NPZ/JSON files
``aunets explain`` writes. Images are RGB ``uint8`` (H, W, 3); maps ``float32`` (H, W) as
:mod:`aunets.stream.explain` makes them."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from aunets.core.au import AU_NAMES
from aunets.core.errors import ConfigError
from aunets.stream.explain import ExplainConfig, Explanation
from aunets.stream.outputs import replace_when_whole, write_json


def colourise(heat: np.ndarray, vmax: float | None = None) -> np.ndarray:
    """``float`` (H, W) -> ``uint8`` (H, W, 3) RGB, blue (0 or less) to red (``vmax``; None: the map's max)."""
    top = float(heat.max()) if vmax is None else vmax
    norm = np.clip(heat / top, 0.0, 1.0) if top > 0 else np.zeros_like(heat)
    return cv2.cvtColor(cv2.applyColorMap((norm * 255).astype(np.uint8), cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)


OCCLUSION_FLOOR = 0.1
"""Occlusion tiles are coloured up to max(the map's largest drop, this): a map whose patches never move the
probability by 0.1 stays blue instead of painting its noise red."""


def draw_overlay(image: np.ndarray, heat: np.ndarray, size: int | None = None, vmax: float | None = None,
                 alpha: tuple[float, float] = (0.3, 0.7)) -> np.ndarray:
    """The heat map over ``image`` (``uint8`` (H, W, 3) RGB; a crop, or a grey copy for the flow half):
    ``uint8`` (size, size, 3) RGB (size None: the image's own). The colour's weight grows from ``alpha[0]``
    (no effect: the crop shows through) to ``alpha[1]`` (``vmax``; None: the map's maximum)."""
    side = size or image.shape[0]
    base = cv2.resize(image, (side, side), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    h = cv2.resize(heat.astype(np.float32), (side, side), interpolation=cv2.INTER_LINEAR)
    top = float(h.max()) if vmax is None else vmax
    norm = np.clip(h / top, 0.0, 1.0) if top > 0 else np.zeros_like(h)
    a = (alpha[0] + (alpha[1] - alpha[0]) * norm)[..., None]
    return np.clip((1 - a) * base + a * colourise(h, top), 0, 255).astype(np.uint8)


def _text(img: np.ndarray, text: str, xy: tuple[int, int], scale: float = 0.45,
          colour: tuple[int, int, int] = (0, 0, 0), bold: int = 1) -> None:
    cv2.putText(img, text, xy, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, bold, cv2.LINE_AA)


def _grey(crop: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)


def draw_tile(ex: Explanation, au: int, size: int = 192) -> np.ndarray:
    """One AU's tile, ``uint8`` RGB: a header (AU, name, probability), the RGB map over the crop (``size`` px)
    and, for flow engines, the flow map over a grey copy of the crop (half size) with the maps' maxima."""
    i = ex.aus.index(au)
    unit = "drop" if ex.method == "occlusion" else "cam"
    side = size // 2
    width = size + (side if ex.flow is not None else 0)
    k = max(1.0, size / 192)  # text grows with the tile
    head = round(38 * k)
    tile = np.full((size + head, width, 3), 255, np.uint8)
    _text(tile, f"AU{au}", (4, round(15 * k)), 0.5 * k, bold=2)
    _text(tile, AU_NAMES.get(au, "")[:30], (round(48 * k), round(15 * k)), 0.4 * k)
    rmax = float(ex.rgb[i].max())
    _text(tile, f"p={ex.probabilities[i]:.2f}  max {unit} {rmax:.2f}" if ex.method == "occlusion"
          else f"p={ex.probabilities[i]:.2f}", (4, round(32 * k)), 0.4 * k)  # fmt: skip
    fmax = float(ex.flow[i].max()) if ex.flow is not None else 0.0
    if ex.method == "occlusion":
        rscale, fscale = max(rmax, OCCLUSION_FLOOR), max(fmax, OCCLUSION_FLOOR)
    else:  # one network, one input: both halves on the map's common maximum
        rscale = fscale = max(rmax, fmax)
    tile[head:, :size] = draw_overlay(ex.crop, ex.rgb[i], size, vmax=rscale)
    if ex.flow is not None:
        tile[head : head + side, size:] = draw_overlay(_grey(ex.crop), ex.flow[i], side, vmax=fscale)
        y = head + side
        lines = ["flow half", f"max {unit}", f"{fmax:.2f}"] if ex.method == "occlusion" \
            else ["flow half", "same scale", "as RGB"]  # fmt: skip
        for n, line in enumerate(lines):
            _text(tile, line, (size + 4, y + round((18 + 20 * n) * k)), 0.4 * k)
    return tile


def _colour_bar(width: int, method: str) -> np.ndarray:
    bar = np.full((40, width, 3), 255, np.uint8)
    w = min(360, width - 340)
    ramp = colourise(np.tile(np.linspace(0, 1, w, dtype=np.float32), (12, 1)), 1.0)
    bar[6:18, 10 : 10 + w] = ramp
    _text(bar, "no effect", (10, 34), 0.4)
    top = f"max(tile's max drop, {OCCLUSION_FLOOR})" if method == "occlusion" else "tile's maximum"
    (tw, _), _ = cv2.getTextSize(top, cv2.FONT_HERSHEY_SIMPLEX, 0.4, 1)
    _text(bar, top, (10 + w - tw, 34), 0.4)
    note = ("red: occluding there lowers the AU's probability p" if method == "occlusion"
            else "red: Grad-CAM of the AU's logit, last conv block")  # fmt: skip
    _text(bar, note, (w + 30, 16), 0.45)
    return bar


def draw_sheet(ex: Explanation, columns: int = 4, size: int = 192, title: str = "") -> np.ndarray:
    """Every AU's tile in a grid (``columns`` per row) under a title and over a colour bar: ``uint8`` RGB."""
    what = (f"occlusion, patch {ex.extra.get('patch')} px stride {ex.extra.get('stride')} px"
            if ex.method == "occlusion" else f"Grad-CAM ({ex.extra.get('layers', 1)} blocks of "
                 f"{' and '.join('x'.join(map(str, c)) for c in ex.extra.get('cells', []))} cells)")
    return compose_sheet([draw_tile(ex, a, size) for a in ex.aus], ex.method,
                         f"{title}  {what}, view {ex.view}".strip(), columns)  # fmt: skip


def compose_sheet(tiles: Sequence[np.ndarray], method: str, title: str, columns: int = 4) -> np.ndarray:
    """Tiles of equal size (``draw_tile``) in a grid under ``title`` and over the colour bar: ``uint8`` RGB."""
    th, tw = tiles[0].shape[:2]
    cols = min(columns, len(tiles))
    rows = -(-len(tiles) // cols)
    gap = 6
    grid = np.full((rows * (th + gap), cols * (tw + gap) + gap, 3), 255, np.uint8)
    for k, t in enumerate(tiles):
        r, c = divmod(k, cols)
        grid[r * (th + gap) : r * (th + gap) + th, gap + c * (tw + gap) : gap + c * (tw + gap) + tw] = t
    width = max(grid.shape[1], 720)
    if grid.shape[1] < width:
        grid = np.pad(grid, ((0, 0), (0, width - grid.shape[1]), (0, 0)), constant_values=255)
    header = np.full((30, width, 3), 255, np.uint8)
    _text(header, title, (8, 20), 0.5, bold=1)
    return np.concatenate([header, grid, _colour_bar(width, method)], axis=0)


def save_png(path: Path, rgb: np.ndarray) -> None:
    """Write an RGB ``uint8`` image (PNG or JPEG by the suffix); raises ConfigError naming the path on failure."""
    with replace_when_whole(path, "explain output") as tmp:  # renamed into place when whole
        if not cv2.imwrite(str(tmp), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
            raise ConfigError(f"cannot write {path}; check that its folder is writable")


def save_explanation(out: Path, stem: str, ex: Explanation, title: str = "") -> dict[str, Any]:
    """Write ``stem_sheet.png``, one ``stem_AUxx.png`` per AU and ``stem_maps.npz`` (the raw maps) under ``out``;
    returns a JSON-able summary (probabilities, upper/lower mass fractions of each RGB map)."""
    out.mkdir(parents=True, exist_ok=True)
    save_png(out / f"{stem}_sheet.png", draw_sheet(ex, title=title))
    for a in ex.aus:
        save_png(out / f"{stem}_AU{a:02d}.png", compose_sheet([draw_tile(ex, a, size=320)], ex.method, title))
    arrays: dict[str, np.ndarray] = {"crop": ex.crop, "rgb": ex.rgb, "aus": np.array(ex.aus),
                                     "probabilities": ex.probabilities}  # fmt: skip
    if ex.flow is not None:
        arrays["flow"] = ex.flow
    if ex.flow_image is not None:
        arrays["flow_image"] = ex.flow_image
    np.savez_compressed(out / f"{stem}_maps.npz", **arrays)  # type: ignore[arg-type]
    return {
        "frame": ex.frame_index,
        "box": list(ex.box) if ex.box else None,
        "view": ex.view,
        "probabilities": {str(a): round(float(p), 4) for a, p in zip(ex.aus, ex.probabilities, strict=True)},
        "rgb_mass": {str(a): {k: round(v, 4) for k, v in ex.mass_fractions(a).items()} for a in ex.aus},
        **ex.extra,
    }


def write_config(out: Path, config: ExplainConfig, extra: dict[str, Any]) -> Path:
    """``explain.json`` beside the outputs: the configuration and what was computed."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "explain.json"
    write_json(path, json.dumps({"config": config.to_json(), **extra}, indent=2), "explain output")
    return path
