"""The fault suite: real processes, real signals, loopback only, every wait bounded.

SIGINT/SIGTERM to ``aunets run``'s process group, SIGTERM to ``aunets process``, SIGKILL of the parent, offers
that never connect, engines whose manifest does not match the weights, outputs that cannot be written,
a container that overstates its frame count, and strict JSON everywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from aunets.core.au import BP4D_AUS
from tests.conftest import build_tiny_engine, clip_frames, write_long_video

CLI = [sys.executable, "-m", "aunets.cli"]


def strict_json(text: str) -> Any:
    """``json.loads`` that refuses NaN and Infinity, as JavaScript, Go and Rust parsers do."""

    def refuse(name: str) -> None:
        raise ValueError(f"not JSON: {name}")

    return json.loads(text, parse_constant=refuse)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s} s")
        time.sleep(0.01)


def _group(pgid: int) -> list[int]:
    """Live processes (not zombies) of process group ``pgid``, from /proc."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            pids.append(int(entry.name))
    return pids


def _shm_files(pids: list[int]) -> set[str]:
    """The /dev/shm files (shared-memory ring, semaphores) that ``pids`` have mapped."""
    files = set()
    for pid in pids:
        try:
            maps = Path(f"/proc/{pid}/maps").read_text()
        except OSError:
            continue
        for line in maps.splitlines():
            if "/dev/shm/" in line:
                files.add(line[line.index("/dev/shm/") :].removesuffix(" (deleted)"))
    return files


def _csv_rows(path: Path) -> int:
    try:
        return max(0, len(path.read_text().splitlines()) - 1)
    except FileNotFoundError:
        return 0


def _default_signals() -> None:
    """In the child before exec: SIGINT and SIGHUP as a terminal gives them (a CI runner may start the tests
    with them ignored, and an ignored signal is kept ignored on purpose)."""
    for sig in (signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)


def _kill_group(proc: subprocess.Popen[Any]) -> None:
    """Teardown: whatever a failed test left running goes."""
    if proc.poll() is None:
        proc.kill()
    for pid in _group(proc.pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def _cli(*args: str, output: bool = True) -> Iterator[subprocess.Popen[str]]:
    """``aunets ARGS`` as its own process group (a new session) with SIGINT/SIGHUP as a terminal gives them;
    stdout and stderr piped as text (``output``) or discarded. On leaving, whatever it left running is killed."""
    stream = subprocess.PIPE if output else subprocess.DEVNULL
    proc = subprocess.Popen([*CLI, *args], stdout=stream, stderr=stream, text=True, start_new_session=True,
                            preexec_fn=_default_signals)  # fmt: skip
    try:
        yield proc
    finally:
        _kill_group(proc)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_engine(tmp_path_factory.mktemp("faults") / "tiny")


@pytest.fixture(scope="module")
def long_video(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """600 frames (24 s at 25 fps) of the bundled clip's first 40 frames, looped."""
    path = tmp_path_factory.mktemp("faults") / "long.avi"
    return path, write_long_video(path)


def _check_csv(path: Path, fps: float = 25.0) -> list[dict[str, str]]:
    """Every row complete (all columns), frames consecutive from 1, timestamps the video's time."""
    with path.open(newline="") as fh:
        reader = csv.reader(fh, skipinitialspace=True)
        header = next(reader)
        rows = [dict(zip(header, r, strict=True)) for r in reader]
    assert [int(r["frame"]) for r in rows] == list(range(1, len(rows) + 1))
    assert all(abs(float(r["timestamp"]) - (int(r["frame"]) - 1) / fps) < 1e-3 for r in rows)
    return rows


# --- signals and dead parents -----------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stop_signal_to_the_group_of_run_exits_fast_with_every_row_a_summary_and_no_shm(
    sig: signal.Signals, engine: Path, long_video: tuple[Path, int], tmp_path: Path
) -> None:
    """What `systemctl stop` (SIGTERM) and Ctrl-C (SIGINT) do: the signal reaches every process of the group."""
    video, n = long_video
    out, stats_json = tmp_path / "run.csv", tmp_path / "stats.json"
    with _cli("run", str(video), "--realtime", "--engine", str(engine), "--pub", f"tcp://127.0.0.1:{_free_port()}",
              "--csv", str(out), "--stats-json", str(stats_json)) as proc:  # fmt: skip
        _wait_for(lambda: _csv_rows(out) >= 10 or proc.poll() is not None, 90, "10 CSV rows")
        assert proc.poll() is None, proc.communicate()
        shm = _shm_files(_group(proc.pid))
        assert any("psm_" in f for f in shm), shm  # the frame ring is there to be cleaned up
        t_signal = time.monotonic()
        os.killpg(proc.pid, sig)
        stdout, stderr = proc.communicate(timeout=5)
        _wait_for(lambda: not _group(proc.pid), 5 - (time.monotonic() - t_signal), "every process of the group gone")
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr, stderr
    assert f"stopped by {sig.name}" in stderr
    summary = strict_json(stdout.strip().splitlines()[-1])
    rows = _check_csv(out)
    assert 10 <= len(rows) == summary["frames"] < n
    assert summary["stopped_by"] == sig.name
    assert strict_json(stats_json.read_text()) == summary
    assert [f for f in shm if os.path.exists(f)] == []


@pytest.mark.slow
def test_sigkill_of_the_parent_leaves_no_capture_process_and_no_shm(
    engine: Path, long_video: tuple[Path, int], tmp_path: Path
) -> None:
    video, _ = long_video
    out = tmp_path / "run.csv"
    with _cli("run", str(video), "--realtime", "--engine", str(engine), "--pub", f"tcp://127.0.0.1:{_free_port()}",
              "--csv", str(out), output=False) as proc:  # fmt: skip
        _wait_for(lambda: _csv_rows(out) >= 3 or proc.poll() is not None, 90, "3 CSV rows")
        assert proc.poll() is None
        children = [p for p in _group(proc.pid) if p != proc.pid]
        assert children  # the capture process (and multiprocessing's resource tracker)
        shm = _shm_files([proc.pid, *children])
        proc.kill()
        proc.wait(timeout=5)
        _wait_for(lambda: not _group(proc.pid), 5, "the capture process gone after its parent's SIGKILL")
        _wait_for(lambda: not any(os.path.exists(f) for f in shm), 2, "shared memory unlinked")
    rows = _check_csv(out)  # flushed every frame: what was written survives SIGKILL, whole rows only
    assert len(rows) >= 3


@pytest.mark.slow
def test_sigterm_to_process_keeps_every_row_and_writes_this_runs_config(
    engine: Path, long_video: tuple[Path, int], tmp_path: Path
) -> None:
    video, n = long_video
    out = tmp_path / "p.csv"
    config = tmp_path / "p.csv.config.json"
    config.write_text('{"stale": "an earlier run"}\n')
    with _cli("process", str(video), "--csv", str(out), "--engine", str(engine), "--no-progress") as proc:
        _wait_for(lambda: _csv_rows(out) >= 5 or proc.poll() is not None, 90, "5 CSV rows")
        proc.send_signal(signal.SIGTERM)  # `kill PID`: the process only, not its group
        stdout, stderr = proc.communicate(timeout=10)
        _wait_for(lambda: not _group(proc.pid), 5, "the capture process gone")
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    summary = strict_json(stdout.strip().splitlines()[-1])
    rows = _check_csv(out)
    assert 5 <= len(rows) == summary["rows"] == summary["frames"] < n
    saved = strict_json(config.read_text())
    assert "stale" not in saved
    assert saved["stopped_by"] == "SIGTERM" and saved["complete"] is False and saved["stats"]["frames"] == len(rows)
    assert f"{len(rows)} rows are in" in stderr


# --- serve ---------------------------------------------------------------------------------------------------------


def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    request = urllib.request.Request(url, body, headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), bytes(exc.read())


def _raw_request(port: int, data: bytes) -> int:
    """Send ``data`` as is, close our side, return the status code."""
    with socket.create_connection(("127.0.0.1", port), timeout=15) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        reply = s.recv(200).decode("latin-1")
    return int(reply.split()[1]) if reply else 0  # 0: closed without a reply


@pytest.mark.slow
def test_offers_that_never_connect_are_freed_and_offer_refuses_foreign_pages(engine: Path) -> None:
    pytest.importorskip("aiortc")
    import zmq
    from aiortc import RTCPeerConnection

    from aunets.engines.engine import load_engine
    from aunets.stream.webrtc.ice import rtc_configuration
    from aunets.stream.webrtc.server import BackgroundServer, ServeConfig

    async def make_offer() -> str:
        pc = RTCPeerConnection(configuration=rtc_configuration([]))
        pc.createDataChannel("results")
        await pc.setLocalDescription(await pc.createOffer())
        sdp = str(pc.localDescription.sdp)
        await pc.close()
        return sdp

    offer = json.dumps({"sdp": asyncio.run(make_offer()), "type": "offer"}).encode()
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"au.status")
    config = ServeConfig(port=0, pub="tcp://127.0.0.1:*", status_every_s=0.2, max_sessions=9, connect_timeout_s=1.5)
    try:
        with BackgroundServer(config, engine=load_engine(engine)) as bg:
            sub.connect(bg.server.publisher.last_endpoint)  # type: ignore[union-attr]
            url = bg.url + "offer"
            origin = bg.url.rstrip("/")
            json_headers = {"Content-Type": "application/json", "Origin": origin}
            # a cross-site form POST or fetch from another page is refused before any session is made
            assert _post(url, offer, {"Content-Type": "text/plain"})[0] == 415
            assert _post(url, offer, {"Content-Type": "application/json", "Origin": "http://evil.example"})[0] == 403
            # malformed offers are the client's fault: 400, never 500
            deep = b"[" * 100_000 + b"]" * 100_000
            assert _post(url, deep, json_headers)[0] == 400
            rows_list = json.dumps({"sdp": "v=0", "type": "offer", "marker": {"rows": [1]}}).encode()
            assert _post(url, rows_list, json_headers)[0] == 400
            truncated = (b"POST /offer HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 100\r\n\r\n{\"sdp\": ")  # fmt: skip
            assert _raw_request(bg.server.port, truncated) in (0, 400)  # aiohttp drops a half-closed request
            assert bg.session_ids() == []
            # nine answered offers that never connect fill the server ...
            for _ in range(9):
                status, body = _post(url, offer, json_headers)
                assert status == 200, body
            t_full = time.monotonic()
            assert _post(url, offer, json_headers)[0] == 503
            with urllib.request.urlopen(bg.url + "sessions", timeout=10) as response:
                sessions = strict_json(response.read().decode())["sessions"]
            assert len(sessions) == 9
            assert all(s["latency_ms"] == {"p50": None, "p99": None} for s in sessions.values())
            # ... until the connect timeout frees them: a tenth client gets in
            _wait_for(lambda: len(bg.session_ids()) == 0, 10, "unconnected sessions freed")
            assert time.monotonic() - t_full >= 1.0
            assert _post(url, offer, json_headers)[0] == 200
    finally:
        statuses = []
        while sub.poll(100):
            statuses.append(sub.recv_multipart()[1].decode())
        sub.close(0)
        ctx.term()
    assert statuses, "no au.status from the sessions"
    parsed = [strict_json(s) for s in statuses]  # sessions with no frames: null latencies, not NaN
    assert any(p["latency_ms"]["p50"] is None for p in parsed)


def test_status_and_summary_without_frames_are_strict_json() -> None:
    from aunets.stream.messages import to_json
    from aunets.stream.runner import RunStats, _status

    status = strict_json(to_json(_status(RunStats(), deque(), 0.0)))
    assert status["latency_ms"] == {"p50": None, "p99": None}
    assert strict_json(to_json(RunStats().summary()))["latency_ms"] == {"p50": None, "p99": None}
    assert strict_json(to_json({"x": float("nan"), "y": [float("inf"), 1.5]})) == {"x": None, "y": [None, 1.5]}


# --- engines that do not match their weights -------------------------------------------------------------------


def _edit_manifest(bundle: Path, **changes: Any) -> None:
    path = bundle / "manifest.json"
    data = json.loads(path.read_text())
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key].update(value)
        else:
            data[key] = value
    path.write_text(json.dumps(data))


def test_manifest_that_does_not_match_the_weights_is_rejected_at_load(tmp_path: Path) -> None:
    from aunets.core.errors import EngineError
    from aunets.engines.engine import load_engine

    # 9 heads x 12 logits, but the manifest lists 11 AUs: 108 logits would be cut into misaligned 11-wide slices
    eleven = build_tiny_engine(tmp_path / "eleven", heads=9)
    _edit_manifest(eleven, aus=list(BP4D_AUS[:11]))
    with pytest.raises(EngineError, match=r"108 logits .* too many .* 11 AUs x 9 head"):
        load_engine(eleven)
    # the graph takes 48x96 (rgb|flow side by side), the manifest says 64x64 crops
    size = build_tiny_engine(tmp_path / "size", fixed_size=True)
    load_engine(size)  # as built, it loads
    _edit_manifest(size, input={"height": 64, "width": 64})
    with pytest.raises(EngineError, match=r"takes input 3x48x96 .* manifest says rgb\|flow horizontal 64x128"):
        load_engine(size)


def test_mismatched_engine_is_one_line_before_any_frame(tmp_path: Path, test_video: tuple[Path, int]) -> None:
    video, _ = test_video
    bad = build_tiny_engine(tmp_path / "eleven", heads=9)
    _edit_manifest(bad, aus=list(BP4D_AUS[:11]))
    out = tmp_path / "o.csv"
    res = subprocess.run([*CLI, "process", str(video), "--csv", str(out), "--engine", str(bad), "--no-progress"],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert res.returncode == 1
    assert res.stderr.strip().count("\n") == 0 and res.stderr.startswith("aunets process: error: detector")
    assert not out.exists()


@pytest.mark.parametrize(("key", "value"), [("mean", [float("nan"), 0.5, 0.5]), ("std", [0.2, float("inf"), 0.2])])
def test_manifest_numbers_must_be_finite(key: str, value: list[float], tmp_path: Path,
                                         test_video: tuple[Path, int]) -> None:  # fmt: skip
    """A NaN mean shifts every probability (by up to 0.68 in the default engine); infinity blanks the input."""
    bad = build_tiny_engine(tmp_path / "bad")
    _edit_manifest(bad, input={key: value})
    out = tmp_path / "o.csv"
    res = subprocess.run([*CLI, "process", str(test_video[0]), "--csv", str(out), "--engine", str(bad),
                          "--no-progress"], capture_output=True, text=True, timeout=120)  # fmt: skip
    assert res.returncode == 1, res.stderr
    assert res.stderr.strip().count("\n") == 0 and f"input {key} must be finite numbers" in res.stderr, res.stderr
    assert not out.exists()


# --- bad outputs and options, before the engine loads ------------------------------------------------------------

NO_ENGINE = ["--engine", "/nonexistent-engine"]


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["run", "{video}", "--csv", "{file}/x.csv", *NO_ENGINE], "--csv"),
        (["run", "{video}", "--stats-json", "{file}/s.json", *NO_ENGINE], "--stats-json"),
        (["run", "{video}", "--pub", "tcp://127.0.0.1:99999", *NO_ENGINE], "1..65535"),
        (["run", "{tmp}/missing.mp4", *NO_ENGINE], "does not exist"),
        (["process", "{video}", "--csv", "{file}/x.csv", *NO_ENGINE], "--csv"),
        (["process", "{video}", "--csv", "{tmp}/x.csv", "--plot", "{tmp}/plot.txt", *NO_ENGINE], "--plot"),
        (["process", "http://127.0.0.1:{port}/clip.mp4", "--csv", "{tmp}/x.csv", *NO_ENGINE], "refused"),
        (["listen", "--record", "{file}/r.jsonl", "--timeout", "0.1"], "--record"),
        (["listen", "--sub", "foo", "--timeout", "0.1"], "--sub"),
        (["serve", "--config-json", "{file}/c.json", *NO_ENGINE], "--config-json"),
    ],
)
def test_bad_outputs_and_endpoints_fail_first_with_one_line(
    argv: list[str], says: str, test_video: tuple[Path, int], tmp_path: Path
) -> None:
    video, _ = test_video
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    values = {"video": str(video), "file": str(a_file), "tmp": str(tmp_path), "port": str(_free_port())}
    res = subprocess.run([*CLI, *(a.format(**values) for a in argv)], capture_output=True, text=True, timeout=60)
    lines = [line for line in res.stderr.splitlines() if not line.startswith("[tcp @")]  # ffmpeg's own log line
    assert res.returncode == 1, res.stderr
    assert len(lines) == 1 and lines[0].startswith(f"aunets {argv[0]}: error: ") and says in lines[0], res.stderr
    assert "nonexistent-engine" not in res.stderr and "publishing" not in res.stderr


def test_pub_on_every_interface_warns_before_anything_else(test_video: tuple[Path, int]) -> None:
    video, _ = test_video
    port = _free_port()
    res = subprocess.run([*CLI, "run", str(video), "--pub", f"tcp://0.0.0.0:{port}", *NO_ENGINE],
                         capture_output=True, text=True, timeout=60)  # fmt: skip  # fails at the engine: never binds
    warning, error = res.stderr.strip().splitlines()
    assert warning.startswith("aunets run: WARNING: --pub tcp://0.0.0.0:")
    assert "unauthenticated" in warning and f"tcp://127.0.0.1:{port}" in warning
    assert "nonexistent-engine" in error


@pytest.mark.parametrize(
    "argv",
    [["run", "--max-frames", "0"], ["run", "--max-frames", "-1"], ["process", "v.mp4", "--csv", "o.csv",
     "--median-window", "0"], ["run", "--threads", "0"], ["run", "--median-window", "4"],
     ["serve", "--port", "70000"], ["serve", "--max-sessions", "0"]],
)  # fmt: skip
def test_out_of_range_options_are_refused_not_read_as_defaults(argv: list[str]) -> None:
    res = subprocess.run([*CLI, *argv], capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "error: argument" in res.stderr, res.stderr


@pytest.mark.slow
def test_disk_full_mid_run_keeps_whole_rows_only(engine: Path, long_video: tuple[Path, int], tmp_path: Path) -> None:
    """A real short write mid-run: a file-size limit (RLIMIT_FSIZE, set on the running process) makes the
    kernel stop the CSV in the middle of a row, as a full disk does."""
    import resource

    video, n = long_video
    out = tmp_path / "o.csv"
    with _cli("process", str(video), "--csv", str(out), "--engine", str(engine), "--no-progress") as proc:
        _wait_for(lambda: _csv_rows(out) >= 5 or proc.poll() is not None, 90, "5 CSV rows")
        limit = out.stat().st_size + 20_000  # about 150 rows more; CPython ignores SIGXFSZ, so writes get EFBIG
        resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, (limit, limit))
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert stderr.strip().count("\n") == 0 and "File too large" in stderr, stderr
    rows = _check_csv(out)  # every row whole: the half-written last one was cut off
    assert 5 < len(rows) < n and out.stat().st_size <= limit
    assert f"{len(rows)} rows were written" in stderr


def test_listen_that_receives_nothing_fails() -> None:
    res = subprocess.run([*CLI, "listen", "--sub", f"tcp://127.0.0.1:{_free_port()}", "--timeout", "0.3"],
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert res.returncode == 1 and "received nothing" in res.stderr


# --- no traceback reaches the user -------------------------------------------------------------------------------


def test_a_reader_that_leaves_early_is_no_traceback(engine: Path, test_video: tuple[Path, int], tmp_path: Path) -> None:
    """`aunets process CLIP | head -c 100`, made certain: the pipe's reader is gone before the summary is written."""
    out = tmp_path / "o.csv"
    proc = subprocess.Popen([*CLI, "process", str(test_video[0]), "--csv", str(out), "--engine", str(engine),
                             "--no-progress", "--max-frames", "4"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    stderr = proc.stderr.read()
    proc.wait(timeout=120)
    assert proc.returncode == 128 + signal.SIGPIPE, stderr
    assert stderr == "", stderr
    assert len(_check_csv(out)) == 4  # the outputs are whole: only the summary had nowhere to go


def test_a_camera_that_does_not_open_is_one_line(engine: Path) -> None:
    res = subprocess.run([*CLI, "run", "97", "--engine", str(engine), "--pub", f"tcp://127.0.0.1:{_free_port()}"],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert res.returncode == 1
    assert res.stdout == ""  # no all-zero summary
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("aunets run: error: camera 97 does not open"), res.stderr


def test_a_folder_with_videos_points_to_batch(engine: Path, test_video: tuple[Path, int], tmp_path: Path) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "a.mp4").write_bytes(test_video[0].read_bytes())
    res = subprocess.run([*CLI, "process", str(folder), "--csv", str(tmp_path / "o.csv"), "--engine", str(engine)],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 1 and len(lines) == 1, res.stderr
    assert "has no images but 1 video(s) (a.mp4)" in lines[0] and f"aunets batch {folder} --out DIR" in lines[0]
    cv2.imwrite(str(folder / "still.jpg"), clip_frames(1)[0])  # videos and one image: the image is read, and said
    res = subprocess.run([*CLI, "process", str(folder), "--csv", str(tmp_path / "o.csv"), "--engine", str(engine),
                          "--no-progress"], capture_output=True, text=True, timeout=120)  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "sequence of its 1 image(s); its 1 video(s) (a.mp4) are not read" in res.stderr
    assert f"aunets batch {folder} --out DIR" in res.stderr


# --- end of stream is not damage ---------------------------------------------------------------------------------


def test_container_that_overstates_its_frame_count_is_complete(engine: Path, tmp_path: Path) -> None:
    """As OpenFace's changeLighting.wmv (announces 90 frames, decodes 88): an estimated count is not damage."""
    frames = [cv2.resize(f, (320, 180)) for f in clip_frames(30)]
    video = tmp_path / "over.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 25, (320, 180))
    for f in frames:
        writer.write(f)
    writer.release()
    data = bytearray(video.read_bytes())  # announce 32 frames: AVI main header and video stream header
    struct.pack_into("<I", data, data.find(b"avih") + 8 + 16, 32)
    struct.pack_into("<I", data, data.find(b"strh") + 8 + 32, 32)
    video.write_bytes(bytes(data))
    cap = cv2.VideoCapture(str(video))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 32
    cap.release()
    out = tmp_path / "o.csv"
    res = subprocess.run([*CLI, "process", str(video), "--csv", str(out), "--engine", str(engine), "--no-progress"],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert len(_check_csv(out)) == 30
    assert "announced 32 frames and 30 decoded" in res.stderr
    assert np.isfinite(strict_json(res.stdout.strip().splitlines()[-1])["fps"])
