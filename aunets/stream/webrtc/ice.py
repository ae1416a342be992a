"""ICE configuration: the ICE servers handed to both peers, and the server's host candidates.

No STUN or TURN by default (``iceServers: []``): loopback and LAN sessions need none, and aiortc would
otherwise fall back to a public STUN server. aioice gathers one host candidate per interface address but
always leaves out ``127.0.0.1`` (``aioice.ice.get_host_addresses``, aioice 0.9-0.13, with no option to keep
it), so a server bound to loopback would offer no candidate the browser can reach without a network.
:func:`use_host_addresses` replaces that function, process-wide, by one that returns the addresses this
server chose: only ``127.0.0.1`` when it is bound to loopback (media then never leaves the machine), the
bound address when bound to one, or every interface address plus loopback when bound to ``0.0.0.0``.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aunets.core.errors import ConfigError, MissingExtraError

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class IceServer:
    """One STUN or TURN server as the browser's ``RTCIceServer``: ``urls`` like ``stun:host:3478`` or
    ``turn:host:3478?transport=udp``; ``username``/``credential`` for TURN."""

    urls: str
    username: str | None = None
    credential: str | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"urls": self.urls}
        if self.username is not None:
            data["username"] = self.username
        if self.credential is not None:
            data["credential"] = self.credential
        return data

    @classmethod
    def parse(cls, text: str) -> IceServer:
        """``URL`` or ``URL,USERNAME,CREDENTIAL`` (the ``--ice-server`` option)."""
        parts = text.split(",")
        if not parts[0].startswith(("stun:", "stuns:", "turn:", "turns:")) or len(parts) not in (1, 3):
            raise ConfigError(
                f"bad ICE server {text!r}: use stun:HOST:PORT, or turn:HOST:PORT,USERNAME,CREDENTIAL "
                f"(e.g. --ice-server turn:turn.example.org:3478,alice,secret)"
            )
        if len(parts) == 3:
            return cls(parts[0], parts[1], parts[2])
        return cls(parts[0])


def host_addresses_for(bind_host: str, interface_addresses: Sequence[str]) -> list[str]:
    """The host candidate addresses of a server whose HTTP side is bound to ``bind_host``.

    ``interface_addresses``: what aioice found (it never includes ``127.0.0.1``).
    """
    if bind_host in ("localhost", "") or _is_loopback(bind_host):
        return [LOOPBACK]
    if bind_host in ("0.0.0.0", "::"):
        return [*interface_addresses, LOOPBACK]
    return [bind_host]


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_original: Callable[[bool, bool], list[str]] | None = None


def use_host_addresses(bind_host: str) -> list[str]:
    """Make aioice gather host candidates on :func:`host_addresses_for` ``(bind_host, ...)``; returns them.

    Process-wide (aioice has a single module function); calling it again replaces the previous choice.
    """
    try:
        import aioice.ice as aioice_ice
    except ImportError:
        raise MissingExtraError("aiortc", "webrtc") from None
    global _original
    if _original is None:
        original = getattr(aioice_ice, "get_host_addresses", None)
        if original is None:
            raise ConfigError(
                "this aioice version has no aioice.ice.get_host_addresses to extend with the loopback address; "
                "install a supported one: pip install 'aioice>=0.9,<0.14'"
            )
        _original = original
    base = _original

    def get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        found = base(use_ipv4, use_ipv6)
        chosen = host_addresses_for(bind_host, found)
        return [a for a in chosen if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]

    aioice_ice.get_host_addresses = get_host_addresses
    addresses = get_host_addresses(True, False)
    log.info("ICE host candidates on %s", ", ".join(addresses))
    return addresses


def rtc_configuration(servers: Sequence[IceServer]) -> Any:
    """An aiortc ``RTCConfiguration`` with exactly ``servers`` (an empty list, never aiortc's default STUN)."""
    try:
        from aiortc import RTCConfiguration, RTCIceServer
    except ImportError:
        raise MissingExtraError("aiortc", "webrtc") from None
    return RTCConfiguration(
        iceServers=[RTCIceServer(urls=s.urls, username=s.username, credential=s.credential) for s in servers]
    )
