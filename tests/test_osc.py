"""OSC output: a real python-osc server on loopback receives every AU, face and event message of a real run."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from aunets.core.au import au_key
from aunets.core.errors import ConfigError
from aunets.stream.capture import CaptureConfig
from aunets.stream.osc_sink import parse_osc_target
from aunets.stream.pipeline import Pipeline, PipelineConfig
from aunets.stream.runner import run_stream
from tests.conftest import Collect

pytest.importorskip("pythonosc", reason="the [osc] extra (python-osc) is not installed")


class _Server:
    """A python-osc UDP server on a free loopback port, recording (address, args) in arrival order."""

    def __init__(self) -> None:
        from pythonosc.dispatcher import Dispatcher
        from pythonosc.osc_server import ThreadingOSCUDPServer

        self.messages: list[tuple[str, tuple[Any, ...]]] = []
        dispatcher = Dispatcher()
        dispatcher.set_default_handler(lambda address, *args: self.messages.append((address, args)))
        self.server = ThreadingOSCUDPServer(("127.0.0.1", 0), dispatcher)
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> _Server:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def wait(self, n: int, timeout: float = 10.0) -> None:
        end = time.monotonic() + timeout
        while len(self.messages) < n and time.monotonic() < end:
            time.sleep(0.02)


def test_every_au_face_and_event_reaches_a_real_osc_server(tiny_engine: Path, test_video: tuple[Path, int]) -> None:
    from aunets.stream.osc_sink import OscSender

    video, n_frames = test_video
    pipeline = Pipeline(PipelineConfig(engine=tiny_engine))
    collect = Collect()
    with _Server() as server:
        sender = OscSender("127.0.0.1", server.port, pipeline.aus)
        # paced as live (25 frames/s): a burst of a whole file can overflow the receiver's UDP buffer
        run_stream(CaptureConfig(str(video), realtime=True), pipeline, [collect, sender], status_every_s=0.2)
        sender.close()
        frames = collect.frames
        assert len(frames) == n_frames
        events = [e for r in collect.results for e in r.events]
        faces = [r for r in frames if not r.no_face]
        expected = len(frames) + len(faces) * len(pipeline.aus) + len(events)
        server.wait(expected)
    got = [m for m in server.messages if m[0] != "/aunets/status"]
    assert len(got) == expected  # UDP on loopback: nothing lost
    assert sum(a == "/aunets/noface" for a, _ in got) == len(frames) - len(faces) == 10
    by_frame = {args[1]: args for a, args in got if a == "/aunets/face"}
    au12 = [args for a, args in got if a == "/aunets/au/AU12"]
    assert len(au12) == len(faces)
    for r, args in zip(faces, au12, strict=True):  # one sender, one receiver thread: in order
        assert by_frame[r.frame_index][0] == r.track_id
        assert args[0] == pytest.approx(r.smoothed[12], abs=1e-6) and args[1] == int(r.states[12])
        assert args[2] == pytest.approx(r.probabilities[12], abs=1e-6) and args[4] == r.track_id
    sent = [(a.rsplit("/", 1)[1], args[0], args[1]) for a, args in got if a.startswith("/aunets/event/")]
    assert sent == [(au_key(e.au), e.kind, e.track_id) for e in events]
    assert any(a == "/aunets/status" for a, _ in server.messages)


@pytest.mark.parametrize(("text", "warns"), [("127.0.0.1:9000", False), ("localhost:57120", False),
                                             ("192.168.1.20:8000", True)])  # fmt: skip
def test_osc_target_is_parsed_and_a_remote_host_is_warned_about(text: str, warns: bool) -> None:
    host, port, warning = parse_osc_target(text)
    assert f"{host}:{port}" == text and (warning is not None) == warns


@pytest.mark.parametrize("text", ["9000", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:70000", ":9000", "host:port"])
def test_a_bad_osc_target_is_one_line_naming_the_form(text: str) -> None:
    with pytest.raises(ConfigError, match="HOST:PORT"):
        parse_osc_target(text)


def test_run_refuses_a_bad_osc_target_before_loading_anything(tmp_path: Path) -> None:
    res = subprocess.run([sys.executable, "-m", "aunets.cli", "run", str(tmp_path / "none.mp4"), "--osc", "9000"],
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert res.returncode != 0 and "HOST:PORT" in res.stderr and "Traceback" not in res.stderr


@pytest.mark.slow
def test_run_osc_sends_to_a_real_server(tiny_engine: Path, test_video: tuple[Path, int]) -> None:
    import socket

    video, n_frames = test_video
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        pub = f"tcp://127.0.0.1:{s.getsockname()[1]}"
    with _Server() as server:
        res = subprocess.run([sys.executable, "-m", "aunets.cli", "run", str(video), "--engine", str(tiny_engine),
                              "--pub", pub, "--osc", f"127.0.0.1:{server.port}", "--realtime"],
                             capture_output=True, text=True, timeout=120)  # fmt: skip
        assert res.returncode == 0, res.stderr
        server.wait(n_frames + 12 * (n_frames - 10), timeout=5)
    addresses = [a for a, _ in server.messages]
    assert addresses.count("/aunets/face") + addresses.count("/aunets/noface") == n_frames
    assert addresses.count("/aunets/au/AU24") == n_frames - 10


@pytest.mark.slow
def test_serve_osc_sends_what_a_webrtc_peer_streams(tiny_engine: Path) -> None:
    pytest.importorskip("aiortc")
    import asyncio

    from aunets.engines.engine import load_engine
    from aunets.stream.webrtc.server import BackgroundServer, ServeConfig
    from tests.test_webrtc import small_clip_frames, stream_clip

    with _Server() as server:
        config = ServeConfig(port=0, pub=None, osc=f"127.0.0.1:{server.port}", status_every_s=0.5)
        with BackgroundServer(config, engine=load_engine(tiny_engine)) as bg:
            out = asyncio.run(stream_clip(bg.url, small_clip_frames(25), seconds=3.0))
        faces = [r for m in out["messages"] if m["type"] == "result" for r in m["results"] if not r["no_face"]]
        server.wait(len(faces) * 13, timeout=5)
    assert len(faces) >= 10
    # every face result the browser got was sent over OSC too (the data channel may drop one, UDP on loopback not)
    assert [a for a, _ in server.messages].count("/aunets/au/AU12") >= len(faces)
