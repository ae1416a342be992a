"""A disk cache of decoded face crops and flow images (``uint8`` memmaps), so epochs never recompute flow.

For every record the cache keeps the RGB crop and the flow image at a slightly *larger* field of view than
the network sees: ``crop_square(frame, box, margin * pad, S)`` with ``S = round(size * pad)``, so a pixel of
the cached crop is a pixel of the runtime's ``size x size`` crop. Then

* the centre ``size x size`` window is the runtime's crop (:meth:`FrameCache.centre`), and
* box jitter (the paper's positive balancing) is a random-resized crop inside the padded crop
  (:meth:`FrameCache.jittered`): the face box shifted by up to ``shift`` of its side and scaled by up to
  ``exp(+-scale)``, applied identically to the RGB crop and the flow image (the flow image is resized with
  the crop, so a scale jitter of s also scales the encoded motion by about 1/s; small and harmless).

Flow is computed exactly as the runtime does (:mod:`aunets.core.flow`): the previous frame and the current one,
both cropped with the *current* box, grayscale, the manifest's backend; encoded with ``clip_fraction``
rescaled by ``size / S`` so that the same motion gives the same colour as in the runtime's smaller crop.
With ``pad = 1`` (the validation caches) the centre crop and flow are *exactly* the runtime's; with ``pad > 1``
they match up to resampling and DIS's window effects (comparable to the runtime's own box-to-box noise,
which the box jitter trains for). Records without a box (face-crop datasets) are treated as crops of
side ``margin`` times the face and padded by border replication. Building is resumable (progress is saved every chunk).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from aunets.core.crop import crop_square
from aunets.core.errors import ConfigError
from aunets.core.face import Box
from aunets.core.flow import FlowConfig, encode_flow
from aunets.core.flow_registry import create_flow_backend
from aunets.models.data.sample import FrameRecord, FrameSet

log = logging.getLogger(__name__)
CACHE_VERSION = 2  # 2: intensity, soft targets and source groups in index.npz


@dataclass(frozen=True)
class CacheSpec:
    """Crop geometry and flow of a cache. ``size``: the network's crop side (px); ``margin``: crop side / face
    box side (the runtime's); ``pad``: extra field of view kept for jitter; ``with_flow``: compute flow images."""

    size: int = 112
    margin: float = 1.3
    pad: float = 1.15
    with_flow: bool = True
    flow: FlowConfig = field(default_factory=FlowConfig)

    @property
    def side(self) -> int:
        """Side S of the cached crops in pixels."""
        return round(self.size * self.pad)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _image_reader() -> Any:
    last: dict[str, np.ndarray] = {}

    def read(path: Path) -> np.ndarray:
        key = str(path)
        if key in last:
            return last[key]
        image = cv2.imread(key, cv2.IMREAD_COLOR)
        if image is None:
            raise ConfigError(f"cannot read image {path}; is the dataset complete?")
        if len(last) >= 2:
            last.pop(next(iter(last)))
        last[key] = image
        return image

    return read


def _crop_box(record: FrameRecord, image: np.ndarray, margin: float) -> Box:
    if record.box is not None:
        return record.box
    h, w = image.shape[:2]
    side = min(h, w) / margin
    return ((w - side) / 2.0, (h - side) / 2.0, side, side)


class FrameCache:
    """Read side of a built cache: ``rgb`` and ``flow`` are ``uint8`` (N, S, S, 3) RGB memmaps."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        meta = json.loads((self.directory / "meta.json").read_text(encoding="utf-8"))
        if meta.get("done") != meta.get("count"):
            raise ConfigError(f"cache {self.directory} is incomplete; rebuild it (training does so automatically)")
        self.meta = meta
        s = meta["spec"]
        self.spec = CacheSpec(size=s["size"], margin=s["margin"], pad=s["pad"], with_flow=s["with_flow"],
                              flow=FlowConfig(**s["flow"]))
        self.rgb = np.load(self.directory / "rgb.npy", mmap_mode="r")
        self.flow = np.load(self.directory / "flow.npy", mmap_mode="r") if self.spec.with_flow else None
        index = np.load(self.directory / "index.npz")
        self.labels: np.ndarray = index["labels"]
        self.intensity: np.ndarray = index["intensity"]
        """float32 (N, K) intensity targets in [0, 1], NaN unknown"""
        self.soft: np.ndarray = index["soft"]
        """float32 (N, K) soft presence targets in [0, 1], NaN unknown"""
        self.groups: np.ndarray = index["groups"]
        self.views: np.ndarray = index["views"]
        self.frames: np.ndarray = index["frames"]
        self.sequences: list[str] = list(meta["sequences"])
        self.subjects: list[str] = list(meta["subjects"])
        self.sequence_ids: np.ndarray = index["sequence_ids"]
        self.aus: tuple[int, ...] = tuple(meta["aus"])

    def __len__(self) -> int:
        return len(self.labels)

    def centre(self, i: int) -> tuple[np.ndarray, np.ndarray | None]:
        """The runtime's crop (and flow image) of record ``i``: ``uint8`` (size, size, 3) RGB each."""
        s, size = self.spec.side, self.spec.size
        o = (s - size) // 2
        rgb = np.asarray(self.rgb[i, o : o + size, o : o + size])
        flow = np.asarray(self.flow[i, o : o + size, o : o + size]) if self.flow is not None else None
        return rgb, flow

    def jittered(self, i: int, rng: np.random.Generator, shift: float = 0.05,
                 scale: float = 0.08) -> tuple[np.ndarray, np.ndarray | None]:
        """Record ``i`` with a randomly shifted/scaled face box (see the module docstring)."""
        s, size = self.spec.side, self.spec.size
        side = float(np.clip(size * np.exp(rng.uniform(-scale, scale)), 8.0, s))
        cx = s / 2.0 + rng.uniform(-shift, shift) * size
        cy = s / 2.0 + rng.uniform(-shift, shift) * size
        x0 = round(float(np.clip(cx - side / 2.0, 0, s - side)))
        y0 = round(float(np.clip(cy - side / 2.0, 0, s - side)))
        n = round(side)
        n = min(n, s - max(x0, y0))

        def cut(a: np.ndarray) -> np.ndarray:
            patch = np.asarray(a[i, y0 : y0 + n, x0 : x0 + n])
            if n == size:
                return patch
            return cv2.resize(patch, (size, size), interpolation=cv2.INTER_AREA if n > size else cv2.INTER_LINEAR)

        return cut(self.rgb), (cut(self.flow) if self.flow is not None else None)


def cache_key(frames: FrameSet, spec: CacheSpec) -> str:
    """Stable fingerprint of the records and the spec (the cache's folder name)."""
    h = hashlib.sha256()
    h.update(json.dumps(spec.to_json(), sort_keys=True).encode())
    h.update(f"{CACHE_VERSION}|{frames.kind}|{frames.source}|{frames.aus}|{len(frames)}".encode())
    for r in frames.records:
        h.update(f"{r.image}|{r.box}|{r.prev_image}|{r.flow_image}|{r.labels}|{r.view}|{r.intensities}|{r.soft}|"
                 f"{r.group}\n".encode())
    return h.hexdigest()[:16]


def build_cache(frames: FrameSet, root: Path | str, spec: CacheSpec, progress: bool = True,
                chunk: int = 256, name: str = "") -> FrameCache:
    """Build (or resume building, or reuse) the cache of ``frames`` under ``root/<name>-<key>/``."""
    from tqdm import tqdm

    if not len(frames):
        raise ConfigError(f"no frames to cache from {frames.source}; check the split/fold/view selection")
    directory = Path(root) / f"{name or frames.kind}-{cache_key(frames, spec)}"
    directory.mkdir(parents=True, exist_ok=True)
    meta_path = directory / "meta.json"
    n, s = len(frames), spec.side
    if meta_path.is_file():
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("done") == n:
            return FrameCache(directory)
        rgb = np.load(directory / "rgb.npy", mmap_mode="r+")
        flow = np.load(directory / "flow.npy", mmap_mode="r+") if spec.with_flow else None
    else:
        rgb = np.lib.format.open_memmap(directory / "rgb.npy", mode="w+", dtype=np.uint8, shape=(n, s, s, 3))
        flow = (np.lib.format.open_memmap(directory / "flow.npy", mode="w+", dtype=np.uint8, shape=(n, s, s, 3))
                if spec.with_flow else None)
        seq_names = sorted({r.sequence for r in frames.records})
        seq_index = {q: i for i, q in enumerate(seq_names)}
        np.savez(
            directory / "index.npz",
            labels=frames.labels(),
            intensity=frames.floats("intensities"),
            soft=frames.floats("soft"),
            groups=frames.groups(),
            views=frames.views(),
            frames=np.asarray([r.frame for r in frames.records], dtype=np.int64),
            sequence_ids=np.asarray([seq_index[r.sequence] for r in frames.records], dtype=np.int64),
        )
        meta = {"version": CACHE_VERSION, "count": n, "done": 0, "spec": spec.to_json(), "aus": list(frames.aus),
                "source": frames.source, "kind": frames.kind, "sequences": seq_names,
                "subjects": [r.subject for r in frames.records]}
        meta_path.write_text(json.dumps(meta), encoding="utf-8")
    start = int(meta["done"])
    backend = create_flow_backend(spec.flow.backend) if spec.with_flow else None
    clip = spec.flow.clip_fraction * spec.size / s
    read = _image_reader()
    big_margin = spec.margin * spec.pad
    bar = tqdm(total=n, initial=start, desc=f"caching {frames.kind} crops", unit="frame", disable=not progress)
    for i in range(start, n):
        r = frames.records[i]
        image = read(r.image)
        box = _crop_box(r, image, spec.margin)
        crop = crop_square(image, box, big_margin, s)
        rgb[i] = cv2.cvtColor(crop, cv2.COLOR_BGR2RGB)
        if flow is not None and backend is not None:
            if r.flow_image is not None:
                fimg = read(r.flow_image)
                flow[i] = cv2.cvtColor(crop_square(fimg, _crop_box(r, fimg, spec.margin), big_margin, s),
                                       cv2.COLOR_BGR2RGB)
            else:
                cur = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
                if r.prev_image is not None:
                    prev_img = read(r.prev_image)
                    prev = crop_square(cv2.cvtColor(prev_img, cv2.COLOR_BGR2GRAY), box, big_margin, s)
                else:
                    prev = cur
                flow[i] = encode_flow(backend.compute(prev, cur), spec.flow.encoding, clip)
        bar.update(1)
        if (i + 1) % chunk == 0 or i + 1 == n:
            rgb.flush()
            if flow is not None:
                flow.flush()
            meta["done"] = i + 1
            meta_path.write_text(json.dumps(meta), encoding="utf-8")
    bar.close()
    del rgb, flow
    return FrameCache(directory)
