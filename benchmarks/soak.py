"""Soak: a real ``aunets run --realtime`` for N minutes with a plain pyzmq subscriber, as a user runs it.

    python benchmarks/soak.py --minutes 20 [--engine DIR] [--json benchmarks/results/soak.json]

The bundled clip is remuxed (packets copied, no re-encoding, PyAV) into a video of N minutes in a temporary
folder; ``aunets run VIDEO --realtime --wait-subscriber 30`` publishes it on a free loopback port, and a SUB
socket subscribed to every topic counts ``au.frame`` messages, ``seq`` gaps and publisher restarts per topic,
``au.status`` heartbeats (and those saying ``stalled``), and the drops the heartbeat reports. Every
``--sample-s`` seconds it reads the resident memory (VmRSS) of the main process and of its capture process. At
the end it sends SIGTERM (as ``kill``), checks the exit status and ``--stats-json``, prints the figures and writes them
as JSON: clean means every frame the run counted arrived, no drop, no gap, no stall, a heartbeat every second, and
memory flat.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_clip import CLIP, REPO, run_record


def looped_video(out: Path, seconds: float) -> tuple[Path, int]:
    """The bundled clip repeated (stream copy, timestamps shifted per loop) to at least ``seconds``; its path
    and frame count."""
    import av

    with av.open(str(CLIP)) as probe:
        stream = probe.streams.video[0]
        duration = float(stream.frames / stream.average_rate)
        loops = max(1, int(seconds / duration) + 1)
    frames = 0
    with av.open(str(out), "w") as dst:
        ost = None
        offset = 0
        for _ in range(loops):
            with av.open(str(CLIP)) as src:
                ist = src.streams.video[0]
                if ost is None:
                    ost = dst.add_stream_from_template(ist)
                last = 0
                for packet in src.demux(ist):
                    if packet.dts is None:
                        continue
                    step = int(packet.duration or 0)
                    last = max(last, int(packet.pts or 0) + step, int(packet.dts) + step)
                    packet.pts = None if packet.pts is None else packet.pts + offset
                    packet.dts += offset
                    packet.stream = ost
                    dst.mux(packet)
                    frames += 1
                offset += last
    return out, frames


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def capture_child(parent: int) -> int | None:
    """The capture process of ``aunets run`` (a multiprocessing spawn child, not the resource tracker)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
            cmdline = (entry / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == parent and b"spawn_main" in cmdline and b"resource_tracker" not in cmdline:
            return int(entry.name)
    return None


def soak(minutes: float, engine: str | None, sample_s: float) -> dict[str, Any]:
    import zmq

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    endpoint = f"tcp://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="aunets-soak-") as tmp:
        video, video_frames = looped_video(Path(tmp) / "soak.mp4", minutes * 60 + 10)
        stats_json = Path(tmp) / "stats.json"
        cmd = [sys.executable, "-m", "aunets.cli", "run", str(video), "--realtime", "--pub", endpoint,
               "--wait-subscriber", "30", "--stats-json", str(stats_json)]
        if engine:
            cmd += ["--engine", engine]
        ctx = zmq.Context()
        sub = ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        sub.setsockopt(zmq.RCVHWM, 0)  # keep everything: a drop must be the publisher's, not ours
        sub.setsockopt(zmq.SUBSCRIBE, b"au.")
        sub.connect(endpoint)
        log = (Path(tmp) / "run.log").open("w+")  # a file, not a pipe: a full pipe would block the run
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, text=True)
        last_seq: dict[str, int] = {}
        gaps = {"frame": 0, "event": 0, "status": 0}  # per topic au.frame, au.event, au.status
        missing = dict(gaps)
        restarts = 0
        frames = statuses = stalled = 0
        status_gaps: list[float] = []
        last_status_t: float | None = None
        reported_dropped = 0
        rss: list[list[float | None]] = []
        t_first: float | None = None
        next_sample = 0.0
        end = None
        try:
            while proc.poll() is None:
                now = time.monotonic()
                if t_first is not None and now >= next_sample:
                    child = capture_child(proc.pid)
                    rss.append([round(now - t_first, 1), rss_mb(proc.pid), rss_mb(child) if child else None])
                    next_sample = now + sample_s
                    print(f"{now - t_first:7.1f} s  frames {frames}  gaps {sum(gaps.values())}  "
                          f"rss main {rss[-1][1]} MB capture {rss[-1][2]} MB", flush=True)
                if end is not None and now >= end:
                    proc.send_signal(signal.SIGTERM)  # SIGINT may be ignored in a background job
                    break
                if not sub.poll(200):
                    continue
                topic_b, payload_b = sub.recv_multipart()
                topic, payload = topic_b.decode(), json.loads(payload_b)
                if t_first is None:
                    t_first = time.monotonic()
                    end = t_first + minutes * 60
                seq = int(payload["seq"])
                if topic in last_seq and seq <= last_seq[topic]:
                    restarts += 1
                elif topic in last_seq and seq != last_seq[topic] + 1:
                    gaps[topic[3:]] += 1
                    missing[topic[3:]] += seq - last_seq[topic] - 1
                last_seq[topic] = seq
                if topic == "au.frame":
                    frames += 1
                elif topic == "au.status":
                    statuses += 1
                    stalled += bool(payload.get("stalled"))
                    reported_dropped = int(payload["dropped"])
                    t = time.monotonic()
                    if last_status_t is not None:
                        status_gaps.append(t - last_status_t)
                    last_status_t = t
            proc.wait(timeout=60)
            log.seek(0)
            output = log.read()
            while sub.poll(200):  # what was still on its way
                topic_b, payload_b = sub.recv_multipart()
                frames += topic_b == b"au.frame"
        finally:
            if proc.poll() is None:
                proc.kill()
            sub.close(0)
            ctx.term()
            log.close()
        summary = json.loads(stats_json.read_text()) if stats_json.exists() else None
    main = [r[1] for r in rss if r[1] is not None]
    cap = [r[2] for r in rss if r[2] is not None]
    return {
        **run_record(),
        "minutes": minutes,
        "video_frames": video_frames,
        "exit_code": proc.returncode,
        "output_tail": output.strip().splitlines()[-3:],
        "run_summary": summary,
        "received": {"frames": frames, "status": statuses, "stalled_status": stalled},
        "published_frames": summary["frames"] if summary else None,
        "dropped": summary["dropped"] if summary else reported_dropped,
        "seq_gaps": gaps,
        "seq_missing": missing,
        "publisher_restarts": restarts,
        "status_interval_s": {"max": round(max(status_gaps), 3) if status_gaps else None,
                              "mean": round(sum(status_gaps) / len(status_gaps), 3) if status_gaps else None},
        "rss_mb": {"main": {"first": main[0] if main else None, "last": main[-1] if main else None,
                            "max": max(main) if main else None},
                   "capture": {"first": cap[0] if cap else None, "last": cap[-1] if cap else None,
                               "max": max(cap) if cap else None}},
        "rss_mb_over_time": rss,
        "rss_columns": ["seconds", "main_mb", "capture_mb"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=20.0)
    ap.add_argument("--engine", default=None, help="engine bundle (default: the embedded one)")
    ap.add_argument("--sample-s", type=float, default=10.0, help="seconds between memory samples")
    ap.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "soak.json")
    args = ap.parse_args()
    result = soak(args.minutes, args.engine, args.sample_s)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    keys = ("exit_code", "published_frames", "received", "dropped", "seq_gaps", "publisher_restarts",
            "status_interval_s", "rss_mb")
    print(json.dumps({k: result[k] for k in keys}, indent=2))
    print(f"wrote {os.path.relpath(args.json, REPO)}")


if __name__ == "__main__":
    main()
