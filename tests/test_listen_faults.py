"""``aunets listen`` as a real process against a real ZeroMQ publisher: a full disk under ``--record`` (a
file-size limit set on the running process, as the CSV's full-disk test does) and a publisher that restarts."""

from __future__ import annotations

import json
import resource
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq

from tests.test_faults import _cli, _free_port, _wait_for


@pytest.fixture
def endpoint() -> str:
    return f"tcp://127.0.0.1:{_free_port()}"


class _Publisher:
    """A real XPUB socket that sends ``au.status`` messages as ``aunets run`` does, once a subscriber is in."""

    def __init__(self, ctx: zmq.Context[Any], endpoint: str) -> None:
        self.sock = ctx.socket(zmq.XPUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.bind(endpoint)
        self.seq = 0

    def wait_subscriber(self, timeout_s: float = 30) -> None:
        assert self.sock.poll(int(timeout_s * 1000)), "no subscriber"
        assert self.sock.recv()[:1] == b"\x01"

    def send(self, n: int, pad: int = 0) -> None:
        for _ in range(n):
            payload = {"schema": 1, "seq": self.seq, "t": time.time(), "fps": 25.0, "frames": self.seq,
                       "dropped": 0, "no_face": 0, "latency_ms": {"p50": 1.0, "p99": 2.0}, "pad": "x" * pad}
            self.sock.send_multipart([b"au.status", json.dumps(payload).encode()])
            self.seq += 1
            time.sleep(0.01)

    def close(self) -> None:
        self.sock.close(0)


@pytest.fixture
def ctx() -> Iterator[zmq.Context[Any]]:
    context: zmq.Context[Any] = zmq.Context()
    yield context
    context.term()


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_record_on_a_full_disk_ends_with_its_last_whole_line(ctx: zmq.Context[Any], endpoint: str,
                                                             tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    pub = _Publisher(ctx, endpoint)
    try:
        with _cli("listen", "--sub", endpoint, "--topics", "au.status", "--record", str(out)) as proc:
            pub.wait_subscriber()
            pub.send(5)
            _wait_for(lambda: len(_lines(out)) >= 5 or proc.poll() is not None, 30, "5 recorded lines")
            limit = out.stat().st_size + 3000  # a 1 kB message then ends mid-line, as on a full disk
            resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, (limit, limit))
            pub.send(20, pad=1000)
            _, stderr = proc.communicate(timeout=30)
    finally:
        pub.close()
    assert proc.returncode == 1, stderr
    assert out.read_bytes().endswith(b"\n"), out.read_bytes()[-80:]  # not cut mid-object
    records = [json.loads(line) for line in _lines(out)]  # every line whole JSON
    assert [r["payload"]["seq"] for r in records] == list(range(len(records)))
    assert 5 < len(records) < 25 and out.stat().st_size <= limit
    errors = [line for line in stderr.splitlines() if line.startswith("aunets listen:")]
    assert len(errors) == 1 and "File too large" in errors[0] and "last whole one" in errors[0], stderr


def test_a_publisher_restart_is_reported_as_a_restart_not_a_gap(ctx: zmq.Context[Any], endpoint: str) -> None:
    with _cli("listen", "--sub", endpoint, "--topics", "au.status", "--count", "8") as proc:
        first = _Publisher(ctx, endpoint)
        first.wait_subscriber()
        first.send(5)
        time.sleep(0.3)
        first.close()  # `aunets run` stopped and started again: its seq counters start at 0
        time.sleep(0.2)
        second = _Publisher(ctx, endpoint)
        try:
            second.wait_subscriber()  # the SUB socket reconnects and subscribes again by itself
            second.send(3)
            _, stderr = proc.communicate(timeout=30)
        finally:
            second.close()
    assert proc.returncode == 0, stderr
    assert "publisher restarted: au.status seq 4 -> 0" in stderr, stderr
    assert "gap" not in stderr, stderr
