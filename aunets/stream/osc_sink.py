"""Open Sound Control output (extra ``[osc]``, python-osc): AU values and events as OSC messages over UDP, for
Max/MSP, Pure Data, TouchDesigner, Unity/VR and the like.

One message per address (no bundles, so Pure Data's ``[oscparse]`` reads every one), sent to ``HOST:PORT``:

- ``/aunets/au/AUxx`` ``f smoothed, i state, f probability, f intensity, i track``: one per AU per face per frame.
  ``smoothed``: the probability after calibration and the sliding median (0..1); ``state``: the on/off state (0/1,
  as ``au.frame``'s ``state``); ``probability``: the raw one (0..1); ``intensity``: 0..5, -1 when the engine has
  no intensity output; ``track``: the face's track id.
- ``/aunets/event/AUxx`` ``s type, i track, f peak_probability, f duration_s``: an onset or offset (``type``
  ``"onset"`` or ``"offset"``, as ``au.event``).
- ``/aunets/face`` ``i track, i frame, f confidence, f x, f y, f w, f h``: one per face per frame, before its AUs
  (box in frame pixels); ``/aunets/noface`` ``i frame``: a frame without a face.
- ``/aunets/status`` ``f fps, i frames, i dropped``: once a second.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from aunets.core.au import au_key
from aunets.core.errors import ConfigError, MissingExtraError

if TYPE_CHECKING:
    from aunets.core.results import FaceResult

log = logging.getLogger(__name__)

PREFIX = "/aunets"


def parse_osc_target(text: str) -> tuple[str, int, str | None]:
    """``HOST:PORT`` -> (host, port, warning or None). Raises :class:`ConfigError` naming the fix. The warning
    says that a host other than loopback receives face-derived data, unauthenticated (UDP)."""
    host, sep, port_text = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ConfigError(f"--osc {text!r}: expected HOST:PORT with a port 1..65535, e.g. 127.0.0.1:9000")
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    warning = None if loopback else (f"--osc {text} sends face-derived data, unauthenticated, over UDP to another "
                                     f"machine")  # fmt: skip
    return host, int(port_text), warning


def require_python_osc() -> None:
    """Raise :class:`MissingExtraError` now (before a run starts) when python-osc is not installed."""
    try:
        import pythonosc  # noqa: F401
    except ImportError as exc:
        raise MissingExtraError("python-osc", "osc") from exc


class OscSender:
    """A :class:`~aunets.stream.publish.Sink` sending OSC messages to ``host:port`` (UDP; see the module)."""

    def __init__(self, host: str, port: int, aus: Sequence[int]) -> None:
        require_python_osc()
        from pythonosc.udp_client import SimpleUDPClient

        self.aus = tuple(aus)
        self._client = SimpleUDPClient(host, port)
        self._addresses = {a: (f"{PREFIX}/au/{au_key(a)}", f"{PREFIX}/event/{au_key(a)}") for a in self.aus}
        log.info("OSC to %s:%d", host, port)

    def _send(self, address: str, values: list[Any]) -> None:
        try:
            self._client.send_message(address, values)
        except OSError as exc:  # nobody listening is no error for UDP; a full buffer or no route: logged, dropped
            log.debug("OSC %s not sent: %s", address, exc)

    def publish_results(self, results: Sequence[FaceResult]) -> None:
        for r in results:
            if r.no_face:
                self._send(f"{PREFIX}/noface", [r.frame_index])
            elif not r.events_only:
                track = int(r.track_id or 0)
                x, y, w, h = (float(v) for v in r.box) if r.box is not None else (0.0, 0.0, 0.0, 0.0)
                self._send(f"{PREFIX}/face", [track, r.frame_index, float(r.confidence), x, y, w, h])
                for a in self.aus:
                    self._send(self._addresses[a][0], [float(r.smoothed[a]), int(r.states[a]),
                                                       float(r.probabilities[a]), float(r.intensity.get(a, -1.0)),
                                                       track])  # fmt: skip
            for e in r.events:
                self._send(self._addresses[e.au][1], [e.kind, int(e.track_id), float(e.peak_probability),
                                                      float(e.duration_s)])  # fmt: skip

    def publish_status(self, status: Mapping[str, Any]) -> None:
        self._send(f"{PREFIX}/status", [float(status.get("fps") or 0.0), int(status.get("frames", 0)),
                                        int(status.get("dropped", 0))])  # fmt: skip

    def close(self) -> None:
        self._client._sock.close()
