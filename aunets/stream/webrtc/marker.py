"""Frame ids drawn into the video, so results can be matched to the browser frame they came from.

The page draws each camera frame into a canvas that is :data:`STRIP_ROWS` rows taller than the video and
paints a strip of black/white cells above it: :data:`CELLS` cells of equal width, two guards (white, black)
then :data:`ID_BITS` bits of the frame id (MSB first) then :data:`CHECK_BITS` check bits. The server reads the
id back from the decoded frame and strips those rows off before the pipeline sees the image, so the face
box is in camera pixels. Cells are whole macroblock rows high and ~26 px wide at 640 px, which survives
VP8/H.264 at any usable bitrate; a frame whose check bits do not match gets id ``None`` (no latency sample).
``static/app.js`` implements the same layout: keep the two in step.
"""

from __future__ import annotations

import numpy as np

STRIP_ROWS = 16
"""Rows of the id strip above the video, at the canvas's size (scaled if the encoder downscales)."""
ID_BITS = 18
CHECK_BITS = 4
CELLS = 2 + ID_BITS + CHECK_BITS
ID_MODULUS = 1 << ID_BITS


def check_bits(frame_id: int) -> int:
    """The 4 check bits of an id: XOR of its nibbles."""
    value = 0
    for shift in range(0, ID_BITS, 4):
        value ^= (frame_id >> shift) & 0xF
    return value


def cell_bits(frame_id: int) -> list[int]:
    """0/1 value of each cell (1 = white), guards included."""
    frame_id %= ID_MODULUS
    bits = [1, 0]
    bits += [(frame_id >> (ID_BITS - 1 - i)) & 1 for i in range(ID_BITS)]
    check = check_bits(frame_id)
    bits += [(check >> (CHECK_BITS - 1 - i)) & 1 for i in range(CHECK_BITS)]
    return bits


def strip_rows(frame_height: int, canvas_height: int | None) -> int:
    """Rows of the strip in a received frame of ``frame_height`` rows when the page drew ``canvas_height``."""
    if not canvas_height:
        return STRIP_ROWS
    return max(1, round(STRIP_ROWS * frame_height / canvas_height))


def draw_marker(image: np.ndarray, frame_id: int) -> np.ndarray:
    """A copy of ``image`` (uint8 HxWx3) with the strip prepended: (H + STRIP_ROWS) x W x 3. For tests."""
    h, w = image.shape[:2]
    out = np.zeros((h + STRIP_ROWS, w, 3), dtype=np.uint8)
    out[STRIP_ROWS:] = image
    edges = np.linspace(0, w, CELLS + 1).round().astype(int)
    for i, bit in enumerate(cell_bits(frame_id)):
        out[:STRIP_ROWS, edges[i] : edges[i + 1]] = 255 * bit
    return out


def read_marker(image: np.ndarray, rows: int = STRIP_ROWS) -> int | None:
    """The frame id in the top ``rows`` rows of ``image`` (uint8 HxWx3 or HxW), or None if unreadable.

    Each cell is read from its centre (half its width and height) to stay clear of compression ringing at
    cell edges; the threshold is halfway between the white and the black guard.
    """
    strip = image[:rows].mean(axis=2) if image.ndim == 3 else image[:rows].astype(np.float32)
    w = strip.shape[1]
    edges = np.linspace(0, w, CELLS + 1)
    y0, y1 = rows // 4, max(rows // 4 + 1, rows - rows // 4)
    means = []
    for i in range(CELLS):
        x0, x1 = edges[i], edges[i + 1]
        q = (x1 - x0) / 4
        means.append(float(strip[y0:y1, int(x0 + q) : max(int(x0 + q) + 1, int(x1 - q))].mean()))
    white, black = means[0], means[1]
    if white - black < 64:
        return None
    threshold = (white + black) / 2
    bits = [int(m > threshold) for m in means[2:]]
    frame_id = 0
    for b in bits[:ID_BITS]:
        frame_id = (frame_id << 1) | b
    check = 0
    for b in bits[ID_BITS:]:
        check = (check << 1) | b
    return frame_id if check == check_bits(frame_id) else None
