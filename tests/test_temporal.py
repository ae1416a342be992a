import argparse
import json
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest

from aunets.core.errors import ConfigError
from aunets.core.median import SlidingMedian, median_filter
from aunets.stream.events import EventConfig, EventDetector

REPO = Path(__file__).resolve().parents[1]
PLAIN = EventConfig(on_delta=0.0, off_delta=0.0, min_on_s=0.0, min_off_s=0.0)  # the plain threshold


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
    det = EventDetector((1, 12), track_id=3, thresholds=np.array([0.5, 0.5]), config=PLAIN)
    smoothed = [[0.1, 0.2], [0.1, 0.6], [0.1, 0.8], [0.1, 0.3]]
    probs = [[0.1, 0.2], [0.1, 0.7], [0.1, 0.9], [0.1, 0.3]]
    events, states = [], []
    for i, (s, p) in enumerate(zip(smoothed, probs, strict=True)):
        state, new = det.update(np.array(s), np.array(p), i, float(i))
        events += new
        states.append(state.tolist())
    assert states == [[False, False], [False, True], [False, True], [False, False]]
    assert [(e.au, e.kind, e.frame_index) for e in events] == [(12, "onset", 1), (12, "offset", 3)]
    assert events[1].peak_probability == pytest.approx(0.9)
    assert events[1].duration_s == pytest.approx(2.0)
    assert events[0].track_id == 3


def _run(config: EventConfig, smoothed: list[float], fps: float = 25.0) -> tuple[list[int], list[tuple[str, int]]]:
    """One AU (threshold 0.5) through ``smoothed`` at ``fps``: its states and (kind, frame) events, closed at the
    end."""
    det = EventDetector((12,), track_id=0, thresholds=np.array([0.5]), config=config)
    states, events = [], []
    for i, s in enumerate(smoothed):
        state, new = det.update(np.array([s]), np.array([s]), i, 100.0 + i, t=i / fps)
        states.append(int(state[0]))
        events += [(e.kind, e.frame_index) for e in new]
    events += [(e.kind, e.frame_index) for e in det.close(len(smoothed) - 1, 100.0 + len(smoothed))]
    return states, events


def test_hysteresis_needs_the_on_margin_to_start_and_the_off_margin_to_stop() -> None:
    wobble = [0.4, 0.52, 0.49, 0.53, 0.48, 0.58, 0.51, 0.47, 0.53, 0.44, 0.3]
    plain, plain_events = _run(PLAIN, wobble)
    assert plain[1:9] == [1, 0, 1, 0, 1, 1, 0, 1]
    assert plain_events.count(("onset", 1)) == 1 and len(plain_events) == 8  # four episodes: chatter
    states, events = _run(replace(PLAIN, on_delta=0.05, off_delta=0.05), wobble)
    assert states == [0, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0]  # on at 0.58 >= 0.55, off at 0.44 < 0.45
    assert events == [("onset", 5), ("offset", 9)]


def test_min_on_drops_short_spikes_and_delays_onsets_by_itself() -> None:
    spikes = [0.2, 0.7, 0.7, 0.2, 0.2, 0.7, 0.7, 0.7, 0.7, 0.7, 0.2, 0.2]
    states, events = _run(replace(PLAIN, min_on_s=0.12), spikes)  # 0.12 s = 3 frames at 25 fps
    assert events == [("onset", 8), ("offset", 10)]  # the 2-frame spike is gone; the 5-frame one starts 3 late
    assert states[8:10] == [1, 1] and sum(states) == 2


def test_min_off_bridges_short_gaps_and_no_episode_is_shorter() -> None:
    gappy = [0.2, 0.7, 0.2, 0.7, 0.7, 0.2, 0.2, 0.7, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2]
    states, events = _run(replace(PLAIN, min_off_s=0.12), gappy)
    assert events == [("onset", 1), ("offset", 11)]  # off only after 3 frames below (from frame 8)
    assert states == [0] + [1] * 10 + [0] * 3


def test_close_ends_an_open_episode_whatever_the_minimum_durations() -> None:
    states, events = _run(replace(PLAIN, min_off_s=5.0), [0.2, 0.9, 0.9])
    assert states == [0, 1, 1]
    assert events == [("onset", 1), ("offset", 2)]


@pytest.mark.parametrize("kwargs", [{"on_delta": -0.1}, {"off_delta": 1.0}, {"min_on_s": -1.0}, {"min_off_s": 61.0}])
def test_bad_event_settings_are_refused_naming_the_option(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError, match=r"--(on|off|min)"):
        EventConfig(**kwargs)


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


def test_default_event_settings_are_the_ones_the_benchmark_chose() -> None:
    """``benchmarks/event_hysteresis.py`` picks the defaults on real clips; the code's defaults are those."""
    chosen = json.loads((REPO / "benchmarks" / "results" / "event_hysteresis.json").read_text())["chosen"]
    assert asdict(EventConfig()) == chosen


def test_event_options_reach_the_pipeline_config() -> None:
    from aunets.stream.cli_args import add_pipeline_arguments, pipeline_config_from_args

    parser = argparse.ArgumentParser()
    add_pipeline_arguments(parser)
    config = pipeline_config_from_args(parser.parse_args(["--on-delta", "0", "--min-off", "0.5"]))
    assert config.events == replace(EventConfig(), on_delta=0.0, min_off_s=0.5)
    assert pipeline_config_from_args(parser.parse_args([])).events == EventConfig()
    assert config.to_json()["events"]["min_off_s"] == 0.5  # saved beside every output
