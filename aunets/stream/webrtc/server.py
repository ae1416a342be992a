"""The ``aunets serve`` server: a small HTTP(S) server for the page and the WebRTC offer/answer.

Routes: ``GET /`` (the page), ``GET /app.js``, ``GET /style.css``, ``GET /config`` (ICE servers, AUs, names,
thresholds, engine), ``POST /offer`` (``{sdp, type, marker}`` -> ``{sdp, type, session}``) and
``GET /sessions`` (live sessions and their counters). ``POST /offer`` takes only ``application/json``, only
with a ``Host`` on the allow-list (:attr:`ServeConfig.allowed_hosts`: loopback names, the address bound, and
``--allow-origin``; a DNS-rebinding page sends its own name) and, when the request carries an ``Origin``
(browsers always send one on a POST), only this server's own origin, so another web page the user visits
cannot open sessions; a session whose peer has not connected within ``connect_timeout_s`` is closed, so
offers that never connect cannot hold the slots. Signalling is non-trickle: the page waits for its ICE
gathering to finish and the answer carries all the server's candidates, so no second round trip.
HTTP is aiohttp's server, with limits: request line and header field sizes, header count, body size, and a
deadline (:attr:`ServeConfig.request_deadline_s`) for a request to arrive, so a slow sender cannot hold a
connection.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aunets.core.au import AU_NAMES, au_key
from aunets.core.errors import ConfigError, MissingExtraError
from aunets.stream.messages import to_json
from aunets.stream.pipeline import Pipeline, PipelineConfig
from aunets.stream.publish import DEFAULT_ENDPOINT, Sink, SinkGroup, ZmqPublisher
from aunets.stream.webrtc.hosts import LOOPBACK_NAMES, host_name
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
MAX_LINE_BYTES = 8190
"""aiohttp's parser limits: request line and each header field in bytes; :data:`MAX_HEADERS` fields (beyond:
400 or 431, before anything more is buffered)."""
MAX_HEADERS = 64
@dataclass(frozen=True)
class ServeConfig:
    """``aunets serve`` settings. ``host``/``port``: HTTP(S) bind address (port 0: any free port).
    ``pub``: ZeroMQ endpoint (None: no ZeroMQ). ``ice_servers``: STUN/TURN handed to both peers (none by
    default). ``certfile``/``keyfile``: serve HTTPS (browsers only give the camera to https pages or
    localhost). ``max_sessions``: concurrent peers. ``status_every_s``: ``au.status`` period per peer.
    ``connect_timeout_s``: an answered peer that has not connected by then is closed and its slot freed.
    ``allow_origins``: see :attr:`allowed_hosts`. ``request_deadline_s``: seconds a connection has for its
    request line and headers, and then again for its body.
    ``lsl``: also publish the LSL streams (extra ``[lsl]``; source ``serve``, irregular rate). ``osc``:
    ``HOST:PORT`` to also send OSC messages to (extra ``[osc]``)."""

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
    allow_origins: tuple[str, ...] = ()
    request_deadline_s: float = 10.0
    lsl: bool = False
    osc: str | None = None

    @property
    def allowed_hosts(self) -> frozenset[str]:
        """Host names ``/offer`` accepts in ``Host`` and ``Origin``: loopback names, the bound address (unless a
        wildcard) and ``allow_origins`` (``--allow-origin``: names or origins, e.g. ``mybox.local``)."""
        names = {*LOOPBACK_NAMES, *(host_name(o) for o in self.allow_origins)}
        if self.host not in ("0.0.0.0", "::", ""):
            names.add(host_name(self.host))
        return frozenset(names)

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
        self._runner: Any = None  # aiohttp.web.AppRunner once started
        self._sweeper: asyncio.Task[None] | None = None
        self._handling: set[Any] = set()  # connections (aiohttp RequestHandler) whose request has arrived
        self._allowed = config.allowed_hosts
        self._expiries: set[asyncio.Task[None]] = set()
        self._static = static_dir()
        self.saliency: SaliencyService | None = None

    @property
    def port(self) -> int:
        assert self._runner is not None, "start() first"
        return int(self._runner.addresses[0][1])

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
        if self.publisher is None and (self.config.pub or self.config.lsl or self.config.osc):
            sinks: list[Sink] = [ZmqPublisher(self.config.pub)] if self.config.pub else []
            if self.config.lsl:
                from aunets.stream.lsl_sink import LslOutlet

                sinks.append(LslOutlet(self.engine.aus, source="serve", intensity=self.engine.has_intensity))
            if self.config.osc:
                from aunets.stream.osc_sink import OscSender, parse_osc_target

                host, osc_port, _ = parse_osc_target(self.config.osc)
                sinks.append(OscSender(host, osc_port, self.engine.aus))
            self.publisher = sinks[0] if len(sinks) == 1 else SinkGroup(sinks)
            self._own_publisher = True
        ssl_context = None
        if self.config.certfile:
            ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            try:
                ssl_context.load_cert_chain(self.config.certfile, self.config.keyfile)
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError(f"cannot load --cert {self.config.certfile} / --key {self.config.keyfile}: {exc}; "
                                  f"see docs/webrtc.md for making a self-signed pair") from exc  # fmt: skip
        from aiohttp import web

        @web.middleware
        async def middleware(request: web.Request, handler: Callable[[web.Request], Awaitable[Any]]) -> Any:
            return await self._middleware(request, handler)

        app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[middleware])
        app.router.add_route("*", "/{path:.*}", self._route)
        self._runner = web.AppRunner(app, access_log=None, max_line_size=MAX_LINE_BYTES,
                                     max_field_size=MAX_LINE_BYTES, max_headers=MAX_HEADERS)
        await self._runner.setup()
        try:
            await web.TCPSite(self._runner, self.config.host, self.config.port, ssl_context=ssl_context).start()
        except OSError as exc:
            await self._runner.cleanup()
            self._runner = None
            raise ConfigError(f"cannot listen on {self.config.host}:{self.config.port}: {exc}; pass --port with a "
                              f"free port (0 picks one)") from exc  # fmt: skip
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep(), name="aunets-http-deadline")
        log.info("serving %s", self.url)

    async def stop(self) -> None:
        """Close every session, stop listening, close the publisher if it is ours."""
        for expiry in list(self._expiries):
            expiry.cancel()
        await asyncio.gather(*(s.close() for s in list(self.sessions.values())), return_exceptions=True)
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._own_publisher and self.publisher is not None:
            self.publisher.close()
            self.publisher = None
        if self.saliency is not None:
            self.saliency.close()

    # --- HTTP -----------------------------------------------------------------------------------------------

    async def _sweep(self) -> None:
        """Close every connection whose request has not arrived within ``request_deadline_s`` (a client
        that sends one header line every few seconds, or nothing). Every response closes its connection, so a
        connection lives for one request."""
        first_seen: dict[Any, float] = {}
        deadline = self.config.request_deadline_s
        while True:
            await asyncio.sleep(min(0.5, deadline / 4))
            now = time.monotonic()
            connections = self._runner.server.connections if self._runner and self._runner.server else []
            first_seen = {c: first_seen.get(c, now) for c in connections}
            for conn, t0 in first_seen.items():
                if conn not in self._handling and now - t0 > deadline:
                    log.info("closed a connection whose request was not complete within %.1f s", deadline)
                    conn.force_close()

    @staticmethod
    def _reply(status: int, ctype: str, body: bytes) -> Any:
        from aiohttp import web

        return web.Response(status=status, body=body, headers={"Content-Type": ctype, "Cache-Control": "no-store"})

    async def _middleware(self, request: Any, handler: Callable[[Any], Awaitable[Any]]) -> Any:
        """Every response: one request per connection, no caching, client errors as 400, never a traceback."""
        from aiohttp import web

        self._handling.add(request.protocol)
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            response = self._reply(exc.status, "text/plain", f"{exc.reason}\n".encode())
        except (ValueError, RecursionError, UnicodeError, ConnectionError) as exc:
            log.debug("bad request: %s", exc)  # truncated, not JSON, or nested too deeply to parse
            response = self._reply(400, "text/plain", b"bad request\n")
        except TimeoutError:
            response = self._reply(408, "text/plain",
                                   f"request not complete within {self.config.request_deadline_s} s\n".encode())
        except Exception:
            log.exception("request failed")
            response = self._reply(500, "text/plain", b"internal error\n")
        finally:
            self._handling.discard(request.protocol)
        response.force_close()
        return response

    async def _route(self, request: Any) -> Any:
        status, ctype, body = await self._respond(request)
        return self._reply(status, ctype, body)

    async def _respond(self, request: Any) -> tuple[int, str, bytes]:
        method, path, headers = request.method, request.path, request.headers
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
            body = await asyncio.wait_for(request.read(), self.config.request_deadline_s)  # 413 beyond MAX_BODY_BYTES
            return await self._offer(json.loads(body))
        return 404, "text/plain", b"not found\n"

    def _own_origin(self, headers: Any) -> bool:
        """A ``Host`` on the allow-list, and no ``Origin`` (a non-browser client) or this server's own."""
        host = headers.get("host", "")
        if host_name(host) not in self._allowed:
            log.warning("refused a request for host %r: not %s; pass --allow-origin %s if this is the machine's "
                        "name", host, ", ".join(sorted(self._allowed)), host_name(host) or "NAME")  # fmt: skip
            return False
        origin = headers.get("origin")
        if origin is not None and origin != self._origin(host):
            log.warning("refused a request from origin %r (not this page)", origin)
            return False
        return True

    async def _occlusion(self, method: str, session_id: str, headers: Any) -> tuple[int, str, bytes]:
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
