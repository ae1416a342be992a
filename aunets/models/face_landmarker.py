"""The bundled MediaPipe FaceLandmarker (``aunets/models/assets/mediapipe/face_landmarker.task``, Apache-2.0).

One place that finds the ``.task`` file and opens it, for the blendshape teacher (:mod:`aunets.models.teacher`,
video mode) and the photo fitter (:mod:`aunets.models.synth.landmarks`, image mode).

Needs ``pip install -e '.[teacher]'`` (mediapipe).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, Literal

from aunets.core.errors import ConfigError, MissingExtraError


def default_model_path() -> Path:
    return Path(str(resources.files("aunets.models") / "assets" / "mediapipe" / "face_landmarker.task"))


def open_face_landmarker(
    model_path: Path | str | None, mode: Literal["IMAGE", "VIDEO"], **options: Any
) -> tuple[Any, Any]:
    """``(mediapipe, landmarker)``: the mediapipe module (for ``mp.Image``) and a FaceLandmarker for one face
    (``num_faces=1``) in running mode ``mode``, from ``model_path`` (default: the bundled ``.task``).
    ``options``: further ``FaceLandmarkerOptions`` fields (e.g. ``output_face_blendshapes=True``)."""
    try:
        import mediapipe as mp
        from mediapipe.tasks.python import BaseOptions, vision
    except ImportError as exc:
        raise MissingExtraError("mediapipe", "teacher") from exc
    path = Path(model_path) if model_path else default_model_path()
    if not path.is_file():
        raise ConfigError(f"MediaPipe model {path} is missing; reinstall aunets from a full checkout")
    settings = vision.FaceLandmarkerOptions(
        base_options=BaseOptions(model_asset_path=str(path)), running_mode=getattr(vision.RunningMode, mode),
        num_faces=1, **options,
    )  # fmt: skip
    return mp, vision.FaceLandmarker.create_from_options(settings)
