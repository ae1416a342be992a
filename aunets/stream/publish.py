"""Publishing results: the :class:`Sink` protocol and the ZeroMQ publisher.

Messages are multipart ``[topic, json]`` (UTF-8). Each topic has its own ``seq`` counter, so a subscriber to
one topic sees gaps (dropped messages) as jumps in ``seq``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import zmq

from aunets.core.errors import ConfigError
from aunets.stream.messages import (
    TOPIC_EVENT,
    TOPIC_FRAME,
    TOPIC_STATUS,
    event_payload,
    frame_payload,
    status_payload,
    to_json,
)

if TYPE_CHECKING:
    from aunets.core.results import FaceResult

log = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "tcp://127.0.0.1:5556"


LOOPBACK_HOSTS = ("localhost", "lo", "lo0")


def check_endpoint(endpoint: str, option: str = "--pub") -> str | None:
    """Validate a ZeroMQ endpoint (``tcp://HOST:PORT``, port 1..65535 or ``*`` for any free one;
    ``ipc://``, ``inproc://``). Raises :class:`ConfigError` naming the fix; returns a warning when a ``tcp``
    endpoint is reachable from other machines (anything but loopback), else None."""
    transport, sep, rest = endpoint.partition("://")
    if not sep or transport not in ("tcp", "ipc", "inproc") or not rest:
        raise ConfigError(f"{option} {endpoint!r} is not a ZeroMQ endpoint; use tcp://127.0.0.1:5556 "
                          f"(or ipc:///tmp/aunets.sock)")  # fmt: skip
    if transport != "tcp":
        return None
    host, colon, port = rest.rpartition(":")
    if not colon or not host:
        raise ConfigError(f"{option} {endpoint!r} has no port; use tcp://{rest}:5556")
    if port != "*" and not (port.isdigit() and 1 <= int(port) <= 65535):
        raise ConfigError(f"{option} {endpoint!r}: port {port!r} is not 1..65535 (or * for any free port)")
    name = host.strip("[]")
    if name in LOOPBACK_HOSTS:
        return None
    with contextlib.suppress(ValueError):
        if ipaddress.ip_address(name).is_loopback:
            return None
    everywhere = name in ("*", "0.0.0.0", "::")
    return (f"{option} {endpoint} publishes face-derived data, unauthenticated, to "
            f"{'every network this machine is on' if everywhere else 'other machines'}; "
            f"use tcp://127.0.0.1:{port} to keep it on this machine")  # fmt: skip


class Sink(Protocol):
    """Where results go: ZeroMQ, a CSV file, a browser data channel, ..."""

    def publish_results(self, results: Sequence[FaceResult]) -> None: ...

    def publish_status(self, status: Mapping[str, Any]) -> None: ...

    def close(self) -> None: ...


class SinkGroup:
    """One :class:`Sink` that hands everything to each of ``sinks`` in order (``aunets serve`` with ZeroMQ and
    LSL); closing closes them all."""

    def __init__(self, sinks: Sequence[Sink]) -> None:
        self.sinks = list(sinks)

    def publish_results(self, results: Sequence[FaceResult]) -> None:
        for sink in self.sinks:
            sink.publish_results(results)

    def publish_status(self, status: Mapping[str, Any]) -> None:
        for sink in self.sinks:
            sink.publish_status(status)

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()


class ZmqPublisher:
    """A ZeroMQ XPUB socket bound to ``endpoint`` (behaves as PUB; XPUB lets us see subscriptions).

    ``hwm``: messages queued per subscriber before ZeroMQ drops (the subscriber then sees a ``seq`` gap).
    """

    def __init__(self, endpoint: str = DEFAULT_ENDPOINT, hwm: int = 10000, context: zmq.Context | None = None) -> None:
        self.endpoint = endpoint
        self.warning = check_endpoint(endpoint)
        self._ctx = context or zmq.Context.instance()
        self._sock = self._ctx.socket(zmq.XPUB)
        self._sock.setsockopt(zmq.SNDHWM, hwm)
        self._sock.setsockopt(zmq.LINGER, 500)
        try:
            self._sock.bind(endpoint)
        except zmq.ZMQError as exc:
            self._sock.close(0)
            raise ConfigError(
                f"cannot publish on {endpoint}: {exc}; is another `aunets run` using it? pass --pub with another "
                f"endpoint, e.g. --pub tcp://127.0.0.1:5557"
            ) from exc
        self.last_endpoint = self._sock.getsockopt_string(zmq.LAST_ENDPOINT)
        self._seq = {TOPIC_FRAME: 0, TOPIC_EVENT: 0, TOPIC_STATUS: 0}
        self.subscribers = 0

    def _send(self, topic: str, payload: dict[str, Any]) -> None:
        self._drain_subscriptions()
        self._sock.send_multipart([topic.encode(), to_json(payload).encode()])

    def _next(self, topic: str) -> int:
        seq = self._seq[topic]
        self._seq[topic] = seq + 1
        return seq

    def publish_results(self, results: Sequence[FaceResult]) -> None:
        for result in results:
            now = time.time()
            if not result.events_only:
                self._send(TOPIC_FRAME, frame_payload(result, self._next(TOPIC_FRAME), now))
            for event in result.events:
                self._send(TOPIC_EVENT, event_payload(event, self._next(TOPIC_EVENT), now, result.t_media))

    def publish_status(self, status: Mapping[str, Any]) -> None:
        self._send(TOPIC_STATUS, status_payload(status, self._next(TOPIC_STATUS), time.time()))

    def wait_for_subscriber(self, timeout_s: float, stop: threading.Event | None = None) -> bool:
        """Block until at least one subscriber has subscribed (so no early message is lost), or time out, or
        ``stop`` is set (checked every 50 ms)."""
        deadline = time.monotonic() + timeout_s
        while self.subscribers == 0:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or (stop is not None and stop.is_set()):
                return False
            if self._sock.poll(int(min(remaining, 0.05) * 1000) + 1, zmq.POLLIN):
                self._drain_subscriptions()
        return True

    def _drain_subscriptions(self) -> None:
        while True:
            try:
                msg = self._sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            if msg[:1] == b"\x01":
                self.subscribers += 1
            elif msg[:1] == b"\x00":
                self.subscribers = max(0, self.subscribers - 1)

    def close(self) -> None:
        self._sock.close()
