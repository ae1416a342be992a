"""Which hosts ``aunets serve`` answers: the loopback names, and the rule that other addresses need HTTPS."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from urllib.parse import urlsplit

from aunets.core.errors import ConfigError

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def host_name(value: str) -> str:
    """The host name of a ``Host`` header, an origin or a bare name, lower case, without port or brackets."""
    netloc = urlsplit(value).netloc if "://" in value else value
    name = urlsplit(f"//{netloc}").hostname
    return (name or "").lower()


def is_loopback(host: str) -> bool:
    if host_name(host) == "localhost":
        return True
    try:
        return ipaddress.ip_address(host_name(host)).is_loopback
    except ValueError:
        return False


def check_serve_host(host: str, certfile: Path | None) -> None:
    """Refuse to serve plain HTTP to other machines (browsers give the camera only to https pages or
    localhost, and the page's offers would cross the network unencrypted)."""
    if not is_loopback(host) and certfile is None:
        raise ConfigError(f"--host {host} serves other machines and needs HTTPS: pass --cert cert.pem --key key.pem "
                          f"(docs/webrtc.md shows how to make a pair), or use --host 127.0.0.1")  # fmt: skip
