"""``aunets serve``'s saliency overlay and occlusion sheet: the real page in headless Chromium (the toggle is
clicked and the overlay observed on the canvas), and the overlay's newest-frame-only scheduling."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import CLIP
from tests.test_webrtc_browser import _require_browser, wait_for


def _page(page: Any) -> dict[str, Any]:
    return dict(page.evaluate(
        """() => { const s = window.aunets, m = s.saliency.last, c = document.getElementById('overlay');
          let alpha = null;
          if (m && s.latestSize[0]) {
            const [fw, fh] = s.latestSize, [x, y, side] = m.window;
            alpha = c.getContext('2d').getImageData(Math.round((x + side / 2) * c.width / fw),
                                                    Math.round((y + side / 2) * c.height / fh), 1, 1).data[3];
          }
          return {results: s.results, session: s.session || null, on: s.saliency.on, au: s.saliency.au,
                  count: s.saliency.count, drawn: s.saliency.drawn, lastAu: m ? m.au : null, alpha,
                  window: m ? m.window : null, grid: m ? m.grid : null, mapLen: m ? m.map.length : 0,
                  rate: document.getElementById('saliency-rate').textContent,
                  disabled: document.getElementById('saliency-on').disabled,
                  options: document.querySelectorAll('#saliency-au option').length,
                  note: document.getElementById('saliency-note').textContent,
                  sheet: s.sheet.count, sheetError: s.sheet.error,
                  sheetWidth: document.getElementById('sheet-img').naturalWidth,
                  sheetHidden: document.getElementById('sheet-figure').hidden}; }"""
    ))  # fmt: skip


async def _sessions(server: Any) -> dict[str, Any]:
    return dict(server.sessions)


@pytest.mark.slow
def test_overlay_toggle_and_occlusion_sheet_in_the_browser(tmp_path: Path) -> None:
    """Click the toggle: Grad-CAM maps of the chosen AU arrive and are drawn over the face; choose another AU:
    its maps come; untoggle: the overlay goes and the server stops computing; click the sheet button: the
    occlusion sheet of the current frame appears as an image."""
    pytest.importorskip("torch")
    _require_browser()
    from playwright.sync_api import sync_playwright

    from aunets.stream.webrtc.headless import launch_chromium
    from aunets.stream.webrtc.server import BackgroundServer, ServeConfig
    from aunets.stream.webrtc.y4m import video_to_y4m

    y4m = tmp_path / "face.y4m"
    video_to_y4m(CLIP, y4m, max_frames=100, size=(640, 360))
    with BackgroundServer(ServeConfig(port=0, pub=None)) as bg, sync_playwright() as pw:
        context: Any = launch_chromium(pw, y4m, tmp_path / "profile")
        try:
            page = context.new_page()
            page.goto(bg.url)
            wait_for(lambda: _page(page)["results"] >= 10, 60, "first AU results")
            state = _page(page)
            assert not state["disabled"] and state["options"] == 12 and state["count"] == 0
            session = bg.call(_sessions, bg.server)[state["session"]]
            assert session.saliency.au is None and session.saliency.sent == 0

            page.check("#saliency-on")
            wait_for(lambda: _page(page)["count"] >= 3 and _page(page)["drawn"], 60, "three overlay maps drawn")
            state = _page(page)
            assert state["on"] and state["au"] == "AU12" and state["lastAu"] == "AU12"
            assert state["mapLen"] == state["grid"] ** 2 and state["window"][2] > 50
            assert state["alpha"] is not None and state["alpha"] > 0, "no heat drawn at the face's centre"
            assert state["rate"].endswith(tuple("0123456789")) and "/s" in state["rate"]
            assert session.saliency.au == 12 and session.saliency.sent >= 3

            page.select_option("#saliency-au", "AU01")
            wait_for(lambda: _page(page)["lastAu"] == "AU01", 30, "maps of the newly chosen AU")
            assert session.saliency.au == 1

            page.uncheck("#saliency-on")
            wait_for(lambda: not _page(page)["drawn"], 10, "the overlay to go")
            time.sleep(1.0)  # a map that was being computed may still land (and is ignored by the page)
            sent = session.saliency.sent
            time.sleep(2.0)
            assert session.saliency.sent == sent and session.saliency.au is None, "maps still computed when off"
            state = _page(page)
            assert not state["on"] and state["alpha"] in (None, 0)

            page.click("#sheet")
            wait_for(lambda: _page(page)["sheet"] >= 1 or _page(page)["sheetError"], 120, "the occlusion sheet")
            state = _page(page)
            assert state["sheetError"] is None and not state["sheetHidden"] and state["sheetWidth"] >= 700
            page.screenshot(path=str(tmp_path / "sheet.png"))
        finally:
            context.close()


def test_overlay_unavailable_without_torch_says_why(monkeypatch: pytest.MonkeyPatch, tiny_engine: Path) -> None:
    import importlib.util

    from aunets.engines.engine import load_engine
    from aunets.stream.webrtc import saliency

    engine = load_engine(tiny_engine)
    assert "torch weights (.safetensors)" in (saliency.unavailable_reason(engine) or "")
    real = importlib.util.find_spec
    monkeypatch.setattr(saliency.importlib.util, "find_spec", lambda name: None if name == "torch" else real(name))
    assert saliency.unavailable_reason(engine) == "the saliency overlay needs torch: pip install -e '.[train]'"

    sent: list[dict[str, Any]] = []
    state = saliency.SessionSaliency(saliency.SaliencyService(engine), sent.append)
    state.configure({"type": "saliency", "au": "AU12"})
    assert state.au is None and sent and "needs torch" in sent[0]["error"]


class _SlowService:
    """A stand-in service: each map takes 50 ms; records which frames were computed."""

    def __init__(self) -> None:
        self.reason = None
        self.engine = type("E", (), {"aus": (1, 12)})()
        self.done: list[int] = []

    async def run(self, fn: Any, *args: Any) -> Any:
        await asyncio.sleep(0.05)
        return fn(*args)

    def gradcam(self, snap: Any, au: int, track: int | None) -> dict[str, Any]:
        self.done.append(snap.index)
        return {"type": "saliency", "frame": snap.index, "compute_ms": 50.0}


def test_overlay_keeps_only_the_newest_frame() -> None:
    from aunets.stream.webrtc.saliency import SessionSaliency, Snapshot

    async def scenario() -> tuple[list[int], list[dict[str, Any]], int]:
        service = _SlowService()
        sent: list[dict[str, Any]] = []
        state = SessionSaliency(service, sent.append)  # type: ignore[arg-type]
        frame = np.zeros((4, 4, 3), np.uint8)
        state.offer(Snapshot(0, frame, None, {}))  # off: nothing computed
        state.configure({"au": "AU12"})
        for i in range(1, 11):  # ten frames in 10 ms while the first map takes 50 ms
            state.offer(Snapshot(i, frame, None, {0: (0.0, 0.0, 4.0, 4.0)}))
            await asyncio.sleep(0.001)
        await asyncio.sleep(0.3)
        return service.done, sent, state.skipped

    done, sent, skipped = asyncio.run(scenario())
    assert done == [1, 10], f"computed frames {done}: the first, then only the newest"
    assert [m["frame"] for m in sent] == [1, 10] and skipped == 8


def test_occlusion_route_refuses_other_origins_and_unknown_sessions(tiny_engine: Path) -> None:
    """``POST /sessions/ID/occlusion``: only POST, only this page's origin, only a live session; ``/config`` says
    whether the overlay is available (the tiny engine has no torch weights: not, and why)."""
    pytest.importorskip("aiortc")
    import json
    import urllib.error
    import urllib.request

    from aunets.engines.engine import load_engine
    from aunets.stream.webrtc.server import BackgroundServer, ServeConfig

    def status(url: str, method: str, headers: dict[str, str] | None = None) -> int:
        request = urllib.request.Request(url, method=method, headers=headers or {})
        try:
            return int(urllib.request.urlopen(request, timeout=10).status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)

    with BackgroundServer(ServeConfig(port=0, pub=None), engine=load_engine(tiny_engine)) as bg:
        url = bg.url + "sessions/nosuch/occlusion"
        assert status(url, "GET") == 405
        assert status(url, "POST", {"Origin": "https://evil.example"}) == 403
        assert status(url, "POST", {"Origin": bg.url.rstrip("/")}) == 404
        assert status(url, "POST") == 404
        config = json.loads(urllib.request.urlopen(bg.url + "config", timeout=10).read())
        assert config["saliency"]["available"] is False
        assert ".safetensors" in config["saliency"]["reason"]


def test_overlay_model_is_ready_before_it_is_first_turned_on() -> None:
    """The service builds Grad-CAM and runs one map on its worker as soon as it exists (at server start), so
    the first overlay map costs no model loading on a live demo."""
    pytest.importorskip("torch")
    from aunets.engines.engine import load_engine
    from aunets.models.synth.apex import render_apex_frame
    from aunets.stream.explain import largest_face
    from aunets.stream.tracking import YuNetDetector
    from aunets.stream.webrtc.saliency import SaliencyService, Snapshot

    service = SaliencyService(load_engine(None, "onnx", 2))
    try:
        assert service.warm.wait(timeout=120), "the overlay was not prepared within 2 minutes"
        assert service._cam is not None  # built on the worker, before any page asked
        frame = render_apex_frame({12: 1.0})
        box = largest_face(frame, YuNetDetector())
        message = asyncio.run(service.run(service.gradcam, Snapshot(0, frame, None, {0: box}, {0: 4}), 12, 0))
        assert message is not None and message["au"] == "AU12" and max(message["map"]) > min(message["map"])
    finally:
        service.close()
