import numpy as np
import pytest

from aunets.core.errors import ConfigError
from aunets.core.median import SlidingMedian, median_filter
from aunets.stream.events import EventDetector


def reference(x: np.ndarray, w: int, k: int) -> np.ndarray:
    """Straight from the definition: frame t's median over [t-(w-1)+k, t+k] clipped to the sequence."""
    T = len(x)
    return np.stack([np.median(x[max(0, t - (w - 1) + k): min(T, t + k + 1)], axis=0) for t in range(T)])


@pytest.mark.parametrize("window", [1, 3, 5, 7, 9, 11])
def test_sliding_median_matches_numpy_reference_for_every_lookahead(window: int) -> None:
    rng = np.random.default_rng(window)
    x = rng.random((37, 4))
    for k in range((window - 1) // 2 + 1):
        online = SlidingMedian(window, k)
        got: dict[int, np.ndarray] = {}
        for row in x:
            out = online.push(row)
            if out is not None:
                got[out[0]] = out[1]
        for t, v in online.flush():
            got[t] = v
        assert sorted(got) == list(range(len(x)))
        np.testing.assert_allclose(np.stack([got[t] for t in range(len(x))]), reference(x, window, k))
        np.testing.assert_allclose(median_filter(x, window, k), reference(x, window, k))


def test_lookahead_delays_results_by_k_frames() -> None:
    m = SlidingMedian(5, 2)
    assert m.push(np.zeros(1)) is None
    assert m.push(np.zeros(1)) is None
    out = m.push(np.zeros(1))
    assert out is not None and out[0] == 0


@pytest.mark.parametrize(("window", "k"), [(4, 0), (0, 0), (5, 3), (3, -1)])
def test_bad_window_or_lookahead_is_rejected(window: int, k: int) -> None:
    with pytest.raises(ConfigError):
        SlidingMedian(window, k)


def test_events_onset_and_offset_with_peak() -> None:
    det = EventDetector((1, 12), track_id=3)
    states = [[0, 0], [0, 1], [0, 1], [0, 0]]
    probs = [[0.1, 0.2], [0.1, 0.7], [0.1, 0.9], [0.1, 0.3]]
    events = []
    for i, (s, p) in enumerate(zip(states, probs, strict=True)):
        events += det.update(np.array(s, bool), np.array(p), i, float(i))
    assert [(e.au, e.kind, e.frame_index) for e in events] == [(12, "onset", 1), (12, "offset", 3)]
    assert events[1].peak_probability == pytest.approx(0.9)
    assert events[1].duration_s == pytest.approx(2.0)
    assert events[0].track_id == 3


def test_latency_histogram_percentiles_match_numpy_within_a_bin() -> None:
    from aunets.stream.runner import LatencyHistogram

    rng = np.random.default_rng(0)
    values = rng.gamma(4.0, 3.0, size=5000)
    hist = LatencyHistogram()
    for v in values:
        hist.add(float(v))
    for q in (1, 50, 90, 99):
        assert hist.percentile(q) == pytest.approx(np.percentile(values, q), abs=0.1)
    other = LatencyHistogram()
    other.add(1e6)  # beyond the last bin: counted there
    hist.merge(other)
    assert hist.n == 5001 and hist.percentile(100) == pytest.approx(LatencyHistogram.MAX_MS, abs=0.1)
