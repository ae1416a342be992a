"""A synthetic subject: identity shape weights plus appearance, drawn deterministically from a seed."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from aunets.models.synth.appearance import Appearance, landmark_uv, make_texture, sample_appearance, vertex_albedo
from aunets.models.synth.facemodel import FaceModel
from aunets.models.synth.vertices import vertex_area

IDENTITY_SCALE = 0.9  # sigma of the identity weights (ICT samples N(0, 1); 0.9 avoids rare caricatures)


@dataclass(frozen=True)
class Subject:
    """One synthetic person. ``id_weights`` (I,) are ICT identity weights ~ N(0, IDENTITY_SCALE^2)."""

    subject_id: int
    seed: int
    id_weights: np.ndarray = field(repr=False, compare=False)
    appearance: Appearance


def subject_seed(dataset_seed: int, subject_id: int) -> int:
    """Seed of subject ``subject_id`` in a data set generated with ``dataset_seed``."""
    return int(np.random.SeedSequence([dataset_seed, subject_id, 7]).generate_state(1)[0])


def sample_subject(seed: int, subject_id: int = 0, n_identity: int = 40) -> Subject:
    """The subject drawn from ``seed`` (same seed -> same subject)."""
    rng = np.random.default_rng(seed)
    id_w = (rng.standard_normal(n_identity) * IDENTITY_SCALE).astype(np.float32)
    return Subject(subject_id=subject_id, seed=seed, id_weights=id_w, appearance=sample_appearance(rng))


@dataclass
class PreparedSubject:
    """Per-subject arrays the renderer needs, computed once: neutral mesh (V, 3) cm, albedo (V, 3),
    specular (V,), rest vertex areas (V,) cm^2, UV detail texture (S, S, 3)."""

    subject: Subject
    base: np.ndarray
    albedo: np.ndarray
    specular: np.ndarray
    rest_area: np.ndarray
    texture: np.ndarray


def prepare_subject(model: FaceModel, subject: Subject) -> PreparedSubject:
    base = model.identity_shape(subject.id_weights)
    albedo, spec = vertex_albedo(model, subject.appearance, base)
    texture = make_texture(subject.appearance, landmark_uv(model))
    return PreparedSubject(
        subject=subject,
        base=base.astype(np.float32),
        albedo=albedo,
        specular=spec,
        rest_area=vertex_area(base.astype(np.float32), model.faces),
        texture=texture,
    )
