"""Subscribe to a running ``aunets run`` (or ``aunets serve``) with plain pyzmq and print AU events.

    aunets run 0                                   # in one terminal
    python examples/subscriber.py --count 10       # in another

Every message is ``[topic, JSON payload]``; docs/events.md has the schema.
"""

from __future__ import annotations

import argparse
import json

import zmq


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sub", default="tcp://127.0.0.1:5556", help="the endpoint aunets publishes on")
    ap.add_argument("--topics", default="au.event,au.frame", help="topic prefixes, comma-separated")
    ap.add_argument("--count", type=int, default=0, help="exit after this many messages (0: never)")
    ap.add_argument("--timeout", type=float, default=0, help="exit after this many seconds without one (0: never)")
    args = ap.parse_args()

    sock = zmq.Context.instance().socket(zmq.SUB)
    sock.connect(args.sub)
    for topic in args.topics.split(","):
        sock.setsockopt(zmq.SUBSCRIBE, topic.strip().encode())
    received = 0
    while not args.count or received < args.count:
        if args.timeout and not sock.poll(int(args.timeout * 1000)):
            break
        topic, payload = sock.recv_multipart()
        msg = json.loads(payload)
        received += 1
        if topic == b"au.event":
            print(f"event {msg['au']} {msg['type']} track {msg['track_id']} frame {msg['frame']}")
        elif topic == b"au.frame" and not msg["no_face"]:
            print(f"frame {msg['frame']} track {msg['track_id']} AU12 {msg['smoothed']['AU12']:.2f} "
                  f"state {msg['state']['AU12']}")
        elif topic == b"au.frame":
            print(f"frame {msg['frame']} no face")
    sock.close(0)
    print(f"{received} messages")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
