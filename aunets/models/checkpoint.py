"""Checkpoints (model, Adam state and torch RNG, written atomically, so a killed run resumes) and weight files
(safetensors)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from torch import nn


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def save_checkpoint(directory: Path, model: nn.Module, optimizer: torch.optim.Optimizer | None,
                    counters: dict[str, Any]) -> None:
    """``last.safetensors`` (model.*, optim.<param>.<state>, rng.torch) + ``last.json`` (counters)."""
    import torch
    from safetensors.torch import save

    tensors: dict[str, Any] = {f"model.{k}": v.detach().cpu().contiguous() for k, v in
                                        model.state_dict().items()}
    if optimizer is not None:
        for idx, state in optimizer.state_dict()["state"].items():
            for key, value in state.items():
                t = value if isinstance(value, torch.Tensor) else torch.tensor(value)
                tensors[f"optim.{idx}.{key}"] = t.detach().cpu().contiguous()
    tensors["rng.torch"] = torch.get_rng_state()
    directory.mkdir(parents=True, exist_ok=True)
    _atomic_write_bytes(directory / "last.safetensors", save(tensors))
    _atomic_write_bytes(directory / "last.json", json.dumps(counters, indent=1).encode())


def load_checkpoint(directory: Path, model: nn.Module, optimizer: torch.optim.Optimizer | None
                    ) -> dict[str, Any] | None:
    """Restore what :func:`save_checkpoint` wrote; returns the counters (None when there is no checkpoint)."""
    if not (directory / "last.json").is_file():
        return None
    import torch
    from safetensors.torch import load_file

    tensors = load_file(str(directory / "last.safetensors"))
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")}, strict=True)
    if optimizer is not None:
        sd = optimizer.state_dict()
        state: dict[int, dict[str, Any]] = {}
        for key, value in tensors.items():
            if key.startswith("optim."):
                _, idx, name = key.split(".", 2)
                state.setdefault(int(idx), {})[name] = value
        sd["state"] = state
        optimizer.load_state_dict(sd)
    torch.set_rng_state(tensors["rng.torch"])
    counters: dict[str, Any] = json.loads((directory / "last.json").read_text(encoding="utf-8"))
    return counters


def save_weights(path: Path, model: nn.Module) -> None:
    from safetensors.torch import save

    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write_bytes(path, save({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}))


def load_weights(path: Path, model: nn.Module, strict: bool = True) -> None:
    from safetensors.torch import load_file

    state = load_file(str(path))
    if not strict:
        own = model.state_dict()
        state = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(state, strict=strict)
