"""LSL output as LabRecorder sees it: a real pylsl inlet on loopback reads the nominal rate, a source_id stable
across restarts, every channel's label/unit/type, and samples equal to the pipeline's results."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from aunets.stream.capture import CaptureConfig
from aunets.stream.lsl_sink import channel_labels, source_id
from aunets.stream.pipeline import Pipeline, PipelineConfig
from aunets.stream.runner import run_stream
from tests.conftest import Collect

pylsl = pytest.importorskip("pylsl", reason="the [lsl] extra (pylsl) is not installed")


def _channels(info: Any) -> list[dict[str, str]]:
    out = []
    ch = info.desc().child("channels").child("channel")
    while not ch.empty():
        out.append({k: ch.child_value(k) for k in ("label", "unit", "type", "description")})
        ch = ch.next_sibling()
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_source_id_is_stable_per_source_and_differs_between_sources(tmp_path: Path) -> None:
    video = tmp_path / "v.mp4"
    video.write_bytes(b"x")
    assert source_id(str(video)) == source_id(str(video))  # a restart: the same id
    cwd = os.getcwd()
    try:
        os.chdir(tmp_path)
        assert source_id("v.mp4") == source_id(str(video))  # the same file however it is named
    finally:
        os.chdir(cwd)
    ids = {source_id(str(video)), source_id("0"), source_id("1"), source_id("0", name="Other")}
    assert len(ids) == 4 and all(i.startswith("aunets-") for i in ids)


def test_inlet_sees_rate_source_id_metadata_and_the_pipelines_values(
        tiny_engine: Path, test_video: tuple[Path, int]) -> None:
    from aunets.stream.lsl_sink import LslOutlet

    video, n_frames = test_video
    pipeline = Pipeline(PipelineConfig(engine=tiny_engine))
    name = f"AUNets-lsl-{_free_port()}"
    outlet = LslOutlet(pipeline.aus, name=name, rate=25.0, source=str(video))
    streams = pylsl.resolve_byprop("source_id", source_id(str(video), name), timeout=10)
    assert streams, "the LSL outlet was not found on loopback by its source_id"
    inlet = pylsl.StreamInlet(streams[0], max_buflen=60)
    info = inlet.info(timeout=10)
    assert info.nominal_srate() == 25.0 and info.name() == name and info.type() == "AU"
    channels = _channels(info)
    k = len(pipeline.aus)
    assert [c["label"] for c in channels] == channel_labels(pipeline.aus, intensity=False)
    assert [c["label"] for c in channels[:2]] == ["AU01", "AU02"] and channels[k]["label"] == "AU01_smoothed"
    assert {c["unit"] for c in channels[: 2 * k]} == {"probability"}
    assert {c["unit"] for c in channels[2 * k : 3 * k]} == {"boolean"} and channels[-1]["label"] == "track"
    assert [c["type"] for c in channels[k - 1 : k + 1]] == ["AUProbability", "AUProbabilitySmoothed"]
    assert all(c["description"] for c in channels)
    assert [c["label"] for c in channels[-4:-1]] == ["pose_pitch", "pose_yaw", "pose_roll"]
    assert {c["unit"] for c in channels[-4:-1]} == {"degrees"}

    samples: list[list[float]] = []
    done = threading.Event()

    def pull() -> None:
        while True:
            sample, _ = inlet.pull_sample(timeout=0.5)
            if sample is not None:
                samples.append(sample)
            elif done.is_set():
                return

    inlet.open_stream(timeout=10)
    thread = threading.Thread(target=pull, daemon=True)
    thread.start()
    collect = Collect()
    run_stream(CaptureConfig(str(video)), pipeline, [collect, outlet])
    done.set()
    thread.join(timeout=10)
    outlet.close()
    frames = collect.frames
    assert len(samples) == len(frames) == n_frames
    for r, s in zip(frames, samples, strict=True):
        if r.no_face:
            assert all(v != v for v in s)  # NaN
            continue
        assert s[:k] == pytest.approx([r.probabilities[a] for a in pipeline.aus], abs=1e-6)
        assert s[k : 2 * k] == pytest.approx([r.smoothed[a] for a in pipeline.aus], abs=1e-6)
        assert s[2 * k : 3 * k] == [float(r.states[a]) for a in pipeline.aus]
        assert s[-1] == r.track_id
        assert r.pose is not None and s[-4:-1] == pytest.approx(list(r.pose.degrees()), abs=1e-3)


def test_intensity_channels_carry_their_unit() -> None:
    from aunets.stream.lsl_sink import LslOutlet

    name = f"AUNets-int-{_free_port()}"
    outlet = LslOutlet((6, 12), name=name, source="0", intensity=True)
    streams = pylsl.resolve_byprop("name", name, timeout=10)
    assert streams
    channels = _channels(pylsl.StreamInlet(streams[0]).info(timeout=10))
    outlet.close()
    assert [c["label"] for c in channels] == ["AU06", "AU12", "AU06_smoothed", "AU12_smoothed", "AU06_state",
                                              "AU12_state", "AU06_intensity", "AU12_intensity", "pose_pitch",
                                              "pose_yaw", "pose_roll", "track"]
    assert channels[-5]["unit"] == "FACS intensity 0-5" and channels[-5]["type"] == "AUIntensity"


@pytest.mark.slow
def test_run_lsl_has_the_files_rate_and_the_same_source_id_after_a_restart(
        tiny_engine: Path, test_video: tuple[Path, int]) -> None:
    video, _ = test_video
    expected = source_id(str(video))
    for _ in range(2):  # a restart: LabRecorder finds the same source_id again
        proc = subprocess.Popen([sys.executable, "-m", "aunets.cli", "run", str(video), "--realtime", "--lsl",
                                 "--engine", str(tiny_engine), "--pub", f"tcp://127.0.0.1:{_free_port()}"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
        try:
            streams = pylsl.resolve_byprop("source_id", expected, timeout=30)
            assert streams, proc.stderr.read() if proc.poll() is not None and proc.stderr else "no stream"
            assert streams[0].nominal_srate() == 25.0 and streams[0].name() == "AUNets"
        finally:
            _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err


@pytest.mark.slow
def test_serve_lsl_streams_what_a_webrtc_peer_sends(tiny_engine: Path) -> None:
    pytest.importorskip("aiortc")
    import asyncio

    from aunets.engines.engine import load_engine
    from aunets.stream.webrtc.server import BackgroundServer, ServeConfig
    from tests.test_webrtc import small_clip_frames, stream_clip

    config = ServeConfig(port=0, pub="tcp://127.0.0.1:*", lsl=True, status_every_s=0.5)
    with BackgroundServer(config, engine=load_engine(tiny_engine)) as bg:
        streams = pylsl.resolve_byprop("source_id", source_id("serve"), timeout=10)
        assert streams, "aunets serve --lsl: no LSL stream with the serve source_id"
        inlet = pylsl.StreamInlet(streams[0], max_buflen=60)
        assert inlet.info(timeout=10).nominal_srate() == 0.0  # browser frames: irregular
        inlet.open_stream(timeout=10)
        out = asyncio.run(stream_clip(bg.url, small_clip_frames(25), seconds=3.0))
        samples = []
        while (sample := inlet.pull_sample(timeout=1.0)[0]) is not None:
            samples.append(sample)
    results = [m for m in out["messages"] if m["type"] == "result"]
    faces = [r for m in results for r in m["results"] if not r["no_face"]]
    assert len(faces) >= 10 and len(samples) >= len(faces)  # every face result, and no-face samples
    k = 12
    with_face = [s for s in samples if s[-1] == s[-1]]  # track not NaN
    assert len(with_face) >= len(faces)  # the browser's data channel may drop a result; LSL does not
    assert all(set(s[2 * k : 3 * k]) <= {0.0, 1.0} for s in with_face)
