"""``aunets build-engine``: export a training run to an engine bundle (ONNX + manifest).

Input: a training run directory (``aunets train`` output, or its ``final/`` folder) holding
``final/engine_spec.json`` and the weights it names. Output: a bundle directory (see
:mod:`aunets.engines.manifest`): one ONNX detector file per weight file (a shared trunk with per-view heads is one
file with ``detector_heads``; the per-AU layout stores the AU networks of a view as one ensemble
(``create_model(..., independent=True)``) that returns all AUs at once), the view classifier, and
``manifest.json`` with the tuned thresholds and median window, and ``training/``: the run's resolved config,
per-epoch history, tuning and training curves, so every bundle carries how it was made.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
from pathlib import Path
from typing import Any

from aunets.core.errors import ConfigError, MissingExtraError

log = logging.getLogger(__name__)

TRAINING_RECORD = ("config.json", "history.json", "tuning.json", "curves.png")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", type=Path, help="training run directory (aunets train --out) or its final/ folder")
    parser.add_argument("--out", type=Path, required=True, help="bundle directory to write (created)")
    parser.add_argument("--name", default=None, help="engine name (default: the training config's name)")
    parser.add_argument("--format", choices=("onnx", "safetensors"), default="onnx",
                        help="onnx (any runtime, default) or safetensors (the torch runtime; shared layout only)")
    parser.add_argument("--no-view-classifier", action="store_true", help="leave the view classifier out")
    parser.add_argument("--no-torch-twins", action="store_true",
                        help="with --format onnx, do not add the detectors' .safetensors twins (the GPU path runs "
                             "them: aunets run --device cuda)")
    parser.add_argument("--force", action="store_true", help="overwrite a non-empty --out")


def run(args: argparse.Namespace) -> int:
    path = build_engine(args.run, args.out, name=args.name, fmt=args.format,
                        view_classifier=not args.no_view_classifier, force=args.force,
                        torch_twins=not args.no_torch_twins)
    size = sum(p.stat().st_size for p in path.iterdir()) / 1e6
    print(f"engine bundle written to {path} ({size:.1f} MB)")
    return 0


def _spec_dir(run: Path) -> Path:
    for cand in (run / "final", run):
        if (cand / "engine_spec.json").is_file():
            return cand
    raise ConfigError(f"{run} holds no final/engine_spec.json; finish the training run first (`aunets train`)")


def _load_model(spec_dir: Path, file: str, entry: dict[str, Any]) -> Any:
    from aunets.engines.registry import create_model
    from aunets.models.checkpoint import load_weights

    arch, kwargs = entry["architecture"], dict(entry.get("architecture_kwargs", {}))
    model = create_model(arch, int(entry["num_outputs"]), **kwargs)
    load_weights(spec_dir / file, model, strict=True)
    return model.eval()


def build_engine(run: Path | str, out: Path | str, name: str | None = None, fmt: str = "onnx",
                 view_classifier: bool = True, force: bool = False, torch_twins: bool = True) -> Path:
    """Export the run's ``final/`` models into the bundle ``out``; returns ``out``.

    With ``fmt="onnx"`` and ``torch_twins``, each detector's safetensors weights are also copied beside its
    ONNX file under the same stem (listed in the manifest's ``files``): torch-based runtimes and the GPU
    frame path load those (see :func:`aunets.engines.engine.weight_file`), ONNX Runtime the ``.onnx``.
    """
    try:
        import torch  # noqa: F401
    except ImportError as exc:
        raise MissingExtraError("torch", "train") from exc
    from aunets.core.flow import FlowConfig
    from aunets.engines.manifest import InputSpec, Manifest, portable_paths, sha256_file, write_manifest
    from aunets.models.export import export_onnx

    spec_dir = _spec_dir(Path(run))
    spec: dict[str, Any] = json.loads((spec_dir / "engine_spec.json").read_text(encoding="utf-8"))
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not force:
        raise ConfigError(f"{out} exists and is not empty; pass --force to overwrite it or choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    inp = spec["input"]
    input_spec = InputSpec(fusion=inp["fusion"], height=int(inp["height"]), width=int(inp["width"]))
    shape = input_spec.tensor_shape
    names: dict[str, str] = {}
    twins: list[str] = []
    for file, entry in spec["files"].items():
        if fmt == "safetensors":
            shutil.copyfile(spec_dir / file, out / file)
            names[file] = file
            continue
        target = Path(file).with_suffix(".onnx").name
        export_onnx(_load_model(spec_dir, file, entry), out / target, shape)
        names[file] = target
        log.info("exported %s -> %s", file, target)
        if torch_twins:
            twin = Path(file).with_suffix(".safetensors").name
            shutil.copyfile(spec_dir / file, out / twin)
            twins.append(twin)
    vc_name = None
    provenance = dict(spec.get("provenance", {}))
    vc = spec.get("view_classifier")
    if view_classifier and vc:
        vc_name = "view_classifier.onnx" if fmt == "onnx" else "view_classifier.safetensors"
        if fmt == "onnx":
            model = _load_model(spec_dir, vc["file"], vc)
            export_onnx(model, out / vc_name, (3, input_spec.height, input_spec.width))
        else:
            shutil.copyfile(spec_dir / vc["file"], out / vc_name)
        provenance["view_classifier"] = {"architecture": vc["architecture"],
                                         "architecture_kwargs": vc.get("architecture_kwargs", {})}
    used = set(names.values()) | set(twins) | ({vc_name} if vc_name else set())
    first = next(iter(spec["files"].values()))
    manifest = Manifest(
        name=name or spec["name"],
        architecture=first["architecture"],
        architecture_kwargs=dict(first.get("architecture_kwargs", {})),
        aus=tuple(int(a) for a in spec["aus"]),
        detectors={int(v): names[f] for v, f in spec["detectors"].items()},
        detector_heads={int(v): int(h) for v, h in spec.get("detector_heads", {}).items()},
        files={f: sha256_file(out / f) for f in sorted(used)},
        input=input_spec,
        flow=FlowConfig(**spec["flow"]),
        thresholds={int(a): float(min(max(t, 0.01), 0.99)) for a, t in spec["thresholds"].items()},
        median_window=int(spec["median_window"]),
        view_classifier=vc_name,
        default_view=int(spec["default_view"]),
        provenance=provenance,
        intensity=bool(spec.get("intensity", False)),
    )
    write_manifest(out, manifest)
    run_dir = spec_dir.parent if spec_dir.name == "final" else spec_dir
    record = [f for f in TRAINING_RECORD if (run_dir / f).is_file()]
    if record:
        (out / "training").mkdir(exist_ok=True)
        for f in record:
            shutil.copyfile(run_dir / f, out / "training" / f)
        if "config.json" in record:  # it names the data folders: the bundle keeps them without machine paths
            config = portable_paths(json.loads((run_dir / "config.json").read_text(encoding="utf-8")))
            (out / "training" / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n",
                                                          encoding="utf-8")
    return out
