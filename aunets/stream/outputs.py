"""Output paths (``--csv``, ``--plot``, ``--stats-json``, ``--record``, ``--config-json``), checked before a
run starts, so a typo costs a one-line error instead of a finished run whose results cannot be saved."""

from __future__ import annotations

import os
from pathlib import Path

from aunets.core.errors import ConfigError

PLOT_SUFFIXES = (".png", ".pdf", ".svg", ".jpg", ".jpeg")


def check_output(path: Path | None, option: str, suffixes: tuple[str, ...] = ()) -> None:
    """Raise :class:`ConfigError` (``OPTION PATH: why; fix``) unless ``path`` can be written: it is not a
    directory, its folder exists or can be created, and the folder (or the file, when it exists) is
    writable. Creates the missing folders, as the writer would. ``suffixes``: the allowed file types."""
    if path is None:
        return
    fix = f"choose another {option} path"
    if suffixes and path.suffix.lower() not in suffixes:
        raise ConfigError(f"{option} {path}: unsupported file type {path.suffix or '(none)'!r}; end it in "
                          f"{' or '.join(suffixes)}")  # fmt: skip
    if path.is_dir():
        raise ConfigError(f"{option} {path} is a directory; give a file name inside it")
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{option} {path}: cannot create the folder {folder} ({exc.strerror or exc}); "
                          f"{fix}") from None
    existed = path.exists()
    try:  # really open it: permissions, read-only file systems and root all give the true answer
        os.close(os.open(path, os.O_WRONLY | (0 if existed else os.O_CREAT | os.O_EXCL), 0o644))
    except OSError as exc:
        raise ConfigError(f"{option} {path}: cannot write it ({exc.strerror or exc}); {fix}") from None
    if not existed:
        path.unlink()


def write_json(path: Path, text: str, option: str) -> None:
    """Write ``text`` (JSON) to ``path``; an I/O error (a full disk) is one :class:`ConfigError` line."""
    try:
        path.write_text(text.rstrip("\n") + "\n", encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write {option} {path}: {exc.strerror or exc}; free disk space or choose "
                          f"another {option} path") from None  # fmt: skip
