"""The HTTP side of ``aunets serve`` against hostile clients, on a real server and real loopback sockets: a
DNS-rebinding page, huge or endless headers, a client that sends one header line every so often, and
``--host`` on the network without ``--cert``."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import build_tiny_engine
from tests.test_faults import CLI

pytest.importorskip("aiortc")
pytest.importorskip("aiohttp")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from aunets.engines.engine import load_engine
    from aunets.stream.webrtc.server import BackgroundServer, ServeConfig

    engine = load_engine(build_tiny_engine(tmp_path_factory.mktemp("serve_http") / "tiny"))
    config = ServeConfig(port=0, pub=None, allow_origins=("mybox.local",), request_deadline_s=1.5)
    with BackgroundServer(config, engine=engine) as bg:
        yield bg


def _exchange(port: int, data: bytes, timeout_s: float = 10.0) -> tuple[int, float]:
    """Send ``data`` (stopping early if the server closes), read the reply: (status, 0 if none; seconds)."""
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as s:
        try:
            for i in range(0, len(data), 65536):
                s.sendall(data[i : i + 65536])
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            reply = s.recv(200).decode("latin-1")
        except ConnectionResetError:
            reply = ""
    return (int(reply.split()[1]) if reply else 0), time.monotonic() - t0


def _offer_request(host: str, origin: str | None, body: bytes = b"{}") -> bytes:
    head = f"POST /offer HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
    if origin is not None:
        head += f"Origin: {origin}\r\n"
    return head.encode() + f"Content-Length: {len(body)}\r\n\r\n".encode() + body


def test_offer_only_for_hosts_on_the_allow_list(server: Any) -> None:
    port = server.server.port
    # what a DNS-rebinding page sends: its own name, in Host and in Origin
    assert _exchange(port, _offer_request(f"evil.example:{port}", f"http://evil.example:{port}"))[0] == 403
    assert _exchange(port, _offer_request(f"evil.example:{port}", None))[0] == 403
    # loopback names and --allow-origin pass the host check (then the empty offer is refused as malformed)
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", f"mybox.local:{port}"):
        assert _exchange(port, _offer_request(host, f"http://{host}"))[0] == 400, host
    # an allowed Host with another page's Origin is still refused
    assert _exchange(port, _offer_request(f"127.0.0.1:{port}", "http://mybox.local:1"))[0] == 403
    assert server.session_ids() == []


def test_header_count_and_size_are_limited(server: Any) -> None:
    port = server.server.port
    many = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(200)) + b"\r\n"
    assert _exchange(port, many)[0] in (400, 431)
    long_field = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n"
    assert _exchange(port, long_field)[0] in (400, 431)
    # 50 MB of headers: refused long before the end, the server does not buffer them
    endless = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"X-Pad: " + b"b" * 8000 + b"\r\n"
    status, took = _exchange(port, endless * 6000)
    assert status in (0, 400, 431) and took < 5
    ok = b"GET /config HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    assert _exchange(port, ok)[0] == 200  # and the server still serves


@pytest.mark.slow
def test_a_request_that_trickles_in_is_cut_at_the_deadline(server: Any) -> None:
    """Slowloris: one header line every 0.4 s would keep a connection open forever without a deadline."""
    port = server.server.port
    t0 = time.monotonic()
    closed_after = None
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        for i in range(40):
            time.sleep(0.4)
            try:
                s.sendall(b"X-%d: y\r\n" % i)
                s.settimeout(0.01)
                if s.recv(1) == b"":
                    closed_after = time.monotonic() - t0
                    break
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                closed_after = time.monotonic() - t0
                break
    assert closed_after is not None, "the connection stayed open for 16 s"
    assert 1.4 < closed_after < 3.5, closed_after  # request_deadline_s is 1.5 here
    # a body that trickles: 408 at the deadline
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(_offer_request(f"127.0.0.1:{port}", None, b"{" + b" " * 99)[:-60])
        t1 = time.monotonic()
        reply = s.recv(200).decode("latin-1")
    assert reply.split()[1] == "408" and time.monotonic() - t1 < 3.5, reply


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::"])
def test_serve_on_the_network_without_cert_is_refused_before_anything(host: str, tmp_path: Path) -> None:
    res = subprocess.run([*CLI, "serve", "--host", host, "--port", "0", "--engine", "/nonexistent-engine"],
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert res.returncode == 1, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("aunets serve: error: --host ") and "--cert" in lines[0]
    assert "nonexistent-engine" not in res.stderr
