"""The on-disk cache of compiled GPU-path artefacts (``torch.compile``/inductor kernels, Triton binaries).

PyTorch keeps what ``torch.compile`` produced between runs when it is told where: :func:`use_compile_cache`
points inductor (``TORCHINDUCTOR_CACHE_DIR``) and Triton (``TRITON_CACHE_DIR``) at one folder the user can
see, so a second run of the GPU frame path skips most of the compilation. ``aunets cache`` shows the folder
and ``aunets cache --clear`` empties it. Standard library only.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

ENV_VAR = "AUNETS_CACHE_DIR"
"""Overrides the cache root (default ``$XDG_CACHE_HOME/aunets`` or ``~/.cache/aunets``)."""


def cache_root() -> Path:
    """The root of aunets' caches: ``$AUNETS_CACHE_DIR``, else ``$XDG_CACHE_HOME/aunets``, else ``~/.cache/aunets``."""
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "aunets"


def compile_cache_dir() -> Path:
    """Where compiled torch artefacts are kept: ``cache_root()/torch-compile``."""
    return cache_root() / "torch-compile"


def use_compile_cache() -> Path:
    """Point inductor's and Triton's caches at :func:`compile_cache_dir` (unless the user set them already);
    call before the first ``torch.compile`` runs. Returns the inductor cache folder in use."""
    folder = compile_cache_dir()
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(folder / "inductor"))
    os.environ.setdefault("TRITON_CACHE_DIR", str(folder / "triton"))
    used = Path(os.environ["TORCHINDUCTOR_CACHE_DIR"])
    log.debug("torch compile cache: %s", used)
    return used


@dataclass(frozen=True)
class CacheUsage:
    """What a cache folder holds: ``files`` count and ``bytes`` in all (0 and 0 when it does not exist)."""

    path: Path
    files: int
    bytes: int


def usage(folder: Path | None = None) -> CacheUsage:
    """Files and bytes under ``folder`` (default: :func:`compile_cache_dir`)."""
    folder = folder or compile_cache_dir()
    files = total = 0
    if folder.is_dir():
        for path in folder.rglob("*"):
            if path.is_file() and not path.is_symlink():
                files += 1
                total += path.stat().st_size
    return CacheUsage(folder, files, total)


def clear(folder: Path | None = None) -> CacheUsage:
    """Delete ``folder`` (default: :func:`compile_cache_dir`) and everything in it; returns what it held."""
    folder = folder or compile_cache_dir()
    held = usage(folder)
    if folder.is_dir():
        shutil.rmtree(folder)
        log.info("removed %s (%d files, %d bytes)", folder, held.files, held.bytes)
    return held
