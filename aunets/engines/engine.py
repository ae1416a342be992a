"""A loaded engine bundle: per-view AU detectors and the optional view classifier."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import numpy as np

from aunets.core.errors import EngineError
from aunets.engines.manifest import MANIFEST_NAME, Manifest, load_manifest
from aunets.engines.runtime import EngineRuntime
from aunets.engines.runtime_registry import open_runtime

log = logging.getLogger(__name__)


def default_engine_path() -> Path:
    """The embedded default engine bundle (``aunets/engines/default``)."""
    return Path(str(resources.files("aunets.engines") / "default"))


def sigmoid(x: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(x, -60.0, 60.0))), dtype=np.float32)


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return np.asarray(e / e.sum(axis=1, keepdims=True), dtype=np.float32)


class AUEngine:
    """Runs an engine bundle. Each detector file is loaded once even when several views share it.

    ``detectors=False`` loads only the view classifier (the GPU frame path runs the detectors itself).
    """

    def __init__(self, path: Path, manifest: Manifest, runtime: str = "onnx", threads: int = 1,
                 detectors: bool = True) -> None:
        self.path = path
        self.manifest = manifest
        self.runtime = runtime
        kwargs = {
            "architecture": manifest.architecture,
            "architecture_kwargs": manifest.architecture_kwargs,
        }
        self._files: dict[str, EngineRuntime] = {}
        warmup = np.zeros((1, *manifest.input.tensor_shape), dtype=np.float32)
        self._presence_width: dict[str, int] = {}
        blocks = 2 if manifest.intensity else 1
        for name in sorted(set(manifest.detectors.values())) if detectors else []:
            heads = [h for v, h in manifest.detector_heads.items() if manifest.detectors[v] == name]
            n_heads = 1 + max(heads, default=0)
            weights = weight_file(manifest, name, runtime)
            rt = open_runtime(path / weights, runtime, threads, num_outputs=blocks * n_heads * len(manifest.aus),
                              **kwargs)
            self._files[name] = rt
            expected = blocks * n_heads * len(manifest.aus)
            width = _check_against_weights(rt, weights, warmup, manifest.input.layout, expected)
            if width != expected:
                raise EngineError(
                    f"detector {weights} returns {width} logits per sample, {'too few' if width < expected else 'too'} "
                    f"{'' if width < expected else 'many '}for the manifest's {len(manifest.aus)} AUs x {n_heads} "
                    f"head(s){' with intensity' if manifest.intensity else ''} (exactly {expected}): its 'aus', "
                    f"'detector_heads' or 'intensity' do not match the weights, so every AU column would be "
                    f"misaligned; rebuild it with `aunets build-engine`"
                )
            self._presence_width[name] = width // blocks
        self._view: EngineRuntime | None = None
        if manifest.view_classifier:
            view_kwargs = dict(manifest.provenance.get("view_classifier", {}))
            # the view classifier is small and runs every few frames: ONNX Runtime on the CPU for the GPU runtimes
            view_runtime = runtime if runtime in ("onnx", "torch") else "onnx"
            self._view = open_runtime(
                path / weight_file(manifest, manifest.view_classifier, view_runtime),
                view_runtime,
                threads,
                architecture=view_kwargs.get("architecture", "view_mobilenetv2"),
                architecture_kwargs=view_kwargs.get("architecture_kwargs", {}),
                num_outputs=manifest.view_grid.n_views,
            )
            rgb = np.zeros((1, 3, manifest.input.height, manifest.input.width), dtype=np.float32)
            n_views = manifest.view_grid.n_views
            layout = f"rgb {manifest.input.height}x{manifest.input.width}"
            if _check_against_weights(self._view, manifest.view_classifier, rgb, layout, n_views) != n_views:
                raise EngineError(f"view classifier {manifest.view_classifier} does not return {n_views} view logits; "
                                  f"rebuild the bundle with `aunets build-engine`")  # fmt: skip

    @property
    def aus(self) -> tuple[int, ...]:
        return self.manifest.aus

    @property
    def has_view_classifier(self) -> bool:
        return self._view is not None

    @property
    def has_intensity(self) -> bool:
        return self.manifest.intensity

    def predict(self, samples: np.ndarray, views: Sequence[int]) -> np.ndarray:
        """AU probabilities: ``samples`` float32 (N, C, H, W) as the manifest's input spec -> (N, n_aus).

        ``views[i]`` picks sample i's detector; views without one use the manifest's ``default_view``.
        Samples sharing a detector file run in one batched call.
        """
        return self.infer(samples, views)[0]

    def infer(self, samples: np.ndarray, views: Sequence[int]) -> tuple[np.ndarray, np.ndarray | None]:
        """Like :meth:`predict`, plus AU intensities float32 (N, n_aus) in 0..5 when the engine has them
        (``has_intensity``), else None: ``(probabilities, intensities)``."""
        if len(views) != len(samples):
            raise ValueError(f"{len(samples)} samples but {len(views)} views")
        if not self._files:
            raise EngineError("this engine was loaded with detectors=False (view classifier only)")
        m = self.manifest
        n_aus = len(m.aus)
        resolved = [v if v in m.detectors else m.default_view for v in views]
        out = np.empty((len(samples), n_aus), dtype=np.float32)
        inten = np.empty((len(samples), n_aus), dtype=np.float32) if m.intensity else None
        groups: dict[str, list[int]] = {}
        for i, view in enumerate(resolved):
            groups.setdefault(m.detectors[view], []).append(i)
        for name, idx in groups.items():
            logits = self._files[name].run(samples[idx] if len(idx) < len(samples) else samples)
            for row, i in enumerate(idx):
                head = m.detector_heads.get(resolved[i], 0)
                out[i] = logits[row, head * n_aus : (head + 1) * n_aus]
                if inten is not None:
                    start = self._presence_width[name] + head * n_aus
                    inten[i] = logits[row, start : start + n_aus]
        return sigmoid(out), (None if inten is None else 5.0 * sigmoid(inten))

    def classify_view(self, rgb_samples: np.ndarray) -> np.ndarray | None:
        """View probabilities (N, n_views) for float32 (N, 3, H, W) RGB crops, or None without a classifier."""
        if self._view is None:
            return None
        return softmax(self._view.run(rgb_samples))


def _check_against_weights(rt: EngineRuntime, name: str, sample: np.ndarray, layout: str, width: int) -> int:
    """Compare the manifest with the weights themselves: the input shape the graph declares (ONNX) with
    ``sample``'s, then run ``sample`` (which also warms the runtime up). Returns the logits per sample;
    raises :class:`EngineError` naming both sides when they disagree."""
    declared = getattr(rt, "input_shape", None)
    fix = "the manifest's 'input' does not match the weights; fix it or rebuild the bundle with `aunets build-engine`"
    if declared is not None:
        if len(declared) != sample.ndim or any(
            isinstance(d, int) and d != s for d, s in zip(declared[1:], sample.shape[1:], strict=False)
        ):
            shape = "x".join(str(d) for d in declared[1:])
            raise EngineError(f"{name} takes input {shape} (C x H x W), the manifest says {layout} "
                              f"({'x'.join(map(str, sample.shape[1:]))}): {fix}")  # fmt: skip
        out = getattr(rt, "output_shape", None)
        if out is not None and len(out) == 2 and isinstance(out[1], int) and out[1] != width:
            return out[1]
    try:
        logits = rt.run(sample)
    except Exception as exc:  # runtimes raise their own untyped errors
        raise EngineError(f"{name} does not run on the manifest's input {layout} "
                          f"({'x'.join(map(str, sample.shape[1:]))}): {str(exc).splitlines()[0][:300]}; {fix}") from exc
    if logits.ndim != 2:
        raise EngineError(f"{name} returns logits of shape {logits.shape}, not (N, K); rebuild the bundle")
    return int(logits.shape[1])


def weight_file(manifest: Manifest, name: str, runtime: str) -> str:
    """The file that ``runtime`` loads for the weight file ``name``: torch-based runtimes (torch, cuda, trt)
    take the ``.safetensors`` twin of an ``.onnx`` file when the bundle has one, ONNX Runtime the ``.onnx``."""
    stem, suffix = name.rsplit(".", 1)
    if runtime != "onnx" and suffix == "onnx" and f"{stem}.safetensors" in manifest.files:
        return f"{stem}.safetensors"
    if runtime == "onnx" and suffix == "safetensors" and f"{stem}.onnx" in manifest.files:
        return f"{stem}.onnx"
    return name


def load_engine(path: Path | str | None = None, runtime: str = "onnx", threads: int = 1,
                detectors: bool = True) -> AUEngine:
    """Load and validate an engine bundle (``None``: the embedded default engine); ``detectors``: see AUEngine."""
    bundle = Path(path) if path is not None else default_engine_path()
    if path is None and not (bundle / MANIFEST_NAME).is_file():
        raise EngineError(
            f"the embedded default engine is missing ({bundle / MANIFEST_NAME}); reinstall aunets from a full "
            f"checkout, or pass --engine DIR with a bundle made by `aunets build-engine`"
        )
    manifest = load_manifest(bundle)
    log.info("engine %s: %s, AUs %s, views %s, %s", manifest.name, manifest.input.layout, list(manifest.aus),
             list(manifest.views), runtime)
    return AUEngine(bundle, manifest, runtime=runtime, threads=threads, detectors=detectors)
