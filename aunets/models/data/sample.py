"""The unit every dataset layout is read into: one labelled video frame (:class:`FrameRecord`).

A :class:`FrameSet` is an ordered list of records plus the AUs its label vectors refer to. Labels are
``int8`` per AU: 1 present, 0 absent, -1 unknown (not annotated; ignored by losses and metrics). Optional
per-AU floats beside them (NaN where unknown): ``intensities`` in [0, 1] (FACS A..E; an engine's intensity output
is trained on them) and ``soft`` presence targets in [0, 1] (pseudo-labels from another detector: used by the loss
in place of an unknown label, never by metrics).

How a record becomes network input (see :mod:`aunets.models.data.cache`):

* ``box`` given: ``image`` is a full frame; the face crop is ``crop_square(image, box, margin, size)`` and
  the flow is computed between the *previous* frame (``prev_image``) and this one, both cropped with this
  frame's box -- exactly what the runtime pipeline does.
* ``box`` is None: ``image`` is already a face crop; flow is computed between ``prev_image`` (the previous
  crop) and it, or read from ``flow_image`` when the dataset ships flow images (BP4D ``Faces_Flow``).
* no ``prev_image`` and no ``flow_image``: the first frame of a sequence; its flow is zero (the runtime's
  first frame likewise uses the current frame as the previous one).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from aunets.core.errors import ConfigError
from aunets.core.face import Box


@dataclass(frozen=True)
class FrameRecord:
    """One labelled frame.

    ``sequence``: id of the video it belongs to (its frames are consecutive in ``frame``); ``subject``: person
    id (folds and splits are by subject); ``view``: camera view id (see :mod:`aunets.core.view`), ``None`` when
    unknown; ``box``: face box (x, y, w, h) in ``image`` pixels, or None when ``image`` is a face crop;
    ``labels``: ``int8`` per AU of the owning :class:`FrameSet` (1/0/-1); ``intensities`` and ``soft``: floats
    per AU (NaN unknown; see the module docstring), None when the dataset has none; ``group``: which source of a
    multi-source set (:func:`concat_sets`) the record came from.
    """

    sequence: str
    subject: str
    frame: int
    image: Path
    labels: tuple[int, ...]
    view: int | None = None
    box: Box | None = None
    prev_image: Path | None = None
    flow_image: Path | None = None
    split: str = ""
    intensities: tuple[float, ...] | None = None
    soft: tuple[float, ...] | None = None
    group: int = 0

    @property
    def key(self) -> str:
        return f"{self.sequence}#{self.frame}"


@dataclass(frozen=True)
class FrameSet:
    """An ordered collection of :class:`FrameRecord` with the AU order of their label vectors.

    ``source``: where it was read from (a directory), ``kind``: its layout (``synthetic``, ``bp4d``, ``fera``,
    ``csv``); ``info``: layout-specific metadata (e.g. the synthetic generator's manifest).
    """

    aus: tuple[int, ...]
    records: tuple[FrameRecord, ...]
    kind: str = ""
    source: str = ""
    n_views: int = 9
    info: dict[str, object] = field(default_factory=dict, compare=False)

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[FrameRecord]:
        return iter(self.records)

    def labels(self) -> np.ndarray:
        """``int8`` (N, n_aus) label matrix (1, 0, -1 = unknown)."""
        if not self.records:
            return np.zeros((0, len(self.aus)), dtype=np.int8)
        return np.asarray([r.labels for r in self.records], dtype=np.int8)

    def floats(self, name: str) -> np.ndarray:
        """``float32`` (N, n_aus) of the records' ``intensities`` or ``soft`` values, NaN where unknown."""
        out = np.full((len(self.records), len(self.aus)), np.nan, dtype=np.float32)
        for i, r in enumerate(self.records):
            values = getattr(r, name)
            if values is not None:
                out[i] = values
        return out

    def groups(self) -> np.ndarray:
        """``int64`` (N,) source index of every record (0 for a single-source set)."""
        return np.asarray([r.group for r in self.records], dtype=np.int64)

    def views(self) -> np.ndarray:
        """``int64`` (N,) view ids, -1 where unknown."""
        return np.asarray([-1 if r.view is None else r.view for r in self.records], dtype=np.int64)

    def subjects(self) -> list[str]:
        return sorted({r.subject for r in self.records})

    def sequences(self) -> dict[str, list[int]]:
        """Sequence id -> record indices in frame order."""
        out: dict[str, list[int]] = {}
        for i, r in enumerate(self.records):
            out.setdefault(r.sequence, []).append(i)
        for idx in out.values():
            idx.sort(key=lambda i: self.records[i].frame)
        return out

    def filter(
        self,
        *,
        split: str | None = None,
        subjects: Sequence[str] | None = None,
        views: Sequence[int] | None = None,
    ) -> FrameSet:
        """Records of one split / of some subjects / of some views (None: no constraint)."""
        keep_subjects = set(subjects) if subjects is not None else None
        keep_views = set(views) if views is not None else None
        recs = tuple(
            r
            for r in self.records
            if (split is None or r.split == split)
            and (keep_subjects is None or r.subject in keep_subjects)
            and (keep_views is None or r.view in keep_views)
        )
        return replace(self, records=recs)

    def select_aus(self, aus: Sequence[int]) -> FrameSet:
        """Keep (and reorder) the label columns of ``aus``; an AU the set lacks is an error."""
        missing = [a for a in aus if a not in self.aus]
        if missing:
            raise ConfigError(
                f"the dataset {self.source} has no labels for AU(s) {missing}; it labels {list(self.aus)}: "
                f"remove them from the config's `aus`"
            )
        cols = [self.aus.index(a) for a in aus]

        def pick(values: tuple[float, ...] | None) -> tuple[float, ...] | None:
            return None if values is None else tuple(values[c] for c in cols)

        recs = tuple(replace(r, labels=tuple(r.labels[c] for c in cols), intensities=pick(r.intensities),
                             soft=pick(r.soft)) for r in self.records)
        return replace(self, aus=tuple(aus), records=recs)

    def subsample_sequences(self, max_frames: int, seed: int = 0) -> FrameSet:
        """Whole sequences, drawn at random, until about ``max_frames`` frames (keeps temporal context)."""
        if max_frames <= 0 or len(self.records) <= max_frames:
            return self
        seqs = self.sequences()
        names = sorted(seqs)
        rng = np.random.default_rng(seed)
        rng.shuffle(names)
        keep: set[str] = set()
        total = 0
        for name in names:
            if total >= max_frames:
                break
            keep.add(name)
            total += len(seqs[name])
        recs = tuple(r for r in self.records if r.sequence in keep)
        return replace(self, records=recs)


def concat_sets(sets: Sequence[FrameSet]) -> FrameSet:
    """One set of several sources with the same AUs: records keep their order, ``group`` is the source's index,
    and sequence and subject ids are prefixed with it where there is more than one source (so two sources'
    ``s000`` stay two people)."""
    if not sets:
        raise ConfigError("no datasets to join")
    aus = sets[0].aus
    for s in sets[1:]:
        if s.aus != aus:
            raise ConfigError(f"datasets {sets[0].source} and {s.source} label different AUs ({list(aus)} vs "
                              f"{list(s.aus)}); select the same AUs in both")
    if len(sets) == 1:
        return sets[0]
    records = tuple(
        replace(r, group=g, sequence=f"{g}:{r.sequence}", subject=f"{g}:{r.subject}") for g, s in enumerate(sets)
        for r in s.records
    )
    return FrameSet(aus=aus, records=records, kind="+".join(s.kind for s in sets),
                    source="+".join(s.source for s in sets), n_views=max(s.n_views for s in sets),
                    info={"sources": [s.source for s in sets]})
