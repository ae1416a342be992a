"""Starting a network from other weights: an engine bundle's detector (fine-tuning, ``model.init``) and the
cascade's copy of the frontal head block into every view's block."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aunets.core.errors import ConfigError

if TYPE_CHECKING:
    from torch import nn

log = logging.getLogger(__name__)


def last_linear(model: nn.Module) -> nn.Module:
    """The model's output layer (its last ``nn.Linear`` or 1x1 ``nn.Conv2d``)."""
    import torch
    last = None
    for m in model.modules():
        if isinstance(m, torch.nn.Linear | torch.nn.Conv2d):
            last = m
    if last is None:
        raise ConfigError("the model has no Linear/Conv2d output layer to copy head blocks in")
    return last


def replicate_head_block(model: nn.Module, source_block: int, n_blocks: int, block_size: int) -> None:
    """Copy the output rows of head block ``source_block`` into every block (cascade: views start from
    the frontal head)."""
    import torch
    layer: Any = last_linear(model)
    with torch.no_grad():
        w = layer.weight
        src = slice(source_block * block_size, (source_block + 1) * block_size)
        for b in range(n_blocks):
            if b != source_block:
                dst = slice(b * block_size, (b + 1) * block_size)
                w[dst] = w[src]
                if layer.bias is not None:
                    layer.bias[dst] = layer.bias[src]


def init_from_engine(source: Path, model: nn.Module, presence_width: int) -> None:
    """Start ``model`` from the detector weights of an engine bundle (its ``.safetensors`` twin) or a run's
    ``final/``: every tensor of the same shape is copied; an output layer that is wider (an added intensity
    block) gets the source's rows in its first ``presence_width`` rows and keeps its fresh rows after them."""
    import torch
    from safetensors.torch import load_file

    candidates = [source / "detector.safetensors", *sorted(source.glob("*.safetensors"))]
    file = next((p for p in candidates if p.is_file() and p.name != "view_classifier.safetensors"), None)
    if file is None:
        raise ConfigError(f"model.init {source} holds no detector .safetensors; name an engine bundle built with torch "
                          f"twins (`aunets build-engine`) or a training run's final/ folder")
    state = load_file(str(file))
    own = model.state_dict()
    merged = {}
    for key, value in own.items():
        src = state.get(key)
        if src is None:
            raise ConfigError(f"model.init {file}: no tensor {key!r}; it was trained with another architecture")
        if src.shape == value.shape:
            merged[key] = src
        elif src.shape[0] == presence_width and src.shape[1:] == value.shape[1:] and value.shape[0] > presence_width:
            widened = value.clone()
            with torch.no_grad():
                widened[:presence_width] = src
            merged[key] = widened
        else:
            raise ConfigError(f"model.init {file}: {key} is {tuple(src.shape)}, the model needs {tuple(value.shape)}; "
                              f"use the same architecture, AUs and views")
    model.load_state_dict(merged, strict=True)
    log.info("initialised from %s", file)
