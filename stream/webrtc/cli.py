"""``aunets serve``: the live browser demo over WebRTC (extra ``[webrtc]``). See ``docs/webrtc.md``."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import signal
import sys
from pathlib import Path

from stream.cli_args import add_pipeline_arguments, pipeline_config_from_args

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0: the LAN, needs --cert)")
    p.add_argument("--port", type=int, default=8080, help="HTTP(S) port (default 8080; 0 picks a free one)")
    p.add_argument("--pub", default="tcp://127.0.0.1:5556",
                   help="ZeroMQ PUB endpoint, as `aunets run` (default tcp://127.0.0.1:5556); 'none' to disable")
    p.add_argument("--ice-server", action="append", default=[], metavar="URL[,USER,CREDENTIAL]",
                   help="STUN/TURN server for both peers, repeatable, e.g. stun:stun.example.org:3478 or "
                        "turn:turn.example.org:3478,alice,secret (default: none; loopback and LAN need none)")
    p.add_argument("--cert", type=Path, default=None, help="TLS certificate (PEM): serve HTTPS, for remote browsers")
    p.add_argument("--key", type=Path, default=None, help="TLS private key (PEM) for --cert")
    p.add_argument("--max-sessions", type=int, default=8, help="concurrent browser tabs (default 8)")
    p.add_argument("--config-json", type=Path, default=None, help="write the resolved configuration as JSON")
    add_pipeline_arguments(p)


def run(args: argparse.Namespace) -> int:
    import asyncio

    from stream.errors import ConfigError
    from stream.webrtc.ice import IceServer
    from stream.webrtc.server import AUServer, ServeConfig

    if bool(args.cert) != bool(args.key):
        raise ConfigError("give both --cert and --key (PEM files) to serve HTTPS, or neither")
    config = ServeConfig(
        host=args.host,
        port=args.port,
        pub=None if args.pub.lower() == "none" else args.pub,
        ice_servers=tuple(IceServer.parse(s) for s in args.ice_server),
        pipeline=pipeline_config_from_args(args),
        certfile=args.cert,
        keyfile=args.key,
        max_sessions=args.max_sessions,
    )
    if args.config_json:
        args.config_json.write_text(json.dumps(config.to_json(), indent=2) + "\n", encoding="utf-8")

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):  # not on Windows
                loop.add_signal_handler(sig, stop.set)
        server = AUServer(config)
        await server.start()
        pub = f"; publishing on {config.pub}" if config.pub else ""
        print(f"aunets serve: open {server.url} in Chromium or Firefox{pub}; Ctrl-C to stop", file=sys.stderr)
        try:
            await stop.wait()
        finally:
            await server.stop()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
    print("aunets serve: stopped", file=sys.stderr)
    return 0
