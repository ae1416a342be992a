"""Headless Firefox driven over WebDriver BiDi, for the browser tests: Debian's ``firefox-esr`` with its fake
camera, and the ``websockets`` package (``[dev]`` extra) as the BiDi client; no geckodriver is needed (Firefox
speaks BiDi itself when started with ``--remote-debugging-port``).

The fake camera is Firefox's own test pattern (``media.navigator.streams.fake``: a moving colour frame at 30
frames/s, no face), so a page gets ``no_face`` results at the camera's rate. Firefox neither gathers loopback ICE
candidates nor shows its host addresses to a page without a real camera grant (it sends mDNS names, which a
server on 127.0.0.1 cannot resolve), so :data:`PREFS` sets the two about:config preferences a user on the same
machine sets (``docs/webrtc.md``).
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from aunets.core.errors import ConfigError, MissingExtraError

FIREFOX_CANDIDATES = ("firefox-esr", "firefox")
PREFS: dict[str, Any] = {
    "media.navigator.streams.fake": True,
    "media.navigator.permission.disabled": True,
    "media.autoplay.default": 0,
    "media.peerconnection.ice.loopback": True,
    "media.peerconnection.ice.obfuscate_host_addresses": False,
    "browser.shell.checkDefaultBrowser": False,
    "datareporting.policy.dataSubmissionEnabled": False,
    "app.update.disabledForTesting": True,
}


def find_firefox() -> Path | None:
    """The first Firefox on this machine (Debian's ``firefox-esr`` first), else None."""
    for name in FIREFOX_CANDIDATES:
        found = shutil.which(name)
        if found:
            return Path(found)
    return None


class FirefoxBidi:
    """A headless Firefox with a fresh profile and one BiDi session. Async context manager::

        async with FirefoxBidi() as ff:
            await ff.navigate(url)
            value = await ff.evaluate("document.title")
    """

    def __init__(self, width: int = 1024, height: int = 768, start_timeout_s: float = 60.0) -> None:
        self.width, self.height = width, height
        self.start_timeout_s = start_timeout_s
        self._proc: subprocess.Popen[str] | None = None
        self._ws: Any = None
        self._next = 0
        self.context = ""
        self._profile = ""

    async def __aenter__(self) -> FirefoxBidi:
        try:
            import websockets
        except ImportError as exc:
            raise MissingExtraError("websockets", "dev") from exc
        executable = find_firefox()
        if executable is None:
            raise ConfigError("no Firefox found: apt-get install -y firefox-esr")
        self._profile = tempfile.mkdtemp(prefix="aunets-firefox-")
        Path(self._profile, "user.js").write_text(
            "".join(f'user_pref("{k}", {json.dumps(v)});\n' for k, v in PREFS.items()), encoding="utf-8")
        self._proc = subprocess.Popen(
            [str(executable), "--headless", "--no-remote", "--profile", self._profile, "--remote-debugging-port", "0"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
        url = self._bidi_url()
        self._ws = await websockets.connect(url + "/session", max_size=None)
        await self.command("session.new", {"capabilities": {}})
        tree = await self.command("browsingContext.getTree", {})
        self.context = tree["contexts"][0]["context"]
        await self.command("browsingContext.setViewport",
                           {"context": self.context, "viewport": {"width": self.width, "height": self.height}})
        return self

    def _bidi_url(self) -> str:
        assert self._proc is not None and self._proc.stderr is not None
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            line = self._proc.stderr.readline()
            if not line and self._proc.poll() is not None:
                break
            found = re.search(r"WebDriver BiDi listening on (ws://\S+)", line)
            if found:  # keep reading its log, so a full pipe never blocks Firefox
                threading.Thread(target=self._proc.stderr.read, name="firefox-log", daemon=True).start()
                return found.group(1)
        raise ConfigError("Firefox did not start its WebDriver BiDi server; run firefox-esr --headless by hand")

    async def command(self, method: str, params: dict[str, Any]) -> Any:
        """Send one BiDi command and return its ``result`` (events in between are skipped)."""
        self._next += 1
        await self._ws.send(json.dumps({"id": self._next, "method": method, "params": params}))
        while True:
            reply = json.loads(await self._ws.recv())
            if reply.get("id") == self._next:
                if reply.get("type") == "error":
                    raise RuntimeError(f"{method}: {reply.get('error')}: {reply.get('message')}")
                return reply["result"]

    async def navigate(self, url: str) -> None:
        await self.command("browsingContext.navigate", {"context": self.context, "url": url, "wait": "complete"})

    async def evaluate(self, expression: str) -> Any:
        """The JSON value of ``expression`` in the page (wrap objects in ``JSON.stringify``)."""
        result = await self.command("script.evaluate", {"expression": expression, "awaitPromise": True,
                                                        "target": {"context": self.context}})  # fmt: skip
        if result.get("type") == "exception":
            raise RuntimeError(f"page error: {result['exceptionDetails'].get('text')}")
        return result["result"].get("value")

    async def screenshot(self) -> bytes:
        import base64

        shot = await self.command("browsingContext.captureScreenshot", {"context": self.context})
        return base64.b64decode(shot["data"])

    async def __aexit__(self, *exc: object) -> None:
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=5)
        shutil.rmtree(self._profile, ignore_errors=True)
