"""Photo-real AU data set: real people's neutral photos (``../shared/realfaces``, ``train`` people only) made to
show the 12 BP4D AUs at known intensities, alone and in combinations, in dynamic sequences with small head
rotations, background, crop, lighting and camera jitter. Sets: the London and Canada studio portraits and the
inter-faces in-the-wild portraits (their neutral ones: diverse skin, age, beards, glasses); ``flips`` adds each
person's mirror image as a second photo of the same person.

Writes exactly the CG generator's layout (:mod:`aunets.models.synth.dataset`, read by
:func:`aunets.models.data.synthetic.load_synthetic`): ``manifest.json`` (``"generator": "aunets-synth"``,
``"source": "photoreal"``, the config, the photo sets' attribution, splits by person) and ``labels.csv``
(:data:`aunets.models.synth.dataset.LABEL_COLUMNS`; the box is what the runtime face detector, YuNet, finds on the
frame). Subject id = the person (``london_003``). Deterministic for a seed, whatever the number of workers.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from aunets.core.au import BP4D_AUS, au_key
from aunets.core.errors import ConfigError
from aunets.core.view import ViewGrid
from aunets.models.synth.correspondence import load_correspondence
from aunets.models.synth.dataset import GENERATOR, frame_weights, open_sequence, render_jobs
from aunets.models.synth.dynamics import PRESENCE_THRESHOLD, Timeline, build_timeline, parse_script
from aunets.models.synth.episodes import plan_episodes
from aunets.models.synth.facemodel import load_face_model
from aunets.models.synth.landmarks import FACE_OVAL
from aunets.models.synth.photoface import PhotoFace, pose_angles
from aunets.models.synth.renderer import Pose, degrade, make_background

log = logging.getLogger(__name__)

SOURCE = "photoreal"
VERSION = 1
PHOTO_SETS = ("london", "canada", "interfaces")
DEFAULT_SETS = ("london", "canada")


@dataclass(frozen=True)
class PhotoSynthConfig:
    """Everything that determines a photo-real data set (saved in manifest.json).

    ``photos``: the real-face collection root (``../shared/realfaces``); only its ``train`` people of ``sets``
    are used, ``people`` of them (0 = all) in a seeded order. ``sequences`` per person of ``seconds`` at ``fps``.
    ``single_fraction``: share of events with one AU alone (:func:`aunets.models.synth.episodes.plan_episodes`).
    ``max_yaw``/``max_pitch`` (degrees): head-turn range of a sequence (half the sequences stay within a third of
    it). ``frame_size`` (width, height) px; ``size`` px of the face crop. ``flips``: every person also as their
    horizontally mirrored photo (same subject and split, its own ``sequences``).
    """

    photos: str = ""
    sets: tuple[str, ...] = DEFAULT_SETS
    people: int = 0
    sequences: int = 6
    seconds: float = 4.0
    seed: int = 0
    fps: float = 25.0
    size: int = 224
    frame_size: tuple[int, int] = (640, 480)
    crops: bool = True
    full: bool = True
    video: bool = False
    val_fraction: float = 0.15
    single_fraction: float = 0.5
    max_events: int = 2
    script: str = ""
    max_yaw: float = 22.0
    max_pitch: float = 14.0
    flips: bool = False
    jitter: bool = True
    blinks: bool = True
    talking: bool = True
    asymmetry: float = 0.2
    margin: float = 1.3
    view_grid: ViewGrid = field(default_factory=ViewGrid)
    workers: int = 0  # 0 = os.cpu_count(); not part of the result

    def __post_init__(self) -> None:
        if not self.photos:
            raise ConfigError("give --photos DIR (the real-face collection, ../shared/realfaces)")
        unknown = sorted(set(self.sets) - set(PHOTO_SETS))
        if unknown:
            raise ConfigError(f"--sets {unknown} unknown; choose from {list(PHOTO_SETS)}")
        if self.people < 0 or self.sequences < 1 or self.seconds <= 0:
            raise ConfigError("--people must be >= 0, --sequences >= 1 and --seconds > 0")
        if not (self.crops or self.full):
            raise ConfigError("nothing to write: enable --crops and/or --full")
        if self.max_events < 1:
            raise ConfigError("--max-events must be >= 1")
        if not 0 <= self.val_fraction < 1 or not 0 <= self.single_fraction <= 1:
            raise ConfigError("--val-fraction must be in [0, 1) and --single-fraction in [0, 1]")
        if self.script:
            parse_script(self.script)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["view_grid"] = self.view_grid.to_json()
        d["frame_size"] = list(self.frame_size)
        d["sets"] = list(self.sets)
        return d


@dataclass(frozen=True)
class Person:
    """One source person: ``subject`` id (``london_003``), ``split`` (train/val), the neutral photo's path, and
    whether the photo is used mirrored (``flip``)."""

    subject: str
    split: str
    photo: str
    set: str
    flip: bool = False

    @property
    def key(self) -> str:
        """Unique per photo used: the subject, ``_flip`` appended for the mirrored photo."""
        return f"{self.subject}_flip" if self.flip else self.subject

    def read(self) -> np.ndarray:
        """The photo, BGR uint8 (H, W, 3), mirrored when ``flip``."""
        img = cv2.imread(self.photo)
        if img is None:
            raise ConfigError(f"cannot read photo {self.photo}")
        return np.ascontiguousarray(img[:, ::-1]) if self.flip else img


def select_people(config: PhotoSynthConfig) -> list[Person]:
    """The ``train`` people of the collection (never ``test``), ``config.people`` of them in a seeded order, with
    a val split by person (``val_fraction``); inter-faces people only where their photo is neutral. With
    ``config.flips`` each person twice, as photo and mirrored photo."""
    from aunets.models.data.realfaces import load_interfaces, load_realfaces

    items = [it for it in load_realfaces(config.photos) if it.set in config.sets and it.split == "train"]
    if "interfaces" in config.sets:
        items += [it for it in load_interfaces(config.photos) if it.split == "train" and it.expression == "N"]
    if not items:
        raise ConfigError(f"no train people of {list(config.sets)} in {config.photos}")
    order = np.random.default_rng(np.random.SeedSequence([config.seed, 31])).permutation(len(items))
    chosen = [items[i] for i in order[: config.people or len(items)]]
    n_val = min(round(config.val_fraction * len(chosen)), len(chosen) - 1)
    flips = (False, True) if config.flips else (False,)
    return sorted(
        (Person(it.clip_name, "val" if k < n_val else "train", str(it.paths[0]), it.set, f) for k, it in
         enumerate(chosen) for f in flips), key=lambda p: p.key,
    )  # fmt: skip


def fit_people(people: list[Person]) -> dict[str, np.ndarray]:
    """MediaPipe landmarks (478, 3) px of each person's neutral photo (as used: mirrored where ``flip``), by
    :attr:`Person.key` (people without a face are left out)."""
    from aunets.models.synth.landmarks import FaceLandmarkFitter

    out: dict[str, np.ndarray] = {}
    with FaceLandmarkFitter() as fit:
        for p in people:
            lm = fit(cv2.cvtColor(p.read(), cv2.COLOR_BGR2RGB))
            if lm is None:
                log.warning("no face found in %s; left out", p.photo)
                continue
            out[p.key] = lm
    return out


def foreground_mask(photo: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """(H, W) float32 in [0, 1]: 1 on the person, 0 on the plain studio backdrop, feathered by a few px.

    The backdrop is flood-filled from the top and side borders with a small per-step tolerance (so it follows the
    backdrop's smooth light gradient but stops at the hair and skin edges), restricted to pixels whose chroma is
    close to the border's. Below the chin everything within the shoulders' reach is kept (white shirts look like
    the backdrop), and so is the scalp. ``landmarks`` (478, 3) px of the face in ``photo``."""
    h, w = photo.shape[:2]
    lab = cv2.cvtColor(cv2.GaussianBlur(photo, (0, 0), 1.2), cv2.COLOR_RGB2LAB)
    border = np.concatenate([lab[:3].reshape(-1, 3), lab[:, :3].reshape(-1, 3), lab[:, -3:].reshape(-1, 3)])
    ref = np.median(border.astype(np.float32), axis=0)
    chroma = np.sqrt(((lab[..., 1:].astype(np.float32) - ref[1:]) ** 2).sum(-1))
    work = lab.copy()
    work[chroma > 12.0] = 0  # never fill into coloured pixels (skin, lips, clothes)
    mask = np.zeros((h + 2, w + 2), np.uint8)
    flags = 4 | (255 << 8) | cv2.FLOODFILL_MASK_ONLY
    seeds = [(x, 0) for x in range(0, w, max(1, w // 24))]
    seeds += [(0, y) for y in range(0, h, max(1, h // 24))] + [(w - 1, y) for y in range(0, h, max(1, h // 24))]
    for x, y in seeds:
        if mask[y + 1, x + 1] == 0 and chroma[y, x] <= 12.0:
            cv2.floodFill(work, mask, (x, y), (0, 0, 0), (3, 3, 3), (3, 3, 3), flags)
    fg = (mask[1:-1, 1:-1] == 0).astype(np.uint8)
    oval = landmarks[list(FACE_OVAL), :2]
    fw, fh = float(np.ptp(oval[:, 0])), float(np.ptp(oval[:, 1]))
    chin = float(oval[:, 1].max())
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cx = float(oval[:, 0].mean())
    reach = (np.abs(xx - cx) < 0.42 * fw + 2.2 * np.clip(yy - chin - 0.3 * fh, 0, None)) & (yy > chin - 0.1 * fh)
    fg[reach] = 1
    # the head itself is never backdrop (a bald scalp's highlight is as grey as the wall)
    cy = float(oval[:, 1].mean())
    head = ((xx - cx) / (0.5 * fw)) ** 2 + ((yy - (cy - 0.1 * fh)) / (0.74 * fh)) ** 2 < 1.0
    fg[head & (yy < cy - 0.15 * fh)] = 1
    fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    return cv2.GaussianBlur(fg.astype(np.float32), (0, 0), max(1.0, w / 400))


@dataclass(frozen=True)
class _Job:
    config: PhotoSynthConfig
    person: Person
    person_index: int
    index: int
    landmarks: np.ndarray
    out: str


def sequence_id(person: Person, index: int) -> str:
    return f"{person.key}_q{index:02d}"


def make_timeline(config: PhotoSynthConfig, rng: np.random.Generator) -> Timeline:
    if config.script:
        return build_timeline(parse_script(config.script), config.seconds, rng, config.fps, blinks=False,
                              talking=False, jitter=config.jitter)  # fmt: skip
    episodes, _ = plan_episodes(config.seconds, rng, config.single_fraction, config.asymmetry, config.max_events)
    talking = config.talking and rng.uniform() < 0.5
    return build_timeline(episodes, config.seconds, rng, config.fps, config.blinks, talking, config.jitter)


def place_photo(
    photo: np.ndarray, landmarks: np.ndarray, frame_size: tuple[int, int], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The photo scaled and shifted into a frame (face height 25-55 % of the frame, random position), its plain
    backdrop replaced by a random background: frame (H, W, 3) uint8 RGB, landmarks (478, 3) in frame px, and the
    2x3 photo->frame affine."""
    width, height = frame_size
    oval = landmarks[list(FACE_OVAL), :2]
    fx0, fy0 = oval.min(0)
    fx1, fy1 = oval.max(0)
    target = rng.uniform(0.25, 0.55) * height
    sc = target / (fy1 - fy0)
    fw, fh = (fx1 - fx0) * sc, (fy1 - fy0) * sc
    pad = 0.1 * target
    cx = rng.uniform(fw / 2 + pad, max(fw / 2 + pad + 1, width - fw / 2 - pad))
    cy = rng.uniform(fh / 2 + pad, max(fh / 2 + pad + 1, height - fh / 2 - pad))
    ox, oy = cx - sc * (fx0 + fx1) / 2, cy - sc * (fy0 + fy1) / 2
    small = cv2.resize(photo, None, fx=sc, fy=sc, interpolation=cv2.INTER_AREA if sc < 1 else cv2.INTER_LINEAR)
    m = np.array([[1.0, 0.0, ox], [0.0, 1.0, oy]], np.float32)  # continuous coordinates: p' = sc * p + o
    frame = cv2.warpAffine(small, m, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    mask = cv2.warpAffine(foreground_mask(small, landmarks * sc), m, (width, height), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)[..., None]  # fmt: skip
    background = make_background(rng, width, height).astype(np.float32)
    frame = np.clip(frame * mask + background * (1 - mask) + 0.5, 0, 255).astype(np.uint8)
    lm = landmarks.astype(np.float64) * sc
    lm[:, 0] += ox
    lm[:, 1] += oy
    return frame, lm.astype(np.float32), np.array([[sc, 0, ox], [0, sc, oy]], np.float32)


@dataclass(frozen=True)
class Look:
    """Per-sequence photometric jitter: gain, per-channel colour, gamma, a directional light ramp across the face
    (strength, angle rad), camera blur sigma px, sensor noise sigma (0..255), JPEG quality."""

    gain: float
    colour: tuple[float, float, float]
    gamma: float
    ramp: float
    ramp_angle: float
    blur: float
    noise: float
    jpeg: int


def sample_look(rng: np.random.Generator) -> Look:
    temp = rng.uniform(-1.0, 1.0)
    colour = (1.0 + 0.1 * temp + rng.uniform(-0.03, 0.03), 1.0 + rng.uniform(-0.03, 0.03), 1.0 - 0.12 * temp)
    return Look(
        gain=float(rng.uniform(0.7, 1.15)), colour=(float(colour[0]), float(colour[1]), float(colour[2])),
        gamma=float(rng.uniform(0.85, 1.2)), ramp=float(rng.uniform(0.0, 0.4)),
        ramp_angle=float(rng.uniform(0, 2 * np.pi)), blur=float(rng.uniform(0.0, 1.0)) if rng.uniform() < 0.7 else 0.0,
        noise=float(rng.uniform(0.5, 5.0)), jpeg=int(rng.integers(70, 96)),
    )  # fmt: skip


def light_field(look: Look, width: int, height: int, centre: tuple[float, float], radius: float) -> np.ndarray:
    """(H, W, 3) float32 multiplier: a linear ramp of +-``look.ramp`` across ``radius`` px (3 equal channels)."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    d = ((xx - centre[0]) * np.cos(look.ramp_angle) + (yy - centre[1]) * np.sin(look.ramp_angle)) / max(radius, 1.0)
    ramp = 1.0 + look.ramp * np.clip(d, -1.5, 1.5)
    return np.repeat(ramp[..., None], 3, axis=2)


def apply_look(img: np.ndarray, field_: np.ndarray, look: Look) -> np.ndarray:
    """Gamma, gain and colour (a per-channel lookup table), then the light ramp ``field_`` (H, W, 3); uint8 RGB."""
    v = np.arange(256, dtype=np.float64) / 255.0
    lut = np.stack([np.clip(255.0 * look.gain * c * v**look.gamma + 0.5, 0, 255) for c in look.colour], axis=1)
    out = cv2.LUT(img, lut.astype(np.uint8).reshape(1, 256, 3))
    return cv2.multiply(out, field_, dtype=cv2.CV_8U)


def sequence_rotation(config: PhotoSynthConfig, rng: np.random.Generator) -> tuple[float, float]:
    """(yaw, pitch) degrees of a sequence's head turn: near-frontal half of the time, else anywhere in range."""
    k = 1.0 / 3.0 if rng.uniform() < 0.5 else 1.0
    return float(rng.uniform(-1, 1) * config.max_yaw * k), float(rng.uniform(-1, 1) * config.max_pitch * k)


def render_sequence(job: _Job) -> list[dict[str, Any]]:
    """Render and write one sequence; returns its label rows (frames before the first detected face are left out;
    a frame where the tracker reports no face keeps the previous box). Boxes come from the runtime face tracker
    (:class:`aunets.stream.tracking.FaceTracker` on YuNet, default settings), so training crops match run time."""
    from aunets.core.crop import crop_square
    from aunets.stream.tracking import FaceTracker, YuNetDetector

    cfg = job.config
    model = load_face_model()
    corr = load_correspondence()
    rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, job.person_index, job.index, 11]))
    photo = cv2.cvtColor(job.person.read(), cv2.COLOR_BGR2RGB)
    frame0, lm, _ = place_photo(photo, job.landmarks, cfg.frame_size, rng)
    face = PhotoFace.fit(frame0, lm, model, corr)
    tl = make_timeline(cfg, rng)
    yaw0, pitch0 = sequence_rotation(cfg, rng)
    look = sample_look(rng)
    crease = float(rng.uniform(0.6, 1.3))  # how deeply this sequence's skin folds (age, skin, light)
    width, height = cfg.frame_size
    oval = lm[list(FACE_OVAL), :2]
    field_ = light_field(look, width, height, (float(oval[:, 0].mean()), float(oval[:, 1].mean())),
                         float(oval[:, 1].max() - oval[:, 1].min()) / 2)  # fmt: skip
    px_per_cm = face.scale
    photo_r = face.photo_rotation
    seq = sequence_id(job.person, job.index)
    root = Path(job.out)
    writers = open_sequence(root / "sequences" / seq, cfg.crops, cfg.full, cfg.video, cfg.fps, cfg.size,
                            (width, height))
    rows: list[dict[str, Any]] = []
    box: tuple[float, float, float, float] | None = None
    tracker = FaceTracker(YuNetDetector())
    try:
        for i in range(tl.intensity.shape[0]):
            p = tl.pose[i]
            turn = (yaw0 + float(p[0]), pitch0 + float(p[1]), float(p[2]))
            img, _ = face.render(frame_weights(model, tl, i), turn, tl.intensity[i], tl.side[i], crease)
            sx, sy = float(p[3]) * px_per_cm * 0.5, -float(p[4]) * px_per_cm * 0.5  # camera shake
            shift = np.array([[1, 0, sx], [0, 1, sy]], np.float32)
            img = cv2.warpAffine(img, shift, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
            img = degrade(apply_look(img, field_, look), rng, look.noise, look.blur)
            bgr = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
            tracks = tracker.update(bgr)
            box = tracks[0].box if tracks else box
            if box is None:
                continue
            images = {"full": bgr} if cfg.full else {}
            if cfg.crops:
                images["crop"] = crop_square(bgr, box, cfg.margin, cfg.size)
            paths = {"crop": "", "full": ""}
            for k, im in images.items():
                rel = f"sequences/{seq}/{k}/{i:06d}.jpg"
                cv2.imwrite(str(root / rel), im, [cv2.IMWRITE_JPEG_QUALITY, look.jpeg])
                paths[k] = rel
                if k in writers:
                    writers[k].write(im)
            yaw, pitch, roll = pose_angles(Pose(*turn).rotation().astype(np.float64) @ photo_r)
            row: dict[str, Any] = {
                "sequence": seq, "subject": job.person.subject, "split": job.person.split,
                "view": cfg.view_grid.view_of(yaw, pitch), "frame": i, "yaw": round(yaw, 3), "pitch": round(pitch, 3),
                "roll": round(roll, 3), "box_x": round(box[0], 2), "box_y": round(box[1], 2),
                "box_w": round(box[2], 2), "box_h": round(box[3], 2), "crop": paths["crop"], "full": paths["full"],
            }  # fmt: skip
            for a, au in enumerate(BP4D_AUS):
                row[au_key(au)] = int(tl.intensity[i, a] >= PRESENCE_THRESHOLD)
            for a, au in enumerate(BP4D_AUS):
                row[f"{au_key(au)}_i"] = f"{tl.intensity[i, a]:.3f}"
            rows.append(row)
    finally:
        for w in writers.values():
            w.release()
    if not rows:
        log.warning("sequence %s: the face detector found no face; left out", seq)
    return rows


def cooccurrence(rows: list[dict[str, Any]]) -> dict[str, float]:
    """P(AUx | AU12) for x in 6, 10, 14, 17 over present frames (NaN-free: 0 when AU12 never occurs), plus the
    share of AU-present frames with exactly one AU present."""
    if not rows:
        return {}
    pres = np.array([[int(r[au_key(a)]) for a in BP4D_AUS] for r in rows], np.int32)
    i12 = BP4D_AUS.index(12)
    on12 = pres[:, i12] == 1
    out = {f"P(AU{x}|AU12)": float(pres[on12, BP4D_AUS.index(x)].mean()) if on12.any() else 0.0
           for x in (6, 10, 14, 17)}  # fmt: skip
    n_on = pres.sum(1)
    out["single_au_share_of_au_frames"] = float((n_on == 1).sum() / max(1, (n_on >= 1).sum()))
    return out


def manifest(config: PhotoSynthConfig, people: list[Person]) -> dict[str, Any]:
    from aunets.models.data.realfaces import ATTRIBUTION, LICENCE

    return {
        "generator": GENERATOR,
        "source": SOURCE,
        "version": VERSION,
        "config": config.to_json(),
        "aus": list(BP4D_AUS),
        "presence_threshold": PRESENCE_THRESHOLD,
        "view_grid": config.view_grid.to_json(),
        "fps": config.fps,
        "splits": {
            "train": [p.subject for p in people if p.split == "train"],
            "val": [p.subject for p in people if p.split == "val"],
            "test": [],
        },
        "photo_sets": {s: {"licence": LICENCE[s], "attribution": ATTRIBUTION[s]} for s in config.sets},
        "note": "people of the real-face collection's test split are never used",
    }


def generate(config: PhotoSynthConfig, out: Path, progress: bool = True) -> Path:
    """Write the data set described by ``config`` into ``out``; returns ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    people = select_people(config)
    fits = fit_people(people)
    people = [p for p in people if p.key in fits]
    info = manifest(config, people)
    (out / "manifest.json").write_text(json.dumps(info, indent=2))
    jobs = [
        _Job(config, p, k, q, fits[p.key], str(out)) for k, p in enumerate(people) for q in range(config.sequences)
    ]
    n_frames = len(jobs) * max(1, round(config.seconds * config.fps))
    rows_all = render_jobs(render_sequence, jobs, config.workers, n_frames, out, "synth-photo", progress)
    pres = np.array([[int(r[au_key(a)]) for a in BP4D_AUS] for r in rows_all], np.float64).reshape(-1, len(BP4D_AUS))
    info["base_rates"] = {au_key(a): round(float(pres[:, i].mean()), 4) if len(pres) else 0.0
                          for i, a in enumerate(BP4D_AUS)}  # fmt: skip
    info["cooccurrence"] = {k: round(v, 4) for k, v in cooccurrence(rows_all).items()}
    (out / "manifest.json").write_text(json.dumps(info, indent=2))
    log.info("wrote %d frames of %d sequences (%d people) to %s", len(rows_all), len(jobs), len(people), out)
    return out
