"""``aunets listen``: subscribe to ``aunets run`` and print events, or record every message to a file.

Recording writes JSON Lines: ``{"topic": ..., "t_receive": ..., "payload": {...}}`` per message.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from pathlib import Path

from aunets.stream.cli_args import positive_int
from aunets.stream.messages import TOPIC_EVENT, TOPIC_FRAME, TOPIC_STATUS, TOPICS


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sub", default="tcp://127.0.0.1:5556",
                   help="endpoint of `aunets run` (default tcp://127.0.0.1:5556)")
    p.add_argument("--topics", default="au.event,au.status",
                   help=f"comma-separated topics to print (from {', '.join(TOPICS)}; default au.event,au.status)")
    p.add_argument("--record", type=Path, default=None, help="append every received message to this .jsonl file")
    p.add_argument("--count", type=positive_int, default=None, help="exit after N messages")
    p.add_argument("--timeout", type=float, default=None, help="exit after SECONDS without a message")


def run(args: argparse.Namespace) -> int:
    import zmq

    from aunets.core.errors import ConfigError
    from aunets.stream.outputs import check_output
    from aunets.stream.publish import check_endpoint

    check_endpoint(args.sub, "--sub")
    check_output(args.record, "--record")
    topics = [t.strip() for t in args.topics.split(",") if t.strip()]
    unknown = [t for t in topics if t not in TOPICS]
    if unknown:
        print(f"aunets listen: unknown topic(s) {unknown}; choose from {list(TOPICS)}", file=sys.stderr)
        return 2
    sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(args.sub)
    for topic in topics:
        sock.setsockopt(zmq.SUBSCRIBE, topic.encode())
    try:
        record = args.record.open("a", encoding="utf-8") if args.record else None
    except OSError as exc:
        sock.close(0)
        raise ConfigError(f"cannot open --record {args.record}: {exc.strerror or exc}; choose another path") from None
    good = record.tell() if record else 0  # bytes of whole lines in the file
    last_seq: dict[str, int] = {}
    received = 0
    try:
        while args.count is None or received < args.count:
            if not sock.poll(int(args.timeout * 1000) if args.timeout else -1):
                print(f"aunets listen: no message for {args.timeout} s, exiting", file=sys.stderr)
                break
            topic_b, payload_b = sock.recv_multipart()
            topic, payload = topic_b.decode(), json.loads(payload_b)
            received += 1
            seq = payload.get("seq", -1)
            if topic in last_seq and seq <= last_seq[topic]:  # seq only grows while one publisher lives
                print(f"# publisher restarted: {topic} seq {last_seq[topic]} -> {seq}", file=sys.stderr)
            elif topic in last_seq and seq != last_seq[topic] + 1:
                print(f"# gap on {topic}: seq {last_seq[topic]} -> {seq}", file=sys.stderr)
            last_seq[topic] = seq
            if record:
                try:
                    record.write(json.dumps({"topic": topic, "t_receive": time.time(), "payload": payload}) + "\n")
                    record.flush()
                    good = record.tell()
                except OSError as exc:
                    with contextlib.suppress(OSError):  # close retries the buffer: suppress, then cut it off
                        record.close()
                    record = None
                    with contextlib.suppress(OSError):  # cut a half-written last line off
                        os.truncate(args.record, good)
                    raise ConfigError(f"cannot write --record {args.record} after {received - 1} messages: "
                                      f"{exc.strerror or exc}; the file ends with the last whole one; free disk "
                                      f"space or choose another path") from None
            print(_format(topic, payload), flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        sock.close(0)
        if record:
            with contextlib.suppress(OSError):
                record.close()
    if received == 0:
        print(f"aunets listen: error: received nothing from {args.sub}; is `aunets run` publishing there "
              f"(its --pub)?", file=sys.stderr)
        return 1
    return 0


def _format(topic: str, m: dict[str, object]) -> str:
    if topic == TOPIC_EVENT:
        return (f"{m['t']:.3f} {m['au']} {m['type']:<6} frame {m['frame']} track {m['track_id']} "
                f"peak {m['peak_probability']}")
    if topic == TOPIC_STATUS:
        return (f"{m['t']:.3f} status fps {m['fps']} frames {m['frames']} dropped {m['dropped']} "
                f"latency {m['latency_ms']}")
    if topic == TOPIC_FRAME:
        if m.get("no_face"):
            return f"{m['t_capture']:.3f} frame {m['frame']} no_face"
        on = [k for k, v in dict(m["state"]).items() if v]  # type: ignore[call-overload]
        who = f"track {m['track_id']} view {m['view']}"
        return f"{m['t_capture']:.3f} frame {m['frame']} {who} on: {' '.join(on) or '-'}"
    return f"{topic} {json.dumps(m)}"
