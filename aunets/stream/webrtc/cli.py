"""``aunets serve``: the live browser demo over WebRTC (extra ``[webrtc]``). See ``docs/webrtc.md``."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from pathlib import Path

from aunets.stream.cli_args import add_pipeline_arguments, pipeline_config_from_args, port, positive_int

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0: the LAN, needs --cert)")
    p.add_argument("--port", type=port, default=8080, help="HTTP(S) port (default 8080; 0 picks a free one)")
    p.add_argument("--pub", default="tcp://127.0.0.1:5556",
                   help="ZeroMQ PUB endpoint, as `aunets run` (default tcp://127.0.0.1:5556); 'none' to disable")
    p.add_argument("--ice-server", action="append", default=[], metavar="URL[,USER,CREDENTIAL]",
                   help="STUN/TURN server for both peers, repeatable, e.g. stun:stun.example.org:3478 or "
                        "turn:turn.example.org:3478,alice,secret (default: none; loopback and LAN need none)")
    p.add_argument("--cert", type=Path, default=None, help="TLS certificate (PEM): serve HTTPS, for remote browsers")
    p.add_argument("--key", type=Path, default=None, help="TLS private key (PEM) for --cert")
    p.add_argument("--allow-origin", action="append", default=[], metavar="NAME",
                   help="a host name (or origin, https://NAME:PORT) the page may be opened as, repeatable, e.g. "
                        "this machine's LAN name with --host 0.0.0.0; offers for any other name are refused "
                        "(default: loopback names and the --host address)")
    p.add_argument("--max-sessions", type=positive_int, default=8, help="concurrent browser tabs (default 8)")
    p.add_argument("--connect-timeout", type=float, default=20.0, metavar="SECONDS",
                   help="free a session whose browser has not connected SECONDS after its offer (default 20)")
    p.add_argument("--config-json", type=Path, default=None, help="write the resolved configuration as JSON")
    p.add_argument("--lsl", action="store_true",
                   help="also publish the Lab Streaming Layer streams, as `aunets run --lsl` (extra [lsl])")
    p.add_argument("--osc", default=None, metavar="HOST:PORT",
                   help="also send OSC messages to HOST:PORT, as `aunets run --osc` (extra [osc])")
    add_pipeline_arguments(p)


def run(args: argparse.Namespace) -> int:
    import asyncio

    from aunets.core.errors import ConfigError
    from aunets.stream.messages import to_json
    from aunets.stream.outputs import check_output, write_json
    from aunets.stream.publish import check_endpoint
    from aunets.stream.shutdown import StopSignals
    from aunets.stream.webrtc.hosts import check_serve_host
    from aunets.stream.webrtc.ice import IceServer
    from aunets.stream.webrtc.server import AUServer, ServeConfig

    if bool(args.cert) != bool(args.key):
        raise ConfigError("give both --cert and --key (PEM files) to serve HTTPS, or neither")
    check_serve_host(args.host, args.cert)
    if args.connect_timeout <= 0:
        raise ConfigError(f"--connect-timeout must be more than 0 s, got {args.connect_timeout}")
    check_output(args.config_json, "--config-json")
    if args.lsl:
        from aunets.stream.lsl_sink import require_pylsl

        require_pylsl()
    if args.osc:
        from aunets.stream.osc_sink import parse_osc_target, require_python_osc

        osc_warning = parse_osc_target(args.osc)[2]
        if osc_warning:
            print(f"aunets serve: WARNING: {osc_warning}", file=sys.stderr)
        require_python_osc()
    pub = None if args.pub.lower() == "none" else args.pub
    warning = check_endpoint(pub) if pub else None
    if warning:
        print(f"aunets serve: WARNING: {warning}", file=sys.stderr)
    config = ServeConfig(
        host=args.host,
        port=args.port,
        pub=pub,
        ice_servers=tuple(IceServer.parse(s) for s in args.ice_server),
        pipeline=pipeline_config_from_args(args),
        certfile=args.cert,
        keyfile=args.key,
        max_sessions=args.max_sessions,
        connect_timeout_s=args.connect_timeout,
        allow_origins=tuple(args.allow_origin),
        lsl=args.lsl,
        osc=args.osc,
    )
    if args.config_json:
        write_json(args.config_json, to_json(config.to_json(), indent=2), "--config-json")

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def wake() -> None:
            loop.call_soon_threadsafe(stop.set)

        signals.on_stop = wake
        if signals.event.is_set():
            stop.set()
        server = AUServer(config)
        await server.start()
        pub = f"; publishing on {config.pub}" if config.pub else ""
        print(f"aunets serve: open {server.url} in Chromium or Firefox{pub}; Ctrl-C to stop", file=sys.stderr)
        try:
            await stop.wait()
        finally:
            await server.stop()

    with StopSignals() as signals, contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
    print(f"aunets serve: stopped{' by ' + signals.name if signals.name else ''}", file=sys.stderr)
    return 0
