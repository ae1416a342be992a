"""Speed of ``aunets explain`` and of ``aunets serve``'s saliency overlay (issue 13) on this machine.

    python benchmarks/explain.py [--repeats 3] [--serve-seconds 10] [--cycles 3] [--no-serve]
        [--json benchmarks/results/explain.json] [--screenshot docs/serve_saliency.jpg]

1. Seconds per 12-AU occlusion sheet (default patch 24 px, stride 8 px: 289 engine inputs, flow half included)
   and per Grad-CAM call (all 12 AUs in one call; one AU, as the overlay), on a frame of the bundled clip with
   the default engine: the median of ``--repeats`` runs.
2. ``aunets serve`` in a real browser (headless Chromium, the bundled clip as its camera, loopback WebRTC):
   the AU results per second in alternating blocks of ``--serve-seconds`` with the overlay off and on (``--overlay-au``;
   ``--cycles`` on blocks between off blocks, so a drift in the machine's load hits both), and the overlay maps
   per second; the first on block starts with the overlay's first use (no warm-up by the benchmark: the
   server prepares Grad-CAM at start). Prints the figures and writes JSON. The machine's other load shows in the
   numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CLIP = REPO / "media" / "pexels_wolfganglanger_expressions.mp4"
sys.path.insert(0, str(REPO))

from bench_clip import run_record  # noqa: E402


def offline(repeats: int, frame_index: int) -> dict[str, Any]:
    import cv2

    from aunets.engines.engine import load_engine
    from aunets.stream.explain import ExplainConfig, GradCam, face_input, largest_face, occlusion_maps, pick_view
    from aunets.stream.explain_sheet import draw_sheet
    from aunets.stream.tracking import YuNetDetector

    cap = cv2.VideoCapture(str(CLIP))
    prev = frame = None
    for _ in range(frame_index + 1):
        prev, frame = frame, cap.read()[1]
    cap.release()
    assert frame is not None
    engine = load_engine(None, "onnx", 2)
    face = face_input(engine, frame, prev, largest_face(frame, YuNetDetector()))
    view = pick_view(engine, face.crop)
    config = ExplainConfig()
    occ, cam12, cam1 = [], [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        ex = occlusion_maps(engine, face, config, view)
        draw_sheet(ex)
        occ.append(time.perf_counter() - t0)
    cam = GradCam(engine, threads=1)  # as the serve overlay
    cam.maps(face, (12,), view)  # warm-up (first backward pass allocates)
    for _ in range(repeats):
        t0 = time.perf_counter()
        cam.maps(face, (), view)
        cam12.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        cam.maps(face, (12,), view)
        cam1.append(time.perf_counter() - t0)
    return {
        "engine": engine.manifest.name,
        "frame": frame_index,
        "occlusion_inputs": ex.extra["inputs"],
        "occlusion_sheet_s": round(statistics.median(occ), 3),
        "gradcam_12_aus_s": round(statistics.median(cam12), 3),
        "gradcam_1_au_s": round(statistics.median(cam1), 3),
        "runs": {"occlusion": occ, "gradcam_12": cam12, "gradcam_1": cam1},
    }


def serve(seconds: float, cycles: int, au: str, screenshot: Path | None) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    from aunets.stream.webrtc.headless import launch_chromium
    from aunets.stream.webrtc.server import BackgroundServer, ServeConfig
    from aunets.stream.webrtc.y4m import video_to_y4m

    async def sessions(server: Any) -> dict[str, Any]:
        return dict(server.sessions)

    with tempfile.TemporaryDirectory(prefix="aunets-explain-") as tmp_dir:
        tmp = Path(tmp_dir)
        y4m = tmp / "clip.y4m"
        video_to_y4m(CLIP, y4m, size=(640, 360))
        with BackgroundServer(ServeConfig(port=0, pub=None)) as bg, sync_playwright() as pw:
            context: Any = launch_chromium(pw, y4m, tmp / "profile")
            page = context.new_page()
            page.goto(bg.url)
            deadline = time.monotonic() + 60
            while page.evaluate("() => window.aunets.results") < 20:
                if time.monotonic() > deadline:
                    raise SystemExit("no results in the page after 60 s")
                time.sleep(0.5)
            sid = page.evaluate("() => window.aunets.session")
            session = bg.call(sessions, bg.server)[sid]

            def measure() -> tuple[float, float]:
                p0, s0, t0 = session.processed, session.saliency.sent, time.perf_counter()
                time.sleep(seconds)
                dt = time.perf_counter() - t0
                return (session.processed - p0) / dt, (session.saliency.sent - s0) / dt

            page.select_option("#saliency-au", au)
            # the overlay off and on in alternating blocks, so a change in the machine's other load hits both;
            # the first on block is the overlay's first use in the session (the server prepares it at start)
            off: list[float] = []
            on: list[float] = []
            maps: list[float] = []
            for block in range(2 * cycles + 1):
                overlay = block % 2 == 1
                if overlay:
                    page.check("#saliency-on")
                else:
                    page.uncheck("#saliency-on")
                if not (overlay and not on):  # the first on block starts at the click
                    time.sleep(1.0)
                fps, rate = measure()
                (on if overlay else off).append(round(fps, 2))
                if overlay:
                    maps.append(round(rate, 2))
                if overlay and screenshot is not None and len(on) == 1:
                    screenshot.parent.mkdir(parents=True, exist_ok=True)
                    path = tmp / "shot.png"
                    page.screenshot(path=str(path))
                    import cv2

                    cv2.imwrite(str(screenshot), cv2.imread(str(path)), [cv2.IMWRITE_JPEG_QUALITY, 85])
            context.close()
    return {"au_fps_overlay_off": round(statistics.mean(off), 2), "au_fps_overlay_on": round(statistics.mean(on), 2),
            "overlay_maps_per_s": round(statistics.mean(maps), 2), "au_fps_first_on": on[0],
            "blocks_off": off, "blocks_on": on,
            "blocks_maps": maps, "seconds_each": seconds, "overlay_au": au}  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--frame", type=int, default=100, help="frame of the bundled clip for the offline figures")
    ap.add_argument("--serve-seconds", type=float, default=10.0, help="length of each off/on block")
    ap.add_argument("--overlay-au", default="AU15", help="the overlay's AU (default AU15, on through the crying)")
    ap.add_argument("--cycles", type=int, default=3, help="on blocks, between cycles + 1 off blocks")
    ap.add_argument("--no-serve", action="store_true", help="only the offline figures")
    ap.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "explain.json")
    ap.add_argument("--screenshot", type=Path, default=None, help="save the page with the overlay on (JPEG)")
    args = ap.parse_args()
    result: dict[str, Any] = {**run_record(), "offline": offline(args.repeats, args.frame)}
    off = result["offline"]
    print(f"occlusion sheet, 12 AUs ({off['occlusion_inputs']} inputs): {off['occlusion_sheet_s']:.2f} s")
    print(f"Grad-CAM, 12 AUs in one call: {off['gradcam_12_aus_s']:.2f} s; one AU: {off['gradcam_1_au_s']:.3f} s")
    if not args.no_serve:
        result["serve"] = s = serve(args.serve_seconds, args.cycles, args.overlay_au, args.screenshot)
        print(f"serve: AU results {s['au_fps_overlay_off']:.1f}/s overlay off {s['blocks_off']}, "
              f"{s['au_fps_overlay_on']:.1f}/s on {s['blocks_on']}; overlay {s['overlay_maps_per_s']:.1f} maps/s "
              f"{s['blocks_maps']}")
    result["load_average_end"] = list(os.getloadavg())
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"-> {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
