"""Write a synthetic data set: per-sequence JPEG frames (crop and/or full frame), mp4 videos, labels.csv and
manifest.json (layout in aunets/models/synth/README.md). Deterministic for a seed, whatever the number of workers."""

from __future__ import annotations

import csv
import json
import logging
import multiprocessing as mp
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from aunets.core.au import BP4D_AUS, au_key
from aunets.core.errors import ConfigError
from aunets.core.view import ViewGrid
from aunets.models.synth.dynamics import (
    BASE_RATES,
    PRESENCE_THRESHOLD,
    Timeline,
    build_timeline,
    parse_script,
    sample_episodes,
    sample_isolated_episodes,
)
from aunets.models.synth.facemodel import FaceModel, load_face_model
from aunets.models.synth.renderer import (
    Placement,
    Pose,
    composite_full,
    degrade,
    face_box,
    make_background,
    pose_vertices,
    project,
    render_face,
    sample_lighting,
)
from aunets.models.synth.subject import PreparedSubject, prepare_subject, sample_subject, subject_seed

log = logging.getLogger(__name__)

GENERATOR = "aunets-synth"
VERSION = 2  # 2: stronger AU1/4/15/23/24 shapes (facemodel.AU_BLENDSHAPES)
LABEL_COLUMNS: list[str] = (
    ["sequence", "subject", "split", "view", "frame", "yaw", "pitch", "roll", "box_x", "box_y", "box_w", "box_h",
     "crop", "full"]
    + [au_key(a) for a in BP4D_AUS]
    + [f"{au_key(a)}_i" for a in BP4D_AUS]
)  # fmt: skip


@dataclass(frozen=True)
class SynthConfig:
    """Everything that determines a generated data set (saved in manifest.json).

    ``views``: how many views per subject (the frontal view first, then the others in id order; 9 = all of
    ``view_grid``). ``seconds`` per sequence at ``fps``. ``script``: fixed AU episodes (see
    :func:`aunets.models.synth.dynamics.parse_script`); when set, no random AUs, blinks or talking. ``frame_size`` is
    (width, height) px of the full frame. ``supersample``: render the crop at this factor and downsample.
    ``isolated_fraction``: share of sequences whose AUs come one at a time (no co-occurrence, see
    :func:`aunets.models.synth.dynamics.sample_isolated_episodes`); the others follow BP4D's co-occurrence.
    """

    subjects: int = 10
    views: int = 9
    seconds: float = 10.0
    seed: int = 0
    sequences_per_view: int = 1
    fps: float = 25.0
    size: int = 224
    frame_size: tuple[int, int] = (640, 480)
    crops: bool = True
    full: bool = True
    video: bool = True
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    script: str = ""
    jitter: bool = True
    isolated_fraction: float = 0.0
    blinks: bool = True
    talking: bool = True
    asymmetry: float = 0.2
    supersample: int = 1
    margin: float = 1.3
    camera_distance_cm: float = 70.0
    view_grid: ViewGrid = field(default_factory=ViewGrid)
    workers: int = 0  # 0 = os.cpu_count(); not part of the result

    def __post_init__(self) -> None:
        if self.subjects < 1:
            raise ConfigError("--subjects must be >= 1")
        if not 1 <= self.views <= self.view_grid.n_views:
            raise ConfigError(f"--views must be in 1..{self.view_grid.n_views}")
        if self.seconds <= 0 or self.sequences_per_view < 1:
            raise ConfigError("--seconds must be > 0 and --sequences-per-view >= 1")
        if not (self.crops or self.full):
            raise ConfigError("nothing to write: enable --crops and/or --full")
        if self.val_fraction < 0 or self.test_fraction < 0 or self.val_fraction + self.test_fraction >= 1:
            raise ConfigError("--val-fraction and --test-fraction must be >= 0 and sum to < 1")
        if self.script:
            parse_script(self.script)
        if not 0.0 <= self.isolated_fraction <= 1.0:
            raise ConfigError("--isolated-fraction must be in [0, 1]")

    def view_ids(self) -> list[int]:
        frontal = self.view_grid.frontal
        order = [frontal] + [v for v in range(self.view_grid.n_views) if v != frontal]
        return order[: self.views]

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["view_grid"] = self.view_grid.to_json()
        d["frame_size"] = list(self.frame_size)
        return d

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SynthConfig:
        d = dict(data)
        d["view_grid"] = ViewGrid.from_json(d["view_grid"])
        d["frame_size"] = tuple(d["frame_size"])
        return cls(**d)


def splits(config: SynthConfig) -> dict[str, list[int]]:
    """Subject ids per split (by subject, deterministic for the seed)."""
    ids = np.random.default_rng(np.random.SeedSequence([config.seed, 99])).permutation(config.subjects).tolist()
    n_test = round(config.test_fraction * config.subjects)
    n_val = round(config.val_fraction * config.subjects)
    n_test = min(n_test, config.subjects - 1)
    n_val = min(n_val, config.subjects - 1 - n_test)
    test, val, train = ids[:n_test], ids[n_test : n_test + n_val], ids[n_test + n_val :]
    return {"train": sorted(train), "val": sorted(val), "test": sorted(test)}


def sequence_id(subject: int, view: int, index: int) -> str:
    return f"s{subject:03d}_v{view}_q{index:02d}"


@dataclass(frozen=True)
class _Job:
    config: SynthConfig
    subject: int
    split: str
    view: int
    index: int
    out: str


def make_timeline(config: SynthConfig, rng: np.random.Generator, isolated: bool = False) -> Timeline:
    if config.script:
        episodes = parse_script(config.script)
        return build_timeline(episodes, config.seconds, rng, config.fps, blinks=False, talking=False,
                              jitter=config.jitter)  # fmt: skip
    sample = sample_isolated_episodes if isolated else sample_episodes
    episodes = sample(config.seconds, rng, config.fps, config.asymmetry)
    return build_timeline(episodes, config.seconds, rng, config.fps, config.blinks, config.talking, config.jitter)


def frame_weights(model: FaceModel, tl: Timeline, i: int) -> np.ndarray:
    """Blendshape weights (K,) of frame ``i``: AUs plus blink and talking."""
    w = model.expression_weights(tl.intensity[i], tl.side[i])
    for name, value in (("eyeBlink_L", tl.blink[i]), ("eyeBlink_R", tl.blink[i]), ("jawOpen", tl.jaw[i]),
                        ("mouthLowerDown_L", tl.lip[i]), ("mouthLowerDown_R", tl.lip[i])):  # fmt: skip
        k = model.expr_index[name]
        w[k] = min(1.0, w[k] + float(value))
    return w


def sequence_placement(
    config: SynthConfig, prepared: PreparedSubject, model: FaceModel, pose: Pose, rng: np.random.Generator
) -> Placement:
    """Random face size and position in the full frame for a sequence (the face box stays inside the frame)."""
    width, height = config.frame_size
    lm = pose_vertices(prepared.base[model.landmarks68], pose)
    xy, _ = project(lm, config.camera_distance_cm)
    bx, by, bw, bh = face_box(xy)
    target = rng.uniform(0.25, 0.55) * height
    scale = target / max(bw, bh)
    w_px, h_px = bw * scale, bh * scale
    pad = 0.08 * target
    cx = rng.uniform(w_px / 2 + pad, max(w_px / 2 + pad + 1, width - w_px / 2 - pad))
    cy = rng.uniform(h_px / 2 + pad, max(h_px / 2 + pad + 1, height - h_px / 2 - pad))
    return Placement(scale=float(scale), ox=float(cx - scale * (bx + bw / 2)), oy=float(cy - scale * (by + bh / 2)))


def render_sequence(job: _Job) -> list[dict[str, Any]]:
    """Render and write one sequence; returns its label rows."""
    cfg = job.config
    model = load_face_model()
    prepared = _prepared(model, cfg.seed, job.subject)
    rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, job.subject, job.view, job.index, 1]))
    # a draw of its own, so that isolated_fraction = 0 leaves every other draw (and older data sets) unchanged
    isolated = bool(np.random.default_rng(np.random.SeedSequence([cfg.seed, job.subject, job.view, job.index, 2]))
                    .uniform() < cfg.isolated_fraction)
    tl = make_timeline(cfg, rng, isolated)
    yaw0, pitch0 = cfg.view_grid.angles(job.view)
    lighting = sample_lighting(rng)
    width, height = cfg.frame_size
    background = make_background(rng, width, height)
    placement = sequence_placement(cfg, prepared, model, Pose(yaw0, pitch0), rng)
    noise_sigma = float(rng.uniform(0.5, 5.0))
    blur_sigma = float(rng.uniform(0.0, 0.9)) if rng.uniform() < 0.7 else 0.0
    jpeg_q = int(rng.integers(70, 96))
    seq = sequence_id(job.subject, job.view, job.index)
    root = Path(job.out)
    writers = open_sequence(root / "sequences" / seq, cfg.crops, cfg.full, cfg.video, cfg.fps, cfg.size,
                            (width, height))
    rows = []
    n = tl.intensity.shape[0]
    try:
        for i in range(n):
            p = tl.pose[i]
            pose = Pose(yaw0 + float(p[0]), pitch0 + float(p[1]), float(p[2]), float(p[3]), float(p[4]), float(p[5]))
            r = render_face(
                model, prepared, frame_weights(model, tl, i), pose, lighting, placement, background,
                size=cfg.size, supersample=cfg.supersample, camera_distance_cm=cfg.camera_distance_cm,
                margin=cfg.margin, eye_rotation=(float(tl.gaze[i, 0]), float(tl.gaze[i, 1])),
                context=2.0 if cfg.full else 1.0,
            )  # fmt: skip
            images: dict[str, np.ndarray] = {}
            if cfg.crops:
                images["crop"] = degrade(r.crop, rng, noise_sigma, blur_sigma)
            if cfg.full:
                images["full"] = degrade(composite_full(background, r), rng, noise_sigma, blur_sigma * 0.7)
            paths = {"crop": "", "full": ""}
            for k, img in images.items():
                bgr = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
                rel = f"sequences/{seq}/{k}/{i:06d}.jpg"
                cv2.imwrite(str(root / rel), bgr, [cv2.IMWRITE_JPEG_QUALITY, jpeg_q])
                paths[k] = rel
                if k in writers:
                    writers[k].write(bgr)
            row: dict[str, Any] = {
                "sequence": seq, "subject": job.subject, "split": job.split, "view": job.view, "frame": i,
                "yaw": round(pose.yaw, 3), "pitch": round(pose.pitch, 3), "roll": round(pose.roll, 3),
                "box_x": round(r.box[0], 2), "box_y": round(r.box[1], 2), "box_w": round(r.box[2], 2),
                "box_h": round(r.box[3], 2), "crop": paths["crop"], "full": paths["full"],
            }  # fmt: skip
            for a, au in enumerate(BP4D_AUS):
                row[au_key(au)] = int(tl.intensity[i, a] >= PRESENCE_THRESHOLD)
            for a, au in enumerate(BP4D_AUS):
                row[f"{au_key(au)}_i"] = f"{tl.intensity[i, a]:.3f}"
            rows.append(row)
    finally:
        for w in writers.values():
            w.release()
    return rows


_PREPARED: dict[tuple[int, int], PreparedSubject] = {}


def _prepared(model: FaceModel, seed: int, subject: int) -> PreparedSubject:
    key = (seed, subject)
    if key not in _PREPARED:
        _PREPARED.clear()
        _PREPARED[key] = prepare_subject(model, sample_subject(subject_seed(seed, subject), subject))
    return _PREPARED[key]


def manifest(config: SynthConfig) -> dict[str, Any]:
    return {
        "generator": GENERATOR,
        "version": VERSION,
        "config": config.to_json(),
        "aus": list(BP4D_AUS),
        "presence_threshold": PRESENCE_THRESHOLD,
        "base_rates": {au_key(a): BASE_RATES[a] for a in BP4D_AUS},
        "view_grid": config.view_grid.to_json(),
        "fps": config.fps,
        "splits": splits(config),
    }


def generate(config: SynthConfig, out: Path, progress: bool = True) -> Path:
    """Render the data set described by ``config`` into ``out``; returns ``out``. Uses ``config.workers``
    processes (0 = all CPUs). Output is identical for any number of workers."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    split_of = {s: name for name, ids in splits(config).items() for s in ids}
    jobs = [
        _Job(config, s, split_of[s], v, q, str(out))
        for s in range(config.subjects)
        for v in config.view_ids()
        for q in range(config.sequences_per_view)
    ]
    n_frames = len(jobs) * max(1, round(config.seconds * config.fps))
    (out / "manifest.json").write_text(json.dumps(manifest(config), indent=2))
    rows_all = render_jobs(render_sequence, jobs, config.workers, n_frames, out, "synth", progress)
    log.info("wrote %d frames of %d sequences to %s", len(rows_all), len(jobs), out)
    return out


def open_sequence(seq_dir: Path, crops: bool, full: bool, video: bool, fps: float, size: int,
                  frame_size: tuple[int, int]) -> dict[str, cv2.VideoWriter]:
    """Make ``seq_dir/crop`` and/or ``seq_dir/full`` for a sequence's JPEGs and, with ``video``, open its mp4v
    writers (``crop.mp4`` size x size px, ``full.mp4`` frame_size = (width, height) px); returns them by kind."""
    for kind, on in (("crop", crops), ("full", full)):
        if on:
            (seq_dir / kind).mkdir(parents=True, exist_ok=True)
    writers: dict[str, cv2.VideoWriter] = {}
    if video:
        fourcc = cv2.VideoWriter.fourcc(*"mp4v")
        if crops:
            writers["crop"] = cv2.VideoWriter(str(seq_dir / "crop.mp4"), fourcc, fps, (size, size))
        if full:
            writers["full"] = cv2.VideoWriter(str(seq_dir / "full.mp4"), fourcc, fps, frame_size)
    return writers


def render_jobs(render: Callable[[Any], list[dict[str, Any]]], jobs: Sequence[Any], workers: int, n_frames: int,
                out: Path, desc: str, progress: bool) -> list[dict[str, Any]]:
    """Render every sequence job with ``render`` in ``workers`` processes (0 = all CPUs), with a progress bar of
    ``n_frames`` frames, and write the label rows of all of them, sorted by (sequence, frame), to
    ``out/labels.csv`` (:data:`LABEL_COLUMNS`). Returns the rows. The result does not depend on ``workers``."""
    from tqdm import tqdm

    workers = max(1, min(workers or os.cpu_count() or 1, len(jobs)))
    results: list[list[dict[str, Any]]] = []
    with tqdm(total=n_frames, unit="frame", desc=desc, disable=not progress) as bar:
        if workers == 1:
            for job in jobs:
                results.append(render(job))
                bar.update(len(results[-1]))
        else:
            ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
            with ctx.Pool(workers) as pool:
                for rows in pool.imap_unordered(render, jobs):
                    results.append(rows)
                    bar.update(len(rows))
    rows_all = sorted((r for rows in results for r in rows), key=lambda r: (r["sequence"], r["frame"]))
    with open(out / "labels.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=LABEL_COLUMNS)
        writer.writeheader()
        writer.writerows(rows_all)
    return rows_all


def with_workers(config: SynthConfig, workers: int) -> SynthConfig:
    return replace(config, workers=workers)
