"""The one shutdown path of ``aunets run``, ``process`` and ``serve``: SIGINT, SIGTERM and SIGHUP (Ctrl-C,
``kill``, ``systemctl stop``, ``kill -TERM -PGID``, a closed terminal) ask the run to stop.

The first signal only sets :attr:`StopSignals.event` (and calls ``on_stop``): the streaming loop sees it
between two frames and ends as if the source had ended, so the pipeline is flushed, every CSV row is
written, the capture process is joined, shared memory is unlinked and the summary (and ``--stats-json``)
is written. A second signal raises :class:`KeyboardInterrupt` for a run that does not stop by itself; the
``finally`` blocks still close every output. The capture process ignores these signals (its parent stops
it) and exits by itself when the parent dies (see :mod:`aunets.stream.capture`).
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

log = logging.getLogger(__name__)

STOP_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class StopSignals:
    """Context manager: while active, the signals in :data:`STOP_SIGNALS` set :attr:`event` (main thread
    only). :attr:`signum` is the first signal received (None: none). ``on_stop`` runs in the handler, so it
    must be async-signal-safe in spirit (e.g. ``loop.call_soon_threadsafe``)."""

    def __init__(self, on_stop: Callable[[], None] | None = None) -> None:
        self.event = threading.Event()
        self.signum: int | None = None
        self.on_stop = on_stop
        self._previous: dict[int, Any] = {}

    @property
    def name(self) -> str:
        """Name of the signal that stopped the run (``SIGTERM``), or an empty string."""
        return signal.Signals(self.signum).name if self.signum is not None else ""

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.event.is_set():
            raise KeyboardInterrupt  # a second signal: stop now
        self.signum = signum
        self.event.set()
        if self.on_stop is not None:
            self.on_stop()

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                if signal.getsignal(sig) is signal.SIG_IGN:
                    continue  # ignored on purpose (nohup, a background job): keep it so
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()


def ignore_stop_signals() -> None:
    """In a child process: leave stopping to the parent (no traceback on Ctrl-C, no death while it holds a
    lock the parent waits on)."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
