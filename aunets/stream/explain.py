"""Where each AU detector looks: Zeiler–Fergus occlusion maps and Grad-CAM, drawn over the face crop.

Occlusion (the AUNets paper's Fig. 5): a square patch of the "no information" value is slid over the
detector's input, and the drop of every AU's probability, ``p(original) - p(occluded)``, is recorded at each
position. The RGB crop is occluded with the normalisation mean (a grey that is exactly 0 after
:func:`aunets.engines.preprocess.normalise`); for engines that use flow, the flow image is occluded separately (the RGB
crop left whole) with the encoding of *no motion* (the flow image's neutral value). All occluded inputs of a
frame go through the engine in a few batched calls (one call gives all AUs: the default engine is one
multi-output network). A pixel's value is the mean drop over the patches that cover it, so a map has the
crop's size. Patch and stride are in pixels of the engine's input crop (112 px for the default engine).

Grad-CAM, in its LayerCAM form (Jiang et al. 2021), through the torch model rebuilt from the bundle's
safetensors weights (``[train]`` extra): at each of the network's blocks whose output maps have the two coarsest
resolutions (:func:`cam_layers`; on the default engine the 7x14 and 4x7 maps of the 112x224 input, 11 blocks),
the feature maps weighted *per position* by the positive part of the gradient of the AU's presence logit,
summed over channels, ReLU'd, upsampled bilinearly to the input size and scaled to a maximum of 1; the map is
their mean, split into its RGB and flow halves. The classic form (one weight per channel, the spatially
averaged gradient, at the last block only) was measured against the occlusion maps on the synthetic apex faces
and did not follow them (``benchmarks/explain_agreement.py``): on a 4x7 map whose cells all see the whole face,
the channel weights mix regions. One forward and one backward pass of a batch of copies give every chosen AU.

Flow: the input is the crop beside the flow of the previous -> current frame, both cropped with the current
face box (as :class:`aunets.stream.pipeline.Pipeline`). For a single image there is no previous frame; the pipeline
then uses the frame itself as the previous one (zero motion), and so does this module.

Maps are ``float32`` arrays (n_aus, H, W) with H x W the engine's crop size; occlusion values are probability
drops (-1..1; positive = the AU's probability fell), Grad-CAM values are non-negative and unitless. Drawing
(:mod:`aunets.stream.explain_sheet`) colours each map from blue (no effect) to red (the map's maximum,
printed on the tile), over the crop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from aunets.core.crop import crop_square
from aunets.core.errors import ConfigError, EngineError, MissingExtraError
from aunets.core.face import Box
from aunets.core.flow import FlowBackend, encode_flow
from aunets.core.flow_registry import create_flow_backend
from aunets.engines.engine import AUEngine, sigmoid, weight_file
from aunets.engines.preprocess import compose_input, normalise
from aunets.stream.tracking import YuNetDetector

log = logging.getLogger(__name__)

METHODS = ("occlusion", "gradcam")


@dataclass(frozen=True)
class ExplainConfig:
    """What to compute (saved as ``explain.json`` beside the outputs).

    ``method``: ``occlusion`` or ``gradcam``. ``aus``: AUs to map (empty: all of the engine's). ``patch`` and
    ``stride``: occlusion patch side and step in pixels of the engine's input crop. ``margin``: crop side /
    face box side (as the pipeline). ``batch``: occluded inputs per engine call. ``view``: detector view to use
    (None: the engine's view classifier picks it, else the manifest's default view).
    """

    method: str = "occlusion"
    aus: tuple[int, ...] = ()
    patch: int = 24
    stride: int = 8
    margin: float = 1.3
    batch: int = 64
    view: int | None = None

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"unknown explain method {self.method!r}; choose one of {', '.join(METHODS)}")
        if self.patch < 1:
            raise ConfigError(f"patch must be 1 pixel or more, got {self.patch}; pass e.g. --patch 24")
        if self.stride < 1:
            raise ConfigError(f"stride must be 1 pixel or more, got {self.stride}; pass e.g. --stride 8")
        if self.stride > self.patch:
            raise ConfigError(f"stride {self.stride} is larger than the patch {self.patch}: some pixels would "
                              f"never be occluded; pass --stride {self.patch} or less")  # fmt: skip
        if self.batch < 1:
            raise ConfigError(f"batch must be 1 or more, got {self.batch}")

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["aus"] = list(self.aus)
        return data


@dataclass(frozen=True)
class Explanation:
    """The maps of one face in one frame.

    ``crop``: ``uint8`` (H, W, 3) RGB face crop at the engine's input size; ``flow_image``: ``uint8`` (H, W, 3)
    encoded flow image (None for RGB-only engines). ``aus``: the mapped AUs; ``probabilities``: float32
    (n_aus,) presence probability of the unoccluded input. ``rgb``: float32 (n_aus, H, W) map of the RGB crop;
    ``flow``: float32 (n_aus, H, W) map of the flow image, or None. ``box``: the face box in frame pixels.
    """

    method: str
    aus: tuple[int, ...]
    probabilities: np.ndarray
    crop: np.ndarray
    rgb: np.ndarray
    flow: np.ndarray | None = None
    flow_image: np.ndarray | None = None
    box: Box | None = None
    view: int = 0
    frame_index: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def mass_fractions(self, au: int) -> dict[str, float]:
        """Where ``au``'s RGB map puts its positive mass: fractions in the ``upper``/``lower`` half of the crop."""
        m = np.clip(self.rgb[self.aus.index(au)], 0.0, None)
        total = float(m.sum())
        h = m.shape[0] // 2
        if total <= 0:
            return {"upper": 0.0, "lower": 0.0, "total": 0.0}
        return {"upper": float(m[:h].sum()) / total, "lower": float(m[h:].sum()) / total, "total": total}


def resolve_aus(engine: AUEngine, aus: Sequence[int]) -> tuple[int, ...]:
    """``aus`` checked against the engine's (empty: all of them); raises ConfigError naming the valid ones."""
    if not aus:
        return tuple(engine.aus)
    unknown = [a for a in aus if a not in engine.aus]
    if unknown:
        raise ConfigError(f"AU {', '.join(map(str, unknown))} is not detected by engine {engine.manifest.name}; "
                          f"choose from --au {','.join(map(str, engine.aus))}")  # fmt: skip
    return tuple(dict.fromkeys(aus))


def largest_face(frame_bgr: np.ndarray, detector: YuNetDetector, what: str = "the frame") -> Box:
    """The largest face box (x, y, w, h) in ``frame_bgr``; raises ConfigError when there is none."""
    faces = detector.detect(frame_bgr)
    if not faces:
        raise ConfigError(f"no face found in {what}; choose another frame with --frames, or a picture with a "
                          f"frontal, well-lit face at least 40 px wide")  # fmt: skip
    return max(faces, key=lambda d: d.box[2] * d.box[3]).box


@dataclass
class FaceInput:
    """The engine's view of one face: RGB crop and (for flow engines) encoded flow image, ``uint8`` (H, W, 3)."""

    crop: np.ndarray
    flow_image: np.ndarray | None
    box: Box


def face_input(engine: AUEngine, frame_bgr: np.ndarray, prev_bgr: np.ndarray | None, box: Box,
               margin: float = 1.3, flow: FlowBackend | None = None) -> FaceInput:
    """Crop ``box`` from ``frame_bgr`` at the engine's size and, for flow engines, the flow from ``prev_bgr``
    (None: the frame itself, zero motion, as the pipeline does on a stream's first frame) to the frame, both
    cropped with ``box``."""
    m = engine.manifest
    size = m.input.height
    crop = cv2.cvtColor(crop_square(frame_bgr, box, margin, size), cv2.COLOR_BGR2RGB)
    flow_image = None
    if m.input.uses_flow:
        backend = flow or create_flow_backend(m.flow.backend)
        cur = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)
        prev = cur if prev_bgr is None else crop_square(cv2.cvtColor(prev_bgr, cv2.COLOR_BGR2GRAY), box, margin, size)
        flow_image = encode_flow(backend.compute(prev, cur), m.flow.encoding, m.flow.clip_fraction)
    return FaceInput(crop, flow_image, box)


def pick_view(engine: AUEngine, crop: np.ndarray, view: int | None = None) -> int:
    """``view`` if given, else the view classifier's choice on ``crop`` (else the manifest's default view)."""
    m = engine.manifest
    if view is not None:
        return view
    probs = engine.classify_view(normalise(crop, m.input)[None])
    return m.default_view if probs is None else int(np.argmax(probs[0]))


def patch_positions(size: int, patch: int, stride: int) -> list[int]:
    """Top-left offsets of the patch along one side of ``size`` px: every ``stride``, the last flush with the edge."""
    if patch > size:
        raise ConfigError(f"patch {patch} px is larger than the engine's {size} px crop; pass --patch {size // 4}")
    pos = list(range(0, size - patch + 1, stride))
    if pos[-1] != size - patch:
        pos.append(size - patch)
    return pos


def still_flow_colour(engine: AUEngine) -> np.ndarray:
    """``uint8`` (3,) RGB colour of zero motion in the engine's flow encoding (the flow half's occluder)."""
    f = engine.manifest.flow
    return encode_flow(np.zeros((1, 1, 2), np.float32), f.encoding, f.clip_fraction)[0, 0]


def occlusion_maps(engine: AUEngine, face: FaceInput, config: ExplainConfig, view: int,
                   progress: Callable[[int], None] | None = None) -> Explanation:
    """Zeiler–Fergus occlusion maps of ``config.aus`` (see the module docstring).

    Runs ``1 + P`` inputs (P = patch positions, twice for flow engines) through ``engine.infer`` in batches of
    ``config.batch``; ``progress(n)`` is called with the inputs done after each batch.
    """
    m = engine.manifest
    spec = m.input
    aus = resolve_aus(engine, config.aus)
    idx = [m.aus.index(a) for a in aus]
    size = spec.height
    pos = [(y, x) for y in patch_positions(size, config.patch, config.stride)
           for x in patch_positions(spec.width, config.patch, config.stride)]
    grey = np.array([round(c) for c in spec.mean], np.uint8)
    still = still_flow_colour(engine) if face.flow_image is not None else None
    parts = ["rgb"] + (["flow"] if face.flow_image is not None and spec.fusion != "rgb" else [])
    if spec.fusion == "flow":
        parts = ["flow"]
    jobs: list[tuple[str, int, int]] = [("base", 0, 0)] + [(p, y, x) for p in parts for y, x in pos]
    probs = np.empty((len(jobs), len(aus)), np.float32)
    p = config.patch
    for start in range(0, len(jobs), config.batch):
        samples = []
        for part, y, x in jobs[start : start + config.batch]:
            rgb, flow = face.crop, face.flow_image
            if part == "rgb":
                rgb = rgb.copy()
                rgb[y : y + p, x : x + p] = grey
            elif part == "flow":
                assert flow is not None and still is not None
                flow = flow.copy()
                flow[y : y + p, x : x + p] = still
            samples.append(compose_input(rgb, flow, spec))
        batch = np.stack(samples)
        out, _ = engine.infer(batch, [view] * len(batch))
        probs[start : start + len(batch)] = out[:, idx]
        if progress is not None:
            progress(len(batch))
    base = probs[0]
    maps: dict[str, np.ndarray] = {}
    for k, part in enumerate(parts):
        total = np.zeros((len(aus), size, spec.width), np.float64)
        count = np.zeros((size, spec.width), np.float64)
        rows = probs[1 + k * len(pos) : 1 + (k + 1) * len(pos)]
        for (y, x), row in zip(pos, rows, strict=True):
            total[:, y : y + p, x : x + p] += (base - row)[:, None, None]
            count[y : y + p, x : x + p] += 1.0
        maps[part] = (total / count).astype(np.float32)
    rgb_map = maps.get("rgb", maps.get("flow"))
    assert rgb_map is not None
    return Explanation("occlusion", aus, base.copy(), face.crop, rgb_map,
                       maps.get("flow") if "rgb" in maps else None, face.flow_image, face.box, view,
                       extra={"patch": config.patch, "stride": config.stride, "inputs": len(jobs)})  # fmt: skip


class GradCam:
    """Grad-CAM through the torch model rebuilt from the bundle's safetensors weights (``[train]`` extra).

    ``threads``: torch intra-op threads (set for the whole process, as torch does; None: left as they are, e.g.
    when the AU path itself runs on the torch runtime). Raises MissingExtraError
    without torch and EngineError when the bundle has no ``.safetensors`` weights for its detectors.
    """

    def __init__(self, engine: AUEngine, threads: int | None = 1) -> None:
        try:
            import torch
        except ImportError as exc:
            raise MissingExtraError("torch", "train") from exc
        from aunets.engines.runtime import load_registry_model

        self._torch = torch
        if threads is not None:
            torch.set_num_threads(threads)
        self.engine = engine
        m = engine.manifest
        blocks = 2 if m.intensity else 1
        self._models: dict[str, Any] = {}
        self._layers: dict[str, Any] = {}
        for name in sorted(set(m.detectors.values())):
            weights = weight_file(m, name, "torch")
            if not weights.endswith(".safetensors"):
                raise EngineError(f"Grad-CAM needs the detector's torch weights ({Path(name).stem}.safetensors), "
                                  f"which engine {m.name} does not have; use --method occlusion")  # fmt: skip
            heads = [h for v, h in m.detector_heads.items() if m.detectors[v] == name]
            n_out = blocks * (1 + max(heads, default=0)) * len(m.aus)
            model = load_registry_model(engine.path / weights, m.architecture, n_out, m.architecture_kwargs, "torch")
            model.eval()
            for prm in model.parameters():
                prm.requires_grad_(False)
            self._models[name] = model
            self._layers[name] = self._cam_layers(model)

    def _cam_layers(self, model: Any) -> list[Any]:
        layers = cam_layers(model, self.engine.manifest.input.tensor_shape)
        if not layers:
            raise EngineError(f"engine {self.engine.manifest.name} has no convolutional map for Grad-CAM; "
                              f"use --method occlusion")  # fmt: skip
        return layers

    def maps(self, face: FaceInput, aus: Sequence[int], view: int) -> Explanation:
        """Grad-CAM maps of ``aus`` (one forward + backward pass for all of them)."""
        torch = self._torch
        m = self.engine.manifest
        spec = m.input
        aus = resolve_aus(self.engine, aus)
        view = view if view in m.detectors else m.default_view
        name = m.detectors[view]
        model, layers = self._models[name], self._layers[name]
        head = m.detector_heads.get(view, 0)
        cols = [head * len(m.aus) + m.aus.index(a) for a in aus]
        x = torch.from_numpy(compose_input(face.crop, face.flow_image, spec)[None]).repeat(len(aus), 1, 1, 1)
        acts: dict[int, Any] = {}
        grads: dict[int, Any] = {}

        def keeper(k: int) -> Callable[[Any, Any, Any], None]:
            def keep(_mod: Any, _inp: Any, out: Any) -> None:
                acts[k] = out
                out.register_hook(lambda g: grads.__setitem__(k, g))
            return keep

        x.requires_grad_(True)  # the weights are frozen: the graph needs one leaf that wants gradients
        hooks = [layer.register_forward_hook(keeper(k)) for k, layer in enumerate(layers)]
        try:
            with torch.enable_grad():
                logits = model(x)
                chosen = logits[torch.arange(len(aus)), torch.tensor(cols)]
                chosen.sum().backward()
        finally:
            for hook in hooks:
                hook.remove()
        _c, h, w = spec.tensor_shape
        total = torch.zeros((len(aus), h, w))
        for k in range(len(layers)):
            act, grad = acts[k].detach(), grads[k].detach()
            cam = torch.relu((torch.relu(grad) * act).sum(dim=1, keepdim=True))
            cam = torch.nn.functional.interpolate(cam, size=(h, w), mode="bilinear", align_corners=False)[:, 0]
            top = cam.amax(dim=(1, 2), keepdim=True)
            total += torch.where(top > 0, cam / top.clamp(min=1e-12), torch.zeros_like(cam))
        full = (total / len(layers)).numpy().astype(np.float32)
        probs = sigmoid(chosen.detach().numpy())
        if spec.fusion == "horizontal":
            rgb, flow = full[:, :, : spec.width], full[:, :, spec.width :]
        else:
            rgb, flow = full, None
        return Explanation("gradcam", aus, probs, face.crop, np.ascontiguousarray(rgb),
                           None if flow is None else np.ascontiguousarray(flow), face.flow_image, face.box, view,
                           extra={"cells": [list(c) for c in dict.fromkeys(tuple(a.shape[2:]) for a in acts.values())],
                                  "layers": len(layers)})  # fmt: skip


def cam_layers(model: Any, input_shape: tuple[int, ...]) -> list[Any]:
    """The modules Grad-CAM reads: the blocks (the children of each stage of every
    :class:`~aunets.engines.nets.detector.StageNet` in ``model``) whose output maps (N, C, h, w) have the two
    coarsest resolutions with h * w > 1, in the order they run; for a model without stages, the last leaf module
    with such an output. ``input_shape``: (C, H, W) of one input."""
    import torch

    from aunets.engines.nets.detector import StageNet

    blocks: list[Any] = []
    for mod in model.modules():
        if isinstance(mod, StageNet):
            for stage in mod.stages.values():
                blocks += list(stage.children()) if isinstance(stage, torch.nn.Sequential) else [stage]
    if not blocks:
        blocks = [mod for mod in model.modules() if not list(mod.children())]
    order: list[tuple[Any, tuple[int, ...]]] = []
    hooks = [mod.register_forward_hook(lambda mod, _i, out: order.append((mod, tuple(out.shape)))
                                       if isinstance(out, torch.Tensor) else None)
             for mod in blocks]  # fmt: skip
    try:
        with torch.no_grad():
            model(torch.zeros((1, *input_shape)))
    finally:
        for h in hooks:
            h.remove()
    spatial = [(mod, shape[2] * shape[3]) for mod, shape in order if len(shape) == 4 and shape[2] * shape[3] > 1]
    if not spatial:
        return []
    if not any(isinstance(mod, StageNet) for mod in model.modules()):
        return [spatial[-1][0]]
    coarsest = sorted({cells for _, cells in spatial})[:2]
    return list(dict.fromkeys(mod for mod, cells in spatial if cells in coarsest))
