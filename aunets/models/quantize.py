"""``aunets quantize``: an int8 copy of an engine bundle (ONNX Runtime static quantisation).

Every ONNX file of the bundle (the detectors and the view classifier) is quantised to int8 weights (per output
channel) and uint8 activations in QDQ form, which ONNX Runtime runs with integer kernels (VNNI on recent x86
CPUs). Activation ranges come from **calibration inputs made exactly as the runtime makes them**: the calibration
videos or frame folders go through :class:`~aunets.stream.pipeline.Pipeline` (face tracking, crop, flow, input
composition, normalisation) and the engine's own inputs are recorded. Use training data for calibration (the
synthetic or photo-real generators' frame folders), never the data you evaluate on.

The copy keeps everything else of the bundle (thresholds, median window, the float ``.safetensors`` twins the
torch and GPU runtimes use, licences, training record) and records the quantisation in the manifest's
``provenance.quantization``.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from aunets.core.errors import ConfigError, MissingExtraError
from aunets.stream.sources import IMAGE_SUFFIXES

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm")


@dataclass(frozen=True)
class QuantizeConfig:
    """``frames``: at most this many calibration frames in all, spread evenly over the sequences found under
    ``calibration`` (each a frame folder or a video); ``per_channel``: per-output-channel weight scales;
    ``method``: how activation ranges are set, ``percentile`` (the ``percentile`` of each activation's histogram,
    which ignores rare outliers) or ``minmax`` (the full observed range)."""

    engine: str
    calibration: tuple[str, ...]
    frames: int = 600
    per_channel: bool = True
    method: str = "percentile"
    percentile: float = 99.99


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("engine", type=Path, help="engine bundle to quantise (e.g. aunets/engines/default)")
    parser.add_argument("--calibration", type=Path, nargs="+", required=True,
                        help="videos or folders of frame folders / videos to calibrate on (training data, never "
                             "the evaluation data)")
    parser.add_argument("--out", type=Path, required=True, help="bundle directory to write (created)")
    parser.add_argument("--frames", type=int, default=600, help="calibration frames in all (default 600)")
    parser.add_argument("--method", choices=("percentile", "minmax"), default="percentile",
                        help="activation ranges: a high percentile of each histogram (default) or the full range")
    parser.add_argument("--force", action="store_true", help="overwrite a non-empty --out")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def sequences(roots: tuple[Path, ...]) -> list[Path]:
    """Every video file and every folder that directly holds images under ``roots``, sorted."""
    found: set[Path] = set()
    for root in roots:
        if not root.exists():
            raise ConfigError(f"calibration data {root} does not exist; pass videos or folders of frame folders")
        if root.is_file():
            if root.suffix.lower() not in VIDEO_SUFFIXES:
                raise ConfigError(f"calibration file {root} is not a video ({', '.join(VIDEO_SUFFIXES)})")
            found.add(root)
            continue
        for path in [root, *root.rglob("*")]:
            if path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES:
                found.add(path)
            elif path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
                found.add(path.parent)
    if not found:
        raise ConfigError(f"no videos or frame folders under {', '.join(map(str, roots))}")
    return sorted(found)


def _frames_of(sequence: Path, limit: int) -> list[np.ndarray]:
    """The first ``limit`` frames (BGR uint8) of a video or frame folder: consecutive, so the flow is real."""
    from aunets.stream.sources import make_source

    source = make_source(str(sequence))
    source.open()
    out: list[np.ndarray] = []
    try:
        while len(out) < limit and (frame := source.read()) is not None:
            out.append(frame)
    finally:
        source.close()
    return out


def record_inputs(config: QuantizeConfig, progress: bool = True) -> dict[str, list[np.ndarray]]:
    """ONNX file name -> the float32 (C, H, W) inputs the engine received while the pipeline ran over the
    calibration sequences (detectors: composed crop|flow; view classifier: the RGB crop)."""
    from tqdm import tqdm

    from aunets.core.frame import Frame
    from aunets.engines.engine import load_engine
    from aunets.stream.calibration import CalibrationConfig
    from aunets.stream.pipeline import Pipeline, PipelineConfig
    from aunets.stream.tracking import YuNetDetector

    seqs = sequences(tuple(Path(c) for c in config.calibration))
    per_sequence = max(8, -(-config.frames // len(seqs)))  # consecutive frames: all but the first carry motion
    if len(seqs) * per_sequence > config.frames:
        seqs = [seqs[i] for i in np.linspace(0, len(seqs) - 1, max(1, config.frames // per_sequence)).astype(int)]
    engine = load_engine(Path(config.engine), "onnx", 2)
    detector = YuNetDetector()
    pipeline_config = PipelineConfig(engine=Path(config.engine), calibration=CalibrationConfig(enabled=False),
                                     view_every=1)
    manifest = engine.manifest
    recorded: dict[str, list[np.ndarray]] = {}
    infer, classify = engine.infer, engine.classify_view

    def recording_infer(samples: np.ndarray, views: Any) -> Any:
        for sample, view in zip(samples, views, strict=True):
            name = manifest.detectors[view if view in manifest.detectors else manifest.default_view]
            recorded.setdefault(name, []).append(np.array(sample, dtype=np.float32))
        return infer(samples, views)

    def recording_classify(rgb_samples: np.ndarray) -> np.ndarray | None:
        if manifest.view_classifier:
            recorded.setdefault(manifest.view_classifier, []).extend(np.array(s, np.float32) for s in rgb_samples)
        return classify(rgb_samples)

    engine.infer = recording_infer  # type: ignore[method-assign]
    engine.classify_view = recording_classify  # type: ignore[method-assign]
    for seq in tqdm(seqs, desc="calibration sequences", unit="seq", disable=not progress):
        pipeline = Pipeline(pipeline_config, engine=engine, detector=detector)  # fresh tracks and flow per sequence
        for i, image in enumerate(_frames_of(seq, per_sequence)):
            pipeline.process(Frame(i, 0, 0.0, image))
    if not recorded:
        raise ConfigError("no face was found in the calibration data; pass videos or frames that show faces")
    return recorded


def quantize_file(source: Path, target: Path, inputs: list[np.ndarray], config: QuantizeConfig) -> None:
    """Static int8 quantisation (QDQ; int8 weights, uint8 activations) of one ONNX file, calibrated on
    ``inputs`` (each float32 (C, H, W), batched one at a time)."""
    try:
        from onnxruntime.quantization import (
            CalibrationDataReader,
            CalibrationMethod,
            QuantFormat,
            QuantType,
            quantize_static,
        )
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError as exc:  # pragma: no cover - part of onnxruntime
        raise MissingExtraError("onnxruntime.quantization", "train") from exc
    import onnxruntime as ort

    input_name = ort.InferenceSession(str(source), providers=["CPUExecutionProvider"]).get_inputs()[0].name

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(inputs)

        def get_next(self) -> dict[str, np.ndarray] | None:
            sample = next(self._it, None)
            return None if sample is None else {input_name: sample[None]}

    prepared = target.with_suffix(".pre.onnx")
    quant_pre_process(str(source), str(prepared))
    try:
        quantize_static(str(prepared), str(target), Reader(), quant_format=QuantFormat.QDQ,
                        per_channel=config.per_channel, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=(CalibrationMethod.Percentile if config.method == "percentile"
                                          else CalibrationMethod.MinMax),
                        extra_options={"CalibPercentile": config.percentile})
    finally:
        prepared.unlink(missing_ok=True)


def quantize_engine(config: QuantizeConfig, out: Path, progress: bool = True) -> Path:
    """Write the int8 copy of ``config.engine`` into ``out``; returns ``out``."""
    from aunets.engines.manifest import load_manifest, sha256_file, write_manifest

    source = Path(config.engine)
    manifest = load_manifest(source)
    onnx_files = sorted(n for n in manifest.files if n.endswith(".onnx"))
    if not onnx_files:
        raise ConfigError(f"{source} has no ONNX files to quantise (a safetensors-only bundle runs on torch)")
    if "quantization" in manifest.provenance:
        raise ConfigError(f"{source} is already int8 ({manifest.name}); quantise the float bundle it was made from "
                          f"(its provenance.quantization names it)")
    inputs = record_inputs(config, progress)
    shutil.copytree(source, out, dirs_exist_ok=True)
    counts = {}
    for name in onnx_files:
        samples = inputs.get(name)
        if not samples:
            raise ConfigError(f"{name} received no input from the calibration data; add sequences of more views")
        log.info("quantising %s on %d inputs", name, len(samples))
        quantize_file(source / name, out / name, samples, config)
        counts[name] = len(samples)
    files = {n: (sha256_file(out / n) if n in onnx_files else d) for n, d in manifest.files.items()}
    provenance = {**manifest.provenance, "quantization": {
        "method": f"onnxruntime static, QDQ, int8 weights (per channel), uint8 activations, {config.method} "
                  f"calibration",
        "config": asdict(config), "calibration_inputs": counts, "source_engine": manifest.name,
        "source_files": {n: manifest.files[n] for n in onnx_files}}}
    write_manifest(out, replace(manifest, name=f"{manifest.name}-int8", files=files, provenance=provenance))
    (out / "quantize.json").write_text(json.dumps({"config": asdict(config), "inputs": counts}, indent=2) + "\n")
    return out


def run(args: argparse.Namespace) -> int:
    if args.frames < 2:
        raise ConfigError(f"--frames must be >= 2, got {args.frames}")
    out: Path = args.out
    if out.exists() and any(out.iterdir()) and not args.force:
        raise ConfigError(f"{out} is not empty; pass --force to overwrite it or choose another --out")
    config = QuantizeConfig(engine=str(args.engine), calibration=tuple(str(c) for c in args.calibration),
                            frames=args.frames, method=args.method)
    quantize_engine(config, out, progress=not args.no_progress)
    print(f"int8 engine bundle written to {out}")
    return 0
