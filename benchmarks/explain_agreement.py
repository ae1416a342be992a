"""How well Grad-CAM agrees with the occlusion maps (the reference) of the default engine (issue 22).

    python benchmarks/explain_agreement.py [--json benchmarks/results/explain_agreement.json]

Maps compared, RGB half, for every AU the engine detects (p >= 0.3) on the synthetic frontal face with that AU
alone at apex (no previous frame), and for every AU at p >= 0.5 with an occlusion drop >= 0.1 on the bundled
clip's crying (161) and laugh (369) frames (true previous frame): the occlusion map (default patch 24 px,
stride 8 px; its positive part) against

- ``classic``: Grad-CAM as first shipped: channel weights = spatially averaged gradient of the AU's logit, at
  the last spatial layer only (the 4x7-cell map of the 112x224 input);
- ``shipped``: :class:`aunets.stream.explain.GradCam` as it is now.

Per map: Pearson r between the two maps; the share of each map's mass in the upper half of the crop; whether the
Grad-CAM peak lies where the occlusion map is at least half its maximum. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_clip import CLIP, REPO, run_record


def classic_gradcam(cam: Any, face: Any, au: int, view: int) -> Any:
    """The first shipped Grad-CAM: GAP-of-gradient channel weights at the last leaf module with a spatial map."""
    import numpy as np
    import torch

    from aunets.engines.preprocess import compose_input

    m = cam.engine.manifest
    spec = m.input
    name = m.detectors[view if view in m.detectors else m.default_view]
    model = cam._models[name]
    order: list[Any] = []
    hooks = [mod.register_forward_hook(lambda mod, _i, out: order.append((mod, tuple(out.shape))))
             for mod in model.modules() if not list(mod.children())]  # fmt: skip
    with torch.no_grad():
        model(torch.zeros((1, *spec.tensor_shape)))
    for h in hooks:
        h.remove()
    layer = [mod for mod, shape in order if len(shape) == 4 and shape[2] * shape[3] > 1][-1]
    store: dict[str, Any] = {}

    def keep(_mod: Any, _inp: Any, out: Any) -> None:
        store["act"] = out
        out.register_hook(lambda g: store.__setitem__("grad", g))

    x = torch.from_numpy(compose_input(face.crop, face.flow_image, spec)[None])
    x.requires_grad_(True)
    hook = layer.register_forward_hook(keep)
    with torch.enable_grad():
        logits = model(x)
        logits[0, m.detector_heads.get(view, 0) * len(m.aus) + m.aus.index(au)].backward()
    hook.remove()
    act, grad = store["act"].detach(), store["grad"].detach()
    c = torch.relu((grad.mean(dim=(2, 3), keepdim=True) * act).sum(dim=1, keepdim=True))
    _c, h, w = spec.tensor_shape
    c = torch.nn.functional.interpolate(c, size=(h, w), mode="bilinear", align_corners=False)[0, 0]
    return np.ascontiguousarray(c.numpy()[:, : spec.width])


def compare(occ: Any, cam: Any) -> dict[str, Any]:
    import numpy as np

    occ = np.clip(occ, 0, None)
    h = occ.shape[0] // 2

    def upper(m: Any) -> float:
        total = float(m.sum())
        return float(m[:h].sum()) / total if total > 0 else 0.0

    r = float(np.corrcoef(occ.ravel(), cam.ravel())[0, 1]) if cam.std() > 0 and occ.std() > 0 else 0.0
    peak = np.unravel_index(int(np.argmax(cam)), cam.shape)
    return {"r": round(r, 3), "upper_occlusion": round(upper(occ), 3), "upper_gradcam": round(upper(cam), 3),
            "peak_in_occlusion_half_max": bool(occ[peak] >= 0.5 * occ.max())}  # fmt: skip


def summarise(rows: list[dict[str, Any]], method: str) -> dict[str, Any]:
    if not rows:
        return {}
    return {
        "maps": len(rows),
        "mean_r": round(statistics.mean(r[method]["r"] for r in rows), 3),
        "mean_abs_upper_diff": round(statistics.mean(abs(r[method]["upper_gradcam"] - r[method]["upper_occlusion"])
                                                     for r in rows), 3),
        "peak_hits": sum(r[method]["peak_in_occlusion_half_max"] for r in rows),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "explain_agreement.json")
    args = ap.parse_args()

    import cv2

    from aunets.engines.engine import load_engine
    from aunets.models.synth.apex import render_apex_frame
    from aunets.stream.explain import ExplainConfig, GradCam, face_input, largest_face, occlusion_maps, pick_view
    from aunets.stream.tracking import YuNetDetector

    engine = load_engine(None, "onnx", 2)
    detector = YuNetDetector()
    cam = GradCam(engine)
    cases: list[tuple[str, Any, int, list[int]]] = []
    for au in engine.aus:
        frame = render_apex_frame({au: 1.0})
        face = face_input(engine, frame, None, largest_face(frame, detector))
        cases.append(("synthetic apex", face, pick_view(engine, face.crop), [au]))
    capture = cv2.VideoCapture(str(CLIP))
    frames = [capture.read()[1] for _ in range(370)]
    capture.release()
    for index in (161, 369):
        frame = frames[index]
        face = face_input(engine, frame, frames[index - 1], largest_face(frame, detector))
        cases.append((f"clip frame {index}", face, pick_view(engine, face.crop), list(engine.aus)))
    rows: list[dict[str, Any]] = []
    for source, face, view, aus in cases:
        occ = occlusion_maps(engine, face, ExplainConfig(aus=tuple(aus)), view)
        shipped = cam.maps(face, tuple(aus), view)
        for i, au in enumerate(aus):
            p = float(occ.probabilities[i])
            synthetic = source.startswith("synthetic")
            if p < (0.3 if synthetic else 0.5) or (not synthetic and float(occ.rgb[i].max()) < 0.1):
                continue
            row = {"source": source, "au": au, "p": round(p, 3),
                   "classic": compare(occ.rgb[i], classic_gradcam(cam, face, au, view)),
                   "shipped": compare(occ.rgb[i], shipped.rgb[i])}  # fmt: skip
            rows.append(row)
            print(f"{source:15s} AU{au:02d} p {p:.2f}  r classic {row['classic']['r']:+.2f} shipped "
                  f"{row['shipped']['r']:+.2f}  upper occlusion {row['shipped']['upper_occlusion']:.0%} classic "
                  f"{row['classic']['upper_gradcam']:.0%} shipped {row['shipped']['upper_gradcam']:.0%}", flush=True)
    synth = [r for r in rows if r["source"].startswith("synthetic")]
    clip = [r for r in rows if not r["source"].startswith("synthetic")]
    result: dict[str, Any] = {
        **run_record(), "engine": engine.manifest.name,
        "shipped_layers": len(cam._layers[engine.manifest.detectors[engine.manifest.default_view]]),
        "summary": {"synthetic": {m: summarise(synth, m) for m in ("classic", "shipped")},
                    "clip": {m: summarise(clip, m) for m in ("classic", "shipped")}},
        "maps": rows,
    }  # fmt: skip
    for name, s in result["summary"].items():
        for method, v in s.items():
            print(f"{name:9s} {method:8s} maps {v['maps']:2d}  mean r {v['mean_r']:+.2f}  mean |upper diff| "
                  f"{v['mean_abs_upper_diff']:.2f}  peak in occlusion's top {v['peak_hits']}/{v['maps']}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"-> {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
