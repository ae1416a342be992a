"""Shared fixtures: a tiny real engine bundle (ONNX built with onnx.helper) and a real test video."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from aunets.core.au import BP4D_AUS
from aunets.engines.manifest import InputSpec, Manifest, sha256_file, write_manifest

REPO = Path(__file__).resolve().parents[1]
CLIP = REPO / "media" / "pexels_wolfganglanger_expressions.mp4"
# an absolute POSIX path (two parts or more) that is not part of a URL, a DOI or a relative path
ABSOLUTE_PATH = re.compile(r"(?<![\w.~:/-])/(?:[\w.-]+/)+[\w.-]*")


def absolute_paths(folder: Path) -> list[str]:
    """``file: path`` for every absolute path written in a text file (JSON, Markdown, CSV, TOML) under ``folder``."""
    found = []
    for path in sorted(folder.rglob("*")):
        if path.suffix in (".json", ".md", ".csv", ".toml", ".txt"):
            text = path.read_text(encoding="utf-8")
            found += [f"{path.relative_to(folder)}: {m}" for m in ABSOLUTE_PATH.findall(text)]
    return found


def build_tiny_engine(
    out: Path,
    aus: Sequence[int] = BP4D_AUS,
    fusion: str = "horizontal",
    size: int = 48,
    heads: int = 1,
    seed: int = 0,
    median_window: int = 5,
    flow_encoding: str = "paper",
    fixed_size: bool = False,
    intensity: bool = False,
) -> Path:
    """A real, tiny ONNX engine: global average pool of the input tensor -> linear -> logits (N, heads*K).

    Its outputs depend on the input's channel means, so they change with the image, deterministically.
    ``fixed_size``: the graph declares its input height and width (as exported networks do), not free ones.
    ``intensity``: as many logits again after the presence ones (the manifest's AU intensity outputs).
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from aunets.core.flow import FlowConfig

    spec = InputSpec(fusion=fusion, height=size, width=size)
    channels, height, width = spec.tensor_shape
    rng = np.random.default_rng(seed)
    k = len(aus) * heads * (2 if intensity else 1)
    weight = rng.normal(0, 1.0, size=(channels, k)).astype(np.float32)
    bias = rng.normal(0, 0.5, size=(k,)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("GlobalAveragePool", ["input"], ["pooled"]),
            helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
            helper.make_node("Gemm", ["flat", "W", "B"], ["logits"]),
        ],
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                       ["N", channels, height if fixed_size else None, width if fixed_size else None])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", k])],
        [numpy_helper.from_array(weight, "W"), numpy_helper.from_array(bias, "B")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    out.mkdir(parents=True, exist_ok=True)
    onnx.save(model, out / "detector.onnx")
    manifest = Manifest(
        name="tiny-test-engine",
        architecture="tiny_gap_linear",
        aus=tuple(aus),
        detectors={v: "detector.onnx" for v in range(9)},
        detector_heads={v: v % heads for v in range(9)},
        files={"detector.onnx": sha256_file(out / "detector.onnx")},
        input=spec,
        flow=FlowConfig(encoding=flow_encoding),  # type: ignore[arg-type]
        median_window=median_window,
        intensity=intensity,
        provenance={"note": "random tiny engine for tests; detects nothing"},
    )
    write_manifest(out, manifest)
    return out


@pytest.fixture
def tiny_engine(tmp_path: Path) -> Path:
    return build_tiny_engine(tmp_path / "tiny_engine")


def clip_frames(n: int, start: int = 0, path: Path = CLIP) -> list[np.ndarray]:
    """``n`` frames of a video (the bundled clip by default) from frame ``start``, BGR uint8 (H, W, 3)."""
    cap = cv2.VideoCapture(str(path))
    if start:
        cap.set(cv2.CAP_PROP_POS_FRAMES, start)
    frames = []
    for _ in range(n):
        ok, frame = cap.read()
        assert ok, f"cannot read {n} frames from frame {start} of {path}"
        frames.append(frame)
    cap.release()
    return frames


def write_long_video(path: Path, frames: int = 600) -> int:
    """``frames`` frames (320x180 MJPG at 25 fps) of the bundled clip's first 40, looped; returns ``frames``."""
    faces = [cv2.resize(f, (320, 180), interpolation=cv2.INTER_AREA) for f in clip_frames(40)]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (320, 180))
    for i in range(frames):
        writer.write(faces[i % len(faces)])
    writer.release()
    return frames


class Collect:
    """A sink that keeps every result it is given in memory (``results``; ``frames``: those that are not
    :attr:`events_only`)."""

    def __init__(self) -> None:
        self.results: list[Any] = []

    @property
    def frames(self) -> list[Any]:
        return [r for r in self.results if not r.events_only]

    def publish_results(self, results: Any) -> None:
        self.results.extend(results)

    def publish_status(self, status: Any) -> None:
        pass

    def close(self) -> None:
        pass


def write_test_video(path: Path, face_frames: int = 20, blank_frames: int = 10, fps: float = 25.0) -> int:
    """A real mp4: ``face_frames`` frames of the bundled clip, then ``blank_frames`` gray frames, then
    ``face_frames`` more clip frames. Returns the frame count."""
    faces = clip_frames(2 * face_frames)
    h, w = faces[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    frames = faces[:face_frames] + [np.full((h, w, 3), 90, np.uint8)] * blank_frames + faces[face_frames:]
    for f in frames:
        writer.write(f)
    writer.release()
    return len(frames)


@pytest.fixture
def test_video(tmp_path: Path) -> tuple[Path, int]:
    path = tmp_path / "clip.mp4"
    return path, write_test_video(path)
