"""Multi-person test clips composed from the real-face photos (and from synthetic faces), with ground truth.

Each clip is a 640x480, 25 fps scene over a plain room-like background: people (London photos of ``train``
people only, see :mod:`aunets.models.data.realfaces`) pasted as feathered head-and-shoulder cut-outs, each following
keyframes of face centre (px), face width (px) and ``squeeze`` (horizontal scale of the cut-out: 1 frontal,
near 0 edge-on, a crude stand-in for turning away). Smaller (farther) people are drawn first, so nearer ones
overlap them. A person's photo switches from neutral to smiling at ``smile_from`` seconds. An optional
occluder (a dark rounded bar) sweeps across the frame.

Beside every ``NAME.mp4`` a ``NAME.json`` holds, per person and frame, the face box (x, y, w, h px; from YuNet
on the photo, carried through the same transform) or null when the face is out of frame, edge-on
(``squeeze < 0.5``) or covered by the occluder, and the expression shown (``neutral``/``smiling``).

    python -m aunets.models.data.multiface --out media       # writes the shipped clips (needs ../shared/realfaces)
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from aunets.core.errors import ConfigError
from aunets.models.data.realfaces import ATTRIBUTION, RealItem, load_realfaces

log = logging.getLogger(__name__)

FPS = 25
WIDTH, HEIGHT = 640, 480

Key = tuple[float, float, float, float, float]
"""A keyframe: (t seconds, face centre x px, face centre y px, face width px, squeeze 0..1)."""


@dataclass(frozen=True)
class Person:
    """One person of a scene: a London ``train`` person id, keyframes (linearly interpolated, held at the
    ends), and the time in seconds from which the smiling photo is shown (None: neutral throughout)."""

    name: str
    keys: tuple[Key, ...]
    smile_from: float | None = None


@dataclass(frozen=True)
class Scene:
    """A clip: ``seconds`` long, its people, and an occluder sweeping from ``occluder[1]`` to ``occluder[2]``
    (x px of its centre) between ``occluder[0]`` and ``occluder[0] + occluder[3]`` seconds at height
    ``occluder[4]`` px (its centre), or None."""

    name: str
    seconds: float
    people: tuple[Person, ...]
    occluder: tuple[float, float, float, float, float] | None = None
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


SCENES: tuple[Scene, ...] = (
    Scene(
        "realfaces_trio", 5.0,
        (
            Person("042", ((0.0, 318, 150, 64, 1.0), (2.5, 330, 142, 66, 1.0), (5.0, 314, 152, 64, 1.0))),
            Person("005", ((0.0, 500, 230, 104, 1.0), (2.5, 488, 250, 80, 1.0), (5.0, 505, 236, 100, 1.0))),
            Person("013", ((0.0, 160, 260, 150, 1.0), (2.5, 185, 250, 154, 1.0), (5.0, 170, 265, 148, 1.0)),
                   smile_from=2.0),
        ),
        notes="three people always in view at three sizes, moving (the right one shrinks and grows again); the "
              "left one smiles from 2.0 s",
    ),
    Scene(
        "realfaces_group", 8.0,
        (
            Person("034", ((0.0, 330, 140, 64, 1.0), (8.0, 345, 145, 64, 1.0))),
            Person("043", ((0.0, 500, 250, 96, 1.0), (3.0, 500, 250, 96, 1.0), (3.4, 500, 250, 96, 0.05),
                           (4.4, 500, 250, 96, 0.05), (4.8, 500, 250, 96, 1.0), (8.0, 490, 255, 96, 1.0))),
            Person("020", ((0.0, -80, 260, 110, 1.0), (1.0, -80, 260, 110, 1.0), (2.0, 120, 255, 110, 1.0),
                           (3.6, 130, 250, 110, 1.0), (4.5, -80, 255, 110, 1.0), (5.8, -80, 255, 110, 1.0),
                           (6.6, 110, 250, 110, 1.0), (8.0, 120, 255, 110, 1.0)), smile_from=2.4),
            Person("029", ((0.0, 300, 300, 140, 1.0), (4.0, 270, 290, 140, 1.0), (8.0, 290, 300, 140, 1.0))),
        ),
        occluder=(5.2, 150, 470, 0.5, 300),
        notes="four people: 020 enters from the left at 1 s, smiles from 2.4 s, leaves at 4.5 s and comes back at "
              "6 s; 043 turns away (edge-on) 3.0-4.8 s; a bar passes over 029's face around 5.4 s (about 5 "
              "frames); 034 is small, behind 029",
    ),
    Scene(
        "realfaces_four", 4.0,
        (
            Person("042", ((0.0, 470, 150, 70, 1.0), (2.0, 455, 145, 72, 1.0), (4.0, 470, 152, 70, 1.0))),
            Person("005", ((0.0, 120, 200, 90, 1.0), (2.0, 135, 210, 92, 1.0), (4.0, 118, 200, 90, 1.0))),
            Person("062", ((0.0, 545, 280, 105, 1.0), (2.0, 530, 290, 100, 1.0), (4.0, 548, 282, 106, 1.0))),
            Person("029", ((0.0, 300, 290, 130, 1.0), (2.0, 318, 280, 134, 1.0), (4.0, 298, 292, 130, 1.0))),
        ),
        notes="four neutral people always in view at four sizes, moving a little (the benchmark's clip)",
    ),
)


def _interp(keys: tuple[Key, ...], t: float) -> Key:
    times = [k[0] for k in keys]
    values = np.array([k[1:] for k in keys], dtype=np.float64)
    out = [float(np.interp(t, times, values[:, j])) for j in range(4)]
    return t, out[0], out[1], out[2], out[3]


class _Cutout:
    """A person's neutral and smiling photos with a feathered head-and-shoulders alpha and the face box."""

    def __init__(self, item: RealItem, detector: Any) -> None:
        self.images: list[np.ndarray] = []
        for path in item.paths:
            image = cv2.imread(str(path))
            if image is None:
                raise ConfigError(f"cannot read {path} of the real-face collection")
            self.images.append(image)
        h, w = self.images[0].shape[:2]
        faces = detector.detect(self.images[0])
        if not faces:
            raise ConfigError(f"no face found in london/{item.name}: pick another person")
        self.box = max(faces, key=lambda d: d.box[2] * d.box[3]).box
        x, y, bw, bh = self.box
        cx, cy = x + bw / 2, y + bh / 2
        alpha = np.zeros((h, w), np.float32)
        cv2.ellipse(alpha, (round(cx), round(cy - 0.05 * bh)), (round(0.85 * bw), round(0.95 * bh)), 0, 0, 360,
                    1.0, -1)  # head and hair
        cv2.ellipse(alpha, (round(cx), round(cy + 1.75 * bh)), (round(1.6 * bw), round(0.95 * bh)), 0, 0, 360,
                    1.0, -1)  # shoulders
        cv2.rectangle(alpha, (round(cx - 0.45 * bw), round(cy)), (round(cx + 0.45 * bw), round(cy + 1.2 * bh)),
                      1.0, -1)  # neck
        self.alpha = cv2.GaussianBlur(alpha, (0, 0), 0.06 * bw)

    def layer(self, smiling: bool, face_w: float, squeeze: float) -> tuple[np.ndarray, np.ndarray, float, float]:
        """(BGR image, alpha, scale x, scale y) of the cut-out resized so the face is ``face_w`` px wide."""
        s = face_w / self.box[2]
        sx = max(s * squeeze, 1e-3)
        size = (max(1, round(self.images[0].shape[1] * sx)), max(1, round(self.images[0].shape[0] * s)))
        img = cv2.resize(self.images[int(smiling)], size, interpolation=cv2.INTER_AREA)
        alpha = cv2.resize(self.alpha, size, interpolation=cv2.INTER_AREA)
        return img, alpha, size[0] / self.images[0].shape[1], size[1] / self.images[0].shape[0]


def background(width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """A plain room: a warm wall with a vertical light gradient, a darker floor band and a door frame."""
    y = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    wall = np.array([150, 170, 185], np.float32) * (1.05 - 0.25 * y)
    img = np.broadcast_to(wall, (height, width, 3)).copy()
    img[int(0.82 * height):] = (70, 85, 100)
    cv2.rectangle(img, (int(0.70 * width), int(0.10 * height)), (int(0.86 * width), int(0.82 * height)),
                  (110, 125, 140), 6)
    return np.clip(img, 0, 255).astype(np.uint8)


def _paste(frame: np.ndarray, img: np.ndarray, alpha: np.ndarray, x0: int, y0: int) -> None:
    H, W = frame.shape[:2]
    h, w = img.shape[:2]
    fx0, fy0, fx1, fy1 = max(0, x0), max(0, y0), min(W, x0 + w), min(H, y0 + h)
    if fx1 <= fx0 or fy1 <= fy0:
        return
    sub = img[fy0 - y0 : fy1 - y0, fx0 - x0 : fx1 - x0].astype(np.float32)
    a = alpha[fy0 - y0 : fy1 - y0, fx0 - x0 : fx1 - x0, None]
    region = frame[fy0:fy1, fx0:fx1].astype(np.float32)
    frame[fy0:fy1, fx0:fx1] = np.clip(a * sub + (1 - a) * region + 0.5, 0, 255).astype(np.uint8)


def render_scene(scene: Scene, people: dict[str, RealItem], detector: Any) -> tuple[list[np.ndarray], dict[str, Any]]:
    """The frames (BGR uint8 HxWx3) and the ground truth of ``scene`` (see the module docstring)."""
    cutouts = {p.name: _Cutout(people[p.name], detector) for p in scene.people}
    base = background()
    n = round(scene.seconds * FPS)
    frames: list[np.ndarray] = []
    truth: dict[str, Any] = {p.name: {"boxes": [], "expression": []} for p in scene.people}
    for i in range(n):
        t = i / FPS
        frame = base.copy()
        states = [(p, _interp(p.keys, t)) for p in scene.people]
        occ_box = None
        if scene.occluder is not None:
            t0, xa, xb, dur, yc = scene.occluder
            if t0 <= t <= t0 + dur:
                xc = xa + (xb - xa) * (t - t0) / dur
                occ_box = (xc - 45, yc - 110, 90, 220)
        for person, (_, cx, cy, fw, sq) in sorted(states, key=lambda s: s[1][3]):  # far (small) first
            cut = cutouts[person.name]
            smiling = person.smile_from is not None and t >= person.smile_from
            img, alpha, sx, sy = cut.layer(smiling, fw, sq)
            bx, by, bw, bh = cut.box
            fcx, fcy = (bx + bw / 2) * sx, (by + bh / 2) * sy  # face centre in the layer
            x0, y0 = round(cx - fcx), round(cy - fcy)
            _paste(frame, img, alpha, x0, y0)
            box = (x0 + bx * sx, y0 + by * sy, bw * sx, bh * sy)
            inside = 0 <= cx < WIDTH and 0 <= cy < HEIGHT and box[0] >= -0.25 * box[2] and \
                box[0] + box[2] <= WIDTH + 0.25 * box[2]  # fmt: skip
            covered = occ_box is not None and _overlap(box, occ_box) > 0.3
            truth[person.name]["boxes"].append(
                [round(v, 1) for v in box] if inside and sq >= 0.5 and not covered else None)
            truth[person.name]["expression"].append("smiling" if smiling else "neutral")
        if occ_box is not None:
            x, y, w, h = (round(v) for v in occ_box)
            cv2.rectangle(frame, (x, y), (x + w, y + h), (40, 45, 55), -1)
        frames.append(frame)
    meta = {"name": scene.name, "fps": FPS, "size": [WIDTH, HEIGHT], "frames": n, "notes": scene.notes,
            "people": truth,
            "attribution": ATTRIBUTION["london"],
            "made_by": "python -m aunets.models.data.multiface"}
    return frames, meta


def _overlap(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """Fraction of box ``a`` covered by box ``b`` (both x, y, w, h)."""
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    return ix * iy / max(1e-9, a[2] * a[3])


def write_video(frames: list[np.ndarray], path: Path, fps: int = FPS, crf: int = 26) -> Path:
    """H.264 (libx264 through PyAV, extra ``[webrtc]``) when available, else OpenCV's MPEG-4 part 2."""
    try:
        import av
    except ImportError:
        log.warning("PyAV is not installed (pip install -e '.[webrtc]'): writing MPEG-4 part 2, a larger file")
        size = (frames[0].shape[1], frames[0].shape[0])
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, size)
        for f in frames:
            writer.write(f)
        writer.release()
        return path
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf), "preset": "slow"}
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="bgr24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def synth_pair(out: Path, seconds: float = 4.0) -> tuple[list[np.ndarray], dict[str, Any]]:
    """Two synthetic faces from ``aunets synth`` side by side at two sizes: the left one shows AU12 at apex
    from 1.0 to 2.5 s, the right one no AU (a script whose only episode starts after the clip ends)."""
    from aunets.stream.tracking import YuNetDetector

    detector = YuNetDetector()
    clips = []
    for k, script in enumerate(("12:1.0-2.5", f"12:{seconds + 1:.1f}-{seconds + 2:.1f}")):
        d = out / f"s{k}"
        subprocess.run([sys.executable, "-m", "aunets", "synth", "--out", str(d), "--subjects", "1", "--views",
                        "1", "--seconds", str(seconds), "--seed", str(7 + k), "--script", script, "--no-jitter",
                        "--no-crops", "--workers", "1", "--no-progress"], check=True)  # fmt: skip
        cap = cv2.VideoCapture(str(sorted(d.rglob("full.mp4"))[0]))
        frames = []
        while True:
            ok, f = cap.read()
            if not ok:
                break
            frames.append(f)
        clips.append(frames)
    n = min(len(c) for c in clips)
    base = background()
    truth: dict[str, Any] = {}
    placements = ((0, 175, 250, 1.0), (1, 470, 250, 0.62))  # clip, face centre x, y, scale
    boxes = {}
    for k, _, _, _ in placements:
        faces = detector.detect(clips[k][0])
        if not faces:
            raise ConfigError("no face found in the synthetic frame")
        boxes[k] = max(faces, key=lambda d: d.box[2]).box
    out_frames = []
    for i in range(n):
        frame = base.copy()
        for k, cx, cy, s in placements:
            src = clips[k][i]
            bx, by, bw, bh = boxes[k]
            side = 2.2 * max(bw, bh)
            x0s, y0s = round(bx + bw / 2 - side / 2), round(by + bh / 2 - side / 2)
            sx0, sy0 = max(0, x0s), max(0, y0s)
            patch = src[sy0 : round(y0s + side), sx0 : round(x0s + side)]
            size = (round(patch.shape[1] * s), round(patch.shape[0] * s))
            patch = cv2.resize(patch, size, interpolation=cv2.INTER_AREA)
            alpha: np.ndarray = np.zeros(patch.shape[:2], np.float32)
            cv2.ellipse(alpha, (size[0] // 2, size[1] // 2), (int(0.46 * size[0]), int(0.48 * size[1])), 0, 0, 360,
                        1.0, -1)
            alpha = cv2.GaussianBlur(alpha, (0, 0), 0.04 * size[0])
            fcx, fcy = (bx + bw / 2 - sx0) * s, (by + bh / 2 - sy0) * s
            x0, y0 = round(cx - fcx), round(cy - fcy)
            _paste(frame, patch, alpha, x0, y0)
            key = "au12" if k == 0 else "neutral"
            truth.setdefault(key, {"boxes": [], "expression": []})
            truth[key]["boxes"].append([round(x0 + (bx - sx0) * s, 1), round(y0 + (by - sy0) * s, 1),
                                        round(bw * s, 1), round(bh * s, 1)])
            on = k == 0 and 1.0 <= i / FPS <= 2.5
            truth[key]["expression"].append("AU12" if on else "neutral")
        out_frames.append(frame)
    meta = {"name": "synth_pair", "fps": FPS, "size": [WIDTH, HEIGHT], "frames": n,
            "notes": "two aunets synth faces (seeds 7 and 8, frontal, no jitter): left AU12 at apex 1.0-2.5 s, "
                     "right neutral",
            "people": truth, "made_by": "python -m aunets.models.data.multiface"}
    return out_frames, meta


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("media"))
    ap.add_argument("--root", type=Path, default=None, help="the real-face collection (default ../shared/realfaces)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from aunets.stream.tracking import YuNetDetector

    items = {i.name: i for i in load_realfaces(args.root) if i.set == "london"}
    detector = YuNetDetector(input_width=675)
    args.out.mkdir(parents=True, exist_ok=True)
    for scene in SCENES:
        for p in scene.people:
            if items[p.name].split != "train":
                raise ConfigError(f"london/{p.name} is a test person: never ship or tune on test people")
        frames, meta = render_scene(scene, items, detector)
        write_video(frames, args.out / f"{scene.name}.mp4")
        (args.out / f"{scene.name}.json").write_text(json.dumps(meta) + "\n", encoding="utf-8")
        log.info("wrote %s (%d frames)", args.out / f"{scene.name}.mp4", len(frames))
    with tempfile.TemporaryDirectory() as tmp:
        frames, meta = synth_pair(Path(tmp))
    write_video(frames, args.out / "synth_pair.mp4")
    (args.out / "synth_pair.json").write_text(json.dumps(meta) + "\n", encoding="utf-8")
    log.info("wrote %s (%d frames)", args.out / "synth_pair.mp4", len(frames))
    return 0


if __name__ == "__main__":
    sys.exit(main())
