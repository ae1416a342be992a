"""crop_square as separable taps (aunets.core.crop_taps): the GPU frame path's crops, checked against OpenCV's."""

from __future__ import annotations

import numpy as np
import pytest

from aunets.core.crop import crop_square
from aunets.core.crop_taps import apply_taps, axis_taps, crop_taps, tap_count
from tests.conftest import clip_frames


@pytest.mark.parametrize("size", [112, 48])
def test_taps_cut_the_crops_crop_square_cuts(size: int) -> None:
    """Random boxes of 5..700 px, inside and across the border of a real frame: every pixel within 2 grey
    levels of crop_square (its halvings round in between), 0.5 on average, no bias."""
    (frame,) = clip_frames(1)
    height, width = frame.shape[:2]
    rng = np.random.default_rng(0)
    diffs = []
    for _ in range(60):
        s = rng.uniform(5, 700)
        box = (rng.uniform(-s / 2, width - s / 2), rng.uniform(-s / 2, height - s / 2), s, s * rng.uniform(0.8, 1.2))
        try:
            ref = crop_square(frame, box, 1.3, size).astype(np.float64)
        except ValueError:  # wholly outside: crop_taps raises the same
            with pytest.raises(ValueError, match="outside"):
                crop_taps([box], 1.3, frame.shape, size)
            continue
        iy, wy, ix, wx, bias = (a[0] for a in crop_taps([box], 1.3, frame.shape, size))
        got = np.round(apply_taps(frame, iy, wy, ix, wx) + bias)
        d = got - ref
        assert np.abs(d).max() <= 2.0 and np.abs(d).mean() < 0.5, (box, np.abs(d).max(), np.abs(d).mean())
        diffs.append(d.mean())
    assert len(diffs) > 30 and abs(float(np.mean(diffs))) < 0.1


def test_taps_are_normalised_and_classes_bound_their_count() -> None:
    for side in (3, 50, 112, 113, 223, 224, 450, 1000):
        idx, w = axis_taps(-7, side, 300, 112)
        assert idx.shape == w.shape == (112, tap_count(side, 112))
        assert idx.min() >= 0 and idx.max() <= 299
        np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-6)
    assert {tap_count(s, 112) for s in range(2, 224)} == {3}
    assert tap_count(224, 112) == 6 and tap_count(1000, 112) == 24
    with pytest.raises(ValueError, match="taps"):
        axis_taps(0, 1000, 2000, 112, taps=3)
