"""YuNet on ONNX Runtime: the face detector of the live path, without OpenCV's DNN module.

The same network and weights as :class:`aunets.stream.tracking.YuNetDetector` (``cv2.FaceDetectorYN``), from a copy
whose input height and width are free (``face_detection_yunet_2023mar_dynamic.onnx``, made from the shipped
fixed-shape model by :func:`make_dynamic`), so one ONNX Runtime session serves the full frame and every region
size. ONNX Runtime on one thread runs it in about half the time OpenCV 5's DNN engine takes (see
``docs/speed.md``). Decoding and NMS follow OpenCV's ``FaceDetectorYN`` (2023mar heads): the image is padded at the
bottom and right to multiples of 32, fed as BGR float 0..255 (1, 3, H, W); for each stride s in 8, 16, 32 and cell
(row r, column c), score = sqrt(clip(cls) * clip(obj)), centre = ((c, r) + bbox[:2]) * s, size = exp(bbox[2:]) * s,
landmark k = ((c, r) + kps[2k:2k+2]) * s.
"""

from __future__ import annotations

import logging
from importlib import resources
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from aunets.core.crop import shrink
from aunets.core.errors import ConfigError, MissingExtraError
from aunets.core.face import Detection

log = logging.getLogger(__name__)

STRIDES = (8, 16, 32)
PAD = 32


def dynamic_yunet_path() -> Path:
    """The bundled YuNet with free input height and width (Apache-2.0, ``aunets/stream/assets/yunet``)."""
    folder = resources.files("aunets.stream") / "assets" / "yunet"
    return Path(str(folder / "face_detection_yunet_2023mar_dynamic.onnx"))


def make_dynamic(src: Path, dst: Path) -> None:
    """Write ``src`` (YuNet with a fixed 1x3x640x640 input) to ``dst`` with the input's height and width, and the
    outputs' anchor axis, left free; nothing else changes (the graph's reshapes already use -1). Needs ``onnx``."""
    try:
        import onnx
    except ImportError as exc:
        raise MissingExtraError("onnx", "train") from exc
    model = onnx.load(str(src))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_param, dims[3].dim_param = "height", "width"
    for out in model.graph.output:
        out.type.tensor_type.shape.dim[1].dim_param = "anchors"
    del model.graph.value_info[:]
    onnx.checker.check_model(model)
    onnx.save(model, str(dst))


class OrtYuNetDetector:
    """YuNet through ONNX Runtime on ``threads`` threads, run on a copy of the frame scaled to ``input_width``
    pixels wide (as :class:`~aunets.stream.tracking.YuNetDetector`). Implements ``FaceDetector``."""

    def __init__(
        self,
        model: Path | None = None,
        score_threshold: float = 0.6,
        nms_threshold: float = 0.3,
        input_width: int = 320,
        threads: int = 1,
        top_k: int = 50,
    ) -> None:
        path = Path(model or dynamic_yunet_path())
        if not path.is_file():
            raise ConfigError(f"YuNet model {path} not found; reinstall aunets (it ships in aunets/stream/assets)")
        self._path = path
        self._threads = threads
        self._session: Any = None  # made on first use: a pipeline whose tracking runs
        # in the capture process never needs its own
        self._names = [f"{head}_{s}" for head in ("cls", "obj", "bbox", "kps") for s in STRIDES]
        self._score = score_threshold
        self._nms = nms_threshold
        self._input_width = input_width
        self._top_k = top_k

    def _open(self) -> Any:
        if self._session is None:
            import onnxruntime as ort

            opts = ort.SessionOptions()
            opts.intra_op_num_threads = self._threads
            opts.inter_op_num_threads = 1
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
            opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
            self._session = ort.InferenceSession(str(self._path), opts, providers=["CPUExecutionProvider"])
        return self._session

    def detect(self, frame: np.ndarray) -> list[Detection]:
        """Faces in a BGR ``uint8`` (H, W, 3) frame, boxes and landmarks in its pixels."""
        H, W = frame.shape[:2]
        scale = min(1.0, self._input_width / W)
        size = (max(1, round(W * scale)), max(1, round(H * scale)))
        small = frame if scale == 1.0 else shrink(frame, *size)
        faces = self.detect_raw(small)
        inv = 1.0 / scale
        return [Detection(box=(float(f[0]) * inv, float(f[1]) * inv, float(f[2]) * inv, float(f[3]) * inv),
                          score=float(f[14]), landmarks=f[4:14].reshape(5, 2) * inv) for f in faces]

    def detect_raw(self, image: np.ndarray) -> np.ndarray:
        """Rows of ``cv2.FaceDetectorYN.detect`` for a BGR ``uint8`` image at network size: (N, 15) float32, x, y,
        w, h, five landmarks (x, y), score; best first."""
        h, w = image.shape[:2]
        ph, pw = -(-h // PAD) * PAD, -(-w // PAD) * PAD
        blob = np.zeros((1, 3, ph, pw), np.float32)
        blob[0, :, :h, :w] = image.transpose(2, 0, 1)
        outs = dict(zip(self._names, self._open().run(self._names, {"input": blob}), strict=True))
        rows = []
        for s in STRIDES:
            cols = pw // s
            score = np.sqrt(np.clip(outs[f"cls_{s}"][0, :, 0], 0, 1) * np.clip(outs[f"obj_{s}"][0, :, 0], 0, 1))
            keep = np.flatnonzero(score >= self._score)
            if not len(keep):
                continue
            grid = np.stack([keep % cols, keep // cols], axis=1).astype(np.float32)  # (column, row) per anchor
            bbox, kps = outs[f"bbox_{s}"][0, keep], outs[f"kps_{s}"][0, keep]
            centre = (grid + bbox[:, :2]) * s
            wh = np.exp(bbox[:, 2:]) * s
            marks = (np.tile(grid, 5) + kps) * s
            rows.append(np.concatenate([centre - wh / 2, wh, marks, score[keep, None]], axis=1))
        if not rows:
            return np.zeros((0, 15), np.float32)
        faces = np.concatenate(rows).astype(np.float32)
        picked = cv2.dnn.NMSBoxes(faces[:, :4].tolist(), faces[:, 14].tolist(), self._score, self._nms,
                                  top_k=self._top_k)
        return faces[np.asarray(picked, dtype=np.int64).reshape(-1)]
