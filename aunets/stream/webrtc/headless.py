"""Headless Chromium with a fake camera playing a ``.y4m`` file: for the browser tests, the latency benchmark
and screenshots. Needs Debian's ``chromium`` and the Python ``playwright`` package (its driver only: never
``playwright install``, the system Chromium is used)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from aunets.core.errors import ConfigError, MissingExtraError

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")


def find_chromium() -> Path | None:
    """``$AUNETS_CHROMIUM``, else the first Chromium on this machine, else None."""
    env = os.environ.get("AUNETS_CHROMIUM")
    if env:
        return Path(env)
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return Path(found)
    return next((Path(p) for p in CHROMIUM_CANDIDATES if Path(p).exists()), None)


def chromium_args(y4m: Path) -> list[str]:
    """Flags: fake camera from ``y4m`` without a permission prompt, no background network use, root-safe.

    No ICE flag is needed: once a page has camera permission Chromium offers its host candidates as plain
    addresses, not mDNS names, and the server offers ``127.0.0.1`` (see :mod:`aunets.stream.webrtc.ice`)."""
    return [
        "--no-sandbox",
        "--disable-gpu",
        "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream",
        f"--use-file-for-fake-video-capture={y4m}",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--autoplay-policy=no-user-gesture-required",
    ]


def launch_chromium(playwright: object, y4m: Path, user_data_dir: Path, headless: bool = True) -> object:
    """A persistent Playwright browser context (fresh ``user_data_dir``) on the system Chromium."""
    executable = find_chromium()
    if executable is None:
        raise ConfigError("no Chromium found: apt-get install -y chromium (or set AUNETS_CHROMIUM)")
    try:
        chromium = playwright.chromium  # type: ignore[attr-defined]
    except AttributeError:
        raise MissingExtraError("playwright", "dev") from None
    return chromium.launch_persistent_context(
        str(user_data_dir),
        executable_path=str(executable),
        headless=headless,
        args=chromium_args(y4m),
        viewport={"width": 1400, "height": 820},
    )
