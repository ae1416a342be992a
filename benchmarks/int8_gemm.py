"""Accuracy cost of the int8 implicit-GEMM path (aunets.engines.int8_gemm) against float32, faithful AUNets (issue 26).

    python benchmarks/int8_gemm.py [--members 2] [--frames 2] [--out benchmarks/results]

``--members`` independent VGG16 AU detectors of the faithful ensemble (224x448 RGB|flow, **random weights**:
no trained faithful engine ships) run in float32 and int8 on the CPU, on detector inputs made from the
bundled clip as the CPU path makes them (crop, DIS flow, encode, normalise). Per member: relative error
||int8 - fp32|| / ||fp32|| of the fc7 features (4096) and of the logit (near 0 with random weights, so its
relative error is noisy), and max |delta sigmoid|. Speed is not measured here (int8 GEMMs pay on GPU
tensor cores; no GPU was lent). Writes ``int8_gemm.json``.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--members", type=int, default=2)
    ap.add_argument("--frames", type=int, default=2)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = ap.parse_args()
    import torch
    from bench_clip import load_frames, run_record

    from aunets.core.crop import crop_square
    from aunets.core.flow import DISFlow, encode_flow
    from aunets.engines.int8_gemm import Int8Linear, quantize_module
    from aunets.engines.manifest import InputSpec
    from aunets.engines.preprocess import compose_input
    from aunets.engines.registry import create_model

    frames, box = load_frames(args.frames + 1)
    spec = InputSpec(fusion="horizontal", height=224, width=224)
    flow = DISFlow("fast")
    samples = []
    for prev, cur in itertools.pairwise(frames):
        rgb = cv2.cvtColor(crop_square(cur, box, 1.3, 224), cv2.COLOR_BGR2RGB)
        p = crop_square(cv2.cvtColor(prev, cv2.COLOR_BGR2GRAY), box, 1.3, 224)
        f = flow.compute(p, cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
        samples.append(compose_input(rgb, encode_flow(f, "paper"), spec))
    x = torch.from_numpy(np.stack(samples))
    rows = []
    for member in range(args.members):
        torch.manual_seed(member)
        model = create_model("aunet_vgg16_horizontal", 1).eval()  # one member: one AU
        q, counts = quantize_module(copy.deepcopy(model))
        features: dict[str, torch.Tensor] = {}
        for key, net in (("fp32", model), ("int8", q)):  # the input of the last layer: the fc7 features
            last = [m for m in net.modules() if isinstance(m, torch.nn.Linear | Int8Linear)][-1]
            last.register_forward_pre_hook(
                lambda _m, inp, key=key, store=features: store.__setitem__(key, inp[0].detach()))
        with torch.inference_mode():
            t0 = time.perf_counter()
            ref = model(x)
            t1 = time.perf_counter()
            got = q(x)
            t2 = time.perf_counter()
        row = {"member": member, "swapped": counts,
               "rel_feature_error": round(float((features["int8"] - features["fp32"]).norm()
                                                / features["fp32"].norm()), 5),
               "rel_logit_error": round(float((got - ref).norm() / ref.norm()), 5),
               "max_abs_dp": round(float((torch.sigmoid(got) - torch.sigmoid(ref)).abs().max()), 5),
               "cpu_s_fp32": round(t1 - t0, 2), "cpu_s_int8": round(t2 - t1, 2)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    result = {**run_record(), "torch": torch.__version__, "inputs": f"{len(samples)} clip frames, 224x448 RGB|flow",
              "weights": "random (no trained faithful engine ships)", "rows": rows,
              "rel_feature_error_max": max(r["rel_feature_error"] for r in rows),
              "max_abs_dp_max": max(r["max_abs_dp"] for r in rows)}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "int8_gemm.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
