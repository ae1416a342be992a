"""The engine bundle manifest: what an engine expects and what it computes.

An engine bundle is a directory::

    manifest.json        this file's content (see :class:`Manifest`)
    view4.onnx ...       one AU detector file per view (several views may share one file)
    view_classifier.onnx optional: the 9-view classifier

Detector files take one float32 tensor named ``input`` of shape ``(N, C, H, W)`` laid out as
:class:`InputSpec` says and return ``logits`` of shape ``(N, len(aus))``; all AU detectors of a view are
inside that one file, so one call per frame runs them all. A file may hold several heads (e.g. a shared
trunk with one head per view): it then returns ``(N, n_heads * len(aus))`` and
``detector_heads`` maps a
view to the block of ``len(aus)`` logits that is its own (block 0 when a view is not listed).
With ``intensity`` the file returns as many logits again after the presence blocks, in the same head order:
AU intensity = 5 * sigmoid (0..5, FACS A..E as OpenFace's ``AUxx_r``).
The view classifier takes the RGB crop
``(N, 3, H, W)`` normalised the same way and returns ``logits`` ``(N, n_views)``.

Weight files are ONNX (``.onnx``, any runtime) or safetensors (``.safetensors``, the torch runtime,
rebuilt through the model registry from ``architecture`` and ``architecture_kwargs``). Never pickle.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from aunets.core.au import AU_NAMES
from aunets.core.errors import ConfigError, ManifestError
from aunets.core.flow import FLOW_ENCODINGS, FlowConfig
from aunets.core.view import ViewGrid

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
FUSIONS: tuple[str, ...] = ("rgb", "flow", "channels", "horizontal")
WEIGHT_SUFFIXES: tuple[str, ...] = (".onnx", ".safetensors")

IMAGENET_MEAN_RGB: tuple[float, float, float] = (123.675, 116.28, 103.53)
IMAGENET_STD_RGB: tuple[float, float, float] = (58.395, 57.12, 57.375)


@dataclass(frozen=True)
class InputSpec:
    """Layout of the detector input tensor.

    ``fusion``: ``rgb`` (N,3,H,W) crop only; ``flow`` (N,3,H,W) flow image only; ``channels`` (N,6,H,W)
    RGB then flow (also used by two-stream networks, which split it); ``horizontal`` (N,3,H,2W) RGB left,
    flow right. ``height`` x ``width`` is the size of one crop in pixels. Pixels are RGB in 0..255, then
    ``(x - mean) / std`` per channel, the same for the crop and the flow image.
    """

    fusion: str = "horizontal"
    height: int = 224
    width: int = 224
    mean: tuple[float, float, float] = IMAGENET_MEAN_RGB
    std: tuple[float, float, float] = IMAGENET_STD_RGB

    @property
    def uses_flow(self) -> bool:
        return self.fusion != "rgb"

    @property
    def tensor_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one sample."""
        if self.fusion == "channels":
            return (6, self.height, self.width)
        if self.fusion == "horizontal":
            return (3, self.height, 2 * self.width)
        return (3, self.height, self.width)

    @property
    def layout(self) -> str:
        """Human-readable layout, e.g. ``rgb|flow horizontal 224x448``."""
        _c, h, w = self.tensor_shape
        kind = {"rgb": "rgb", "flow": "flow", "channels": "rgb+flow channels", "horizontal": "rgb|flow horizontal"}
        return f"{kind[self.fusion]} {h}x{w}"


@dataclass(frozen=True)
class Manifest:
    """Everything a runtime needs to run an engine bundle and check that it fits."""

    name: str
    architecture: str
    aus: tuple[int, ...]
    detectors: dict[int, str]
    files: dict[str, str]
    input: InputSpec = field(default_factory=InputSpec)
    flow: FlowConfig = field(default_factory=FlowConfig)
    thresholds: dict[int, float] = field(default_factory=dict)
    median_window: int = 5
    view_grid: ViewGrid = field(default_factory=ViewGrid)
    view_classifier: str | None = None
    detector_heads: dict[int, int] = field(default_factory=dict)
    default_view: int = 4
    architecture_kwargs: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    intensity: bool = False
    format_version: int = FORMAT_VERSION

    @property
    def views(self) -> tuple[int, ...]:
        return tuple(sorted(self.detectors))

    def threshold(self, au: int) -> float:
        return self.thresholds.get(au, 0.5)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["input"]["layout"] = self.input.layout
        data["aus"] = list(self.aus)
        data["views"] = list(self.views)
        data["detectors"] = {str(k): v for k, v in sorted(self.detectors.items())}
        data["thresholds"] = {str(k): v for k, v in sorted(self.thresholds.items())}
        data["detector_heads"] = {str(k): v for k, v in sorted(self.detector_heads.items())}
        data["view_grid"] = self.view_grid.to_json()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Manifest:
        """Parse and validate the structure (not the files: see :func:`load_manifest`)."""
        if not isinstance(data, dict):
            raise ManifestError("manifest.json must hold a JSON object")
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise ManifestError(
                f"engine format version {version!r} is not supported by this aunets (it reads version "
                f"{FORMAT_VERSION}); rebuild the engine with `aunets build-engine` or upgrade aunets"
            )
        for key in ("name", "architecture", "aus", "detectors", "files"):
            if key not in data:
                raise ManifestError(f"manifest.json has no {key!r}; rebuild the engine with `aunets build-engine`")
        try:
            inp = data.get("input", {})
            input_spec = InputSpec(
                fusion=str(inp.get("fusion", "horizontal")),
                height=int(inp.get("height", 224)),
                width=int(inp.get("width", 224)),
                mean=_triple(inp.get("mean", IMAGENET_MEAN_RGB)),
                std=_triple(inp.get("std", IMAGENET_STD_RGB)),
            )
            flow_data = data.get("flow", {})
            manifest = cls(
                name=str(data["name"]),
                architecture=str(data["architecture"]),
                aus=tuple(int(a) for a in data["aus"]),
                detectors={int(k): str(v) for k, v in data["detectors"].items()},
                files={str(k): str(v) for k, v in data["files"].items()},
                input=input_spec,
                flow=FlowConfig(
                    backend=str(flow_data.get("backend", "dis")),
                    encoding=flow_data.get("encoding", "paper"),
                    clip_fraction=float(flow_data.get("clip_fraction", 0.02)),
                ),
                thresholds={int(k): float(v) for k, v in data.get("thresholds", {}).items()},
                median_window=int(data.get("median_window", 5)),
                view_grid=ViewGrid.from_json(data["view_grid"]) if "view_grid" in data else ViewGrid(),
                view_classifier=data.get("view_classifier"),
                detector_heads={int(k): int(v) for k, v in data.get("detector_heads", {}).items()},
                default_view=int(data.get("default_view", 4)),
                architecture_kwargs=dict(data.get("architecture_kwargs", {})),
                provenance=dict(data.get("provenance", {})),
                intensity=bool(data.get("intensity", False)),
                format_version=int(version),
            )
        except ManifestError:
            raise
        except (ConfigError, TypeError, ValueError, KeyError, AttributeError) as exc:
            raise ManifestError(f"manifest.json is malformed: {exc}") from exc
        manifest.validate()
        return manifest

    def validate(self) -> None:
        """Check internal consistency; raises :class:`ManifestError` naming the problem."""
        if not self.aus:
            raise ManifestError("manifest lists no AUs")
        unknown = [a for a in self.aus if a not in AU_NAMES]
        if unknown:
            raise ManifestError(f"manifest lists AUs this runtime does not know: {unknown}; known: {sorted(AU_NAMES)}")
        if len(set(self.aus)) != len(self.aus):
            raise ManifestError(f"manifest lists an AU twice: {list(self.aus)}")
        if self.input.fusion not in FUSIONS:
            raise ManifestError(f"unknown input fusion {self.input.fusion!r}; expected one of {FUSIONS}")
        if self.input.height <= 0 or self.input.width <= 0:
            raise ManifestError(f"input size must be positive, got {self.input.height}x{self.input.width}")
        for name, values in (("mean", self.input.mean), ("std", self.input.std)):
            if not all(math.isfinite(v) for v in values):  # NaN or infinity would shift or blank every input
                raise ManifestError(f"input {name} must be finite numbers, got {list(values)}; fix the manifest's "
                                    f"'input' or rebuild the engine with `aunets build-engine`")  # fmt: skip
        if any(s <= 0 for s in self.input.std):
            raise ManifestError(f"input std must be positive, got {self.input.std}")
        if not (math.isfinite(self.flow.clip_fraction) and self.flow.clip_fraction > 0):
            raise ManifestError(f"flow clip_fraction must be a finite number above 0, got {self.flow.clip_fraction}")
        if self.flow.encoding not in FLOW_ENCODINGS:
            raise ManifestError(f"unknown flow encoding {self.flow.encoding!r}; expected one of {FLOW_ENCODINGS}")
        if self.median_window < 1 or self.median_window % 2 == 0:
            raise ManifestError(f"median_window must be odd and >= 1, got {self.median_window}")
        if not self.detectors:
            raise ManifestError("manifest has no detectors")
        for view in self.detectors:
            if not 0 <= view < self.view_grid.n_views:
                raise ManifestError(
                    f"detector for view {view} is outside the view grid 0..{self.view_grid.n_views - 1}"
                )
        for view, head in self.detector_heads.items():
            if view not in self.detectors or head < 0:
                raise ManifestError(f"detector_heads maps view {view} to head {head}, but that view has no detector")
        if self.default_view not in self.detectors:
            raise ManifestError(f"default_view {self.default_view} has no detector; views: {list(self.views)}")
        for au, thr in self.thresholds.items():
            if au not in self.aus:
                raise ManifestError(f"threshold given for AU{au}, which the engine does not detect")
            if not 0.0 < thr < 1.0:
                raise ManifestError(f"threshold of AU{au} must be in (0, 1), got {thr}")
        referenced = set(self.detectors.values()) | ({self.view_classifier} if self.view_classifier else set())
        for name in referenced:
            if name not in self.files:
                raise ManifestError(f"weight file {name!r} is used but has no sha256 in 'files'")
            if Path(name).suffix not in WEIGHT_SUFFIXES:
                raise ManifestError(
                    f"weight file {name!r} has an unsupported type; engines hold only {WEIGHT_SUFFIXES} (never pickles)"
                )
            if Path(name).name != name:
                raise ManifestError(f"weight file {name!r} must be a plain file name inside the bundle")


def _triple(values: Any) -> tuple[float, float, float]:
    items = [float(v) for v in values]
    if len(items) != 3:
        raise ValueError(f"expected 3 values, got {items}")
    return (items[0], items[1], items[2])


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_manifest(bundle: Path | str, verify_files: bool = True) -> Manifest:
    """Read and validate ``bundle/manifest.json``; with ``verify_files``, check every file's sha256."""
    bundle = Path(bundle)
    path = bundle / MANIFEST_NAME
    if not bundle.is_dir():
        raise ManifestError(
            f"engine bundle {bundle} is not a directory; pass a directory made by `aunets build-engine` "
            f"(or omit --engine to use the embedded default engine)"
        )
    if not path.is_file():
        raise ManifestError(
            f"{bundle} has no {MANIFEST_NAME}: it is not an engine bundle; rebuild it with `aunets build-engine`"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{path} is not valid JSON ({exc}); rebuild the engine with `aunets build-engine`") from exc
    manifest = Manifest.from_json(data)
    if verify_files:
        for name, expected in manifest.files.items():
            file = bundle / name
            if not file.is_file():
                raise ManifestError(f"engine file {file} is missing; copy the whole bundle directory or rebuild it")
            actual = sha256_file(file)
            if actual != expected:
                raise ManifestError(
                    f"engine file {file} does not match its manifest (sha256 {actual[:12]}... != {expected[:12]}...); "
                    f"the bundle is corrupt or was edited: rebuild it with `aunets build-engine`"
                )
    return manifest


def write_manifest(bundle: Path | str, manifest: Manifest) -> Path:
    """Validate ``manifest`` and write it to ``bundle/manifest.json`` (files must already be in place)."""
    bundle = Path(bundle)
    manifest.validate()
    for name, digest in manifest.files.items():
        actual = sha256_file(bundle / name)
        if actual != digest:
            raise ManifestError(f"sha256 of {bundle / name} is {actual}, manifest says {digest}")
    data = manifest.to_json()
    data["provenance"] = portable_paths(data["provenance"])
    path = bundle / MANIFEST_NAME
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def portable_paths(value: Any, base: Path | None = None) -> Any:
    """``value`` (a JSON tree) with every string that is an absolute path made relative to ``base`` (default: the
    working folder, where the build ran): ``/x/repo/data/set`` -> ``data/set``, ``/x/shared/faces`` ->
    ``../shared/faces``; a path further away keeps only its last two parts (``.../a/b``). A bundle records where
    its data came from without any machine's absolute paths."""
    base = (base or Path.cwd()).resolve()
    if isinstance(value, dict):
        return {k: portable_paths(v, base) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [portable_paths(v, base) for v in value]
    if isinstance(value, str) and len(value) > 1 and "\n" not in value and os.path.isabs(value):
        path = Path(value)
        if path.is_relative_to(base.parent):
            return os.path.relpath(path, base)
        return "/".join(("...", *path.parts[-2:]))
    return value
