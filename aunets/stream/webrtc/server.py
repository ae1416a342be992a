"""The ``aunets serve`` server: a small HTTP(S) server for the page and the WebRTC offer/answer.

Routes: ``GET /`` (the page), ``GET /app.js``, ``GET /style.css``, ``GET /config`` (ICE servers, AUs, names,
thresholds, engine), ``POST /offer`` (``{sdp, type, marker}`` -> ``{sdp, type, session}``) and
``GET /sessions`` (live sessions and their counters). ``POST /offer`` takes only ``application/json`` and, when
the request carries an ``Origin`` (browsers always send one on a POST), only this server's own origin, so
another web page the user visits cannot open sessions; a session whose peer has not connected within
``connect_timeout_s`` is closed, so offers that never connect cannot hold the slots. Signalling is
non-trickle: the page waits for its ICE gathering to finish and the answer carries all the server's
candidates, so no second round trip.
The HTTP side is a minimal HTTP/1.1 implementation on asyncio streams (one request per connection), which
keeps the extra down to aiortc.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
import threading
import uuid
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aunets.core.au import AU_NAMES, au_key
from aunets.core.errors import ConfigError, MissingExtraError
from aunets.stream.messages import to_json
from aunets.stream.pipeline import Pipeline, PipelineConfig
from aunets.stream.publish import DEFAULT_ENDPOINT, Sink, ZmqPublisher
from aunets.stream.webrtc.ice import IceServer, rtc_configuration, use_host_addresses
from aunets.stream.webrtc.saliency import SaliencyService
from aunets.stream.webrtc.session import MarkerLayout, PeerSession

if TYPE_CHECKING:
    from aunets.engines.engine import AUEngine

log = logging.getLogger(__name__)

STATIC_FILES = {"/": "index.html", "/index.html": "index.html", "/app.js": "app.js", "/style.css": "style.css"}
CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".css": "text/css; charset=utf-8", ".json": "application/json"}  # fmt: skip
MAX_BODY_BYTES = 1 << 20
REASONS = {200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
           408: "Request Timeout", 413: "Payload Too Large", 415: "Unsupported Media Type",
           500: "Internal Server Error", 503: "Service Unavailable"}  # fmt: skip


@dataclass(frozen=True)
class ServeConfig:
    """``aunets serve`` settings. ``host``/``port``: HTTP(S) bind address (port 0: any free port).
    ``pub``: ZeroMQ endpoint (None: no ZeroMQ). ``ice_servers``: STUN/TURN handed to both peers (none by
    default). ``certfile``/``keyfile``: serve HTTPS (browsers only give the camera to https pages or
    localhost). ``max_sessions``: concurrent peers. ``status_every_s``: ``au.status`` period per peer.
    ``connect_timeout_s``: an answered peer that has not connected by then is closed and its slot freed."""

    host: str = "127.0.0.1"
    port: int = 8080
    pub: str | None = DEFAULT_ENDPOINT
    ice_servers: tuple[IceServer, ...] = ()
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    certfile: Path | None = None
    keyfile: Path | None = None
    max_sessions: int = 8
    status_every_s: float = 1.0
    connect_timeout_s: float = 20.0

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["pipeline"] = self.pipeline.to_json()
        data["certfile"] = str(self.certfile) if self.certfile else None
        data["keyfile"] = str(self.keyfile) if self.keyfile else None
        data["ice_servers"] = [s.to_json() for s in self.ice_servers]
        return data


def static_dir() -> Path:
    """Folder of the page's files (``aunets/stream/webrtc/static``)."""
    return Path(str(resources.files("aunets.stream.webrtc") / "static"))


class AUServer:
    """Serves the page and one :class:`PeerSession` per browser peer, all on one event loop.

    ``engine``: a loaded engine shared by all sessions (each has its own tracker, flow and medians);
    None: loaded from ``config.pipeline`` in :meth:`start`. ``publisher``: None makes a
    :class:`ZmqPublisher` on ``config.pub`` (if set).
    """

    def __init__(self, config: ServeConfig, engine: AUEngine | None = None, publisher: Sink | None = None) -> None:
        self.config = config
        self.engine = engine
        self.publisher = publisher
        self.sessions: dict[str, PeerSession] = {}
        self.host_addresses: list[str] = []
        self._own_publisher = False
        self._server: asyncio.Server | None = None
        self._expiries: set[asyncio.Task[None]] = set()
        self._static = static_dir()
        self.saliency: SaliencyService | None = None

    @property
    def port(self) -> int:
        assert self._server is not None, "start() first"
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        scheme = "https" if self.config.certfile else "http"
        host = self.config.host if self.config.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
        return f"{scheme}://{host}:{self.port}/"

    async def start(self) -> None:
        """Load the engine (off the loop), choose the ICE host addresses, open ZeroMQ, listen."""
        try:
            import aiortc  # noqa: F401
        except ImportError:
            raise MissingExtraError("aiortc", "webrtc") from None
        if self.engine is None:
            from aunets.engines.engine import load_engine

            pc = self.config.pipeline
            self.engine = await asyncio.get_running_loop().run_in_executor(
                None, load_engine, pc.engine, pc.runtime, pc.threads
            )
        self.saliency = SaliencyService(self.engine, self.config.pipeline.margin)
        self.host_addresses = use_host_addresses(self.config.host)
        if self.publisher is None and self.config.pub:
            self.publisher = ZmqPublisher(self.config.pub)
            self._own_publisher = True
        ssl_context = None
        if self.config.certfile:
            ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            try:
                ssl_context.load_cert_chain(self.config.certfile, self.config.keyfile)
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError(f"cannot load --cert {self.config.certfile} / --key {self.config.keyfile}: {exc}; "
                                  f"see docs/webrtc.md for making a self-signed pair") from exc  # fmt: skip
        try:
            self._server = await asyncio.start_server(self._handle, self.config.host, self.config.port, ssl=ssl_context)
        except OSError as exc:
            raise ConfigError(f"cannot listen on {self.config.host}:{self.config.port}: {exc}; pass --port with a "
                              f"free port (0 picks one)") from exc  # fmt: skip
        log.info("serving %s", self.url)

    async def stop(self) -> None:
        """Close every session, stop listening, close the publisher if it is ours."""
        for expiry in list(self._expiries):
            expiry.cancel()
        await asyncio.gather(*(s.close() for s in list(self.sessions.values())), return_exceptions=True)
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        if self._own_publisher and self.publisher is not None:
            self.publisher.close()
            self.publisher = None
        if self.saliency is not None:
            self.saliency.close()

    # --- HTTP -----------------------------------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            status, ctype, body = await self._respond(reader)
        except (asyncio.IncompleteReadError, ConnectionError, ValueError, RecursionError, UnicodeError) as exc:
            log.debug("bad request: %s", exc)  # truncated, not JSON, or nested too deeply to parse
            status, ctype, body = 400, "text/plain", b"bad request\n"
        except TimeoutError:
            status, ctype, body = 408, "text/plain", b"request not complete within 10 s\n"
        except Exception:
            log.exception("request failed")
            status, ctype, body = 500, "text/plain", b"internal error\n"
        head = (f"HTTP/1.1 {status} {REASONS.get(status, '')}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n")  # fmt: skip
        with contextlib.suppress(ConnectionError):
            writer.write(head.encode("latin-1") + body)
            await writer.drain()
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()

    async def _respond(self, reader: asyncio.StreamReader) -> tuple[int, str, bytes]:
        request_line = (await asyncio.wait_for(reader.readline(), 10)).decode("latin-1").strip()
        method, target, _ = request_line.split(" ", 2)
        headers: dict[str, str] = {}
        while True:
            line = (await asyncio.wait_for(reader.readline(), 10)).decode("latin-1").strip()
            if not line:
                break
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        path = target.split("?", 1)[0]
        if method == "GET" and path in STATIC_FILES:
            file = self._static / STATIC_FILES[path]
            return 200, CONTENT_TYPES[file.suffix], file.read_bytes()
        if method == "GET" and path == "/config":
            return _json(200, self.page_config())
        if path.startswith("/sessions/") and path.endswith("/occlusion"):
            return await self._occlusion(method, path.split("/")[2], headers)
        if method == "GET" and path == "/sessions":
            return _json(200, {"sessions": {sid: s.status() for sid, s in self.sessions.items()}})
        if path == "/offer":
            if method != "POST":
                return 405, "text/plain", b"POST an offer\n"
            if headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
                return 415, "text/plain", b"POST the offer as Content-Type: application/json\n"
            if not self._own_origin(headers):
                return 403, "text/plain", b"offers are accepted only from this server's own page\n"
            length = int(headers.get("content-length", "0"))
            if length > MAX_BODY_BYTES:
                return 413, "text/plain", b"offer too large\n"
            body = await asyncio.wait_for(reader.readexactly(length), 10)
            return await self._offer(json.loads(body))
        return 404, "text/plain", b"not found\n"

    def _own_origin(self, headers: dict[str, str]) -> bool:
        """No ``Origin`` (a non-browser client) or this server's own."""
        origin = headers.get("origin")
        if origin is not None and origin != self._origin(headers.get("host", "")):
            log.warning("refused a request from origin %r (not this page)", origin)
            return False
        return True

    async def _occlusion(self, method: str, session_id: str, headers: dict[str, str]) -> tuple[int, str, bytes]:
        """``POST /sessions/ID/occlusion``: the occlusion sheet (12 AUs) of the session's latest frame, PNG."""
        if method != "POST":
            return 405, "text/plain", b"POST to compute the occlusion sheet\n"
        if not self._own_origin(headers):
            return 403, "text/plain", b"only this server's own page may ask for occlusion sheets\n"
        session = self.sessions.get(session_id)
        if session is None or self.saliency is None:
            return 404, "text/plain", b"no such session\n"
        snap = session.saliency.latest
        if snap is None:
            return 503, "text/plain", b"no frame processed yet; try again once the AU bars move\n"
        try:
            png = await self.saliency.run(self.saliency.occlusion_png, snap, session.saliency.track)
        except ConfigError as exc:
            return 400, "text/plain", f"{exc}\n".encode()
        return 200, "image/png", png

    def _origin(self, host: str) -> str:
        """This server's origin as a browser on ``host`` (the request's Host header) names it."""
        return f"{'https' if self.config.certfile else 'http'}://{host}"

    def page_config(self) -> dict[str, Any]:
        """What the page needs: ICE servers, AUs with names and thresholds, engine name, median window."""
        assert self.engine is not None
        m = self.engine.manifest
        return {
            "iceServers": [s.to_json() for s in self.config.ice_servers],
            "aus": [au_key(a) for a in m.aus],
            "names": {au_key(a): AU_NAMES.get(a, "") for a in m.aus},
            "thresholds": {au_key(a): m.threshold(a) for a in m.aus},
            "engine": m.name,
            "median_window": self.config.pipeline.median_window or m.median_window,
            "saliency": {"available": self.saliency is not None and self.saliency.reason is None,
                         "reason": self.saliency.reason if self.saliency is not None else "server not started"},
        }

    async def _offer(self, data: Any) -> tuple[int, str, bytes]:
        from aiortc import RTCPeerConnection, RTCSessionDescription

        if not isinstance(data, dict) or data.get("type") != "offer" or not isinstance(data.get("sdp"), str):
            return _json(400, {"error": "expected JSON {sdp, type: 'offer'}"})
        try:
            marker = MarkerLayout.from_json(data.get("marker"))
        except (TypeError, ValueError) as exc:
            return _json(400, {"error": f"bad marker: {exc}; expected {{rows, width, height}} as integers"})
        if len(self.sessions) >= self.config.max_sessions:
            return _json(503, {"error": f"{len(self.sessions)} sessions already (max {self.config.max_sessions}); "
                                        f"close a tab or restart with a larger --max-sessions"})  # fmt: skip
        session_id = uuid.uuid4().hex[:8]
        pc = RTCPeerConnection(configuration=rtc_configuration(self.config.ice_servers))
        session = PeerSession(
            session_id,
            pc,
            self._make_pipeline,
            publisher=self.publisher,
            marker=marker,
            on_closed=self._forget,
            status_every_s=self.config.status_every_s,
            saliency=self.saliency,
        )
        self.sessions[session_id] = session
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=data["sdp"], type="offer"))
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception as exc:
            await session.close()
            return _json(400, {"error": f"cannot answer this offer: {exc}"})
        log.info("session %s: answered (%d live)", session_id, len(self.sessions))
        expiry = asyncio.get_running_loop().create_task(self._expire(session), name=f"expire-{session_id}")
        self._expiries.add(expiry)
        expiry.add_done_callback(self._expiries.discard)
        answer = pc.localDescription
        return _json(200, {"sdp": answer.sdp, "type": answer.type, "session": session_id})

    async def _expire(self, session: PeerSession) -> None:
        """Close ``session`` if its peer has not connected within ``connect_timeout_s``."""
        await asyncio.sleep(self.config.connect_timeout_s)
        if session.id in self.sessions and session.pc.connectionState != "connected" and not session.closed.is_set():
            log.info("session %s: no connection after %.0f s, closing it", session.id, self.config.connect_timeout_s)
            await session.close()

    def _make_pipeline(self) -> Pipeline:
        return Pipeline(self.config.pipeline, engine=self.engine)

    def _forget(self, session: PeerSession) -> None:
        self.sessions.pop(session.id, None)
        log.info("session %s: forgotten (%d live)", session.id, len(self.sessions))


def _json(status: int, data: Any) -> tuple[int, str, bytes]:
    return status, CONTENT_TYPES[".json"], to_json(data).encode()


class BackgroundServer:
    """An :class:`AUServer` on its own event loop in a daemon thread (tests, benchmarks). Context manager.

    :meth:`call` runs a coroutine function on the server's loop and returns its result.
    """

    def __init__(self, config: ServeConfig, engine: AUEngine | None = None, publisher: Sink | None = None) -> None:
        self.server = AUServer(config, engine, publisher)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="aunets-serve", daemon=True)

    def __enter__(self) -> BackgroundServer:
        self._thread.start()
        self.call(self.server.start, timeout=120)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def url(self) -> str:
        return self.server.url

    def call(self, fn: Any, *args: Any, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(fn(*args), self.loop).result(timeout)

    def session_ids(self) -> list[str]:
        async def ids() -> list[str]:
            return list(self.server.sessions)

        return list(self.call(ids))

    def close(self) -> None:
        if not self._thread.is_alive():
            return
        try:
            self.call(self.server.stop, timeout=30)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
            self.loop.close()
