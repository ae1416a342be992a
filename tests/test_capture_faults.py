"""Faults of the capture process and of every wait, on real processes: SIGKILL and SIGSTOP of the real capture
child of ``aunets process`` and ``aunets run``, stop signals during ``--wait-subscriber`` and while a network
stream opens, and the ``au.status`` heartbeat seen by a real ZeroMQ subscriber while the source stalls."""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import build_tiny_engine, write_long_video
from tests.test_faults import _check_csv, _cli, _csv_rows, _free_port, _group, _shm_files, _wait_for, strict_json

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_engine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_engine(tmp_path_factory.mktemp("capture_faults") / "tiny")


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """600 frames (24 s at 25 fps) of the bundled clip's first 40 frames, looped."""
    path = tmp_path_factory.mktemp("capture_faults") / "long.avi"
    write_long_video(path)
    return path


def _capture_child(parent: int) -> int | None:
    """The pid of ``parent``'s capture process (a multiprocessing spawn child, not the resource tracker)."""
    for pid in _group(parent):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
            ppid = int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])
        except (OSError, ValueError):
            continue
        if ppid == parent and b"spawn_main" in cmdline and b"resource_tracker" not in cmdline:
            return pid
    return None


def _ends_within(proc: Any, timeout_s: float) -> tuple[str, str, float]:
    """stdout, stderr and the seconds ``proc`` took to end."""
    t0 = time.monotonic()
    stdout, stderr = proc.communicate(timeout=timeout_s)
    return stdout, stderr, time.monotonic() - t0


@pytest.mark.parametrize(
    ("command", "moment"),
    [("process", "streaming"), ("process", "opening"), ("run", "streaming"), ("run", "opening")],
)
def test_sigkill_of_the_capture_process_ends_the_parent_within_a_second_rows_kept_shm_unlinked(
    command: str, moment: str, tiny_engine: Path, video: Path, tmp_path: Path
) -> None:
    out = tmp_path / "o.csv"
    argv = ["--engine", str(tiny_engine), "--csv", str(out)]
    if command == "process":
        argv += ["--no-progress"]
    else:
        argv += ["--realtime", "--pub", f"tcp://127.0.0.1:{_free_port()}"]
    with _cli(command, str(video), *argv) as proc:
        if moment == "streaming":
            _wait_for(lambda: _csv_rows(out) >= 5 or proc.poll() is not None, 90, "5 CSV rows")
        else:  # as soon as the capture process exists: it is still importing or opening the video
            _wait_for(lambda: _capture_child(proc.pid) is not None or proc.poll() is not None, 90, "a capture child")
        assert proc.poll() is None, proc.communicate()
        child = _capture_child(proc.pid)
        assert child is not None
        shm = _shm_files(_group(proc.pid))
        os.kill(child, signal.SIGKILL)
        t_kill = time.monotonic()
        _, stderr = proc.communicate(timeout=30)
        took = time.monotonic() - t_kill
        _wait_for(lambda: not _group(proc.pid), 5, "every process of the group gone")
    assert took < 1.5, f"the parent took {took:.2f} s to end after its capture process was killed"
    assert proc.returncode == 1, stderr
    assert "Traceback" not in stderr and "AssertionError" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "the capture process died (killed by SIGKILL)" in errors[0], stderr
    rows = _check_csv(out)  # every row written before the death is kept, whole
    if moment == "streaming":
        assert len(rows) >= 5
    assert [f for f in shm if os.path.exists(f)] == []  # the ring and the semaphores are unlinked


def test_sigkill_of_the_capture_process_at_many_moments_never_hangs(tiny_engine: Path, video: Path,
                                                                    tmp_path: Path) -> None:
    """Main hung in 4 of 6 such kills (a Condition whose waiter was killed). `process` runs as fast as it can,
    so the capture process is as often waiting for a slot, or holding the slot lock, as reading."""
    for k, rows in enumerate((1, 4, 9, 17, 33, 65)):
        out = tmp_path / f"o{k}.csv"
        with _cli("process", str(video), "--engine", str(tiny_engine), "--csv", str(out), "--no-progress") as proc:
            _wait_for(lambda: _csv_rows(out) >= rows or proc.poll() is not None, 90, f"{rows} CSV rows")  # noqa: B023
            child = _capture_child(proc.pid)
            assert proc.poll() is None and child is not None
            os.kill(child, signal.SIGKILL)
            t_kill = time.monotonic()
            _, stderr = proc.communicate(timeout=30)
            took = time.monotonic() - t_kill
        assert took < 1.5 and proc.returncode == 1, (rows, took, stderr)
        assert "killed by SIGKILL" in stderr and "Traceback" not in stderr, stderr
        assert len(_check_csv(out)) >= rows


def test_stop_signal_during_wait_subscriber_exits_at_once_with_zero(tiny_engine: Path, video: Path) -> None:
    port = _free_port()
    with _cli("run", str(video), "--engine", str(tiny_engine), "--pub", f"tcp://127.0.0.1:{port}",
              "--wait-subscriber", "40") as proc:  # fmt: skip
        def bound() -> bool:  # a plain TCP connection: no ZeroMQ handshake, so no subscriber
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
            return proc.poll() is not None

        _wait_for(bound, 90, "the publisher bound")
        assert proc.poll() is None
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        stdout, stderr, took = _ends_within(proc, 30)
    assert took < 1.0, f"{took:.2f} s after SIGTERM"
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr and "no subscriber" not in stderr and "publishing" not in stderr, stderr
    assert strict_json(stdout.strip().splitlines()[-1])["stopped_by"] == "SIGTERM"


def test_stop_signal_while_a_network_stream_opens_exits_at_once(tiny_engine: Path) -> None:
    """An HTTP server that accepts and never answers: OpenCV's open blocks inside the capture process."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    accepted: list[socket.socket] = []

    def accept() -> None:
        with contextlib.suppress(OSError):
            while True:
                accepted.append(server.accept()[0])

    threading.Thread(target=accept, daemon=True).start()
    try:
        with _cli("run", f"http://127.0.0.1:{port}/live.mp4", "--engine", str(tiny_engine),
                  "--pub", f"tcp://127.0.0.1:{_free_port()}") as proc:  # fmt: skip
            _wait_for(lambda: bool(accepted) or proc.poll() is not None, 90, "the stream's connection")
            assert proc.poll() is None
            proc.send_signal(signal.SIGTERM)
            stdout, stderr, took = _ends_within(proc, 30)
            _wait_for(lambda: not _group(proc.pid), 5, "the capture process gone")
    finally:
        server.close()
        for conn in accepted:
            conn.close()
    assert took < 2.5, f"{took:.2f} s after SIGTERM"  # 1 s for the capture process to stop, then SIGKILL
    assert proc.returncode == 0, stderr
    assert "did not start in time" not in stderr and "Traceback" not in stderr, stderr
    assert strict_json(stdout.strip().splitlines()[-1])["stopped_by"] == "SIGTERM"


def test_status_keeps_beating_and_says_stalled_while_the_capture_process_is_stopped(
    tiny_engine: Path, video: Path
) -> None:
    import zmq

    port = _free_port()
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"au.status")
    sub.connect(f"tcp://127.0.0.1:{port}")

    def statuses(seconds: float) -> list[tuple[float, dict[str, Any]]]:
        got = []
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if sub.poll(int(left * 1000) + 1):
                got.append((time.monotonic(), strict_json(sub.recv_multipart()[1].decode())))
        return got

    try:
        with _cli("run", str(video), "--realtime", "--engine", str(tiny_engine), "--pub",
                  f"tcp://127.0.0.1:{port}") as proc:  # fmt: skip
            _wait_for(lambda: sub.poll(100) != 0 or proc.poll() is not None, 90, "a first au.status")
            assert proc.poll() is None
            before = statuses(1.5)
            assert before and not any(s["stalled"] for _, s in before)
            child = _capture_child(proc.pid)
            assert child is not None
            os.kill(child, signal.SIGSTOP)
            try:
                during = statuses(4.5)
            finally:
                os.kill(child, signal.SIGCONT)
            after = statuses(2.5)
            proc.send_signal(signal.SIGTERM)
            _, stderr, _ = _ends_within(proc, 30)
    finally:
        sub.close(0)
        ctx.term()
    assert proc.returncode == 0, stderr
    stalled = [(t, s) for t, s in during if s["stalled"]]
    assert len(stalled) >= 3, during  # still once a second: a stalled source, not a dead publisher
    assert all(s["fps"] == 0 for _, s in stalled)
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(stalled)]
    assert max(gaps) < 1.5, gaps
    assert after and not after[-1][1]["stalled"] and after[-1][1]["fps"] > 0
    assert "the source is stalled" in stderr and "frames again after" in stderr, stderr
