"""The occlusion figures of docs/explain.md, and the numbers its per-AU sentences rest on.

    python benchmarks/explain_figures.py [--laugh 369] [--crying 161] [--out docs]
        [--json benchmarks/results/explain_figures.json]

Writes, with the default engine and the default occlusion settings (patch 24 px, stride 8 px of the 112 px crop):
``docs/explain_laugh.jpg`` and ``docs/explain_crying.jpg`` (the bundled clip's laugh and crying frames, the true
previous frame giving the flow), and ``docs/explain_synth_apex.jpg``: twelve renders of one synthetic frontal
face, each showing one AU alone at apex (no previous frame: zero motion), each tile the map of that AU on its own
render. The JSON gives, per map, the probability and the share of the RGB map's positive mass in the upper and
lower half of the crop (and in the central third of the width).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_clip import CLIP, REPO, run_record


def summary(ex: Any) -> dict[str, Any]:
    import numpy as np

    out = {}
    for i, au in enumerate(ex.aus):
        m = np.clip(ex.rgb[i], 0, None)
        total = float(m.sum())
        h, w = m.shape
        f = ex.mass_fractions(au)
        out[str(au)] = {
            "p": round(float(ex.probabilities[i]), 3),
            "max_drop_rgb": round(float(ex.rgb[i].max()), 3),
            "max_drop_flow": None if ex.flow is None else round(float(ex.flow[i].max()), 3),
            "upper": round(f["upper"], 3),
            "lower": round(f["lower"], 3),
            "centre_third": round(float(m[:, w // 3 : 2 * w // 3].sum()) / total, 3) if total > 0 else 0.0,
            "peak_yx": [int(v) for v in np.unravel_index(int(np.argmax(ex.rgb[i])), (h, w))],
        }
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--laugh", type=int, default=369)
    ap.add_argument("--crying", type=int, default=161)
    ap.add_argument("--out", type=Path, default=REPO / "docs")
    ap.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "explain_figures.json")
    args = ap.parse_args()

    import cv2

    from aunets.engines.engine import load_engine
    from aunets.models.synth.apex import render_apex_frame
    from aunets.stream.explain import ExplainConfig, face_input, largest_face, occlusion_maps, pick_view
    from aunets.stream.explain_sheet import compose_sheet, draw_sheet, draw_tile
    from aunets.stream.tracking import YuNetDetector

    engine = load_engine(None, "onnx", 2)
    detector = YuNetDetector()
    config = ExplainConfig()
    result: dict[str, Any] = {**run_record(), "engine": engine.manifest.name, "config": config.to_json()}

    def save(name: str, sheet: Any) -> None:
        path = args.out / name
        cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 82])
        print(f"{path} ({path.stat().st_size // 1024} KB)")

    cap = cv2.VideoCapture(str(CLIP))
    frames = []
    for _ in range(max(args.laugh, args.crying) + 1):
        frames.append(cap.read()[1])
    cap.release()
    for name, index in (("laugh", args.laugh), ("crying", args.crying)):
        frame, prev = frames[index], frames[index - 1]
        face = face_input(engine, frame, prev, largest_face(frame, detector))
        ex = occlusion_maps(engine, face, config, pick_view(engine, face.crop))
        save(f"explain_{name}.jpg", draw_sheet(ex, size=160, title=f"bundled clip, {name}, frame {index}:"))
        result[name] = {"frame": index, "view": ex.view, "maps": summary(ex)}

    tiles, apex = [], {}
    for au in engine.aus:
        frame = render_apex_frame({au: 1.0})
        face = face_input(engine, frame, None, largest_face(frame, detector))
        ex = occlusion_maps(engine, face, ExplainConfig(aus=(au,)), pick_view(engine, face.crop))
        tiles.append(draw_tile(ex, au, 160))
        apex.update(summary(ex))
    title = "synthetic face, each tile: the AU alone at apex and that AU's map; occlusion, patch 24 px stride 8 px"
    save("explain_synth_apex.jpg", compose_sheet(tiles, "occlusion", title))
    result["synth_apex"] = apex
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"-> {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
