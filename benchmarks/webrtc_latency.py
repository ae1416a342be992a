"""Browser-to-result latency of ``aunets serve`` (issue 6), measured in a real browser.

    python benchmarks/webrtc_latency.py [--engine DIR | --tiny] [--clip VIDEO] [--seconds 20]
        [--json benchmarks/results/webrtc_latency.json] [--png benchmarks/results/webrtc_latency.png]
        [--screenshot docs/serve.png]

Headless Chromium (Debian's ``chromium``) plays ``--clip`` as its camera (a .y4m made here) and streams it to an
in-process server over loopback WebRTC. The page measures, per result, the time from the camera frame's capture
(requestVideoFrameCallback captureTime) to the result's arrival on the data channel, both on the page's clock
(frame ids travel in the video, see aunets/stream/webrtc/marker.py). The server reports its own share (frame received
-> result sent) and the pipeline's time per frame. Prints a table, writes JSON and a PNG (histogram and time
series). The machine's other load shows up in the numbers: compare figures from one run.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_clip import CLIP, REPO, run_record


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--engine", type=Path, default=None, help="engine bundle (default: aunets/engines/default)")
    ap.add_argument("--tiny", action="store_true", help="use a tiny random ONNX engine (plumbing latency only)")
    ap.add_argument("--clip", type=Path, default=CLIP, help="video played as the browser's camera")
    ap.add_argument("--size", default="640x360", help="camera frame size WxH (default 640x360)")
    ap.add_argument("--seconds", type=float, default=20.0, help="measurement time after the first result")
    ap.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "webrtc_latency.json")
    ap.add_argument("--png", type=Path, default=REPO / "benchmarks" / "results" / "webrtc_latency.png")
    ap.add_argument("--screenshot", type=Path, default=None, help="also save a screenshot of the page (PNG)")
    args = ap.parse_args()

    from playwright.sync_api import sync_playwright

    from aunets.engines.engine import load_engine
    from aunets.stream.webrtc.headless import find_chromium, launch_chromium
    from aunets.stream.webrtc.server import BackgroundServer, ServeConfig
    from aunets.stream.webrtc.y4m import video_to_y4m

    w, h = (int(v) for v in args.size.lower().split("x"))
    with tempfile.TemporaryDirectory(prefix="aunets-webrtc-") as tmp_dir:
        tmp = Path(tmp_dir)
        engine_path = args.engine
        if args.tiny:
            from tests.conftest import build_tiny_engine

            engine_path = build_tiny_engine(tmp / "tiny_engine")
        engine = load_engine(engine_path)
        y4m = tmp / "camera.y4m"
        n_frames = video_to_y4m(args.clip, y4m, max_frames=250, size=(w, h))
        samples: list[tuple[float, float]] = []  # (page time s, latency ms)
        with BackgroundServer(ServeConfig(port=0, pub=None), engine=engine) as bg, sync_playwright() as pw:
            context: Any = launch_chromium(pw, y4m, tmp / "profile")
            page = context.new_page()
            page.goto(bg.url)
            deadline = time.monotonic() + 60
            while page.evaluate("() => window.aunets.latencyCount") < 5:
                if time.monotonic() > deadline:
                    raise SystemExit("no result reached the page in 60 s")
                time.sleep(0.2)
            start = page.evaluate("() => ({n: window.aunets.latencyCount, results: window.aunets.results})")
            seen = start["n"]
            t0 = time.monotonic()
            with tqdm(total=round(args.seconds), unit="s", desc="measuring") as bar:
                while time.monotonic() - t0 < args.seconds:
                    time.sleep(1.0)
                    bar.update(1)
                    got = page.evaluate("() => ({n: window.aunets.latencyCount, lat: window.aunets.latencies})")
                    new = got["n"] - seen
                    seen = got["n"]
                    now = time.monotonic() - t0
                    samples += [(now, v) for v in got["lat"][-new:]] if new > 0 else []
            seconds = time.monotonic() - t0
            end = page.evaluate("() => ({results: window.aunets.results, dropped: window.aunets.dropped})")
            status = bg.call(_status, bg.server)
            if args.screenshot:
                args.screenshot.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(args.screenshot))
            context.close()

    lat = np.array([v for _, v in samples])
    summary = {
        **run_record(),
        "what": "browser camera capture -> result arrival on the data channel (ms), headless Chromium, loopback",
        "engine": engine.manifest.name,
        "camera": f"{w}x{h} from {args.clip.name} ({n_frames} frames, looped)",
        "seconds": round(seconds, 1),
        "samples": len(lat),
        "latency_ms": {
            "p50": _pct(lat, 50),
            "p90": _pct(lat, 90),
            "p99": _pct(lat, 99),
            "mean": round(float(lat.mean()), 1) if len(lat) else None,
        },
        "results_per_s": round((end["results"] - start["results"]) / seconds, 2),
        "dropped_frames": end["dropped"],
        "server": status,
        "chromium": str(find_chromium()),
    }
    print(json.dumps(summary, indent=2))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    _plot(samples, summary, args.png)
    print(f"wrote {args.json} and {args.png}")
    return 0


async def _status(server: Any) -> dict[str, Any]:
    sessions = list(server.sessions.values())
    return sessions[0].status() if sessions else {}


def _pct(values: np.ndarray, q: float) -> float | None:
    return round(float(np.percentile(values, q)), 1) if len(values) else None


def _plot(samples: list[tuple[float, float]], summary: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = np.array([s for s, _ in samples])
    lat = np.array([v for _, v in samples])
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    ax1.plot(np.arange(len(lat)), lat, ".", ms=3)
    ax1.set_xlabel(f"frame with a latency sample (over {t[-1] if len(t) else 0:.0f} s)")
    ax1.set_ylabel("capture -> result in page (ms)")
    ax1.set_title("latency per frame")
    ax2.hist(lat, bins=40)
    for q, style in ((50, "-"), (99, "--")):
        if len(lat):
            ax2.axvline(np.percentile(lat, q), color="k", ls=style, label=f"p{q} {np.percentile(lat, q):.0f} ms")
    ax2.set_xlabel("ms")
    ax2.set_title("latency histogram")
    ax2.legend()
    title = (f"aunets serve, {summary['engine']}, {summary['camera']}\n"
             f"{summary['results_per_s']} results/s, {summary['dropped_frames']} frames dropped")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
