"""``aunets explain``: where each AU detector looks, as occlusion maps (or Grad-CAM) over the face crop.

Only the standard library at module level (see :mod:`aunets.cli`); the work is in :mod:`aunets.stream.explain`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aunets.engines.engine import AUEngine
    from aunets.stream.explain import ExplainConfig

log = logging.getLogger(__name__)



def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", help="a video file, an image, or a folder of images")
    p.add_argument("--out", type=Path, required=True,
                   help="output folder (PNG sheets, per-AU PNGs, maps, explain.json)")
    p.add_argument("--au", default="", metavar="1,2,12",
                   help="AUs to map, comma-separated (default: all of the engine's)")
    p.add_argument("--frames", default=None, metavar="SPEC",
                   help="frame indices (0-based) of a video or image folder: '120', '10,50,90', '100-200:25' "
                        "(start-end inclusive, every 25th); default: the middle frame of a video, every image "
                        "of a folder")
    p.add_argument("--method", choices=("occlusion", "gradcam"), default="occlusion",
                   help="occlusion (the paper's, default) or gradcam (fast; needs the [train] extra: torch)")
    p.add_argument("--patch", type=int, default=24,
                   help="occlusion patch side in pixels of the engine's crop (default 24)")
    p.add_argument("--stride", type=int, default=8, help="occlusion step in pixels of the engine's crop (default 8)")
    p.add_argument("--engine", type=Path, default=None, help="engine bundle directory (default: the embedded one)")
    p.add_argument("--view", type=int, default=None, help="detector view (default: the view classifier's choice)")
    p.add_argument("--threads", type=int, default=2, help="engine threads (default 2)")
    p.add_argument("--margin", type=float, default=1.3, help="crop side / face box side (default 1.3, as the pipeline)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def parse_frames(spec: str) -> list[int]:
    """'5', '1,4,9', '100-200:25' (inclusive ranges, optional step) -> sorted unique indices."""
    from aunets.core.errors import ConfigError

    out: set[int] = set()
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        try:
            if "-" in part:
                rng, _, step = part.partition(":")
                a, b = (int(v) for v in rng.split("-", 1))
                if a > b:
                    raise ValueError
                out.update(range(a, b + 1, int(step) if step else 1))
            else:
                out.add(int(part))
        except ValueError:
            raise ConfigError(f"--frames {spec!r}: {part!r} is not an index or a range; write e.g. "
                              f"--frames 10,50 or --frames 100-200:25") from None  # fmt: skip
    if not out or min(out) < 0:
        raise ConfigError(f"--frames {spec!r}: give frame indices of 0 or more, e.g. --frames 0,25")
    return sorted(out)


def parse_aus(text: str) -> tuple[int, ...]:
    from aunets.core.errors import ConfigError

    try:
        return tuple(int(a.strip().upper().removeprefix("AU")) for a in text.split(",") if a.strip())
    except ValueError:
        raise ConfigError(f"--au {text!r}: write AU numbers separated by commas, e.g. --au 6,12") from None


def run(args: argparse.Namespace) -> int:
    import dataclasses

    import cv2
    import numpy as np
    from tqdm import tqdm

    from aunets.core.errors import ConfigError, SourceError
    from aunets.core.flow_registry import create_flow_backend
    from aunets.engines.engine import load_engine
    from aunets.stream.explain import (
        ExplainConfig,
        GradCam,
        face_input,
        largest_face,
        occlusion_maps,
        pick_view,
        resolve_aus,
    )
    from aunets.stream.explain_sheet import save_explanation, write_config
    from aunets.stream.sources import IMAGE_SUFFIXES
    from aunets.stream.tracking import YuNetDetector

    config = ExplainConfig(method=args.method, aus=parse_aus(args.au), patch=args.patch, stride=args.stride,
                           margin=args.margin, view=args.view)  # fmt: skip
    source = Path(args.source)
    if not source.exists():
        raise SourceError(f"{source} does not exist; pass a video file, an image or a folder of images")
    frames_wanted = parse_frames(args.frames) if args.frames else None
    engine = load_engine(args.engine, "onnx", args.threads)
    aus = resolve_aus(engine, config.aus)
    if config.view is not None and config.view not in engine.manifest.detectors:
        raise ConfigError(f"--view {config.view} is not one of engine {engine.manifest.name}'s views; choose from "
                          f"{', '.join(map(str, sorted(engine.manifest.detectors)))} or leave it out")  # fmt: skip
    if not (1 <= config.patch <= engine.manifest.input.height):
        raise ConfigError(f"--patch {config.patch} must be 1..{engine.manifest.input.height} (the engine's crop)")
    gradcam = GradCam(engine, threads=args.threads) if config.method == "gradcam" else None
    detector = YuNetDetector()
    flow = create_flow_backend(engine.manifest.flow.backend) if engine.manifest.input.uses_flow else None

    # (index, frame, previous frame or None)
    items: list[tuple[int, np.ndarray, np.ndarray | None, str]] = []
    if source.is_dir() or source.suffix.lower() in IMAGE_SUFFIXES:
        files = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if source.is_dir() \
            else [source]  # fmt: skip
        if not files:
            raise SourceError(f"folder {source} has no images ({', '.join(IMAGE_SUFFIXES)})")
        chosen = frames_wanted if frames_wanted is not None else list(range(len(files)))
        if chosen[-1] >= len(files):
            raise ConfigError(f"--frames {chosen[-1]} is out of range: {source} has {len(files)} image(s), "
                              f"indices 0..{len(files) - 1}")  # fmt: skip
        for i in chosen:
            image = cv2.imread(str(files[i]), cv2.IMREAD_COLOR)
            if image is None:
                raise SourceError(f"image {files[i]} cannot be decoded; remove or replace it")
            # each picture stands alone: no previous frame (zero motion, as the pipeline's first frame)
            items.append((i, image, None, files[i].name))
    else:
        cap = cv2.VideoCapture(str(source))
        if not cap.isOpened():
            raise SourceError(f"cannot open {source} as a video; pass a video file, an image or a folder of images")
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        chosen = frames_wanted if frames_wanted is not None else [max(0, count // 2)]
        if count > 0 and chosen[-1] >= count:
            raise ConfigError(f"--frames {chosen[-1]} is out of range: {source} has {count} frames, "
                              f"indices 0..{count - 1}")  # fmt: skip
        want = set(chosen)
        prev: np.ndarray | None = None
        index = 0
        while want:
            ok, frame = cap.read()
            if not ok:
                cap.release()
                raise ConfigError(f"--frames {min(want)} is out of range: {source} decoded only {index} frames")
            if index in want:
                items.append((index, frame, prev, f"frame {index}"))
                want.discard(index)
            prev, index = frame, index + 1
        cap.release()

    per_frame = (1 + 2 * len(_positions(engine, config)) if engine.manifest.input.uses_flow
                 else 1 + len(_positions(engine, config))) if config.method == "occlusion" else 1  # fmt: skip
    summary = []
    with tqdm(total=per_frame * len(items), unit="input", disable=args.no_progress, file=sys.stderr,
              desc=f"aunets explain ({config.method})") as bar:  # fmt: skip
        for index, frame, prev_frame, what in items:
            box = largest_face(frame, detector, f"{what} of {source}")
            face = face_input(engine, frame, prev_frame, box, config.margin, flow)
            view = pick_view(engine, face.crop, config.view)
            if gradcam is not None:
                ex = gradcam.maps(face, aus, view)
                bar.update(1)
            else:
                ex = occlusion_maps(engine, face, ExplainConfig(**{**config.to_json(), "aus": aus}), view,
                                    progress=bar.update)  # fmt: skip
            ex = dataclasses.replace(ex, frame_index=index)
            stem = f"frame{index:06d}"
            summary.append(save_explanation(args.out, stem, ex, title=f"{source.name} {what}"))
    write_config(args.out, config, {"source": str(source), "engine": engine.manifest.name, "aus": list(aus),
                                    "previous_frame": "true previous frame (videos); none, zero motion (images)",
                                    "frames": summary})  # fmt: skip
    print(f"aunets explain: {len(summary)} frame(s) -> {args.out}/frame*_sheet.png", file=sys.stderr)
    return 0


def _positions(engine: AUEngine, config: ExplainConfig) -> list[tuple[int, int]]:
    from aunets.stream.explain import patch_positions

    spec = engine.manifest.input
    ys = patch_positions(spec.height, config.patch, config.stride)
    xs = patch_positions(spec.width, config.patch, config.stride)
    return [(y, x) for y in ys for x in xs]
