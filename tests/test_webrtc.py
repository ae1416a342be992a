"""``aunets serve`` without a browser: the frame-id strip, ICE host candidates, y4m, and a real aiortc client
that streams a face clip to the server over loopback UDP and gets results back on the data channel."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import zmq

from aunets.core.errors import ConfigError
from aunets.stream.webrtc.ice import IceServer, host_addresses_for
from aunets.stream.webrtc.marker import STRIP_ROWS, draw_marker, read_marker, strip_rows
from aunets.stream.webrtc.y4m import write_y4m
from tests.conftest import clip_frames


def small_clip_frames(n: int, size: tuple[int, int] = (320, 180)) -> list[np.ndarray]:
    return [cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in clip_frames(n)]


# --- frame ids -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("frame_id", [0, 1, 5, 1234, 131071, 262143])
def test_marker_round_trip(frame_id: int) -> None:
    image = small_clip_frames(1)[0]
    marked = draw_marker(image, frame_id)
    assert marked.shape == (image.shape[0] + STRIP_ROWS, image.shape[1], 3)
    assert np.array_equal(marked[STRIP_ROWS:], image)
    assert read_marker(marked) == frame_id


def test_marker_survives_lossy_compression_and_downscaling() -> None:
    image = small_clip_frames(1, (640, 360))[0]
    for frame_id in (7, 99_999, 200_000):
        marked = draw_marker(image, frame_id)
        ok, jpeg = cv2.imencode(".jpg", marked, [cv2.IMWRITE_JPEG_QUALITY, 30])
        assert ok
        decoded = cv2.imdecode(jpeg, cv2.IMREAD_COLOR)
        assert decoded is not None
        assert read_marker(decoded) == frame_id
        small = cv2.resize(decoded, (320, (360 + STRIP_ROWS) // 2), interpolation=cv2.INTER_AREA)
        assert read_marker(small, strip_rows(small.shape[0], marked.shape[0])) == frame_id


def test_marker_rejects_frames_without_a_strip() -> None:
    image = small_clip_frames(1)[0]
    assert read_marker(image) is None
    marked = draw_marker(image, 1234)
    marked[:STRIP_ROWS, marked.shape[1] // 2 :] = 255 - marked[:STRIP_ROWS, marked.shape[1] // 2 :]  # corrupt bits
    assert read_marker(marked) is None


# --- ICE ---------------------------------------------------------------------------------------------------------


def test_host_addresses_follow_the_bind_address() -> None:
    lan = ["192.0.2.10", "fe80::1"]
    assert host_addresses_for("127.0.0.1", lan) == ["127.0.0.1"]
    assert host_addresses_for("localhost", lan) == ["127.0.0.1"]
    assert host_addresses_for("192.0.2.10", lan) == ["192.0.2.10"]
    assert host_addresses_for("0.0.0.0", lan) == [*lan, "127.0.0.1"]


def test_ice_server_parsing() -> None:
    assert IceServer.parse("stun:stun.example.org:3478").to_json() == {"urls": "stun:stun.example.org:3478"}
    turn = IceServer.parse("turn:turn.example.org:3478,alice,secret")
    assert turn.to_json() == {"urls": "turn:turn.example.org:3478", "username": "alice", "credential": "secret"}
    with pytest.raises(ConfigError, match="stun:HOST:PORT"):
        IceServer.parse("http://example.org")
    with pytest.raises(ConfigError):
        IceServer.parse("turn:turn.example.org:3478,alice")


def test_loopback_host_candidate_in_the_sdp() -> None:
    """aioice leaves 127.0.0.1 out by default; after use_host_addresses the offer carries it (and only it)."""
    pytest.importorskip("aiortc")
    from aiortc import RTCPeerConnection

    from aunets.stream.webrtc.ice import rtc_configuration, use_host_addresses

    assert use_host_addresses("127.0.0.1") == ["127.0.0.1"]

    async def offer() -> str:
        pc = RTCPeerConnection(configuration=rtc_configuration([]))
        pc.createDataChannel("x")
        await pc.setLocalDescription(await pc.createOffer())
        sdp = str(pc.localDescription.sdp)
        await pc.close()
        return sdp

    sdp = asyncio.run(offer())
    candidates = [line for line in sdp.splitlines() if line.startswith("a=candidate:")]
    assert candidates, sdp
    assert all(" 127.0.0.1 " in c and " typ host" in c for c in candidates), candidates  # no STUN (srflx)


# --- y4m -----------------------------------------------------------------------------------------------------------


def test_y4m_layout(tmp_path: Path) -> None:
    frames = small_clip_frames(3)
    path = tmp_path / "clip.y4m"
    assert write_y4m(path, frames, fps=25) == 3
    data = path.read_bytes()
    header, _, rest = data.partition(b"\n")
    assert header == b"YUV4MPEG2 W320 H180 F25:1 Ip A1:1 C420jpeg"
    frame_bytes = 320 * 180 * 3 // 2
    assert len(rest) == 3 * (len(b"FRAME\n") + frame_bytes)
    y = np.frombuffer(rest[6 : 6 + 320 * 180], np.uint8).reshape(180, 320)
    gray = cv2.cvtColor(frames[0], cv2.COLOR_BGR2GRAY).astype(float)
    assert np.abs(y - (16 + gray * 219 / 255)).mean() < 3  # BT.601 limited range, as Chromium reads it
    with pytest.raises(ConfigError, match="even"):
        write_y4m(tmp_path / "odd.y4m", [np.zeros((5, 4, 3), np.uint8)])


# --- a real aiortc client over loopback ------------------------------------------------------------------------


def post_json(url: str, data: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(url, json.dumps(data).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return dict(json.loads(response.read()))


async def stream_clip(url: str, frames: list[np.ndarray], seconds: float) -> dict[str, Any]:
    """A Python WebRTC client doing what the page does: marked frames at 25 fps on a video track, an
    unordered no-retransmit data channel for results. Returns what it sent and received."""
    import av
    from aiortc import RTCPeerConnection, RTCSessionDescription, VideoStreamTrack

    from aunets.stream.webrtc.ice import rtc_configuration

    sent: list[int] = []

    class ClipTrack(VideoStreamTrack):
        async def recv(self) -> av.VideoFrame:
            pts, time_base = await self.next_timestamp()
            i = len(sent)
            sent.append(i)
            video_frame = av.VideoFrame.from_ndarray(draw_marker(frames[i % len(frames)], i), format="bgr24")
            video_frame.pts = pts
            video_frame.time_base = time_base if isinstance(time_base, Fraction) else Fraction(time_base)
            return video_frame

    pc = RTCPeerConnection(configuration=rtc_configuration([]))
    channel = pc.createDataChannel("results", ordered=False, maxRetransmits=0)
    messages: list[dict[str, Any]] = []
    channel.on("message", lambda m: messages.append(json.loads(m)))
    pc.addTrack(ClipTrack())
    await pc.setLocalDescription(await pc.createOffer())
    h, w = frames[0].shape[:2]
    offer = {"sdp": pc.localDescription.sdp, "type": "offer",
             "marker": {"rows": STRIP_ROWS, "width": w, "height": h + STRIP_ROWS}}  # fmt: skip
    answer = await asyncio.get_running_loop().run_in_executor(None, post_json, url + "offer", offer)
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))
    await asyncio.sleep(seconds)
    await pc.close()
    return {"session": answer["session"], "sent": sent, "messages": messages}


@pytest.mark.slow
def test_client_streams_and_gets_results_then_teardown(tiny_engine: Path) -> None:
    pytest.importorskip("aiortc")
    from aunets.engines.engine import load_engine
    from aunets.stream.webrtc.server import BackgroundServer, ServeConfig

    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"au.")
    config = ServeConfig(port=0, pub="tcp://127.0.0.1:*", status_every_s=0.5)
    try:
        with BackgroundServer(config, engine=load_engine(tiny_engine)) as bg:
            publisher = bg.server.publisher
            assert publisher is not None
            sub.connect(publisher.last_endpoint)  # type: ignore[attr-defined]
            page = urllib.request.urlopen(bg.url, timeout=10).read().decode()
            assert "app.js" in page
            page_config = json.loads(urllib.request.urlopen(bg.url + "config", timeout=10).read())
            assert page_config["iceServers"] == []
            assert page_config["names"]["AU12"] == "Lip corner puller"

            sessions_seen: dict[str, Any] = {}

            async def client() -> dict[str, Any]:
                task = asyncio.create_task(stream_clip(bg.url, small_clip_frames(25), seconds=4.0))
                while not task.done():  # look at the live session from the server's loop while it streams
                    await asyncio.sleep(0.5)
                    sessions_seen.update(bg.call(_snapshot, bg.server))
                return await task

            out = asyncio.run(client())
            # teardown: the client's close frees the session, its tasks and its pipeline
            deadline = time.monotonic() + 10
            while bg.session_ids() and time.monotonic() < deadline:
                time.sleep(0.1)
            assert bg.session_ids() == []
            snap = sessions_seen[out["session"]]
            assert snap["ordered"] is False and snap["maxRetransmits"] == 0
            session = snap["session"]
            assert session.task_count == 0 and session.channel is None and session._pipeline is None
            assert session.pc.connectionState == "closed"
            assert session._executor._shutdown
            # every received frame was processed or dropped (at most one in flight when it closed): no queue
            assert 0 <= session.received - session.processed - session.dropped <= 2
    finally:
        messages = []
        while sub.poll(100):
            topic, payload = sub.recv_multipart()
            messages.append((topic.decode(), json.loads(payload)))
        sub.close(0)
        ctx.term()

    results = [m for m in out["messages"] if m["type"] == "result"]
    assert len(results) >= 20, f"only {len(results)} result messages in 4 s"
    ids = [m["id"] for m in results]
    assert sum(i is not None for i in ids) >= 0.9 * len(ids), ids  # the strip survives VP8
    assert set(i for i in ids if i is not None) <= set(out["sent"])
    faces = [r for m in results for r in m["results"] if not r["no_face"]]
    assert len(faces) >= 10 and all(r["box"] and len(r["probability"]) == 12 for r in faces)
    assert all(r["id"] is not None for r in faces[-5:])
    assert results[-1]["size"] == [320, 180]  # the strip is cut off before the pipeline
    assert [t for t, _ in messages].count("au.frame") >= 10  # the same messages as `aunets run`, on ZeroMQ
    statuses = [p for t, p in messages if t == "au.status"]
    assert statuses and statuses[-1]["session"] == out["session"] and statuses[-1]["source"] == "webrtc"


async def _snapshot(server: Any) -> dict[str, Any]:
    return {
        sid: {"session": s, "ordered": s.channel.ordered, "maxRetransmits": s.channel.maxRetransmits}
        for sid, s in server.sessions.items()
        if s.channel is not None
    }
