"""End to end: a real video file -> capture process -> YuNet -> flow -> tiny engine -> median -> ZeroMQ / CSV."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zmq

from aunets.core.results import FaceResult
from aunets.stream.capture import CaptureConfig
from aunets.stream.csv_sink import OpenFaceCsvWriter, csv_columns
from aunets.stream.pipeline import Pipeline, PipelineConfig
from aunets.stream.publish import ZmqPublisher
from aunets.stream.runner import run_stream
from aunets.stream.tracking import TrackerConfig

BLANK = range(20, 30)  # frames of write_test_video that hold no face


class Collect:
    """A sink that keeps every frame result in memory."""

    def __init__(self) -> None:
        self.results: list[FaceResult] = []

    def publish_results(self, results: Sequence[FaceResult]) -> None:
        self.results.extend(r for r in results if not r.events_only)

    def publish_status(self, status: object) -> None:
        pass

    def close(self) -> None:
        pass


def _subscriber(ctx: zmq.Context, endpoint: str) -> zmq.Socket:
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.RCVHWM, 100000)
    sub.setsockopt(zmq.SUBSCRIBE, b"au.")
    sub.connect(endpoint)
    return sub


def _drain(sub: zmq.Socket, timeout_ms: int = 2000) -> list[tuple[str, dict]]:
    out = []
    while sub.poll(timeout_ms):
        topic, payload = sub.recv_multipart()
        out.append((topic.decode(), json.loads(payload)))
        timeout_ms = 300
    return out


def test_video_through_pipeline_to_zmq_subscriber_and_csv(
    tiny_engine: Path, test_video: tuple[Path, int], tmp_path: Path
) -> None:
    video, n_frames = test_video
    ctx = zmq.Context()
    pub = ZmqPublisher("tcp://127.0.0.1:*", context=ctx)
    sub = _subscriber(ctx, pub.last_endpoint)
    try:
        assert pub.wait_for_subscriber(5.0)
        pipeline = Pipeline(PipelineConfig(engine=tiny_engine))
        writer = OpenFaceCsvWriter(tmp_path / "out.csv", pipeline.aus)
        stats = run_stream(CaptureConfig(str(video)), pipeline, [pub, writer])
        writer.close()
        messages = _drain(sub)
    finally:
        pub.close()
        sub.close(0)
        ctx.term()

    frames = [m for t, m in messages if t == "au.frame"]
    assert stats.frames == n_frames
    assert [m["seq"] for m in frames] == list(range(n_frames))
    assert [m["frame"] for m in frames] == list(range(n_frames))
    for m in frames:
        assert m["schema"] == 1 and m["t_publish"] >= m["t_capture"]
        if m["frame"] in BLANK:
            assert m["no_face"] and m["probability"] == {} and m["box"] is None
        else:
            assert not m["no_face"] and set(m["probability"]) == {f"AU{a:02d}" for a in pipeline.aus}
            assert all(0.0 < p < 1.0 for p in m["probability"].values())
    events = [m for t, m in messages if t == "au.event"]
    assert [m["seq"] for m in events] == list(range(len(events)))
    onsets = sum(m["type"] == "onset" for m in events)
    assert onsets > 0 and onsets == sum(m["type"] == "offset" for m in events)

    with (tmp_path / "out.csv").open() as fh:
        rows = list(csv.DictReader(fh, skipinitialspace=True))
    assert list(rows[0]) == csv_columns(pipeline.aus)
    assert len(rows) == n_frames
    assert [int(r["frame"]) for r in rows] == list(range(1, n_frames + 1))
    assert [r["success"] for r in rows] == ["0" if i in BLANK else "1" for i in range(n_frames)]


def test_centred_median_lookahead_keeps_every_frame(tiny_engine: Path, test_video: tuple[Path, int]) -> None:
    video, n_frames = test_video
    collect = Collect()
    pipeline = Pipeline(PipelineConfig(engine=tiny_engine, median_window=5, lookahead=2))
    run_stream(CaptureConfig(str(video)), pipeline, [collect])
    assert sorted(r.frame_index for r in collect.results) == list(range(n_frames))


def _aunets(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "aunets.cli", *args], capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_process_cli_writes_csv_plot_and_config(
    tiny_engine: Path, test_video: tuple[Path, int], tmp_path: Path
) -> None:
    video, n_frames = test_video
    out = tmp_path / "o.csv"
    res = _aunets("process", str(video), "--csv", str(out), "--plot", str(tmp_path / "o.png"), "--engine",
                  str(tiny_engine), "--no-progress")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["rows"] == n_frames
    assert (tmp_path / "o.png").stat().st_size > 10_000
    config = json.loads((tmp_path / "o.csv.config.json").read_text())
    assert config["pipeline"]["engine"] == str(tiny_engine)
    rows = list(csv.DictReader(out.open(), skipinitialspace=True))
    assert [float(r["timestamp"]) for r in rows] == [round(i / 25.0, 3) for i in range(n_frames)]  # video time


@pytest.mark.parametrize(
    ("source", "message"),
    [("missing.mp4", "does not exist"), ("notvideo.mp4", "cannot open"), ("99", "camera 99 does not open")],
)
def test_bad_sources_fail_with_a_specific_message(tiny_engine: Path, tmp_path: Path, source: str, message: str) -> None:
    (tmp_path / "notvideo.mp4").write_bytes(b"this is not a video")
    src = source if source == "99" else str(tmp_path / source)
    res = _aunets("process", src, "--csv", str(tmp_path / "o.csv"), "--engine", str(tiny_engine), "--no-progress")
    assert res.returncode == 1
    assert message in res.stderr


def test_missing_engine_fails_with_a_specific_message(test_video: tuple[Path, int], tmp_path: Path) -> None:
    video, _ = test_video
    res = _aunets("process", str(video), "--csv", str(tmp_path / "o.csv"), "--engine", str(tmp_path / "none"))
    assert res.returncode == 1 and "aunets build-engine" in res.stderr


def test_video_damaged_mid_file_keeps_rows_already_computed(tiny_engine: Path, test_video: tuple[Path, int],
                                                            tmp_path: Path) -> None:
    import cv2

    video, n_frames = test_video
    cap = cv2.VideoCapture(str(video))
    avi = tmp_path / "c.avi"
    writer = cv2.VideoWriter(str(avi), cv2.VideoWriter_fourcc(*"MJPG"), 25, (640, 360))
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        writer.write(frame)
    writer.release()
    broken = tmp_path / "broken.avi"
    broken.write_bytes(avi.read_bytes()[: int(avi.stat().st_size * 0.6)])  # the header still says n_frames
    out = tmp_path / "b.csv"
    res = _aunets("process", str(broken), "--csv", str(out), "--engine", str(tiny_engine), "--no-progress")
    rows = list(csv.DictReader(out.open(), skipinitialspace=True))
    assert res.returncode == 1
    assert "could not be decoded" in res.stderr and "ffmpeg" in res.stderr
    assert 0 < len(rows) < n_frames
    assert [int(r["frame"]) for r in rows] == list(range(1, len(rows) + 1))
    assert f"{len(rows)} rows written" in res.stderr


def test_max_faces_gives_one_stream_per_track(tiny_engine: Path, tmp_path: Path) -> None:
    import cv2
    import numpy as np

    from tests.conftest import clip_frames

    frames = clip_frames(15)
    video = tmp_path / "two.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 25, (1280, 360))
    for f in frames:  # the same face twice, side by side; the right copy is shrunk so sizes differ
        small = cv2.resize(f, (480, 270))
        right = np.full_like(f, 60)
        right[45:315, 80:560] = small
        writer.write(np.hstack([f, right]))
    writer.release()
    collect = Collect()
    pipeline = Pipeline(PipelineConfig(engine=tiny_engine, tracker=TrackerConfig(max_faces=2)))
    run_stream(CaptureConfig(str(video)), pipeline, [collect])
    results = collect.results
    by_track: dict[int, list[int]] = {}
    for r in results:
        assert r.track_id is not None
        by_track.setdefault(r.track_id, []).append(r.frame_index)
    assert len(by_track) == 2
    assert all(sorted(v) == list(range(15)) for v in by_track.values())
    first = [r for r in results if r.frame_index == 0]
    assert first[0].box is not None and first[1].box is not None
    assert first[0].box[2] > first[1].box[2]  # largest face first


def test_rgb_only_engine_runs_without_flow(test_video: tuple[Path, int], tmp_path: Path) -> None:
    from tests.conftest import build_tiny_engine

    video, n_frames = test_video
    collect = Collect()
    pipeline = Pipeline(PipelineConfig(engine=build_tiny_engine(tmp_path / "rgb", fusion="rgb")))
    run_stream(CaptureConfig(str(video)), pipeline, [collect])
    assert [r.frame_index for r in collect.results] == list(range(n_frames))
    assert sum(r.no_face for r in collect.results) == 10


@pytest.mark.slow
def test_default_engine_writes_intensity_columns_in_range(tmp_path: Path) -> None:
    """The embedded engine has an intensity output: `process` writes OpenFace's AUxx_r (0..5) beside AUxx_c/_p,
    and the laugh in the bundled clip has a higher AU12 intensity than the crying before it."""
    from tests.conftest import CLIP

    out = tmp_path / "clip.csv"
    res = _aunets("process", str(CLIP), "--csv", str(out), "--no-progress", timeout=300)
    assert res.returncode == 0, res.stderr
    rows = [r for r in csv.DictReader(out.open(), skipinitialspace=True) if r["success"] == "1"]
    assert {"AU12_c", "AU12_p", "AU12_r"} <= set(rows[0])
    values = [float(r[f"{au}_r"]) for r in rows for au in ("AU01", "AU06", "AU12", "AU24")]
    assert min(values) >= 0.0 and max(values) <= 5.0
    crying = [float(r["AU12_r"]) for r in rows if float(r["timestamp"]) < 9.0]
    laughing = [float(r["AU12_r"]) for r in rows if float(r["timestamp"]) > 10.5]
    assert np.mean(laughing) > np.mean(crying) + 0.5, (np.mean(laughing), np.mean(crying))


class _Spy:
    """Calls a real runtime's ``run`` or a real detector's ``detect`` and notes the frame it was called on."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.frame = -1
        self.calls: list[tuple[int, tuple[int, ...]]] = []  # (frame, input shape)

    def run(self, batch: np.ndarray) -> np.ndarray:
        self.calls.append((self.frame, batch.shape))
        return np.asarray(self.inner.run(batch))

    def detect(self, image: np.ndarray) -> Any:
        self.calls.append((self.frame, image.shape))
        return self.inner.detect(image)


@pytest.mark.parametrize(("phase", "expected"), [(None, [0, 2, 7]), (0, [0, 5, 10])])
def test_view_classifier_runs_away_from_the_trackers_full_frame_pass(phase: int | None, expected: list[int]) -> None:
    """Live latency: the full-frame face detection and the view classifier are the two costly steps that run only
    every few frames; by default they fall on different frames, so their costs never add up on one frame."""
    import cv2

    from aunets.core.frame import Frame

    pipeline = Pipeline(PipelineConfig(view_phase=phase))
    engine: Any = pipeline.engine
    engine._view = views = _Spy(engine._view)
    pipeline.tracker.detector = detector = _Spy(pipeline.tracker.detector)
    cap = cv2.VideoCapture(str(Path(__file__).resolve().parents[1] / "media" / "pexels_wolfganglanger_expressions.mp4"))
    for i in range(12):
        ok, image = cap.read()
        assert ok
        views.frame = detector.frame = i
        assert not pipeline.process(Frame(i, i, float(i), image))[0].no_face
    assert [i for i, shape in detector.calls if shape == image.shape] == [0, 5, 10]  # the full-frame passes
    assert [i for i, _ in views.calls] == expected
