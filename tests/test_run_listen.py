"""`aunets run` and `aunets listen` as real processes talking ZeroMQ over loopback."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_run_publishes_and_listen_records_every_frame(
    tiny_engine: Path, test_video: tuple[Path, int], tmp_path: Path
) -> None:
    video, n_frames = test_video
    endpoint = f"tcp://127.0.0.1:{_free_port()}"
    record = tmp_path / "session.jsonl"
    listener = subprocess.Popen(
        [sys.executable, "-m", "aunets.cli", "listen", "--sub", endpoint, "--topics", "au.frame,au.status",
         "--record", str(record), "--timeout", "6"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        run = subprocess.run(
            [sys.executable, "-m", "aunets.cli", "run", str(video), "--pub", endpoint, "--engine", str(tiny_engine),
             "--wait-subscriber", "20", "--realtime"],
            capture_output=True, text=True, timeout=120,
        )
        assert run.returncode == 0, run.stderr
        summary = json.loads(run.stdout.strip().splitlines()[-1])
        assert summary["frames"] == n_frames and summary["dropped"] == 0
        out, err = listener.communicate(timeout=60)
    finally:
        listener.kill()
    messages = [json.loads(line) for line in record.read_text().splitlines()]
    frames = [m["payload"] for m in messages if m["topic"] == "au.frame"]
    assert [f["seq"] for f in frames] == list(range(n_frames))
    assert sum(f["no_face"] for f in frames) == 10
    assert any(m["topic"] == "au.status" for m in messages)  # the 1 Hz heartbeat (the run lasts ~2 s)
    assert "gap" not in err
    assert f"frame {n_frames - 1}" in out


def test_run_refuses_a_busy_endpoint(tiny_engine: Path, test_video: tuple[Path, int]) -> None:
    import zmq

    video, _ = test_video
    ctx = zmq.Context()
    busy = ctx.socket(zmq.PUB)
    busy.setsockopt(zmq.LINGER, 0)
    port = busy.bind_to_random_port("tcp://127.0.0.1")
    try:
        run = subprocess.run(
            [sys.executable, "-m", "aunets.cli", "run", str(video), "--pub", f"tcp://127.0.0.1:{port}",
             "--engine", str(tiny_engine)],
            capture_output=True, text=True, timeout=60,
        )
    finally:
        busy.close()
        ctx.term()
    assert run.returncode == 1
    assert "--pub" in run.stderr and "another" in run.stderr


@pytest.mark.slow
def test_lsl_outlet_streams_probabilities_stamped_with_capture_time(
    tiny_engine: Path, test_video: tuple[Path, int]
) -> None:
    import threading
    import time

    import pytest

    pylsl = pytest.importorskip("pylsl", reason="the [lsl] extra (pylsl) is not installed")
    from aunets.stream.capture import CaptureConfig
    from aunets.stream.lsl_sink import LslOutlet
    from aunets.stream.pipeline import Pipeline, PipelineConfig
    from aunets.stream.runner import run_stream

    video, n_frames = test_video
    pipeline = Pipeline(PipelineConfig(engine=tiny_engine))
    name = f"AUNets-test-{_free_port()}"
    outlet = LslOutlet(pipeline.aus, name=name)
    streams = pylsl.resolve_byprop("name", name, timeout=10)
    assert streams, "the LSL outlet was not found on loopback"
    inlet = pylsl.StreamInlet(streams[0], max_buflen=60)
    inlet.open_stream(timeout=10)
    assert inlet.info().channel_count() == 3 * len(pipeline.aus) + 4  # probability, smoothed, state; pose; track
    samples: list[tuple[list[float], float]] = []
    done = threading.Event()

    def pull() -> None:
        while not done.is_set() or len(samples) < n_frames:
            sample, stamp = inlet.pull_sample(timeout=0.5)
            if sample is None and done.is_set():
                return
            if sample is not None:
                samples.append((sample, stamp))

    thread = threading.Thread(target=pull, daemon=True)
    thread.start()
    t0 = time.monotonic()
    run_stream(CaptureConfig(str(video)), pipeline, [outlet])
    done.set()
    thread.join(timeout=10)
    outlet.close()
    assert len(samples) == n_frames
    stamps = [s for _, s in samples]
    assert stamps == sorted(stamps) and t0 - 1 < stamps[0] < time.monotonic()
    no_face = [all(v != v for v in values) for values, _ in samples]  # NaN != NaN
    assert sum(no_face) == 10
