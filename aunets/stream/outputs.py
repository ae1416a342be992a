"""Output paths (``--csv``, ``--plot``, ``--stats-json``, ``--record``, ``--config-json``, ``batch --out``): one
rule for all of them, applied before a run starts, so a typo costs a one-line error instead of a destroyed input
or a finished run whose results cannot be saved.

* :func:`check_output`: the path can be written (its folder exists or is created, permissions, a regular file
  and not this command's own standard output or a terminal, pipe or device).
* :func:`check_paths`: every output checked, then compared with the others and with every input, by resolved
  path and by file identity (device, inode: hard links and symlinks count), before anything is opened.
* :class:`OutputLock`: a second writer of the same output is refused (``fcntl.flock`` on ``PATH.lock`` beside
  it), never raced; the kernel drops the lock when its process dies, even by SIGKILL.
* :func:`replace_when_whole` / :func:`write_json`: whole-file outputs (plots, JSON) are written to a temporary
  file beside the target and renamed over it when complete, so a crash, a full disk or a concurrent writer
  never leaves a torn, empty or foreign file under the name.

The CSV is the exception to the last rule: it is written in place, a whole frame's rows per ``write`` (see
:mod:`aunets.stream.csv_sink`), so a run killed by SIGKILL still leaves every row it handed to the writer under
the name the user gave.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType

from aunets.core.errors import ConfigError

PLOT_SUFFIXES = (".png", ".pdf", ".svg", ".jpg", ".jpeg")

Named = tuple[str, Path | None]
"""``(option, path)``: an option as the user typed it (``--csv``) and its value (None: not given)."""


def _own_streams() -> list[os.stat_result]:
    found = []
    for fd in (1, 2):
        with contextlib.suppress(OSError):
            found.append(os.fstat(fd))
    return found


def check_output(path: Path | None, option: str, suffixes: tuple[str, ...] = ()) -> None:
    """Raise :class:`ConfigError` (``OPTION PATH: why; fix``) unless ``path`` can be written: it is not a
    directory, a terminal, pipe, device or this command's own stdout/stderr; its folder exists or can be
    created; and the folder (or the file, when it exists) is writable. Creates the missing folders, as the
    writer would. ``suffixes``: the allowed file types."""
    if path is None:
        return
    fix = f"choose another {option} path"
    if suffixes and path.suffix.lower() not in suffixes:
        raise ConfigError(f"{option} {path}: unsupported file type {path.suffix or '(none)'!r}; end it in "
                          f"{' or '.join(suffixes)}")  # fmt: skip
    if path.is_dir():
        raise ConfigError(f"{option} {path} is a directory; give a file name inside it")
    try:
        st: os.stat_result | None = path.stat()
    except OSError:
        st = None
    if st is not None and not stat.S_ISREG(st.st_mode):
        # outputs are seeked, cut back and renamed into place, and a sidecar is written beside them
        raise ConfigError(f"{option} {path} is not a regular file (a terminal, pipe or device); give the path of "
                          f"a file to write")  # fmt: skip
    if st is not None and any(os.path.samestat(st, s) for s in _own_streams()):
        raise ConfigError(f"{option} {path} is this command's own standard output or error (where its summary "
                          f"goes); {fix}")  # fmt: skip
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{option} {path}: cannot create the folder {folder} ({exc.strerror or exc}); "
                          f"{fix}") from None
    existed = st is not None
    try:  # really open it: permissions, read-only file systems and root all give the true answer
        os.close(os.open(path, os.O_WRONLY | (0 if existed else os.O_CREAT | os.O_EXCL), 0o644))
    except OSError as exc:
        raise ConfigError(f"{option} {path}: cannot write it ({exc.strerror or exc}); {fix}") from None
    if not existed:
        path.unlink()


def same_file(a: Path, b: Path) -> bool:
    """``a`` and ``b`` name one file: the same resolved path, or (both existing) the same device and inode."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def check_paths(outputs: Sequence[Named], inputs: Sequence[Named] = ()) -> None:
    """Check every output (:func:`check_output`), then refuse an output that is an input or another output,
    with one line naming both options. Run before anything is opened or created."""
    given = [(o, p) for o, p in outputs if p is not None]
    for i, (option, path) in enumerate(given):
        for in_option, in_path in inputs:
            if in_path is not None and same_file(path, in_path):
                raise ConfigError(f"{option} {path} is the {in_option} being read: writing it would destroy it; "
                                  f"choose another {option} path")  # fmt: skip
        for other_option, other in given[:i]:
            if same_file(path, other):
                raise ConfigError(f"{option} {path} and {other_option} {other} are the same file: one would "
                                  f"overwrite the other; give each its own path")  # fmt: skip
        check_output(path, option)


def lock_path(path: Path) -> Path:
    return path.with_name(path.name + ".lock")


class OutputLock:
    """Exclusive claim on ``path`` for this process: ``fcntl.flock`` on ``PATH.lock`` (holding this
    process's id), removed on release. A second claim, from any process, raises :class:`ConfigError` naming
    the holder. A lock file left by a killed process holds no lock (the kernel dropped it) and is reused."""

    def __init__(self, path: Path, option: str) -> None:
        self.path = path
        self.option = option
        self.lock = lock_path(path)
        self._fd: int | None = None

    def acquire(self) -> OutputLock:
        while True:
            try:
                fd = os.open(self.lock, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise ConfigError(f"{self.option} {self.path}: cannot create its lock file {self.lock} "
                                  f"({exc.strerror or exc}); choose another {self.option} path") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
                os.close(fd)
                raise ConfigError(f"{self.option} {self.path} is being written by another aunets process (pid "
                                  f"{holder}); wait for it to end or choose another {self.option} path") from None
            try:  # the holder before us may have removed the file after we opened it: lock the one on disk
                if os.path.samestat(os.fstat(fd), os.stat(self.lock)):
                    break
            except FileNotFoundError:
                pass
            os.close(fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.unlink(self.lock)  # while still locked: a waiting process re-checks which file it holds
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.release()


@contextlib.contextmanager
def lock_outputs(outputs: Sequence[Named]) -> Iterator[None]:
    """Hold an :class:`OutputLock` on every given output for the ``with`` block."""
    with contextlib.ExitStack() as stack:
        for option, path in outputs:
            if path is not None:
                stack.enter_context(OutputLock(path, option))
        yield


@contextlib.contextmanager
def replace_when_whole(path: Path, option: str) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (same folder and suffix) to write; when the block ends without
    an error the file is synced and renamed over ``path`` (atomic: readers see the old file or the new one,
    whole). On any error the temporary file is removed and ``path`` is left as it was; an ``OSError`` (a full
    disk) becomes one :class:`ConfigError` line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with tmp.open("rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as exc:
        raise ConfigError(f"cannot write {option} {path}: {exc.strerror or exc}; free disk space or choose "
                          f"another {option} path") from None  # fmt: skip
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_json(path: Path, text: str, option: str) -> None:
    """Write ``text`` (JSON) to ``path`` whole or not at all (:func:`replace_when_whole`); an I/O error (a full
    disk) is one :class:`ConfigError` line and leaves ``path`` as it was."""
    with replace_when_whole(path, option) as tmp:
        tmp.write_text(text.rstrip("\n") + "\n", encoding="utf-8")
