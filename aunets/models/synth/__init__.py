"""Synthetic multi-view dynamic face generator with exact AU, view and pose labels (ICT-FaceKit head model).

Public API::

    from aunets.models.synth import SynthConfig, generate, make_preview
    generate(SynthConfig(subjects=4, views=9, seconds=4, seed=0), Path("data/synth"))
"""

from __future__ import annotations

from aunets.models.synth.dataset import LABEL_COLUMNS, SynthConfig, generate, render_sequence, splits
from aunets.models.synth.dynamics import BASE_RATES, PRESENCE_THRESHOLD, Timeline, build_timeline, parse_script
from aunets.models.synth.facemodel import AU_BLENDSHAPES, FaceModel, load_face_model
from aunets.models.synth.preview import make_preview, render_apex_grid
from aunets.models.synth.renderer import (
    FaceRender,
    Lighting,
    Placement,
    Pose,
    composite_full,
    face_box,
    make_background,
    project,
    render_face,
)
from aunets.models.synth.subject import PreparedSubject, Subject, prepare_subject, sample_subject, subject_seed

__all__ = [
    "AU_BLENDSHAPES",
    "BASE_RATES",
    "LABEL_COLUMNS",
    "PRESENCE_THRESHOLD",
    "FaceModel",
    "FaceRender",
    "Lighting",
    "Placement",
    "Pose",
    "PreparedSubject",
    "Subject",
    "SynthConfig",
    "Timeline",
    "build_timeline",
    "composite_full",
    "face_box",
    "generate",
    "load_face_model",
    "make_background",
    "make_preview",
    "parse_script",
    "prepare_subject",
    "project",
    "render_apex_grid",
    "render_face",
    "render_sequence",
    "sample_subject",
    "splits",
    "subject_seed",
]
