"""ONNX export of registry models, checked against torch with ONNX Runtime.

The exported graph takes ``input`` float32 ``(N, C, H, W)`` with a dynamic batch ``N`` and returns ``logits``
``(N, K)``, as engine bundles expect (:mod:`aunets.engines.manifest`).
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np

from aunets.core.errors import EngineError, MissingExtraError

log = logging.getLogger(__name__)

INPUT_NAME = "input"
OUTPUT_NAME = "logits"
#: maximum allowed ``max|onnx - torch| / max(1, max|torch|)``
RELATIVE_TOLERANCE = 1e-3


def ort_session(path: Path, threads: int = 1) -> object:
    """A CPU ONNX Runtime session with ``threads`` intra-op threads and no spinning."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def export_onnx(model: object, path: Path, input_shape: tuple[int, int, int], *, opset: int = 17) -> Path:
    """Export ``model`` (a ``torch.nn.Module``) for inputs ``(N, *input_shape)`` to ``path`` and verify it.

    The model is put in eval mode. Verification runs a batch of 2 seeded random inputs through torch and
    ONNX Runtime (CPU, one thread); raises :class:`EngineError` if the outputs differ by more than
    :data:`RELATIVE_TOLERANCE` relative to ``max(1, max|torch|)``. Returns ``path``.
    """
    try:
        import torch
    except ImportError as exc:
        raise MissingExtraError("torch", "train") from exc
    if not isinstance(model, torch.nn.Module):
        raise EngineError(f"export_onnx needs a torch.nn.Module, got {type(model).__name__}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model.eval()
    generator = torch.Generator().manual_seed(0)
    sample = torch.randn((2, *input_shape), generator=generator)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
            torch.onnx.export(
                model,
                (sample,),
                str(path),
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: {0: "N"}, OUTPUT_NAME: {0: "N"}},
                opset_version=opset,
                dynamo=False,
            )
    except (RuntimeError, torch.onnx.errors.OnnxExporterError) as exc:
        raise EngineError(
            f"ONNX export of {type(model).__name__} for input {input_shape} failed: {exc}; for VGG16 use a crop "
            f"whose size /32 is a multiple of the pool grid (224), or pass pool_grid"
        ) from exc
    diff = verify_onnx(model, path, sample.numpy())
    log.info("exported %s (%.1f MB), max |onnx - torch| = %.2e", path, path.stat().st_size / 1e6, diff)
    return path


def verify_onnx(model: object, path: Path, sample: np.ndarray) -> float:
    """Max absolute difference between torch and ONNX Runtime logits on ``sample`` ``(N, C, H, W)`` float32.

    Raises :class:`EngineError` when it exceeds :data:`RELATIVE_TOLERANCE` relative to ``max(1, max|torch|)``.
    """
    import torch

    assert isinstance(model, torch.nn.Module)
    model.eval()
    with torch.no_grad():
        expected = model(torch.from_numpy(np.ascontiguousarray(sample, dtype=np.float32))).numpy()
    session = ort_session(path)
    (actual,) = session.run([OUTPUT_NAME], {INPUT_NAME: sample.astype(np.float32)})  # type: ignore[attr-defined]
    if actual.shape != expected.shape:
        raise EngineError(f"{path}: ONNX output shape {actual.shape} != torch {expected.shape}; re-export it")
    diff = float(np.max(np.abs(actual - expected)))
    scale = max(1.0, float(np.max(np.abs(expected))))
    if diff > RELATIVE_TOLERANCE * scale:
        raise EngineError(
            f"{path}: ONNX Runtime output differs from torch by {diff:.3g} (scale {scale:.3g}, tolerance "
            f"{RELATIVE_TOLERANCE:g} relative); the export is wrong: try another opset or report the model"
        )
    return diff
