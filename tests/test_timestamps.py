"""Real presentation times of video files in every output, checked on variable-frame-rate files made with PyAV
(whose decoded ``frame.time`` is the reference)."""

from __future__ import annotations

import csv
import fractions
import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from aunets.stream.capture import Capture, CaptureConfig
from tests.conftest import clip_frames

GAPS_MS = (33, 40, 100, 250, 67)


def write_vfr_video(path: Path, n: int = 30, seed: int = 0, start_ms: int = 0) -> None:
    """An H.264 file with irregular frame intervals (33..250 ms, in a millisecond time base), frames of the
    bundled clip at 320x180, the first presented at ``start_ms``."""
    import av

    rng = np.random.default_rng(seed)
    pts = start_ms + np.concatenate([[0], np.cumsum(rng.choice(GAPS_MS, size=n - 1))])
    frames = [cv2.resize(f, (320, 180)) for f in clip_frames(n)]
    ms = fractions.Fraction(1, 1000)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=1000)
        stream.width, stream.height, stream.pix_fmt = 320, 180, "yuv420p"
        for image, t in zip(frames, pts, strict=True):
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts, frame.time_base = int(t), ms
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


def pyav_times(path: Path) -> list[float]:
    """Each decoded frame's presentation time in seconds from the stream's first frame, by PyAV."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        start = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
        return [float(f.time) - start for f in container.decode(stream)]


def _naive_times(path: Path, n: int) -> np.ndarray:
    """``index / fps``: what the timestamps were before (wrong on these files)."""
    cap = cv2.VideoCapture(str(path))
    fps = cap.get(cv2.CAP_PROP_FPS)
    cap.release()
    return np.arange(n) / fps


@pytest.fixture(params=["mp4", "mkv"])
def vfr_video(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, list[float]]:
    path = tmp_path / f"vfr.{request.param}"
    write_vfr_video(path, start_ms=1500 if request.param == "mp4" else 0)
    truth = pyav_times(path)
    assert len(truth) == 30
    # the file really is variable-rate: index / fps misses by far more than the tolerance below
    assert np.abs(_naive_times(path, len(truth)) - truth).max() > 0.2
    return path, truth


def test_capture_reports_the_containers_presentation_times(vfr_video: tuple[Path, list[float]]) -> None:
    path, truth = vfr_video
    with Capture(CaptureConfig(str(path))) as cap:
        got = [f.t_media for f in cap.frames()]
    assert None not in got
    np.testing.assert_allclose(np.array(got, dtype=float), truth, atol=1e-6)


def test_realtime_hands_each_frame_over_at_its_presentation_time(tmp_path: Path) -> None:
    path = tmp_path / "vfr.mkv"
    write_vfr_video(path, n=12, seed=1)
    truth = np.array(pyav_times(path))
    with Capture(CaptureConfig(str(path), realtime=True)) as cap:
        stamps = np.array([f.t_capture_ns for f in cap.frames()]) / 1e9
    elapsed = stamps - stamps[0]
    # never before its time (a sleep cannot end early); late only by scheduling delays on a loaded machine
    assert np.all(elapsed >= truth - 0.002), (elapsed - truth).round(3)
    assert np.median(elapsed - truth) < 0.03, (elapsed - truth).round(3)


def test_image_folder_frames_are_timed_by_the_folder_rate(tmp_path: Path) -> None:
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"{i:02d}.png"), np.full((8, 8, 3), 10 * i, np.uint8))
    with Capture(CaptureConfig(str(tmp_path))) as cap:
        assert [f.t_media for f in cap.frames()] == [0.0, 0.04, 0.08]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_csv_and_au_frame_carry_the_presentation_times(tiny_engine: Path, tmp_path: Path) -> None:
    video = tmp_path / "vfr.mp4"
    write_vfr_video(video)
    truth = pyav_times(video)
    endpoint = f"tcp://127.0.0.1:{_free_port()}"
    record, table = tmp_path / "session.jsonl", tmp_path / "out.csv"
    listener = subprocess.Popen(
        [sys.executable, "-m", "aunets.cli", "listen", "--sub", endpoint, "--topics", "au.frame,au.event",
         "--record", str(record), "--timeout", "6"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        run = subprocess.run(
            [sys.executable, "-m", "aunets.cli", "run", str(video), "--pub", endpoint, "--engine", str(tiny_engine),
             "--csv", str(table), "--wait-subscriber", "20"],
            capture_output=True, text=True, timeout=120,
        )
        assert run.returncode == 0, run.stderr
        listener.communicate(timeout=60)
    finally:
        listener.kill()
    messages = [json.loads(line) for line in record.read_text().splitlines()]
    frames = [m["payload"] for m in messages if m["topic"] == "au.frame"]
    events = [m["payload"] for m in messages if m["topic"] == "au.event"]
    assert events, "the tiny engine's AUs switch on and off on this clip"
    for event in events:
        assert event["t_media"] == pytest.approx(truth[event["frame"]], abs=1e-6)
    assert [f["frame"] for f in frames] == list(range(len(truth)))
    np.testing.assert_allclose([f["t_media"] for f in frames], truth, atol=1e-6)
    with table.open(newline="") as fh:
        rows = [{k.strip(): v for k, v in row.items()} for row in csv.DictReader(fh, skipinitialspace=True)]
    assert sum(r["success"] == "1" for r in rows) > 0  # faces were found: the AU rows are timed, not just blanks
    by_frame = {int(r["frame"]) - 1: float(r["timestamp"]) for r in rows}
    assert sorted(by_frame) == list(range(len(truth)))
    np.testing.assert_allclose([by_frame[i] for i in range(len(truth))], truth, atol=5e-4)  # 3 decimals


@pytest.mark.slow
def test_lsl_samples_keep_the_files_timing(tiny_engine: Path, tmp_path: Path) -> None:
    pylsl = pytest.importorskip("pylsl", reason="the [lsl] extra (pylsl) is not installed")
    from aunets.stream.lsl_sink import LslOutlet
    from aunets.stream.pipeline import Pipeline, PipelineConfig
    from aunets.stream.runner import run_stream

    video = tmp_path / "vfr.mkv"
    write_vfr_video(video, n=20, seed=2)
    truth = np.array(pyav_times(video))
    pipeline = Pipeline(PipelineConfig(engine=tiny_engine))
    name = f"AUNets-vfr-{_free_port()}"
    outlet = LslOutlet(pipeline.aus, name=name, source=name)
    streams = pylsl.resolve_byprop("name", name, timeout=10)
    assert streams, "the LSL outlet was not found on loopback"
    inlet = pylsl.StreamInlet(streams[0], max_buflen=60)
    inlet.open_stream(timeout=10)
    stamps: list[float] = []
    done = threading.Event()

    def pull() -> None:
        while not done.is_set() or len(stamps) < len(truth):
            sample, stamp = inlet.pull_sample(timeout=0.5)
            if sample is None and done.is_set():
                return
            if sample is not None:
                stamps.append(stamp)

    thread = threading.Thread(target=pull, daemon=True)
    thread.start()
    t0 = time.monotonic()
    run_stream(CaptureConfig(str(video)), pipeline, [outlet])
    done.set()
    thread.join(timeout=10)
    outlet.close()
    assert len(stamps) == len(truth)  # one face per frame, or a no-face sample
    assert t0 - 1 < stamps[0] < time.monotonic()  # on LSL's clock, anchored at the first frame's capture
    np.testing.assert_allclose(np.array(stamps) - stamps[0], truth - truth[0], atol=1e-6)


def test_a_cut_variable_rate_file_is_still_damage(tmp_path: Path) -> None:
    """The end of a variable-rate file is judged by time: a file cut in the middle stops far before the duration
    its container announces, and is reported as damaged (the rows before the cut are kept by the writers)."""
    from aunets.core.errors import SourceError

    whole = tmp_path / "vfr.mkv"
    write_vfr_video(whole)
    cut = tmp_path / "cut.mkv"
    data = whole.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    seen: list[float | None] = []
    with pytest.raises(SourceError, match=r"frame \d+ of \d+ could not be decoded"), \
            Capture(CaptureConfig(str(cut))) as cap:
        seen.extend(f.t_media for f in cap.frames())
    assert 0 < len(seen) < 30  # the frames before the cut were delivered
