"""``aunets serve`` end to end in a real browser: Debian's headless Chromium, driven by Playwright, with a fake
camera playing a .y4m clip made here, connecting to the server over loopback WebRTC.

Needs ``chromium`` (apt) and ``playwright`` (PyPI; the system Chromium is used, never ``playwright install``).
Without them these tests skip, except under CI (``CI`` set), where they fail.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from aunets.stream.webrtc.headless import find_chromium
from tests.conftest import CLIP, REPO

pytestmark = pytest.mark.slow  # starts a server and a headless Chromium

DEFAULT_MANIFEST = REPO / "aunets" / "engines" / "default" / "manifest.json"


def _require_browser() -> None:
    missing = []
    if find_chromium() is None:
        missing.append("Chromium (apt-get install -y chromium)")
    try:
        import aiortc  # noqa: F401
        import playwright.sync_api  # noqa: F401
    except ImportError as exc:
        missing.append(f"{exc.name} (pip install aiortc playwright)")
    if missing:
        reason = "browser test needs " + ", ".join(missing)
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, poll: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def page_state(page: Any) -> dict[str, Any]:
    return dict(page.evaluate(
        """() => { const s = window.aunets; return {connection: s.connection, results: s.results,
             dropped: s.dropped, latencies: s.latencies.slice(), session: s.session || null,
             face: s.latest ? {box: s.latest.box, probability: s.latest.probability} : null,
             shownDropped: document.getElementById('dropped').textContent,
             shownFps: document.getElementById('fps').textContent,
             shownLatency: document.getElementById('latency').textContent}; }"""
    ))  # fmt: skip


async def _sessions(server: Any) -> dict[str, Any]:
    return dict(server.sessions)


@pytest.fixture
def tiny_clip(tmp_path: Path) -> Path:
    from aunets.stream.webrtc.y4m import video_to_y4m

    path = tmp_path / "face.y4m"
    video_to_y4m(CLIP, path, max_frames=50, size=(640, 360))
    return path


@pytest.fixture
def browser_server(tiny_engine: Path, tiny_clip: Path, tmp_path: Path) -> Iterator[tuple[Any, Any]]:
    """(BackgroundServer with the tiny engine, Playwright browser context with the face clip as camera)."""
    _require_browser()
    from playwright.sync_api import sync_playwright

    from aunets.engines.engine import load_engine
    from aunets.stream.webrtc.headless import launch_chromium
    from aunets.stream.webrtc.server import BackgroundServer, ServeConfig

    with BackgroundServer(ServeConfig(port=0, pub=None), engine=load_engine(tiny_engine)) as bg, \
            sync_playwright() as pw:  # fmt: skip
        context: Any = launch_chromium(pw, tiny_clip, tmp_path / "profile")
        try:
            yield bg, context
        finally:
            context.close()


def test_results_arrive_in_the_browser(browser_server: tuple[Any, Any], tmp_path: Path) -> None:
    bg, context = browser_server
    page = context.new_page()
    page.goto(bg.url)
    wait_for(lambda: page_state(page)["results"] >= 40, 45, "40 result messages in the page")
    state = page_state(page)
    assert state["connection"] == "connected"
    assert state["face"] is not None and len(state["face"]["probability"]) == 12
    lat = state["latencies"]
    assert len(lat) >= 20, "frame ids did not come back with the results"
    assert 0 < float(np.median(lat)) < 2000
    assert state["shownDropped"] == str(state["dropped"])
    assert state["shownLatency"].endswith(")") and state["shownFps"] != "–"
    sessions = bg.call(_sessions, bg.server)
    assert list(sessions) == [state["session"]]
    channel = sessions[state["session"]].channel
    assert channel.ordered is False and channel.maxRetransmits == 0
    page.screenshot(path=str(tmp_path / "tiny.png"))
    page.close()


def test_closing_a_tab_frees_its_session(browser_server: tuple[Any, Any]) -> None:
    bg, context = browser_server
    pages = [context.new_page() for _ in range(2)]
    for page in pages:
        page.goto(bg.url)
    for page in pages:

        def has_results(p: Any = page) -> bool:
            return bool(page_state(p)["results"] >= 10)

        wait_for(has_results, 45, "results in both tabs")
    ids = [page_state(page)["session"] for page in pages]
    assert len(set(ids)) == 2
    sessions = bg.call(_sessions, bg.server)
    assert sorted(sessions) == sorted(ids)
    first, second = sessions[ids[0]], sessions[ids[1]]
    assert first._pipeline is not second._pipeline  # each tab has its own tracker, flow and medians

    pages[0].close()
    wait_for(lambda: bg.session_ids() == [ids[1]], 15, "the closed tab's session to go")
    assert first.closed.is_set() and first.task_count == 0
    assert first.pc.connectionState == "closed" and first._pipeline is None and first.channel is None
    assert first._executor._shutdown
    before = page_state(pages[1])["results"]
    wait_for(lambda: page_state(pages[1])["results"] > before + 5, 15, "the other tab to keep receiving")

    pages[1].close()
    wait_for(lambda: bg.session_ids() == [], 15, "no session left")
    assert second.task_count == 0 and second._pipeline is None


def _synth_clip(out: Path) -> Path:
    """The single-AU clip: AU12 at apex from 1.0 to 2.5 s of 4 s, frontal, no head jitter."""
    subprocess.run(
        [sys.executable, "-m", "aunets.cli", "synth", "--out", str(out), "--subjects", "1", "--views", "1",
         "--seconds", "4", "--script", "12:1.0-2.5", "--no-jitter", "--no-crops", "--workers", "1",
         "--no-progress"],
        check=True, cwd=REPO, timeout=300,
    )  # fmt: skip
    videos = sorted(out.rglob("full.mp4"))
    assert videos, f"aunets synth wrote no full.mp4 under {out}"
    return videos[0]


@pytest.fixture(scope="module")
def au12_session(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Any], dict[str, float]]:
    """One real browser session on the single-AU clip (AU12 on from 1.0 to 2.5 s of every 4 s loop) with the
    default engine: the page's 10 s timeline of (time, smoothed, state) and the engine's thresholds."""
    if not DEFAULT_MANIFEST.is_file():
        pytest.skip(f"the trained default engine is not built yet ({DEFAULT_MANIFEST.relative_to(REPO)} missing)")
    _require_browser()
    from playwright.sync_api import sync_playwright

    from aunets.stream.webrtc.headless import launch_chromium
    from aunets.stream.webrtc.server import BackgroundServer, ServeConfig
    from aunets.stream.webrtc.y4m import video_to_y4m

    tmp_path = tmp_path_factory.mktemp("au12")
    y4m = tmp_path / "au12.y4m"
    video_to_y4m(_synth_clip(tmp_path / "synth"), y4m)
    with BackgroundServer(ServeConfig(port=0, pub=None)) as bg, sync_playwright() as pw:
        context: Any = launch_chromium(pw, y4m, tmp_path / "profile")
        page = context.new_page()
        page.goto(bg.url)
        wait_for(lambda: page_state(page)["results"] >= 10, 60, "first results")
        time.sleep(9.0)  # a little over two loops of the 4 s clip
        history = page.evaluate("() => window.aunets.history.map(h => [h.t, h.smoothed, h.state])")
        thresholds = page.evaluate("() => window.aunets.config.thresholds")
        page.screenshot(path=str(tmp_path / "au12.png"))
        if os.environ.get("AUNETS_SCREENSHOT"):
            page.screenshot(path=os.environ["AUNETS_SCREENSHOT"])
        context.close()
    assert len(history) >= 50, f"only {len(history)} face results in the page's 10 s timeline"
    return history, thresholds


def test_au12_bar_rises_and_falls_with_the_clip(au12_session: tuple[list[Any], dict[str, float]]) -> None:
    history, thresholds = au12_session
    au12 = np.array([h[1]["AU12"] for h in history])
    on12 = np.array([bool(h[2]["AU12"]) for h in history])
    # AU12 rises above its threshold and falls back below it, with the clip (on about 1.5-2 s of every 4 s)
    assert au12.max() > thresholds["AU12"] and au12.min() < thresholds["AU12"]
    assert np.sum(np.diff(on12.astype(int)) == 1) >= 1 and np.sum(np.diff(on12.astype(int)) == -1) >= 1
    assert 0.15 < on12.mean() < 0.75, f"AU12 on for {on12.mean():.0%} of the frames"


@pytest.mark.xfail(
    strict=True,
    reason="known limit of the current default engine: on this AU12-only clip other AU bars rise with AU12 (also "
    "offline, so not WebRTC): the co-occurrence it learned from v2's CG training data (P(AU10|AU12) 0.88, "
    "P(AU14|AU12) 0.78), which neither v3.1's AUs-one-at-a-time sequences nor v4's cross-talk negatives (brows only) "
    "removed; strict, so a better engine turns "
    "this red until the marker is removed",
)
def test_other_au_bars_stay_low_during_the_clip(au12_session: tuple[list[Any], dict[str, float]]) -> None:
    history, thresholds = au12_session
    for au in thresholds:
        if au != "AU12":
            values = np.array([h[1][au] for h in history])
            assert np.percentile(values, 90) < thresholds[au], f"{au} is not low: p90 {np.percentile(values, 90):.2f}"


def test_every_face_is_boxed_and_the_user_chooses_whose_bars_are_shown(tiny_engine: Path, tmp_path: Path) -> None:
    """Three people (media/realfaces_trio.mp4) as the camera, ``--max-faces 3``: the page draws a box for every
    track, lists them in the face chooser, and shows the bars of the face chosen there or clicked in the video."""
    _require_browser()
    from playwright.sync_api import sync_playwright

    from aunets.engines.engine import load_engine
    from aunets.stream.pipeline import PipelineConfig
    from aunets.stream.tracking import TrackerConfig
    from aunets.stream.webrtc.headless import launch_chromium
    from aunets.stream.webrtc.server import BackgroundServer, ServeConfig
    from aunets.stream.webrtc.y4m import video_to_y4m

    y4m = tmp_path / "trio.y4m"
    video_to_y4m(REPO / "media" / "realfaces_trio.mp4", y4m, size=(640, 480))
    config = ServeConfig(port=0, pub=None, pipeline=PipelineConfig(tracker=TrackerConfig(max_faces=3)))
    with BackgroundServer(config, engine=load_engine(tiny_engine)) as bg, sync_playwright() as pw:
        context: Any = launch_chromium(pw, y4m, tmp_path / "profile")
        try:
            page = context.new_page()
            page.goto(bg.url)

            def faces() -> dict[str, Any]:
                return dict(page.evaluate(
                    """() => { const s = window.aunets;
                      return {tracks: [...s.tracks.values()].map(r => [r.track_id, r.box]), size: s.latestSize,
                              shown: s.latest ? s.latest.track_id : null, selected: s.selected,
                              history: [...new Set(s.history.map(h => h.track))],
                              choice: document.getElementById('track').value,
                              options: [...document.querySelectorAll('#track option')].map(o => o.value)}; }"""
                ))  # fmt: skip

            wait_for(lambda: len(faces()["tracks"]) == 3, 60, "three tracked faces in the page")
            state = faces()
            ids = sorted(t for t, _ in state["tracks"])
            assert state["options"][0] == "auto" and sorted(int(v) for v in state["options"][1:]) == ids
            largest = max(state["tracks"], key=lambda t: t[1][2])[0]
            assert state["selected"] is None and state["shown"] == largest  # by default: the largest face

            # every box is drawn: the overlay is opaque on the middle of each box's left edge
            def drawn() -> list[int]:
                return list(page.evaluate(
                    """() => { const s = window.aunets, c = document.getElementById('overlay');
                      const ctx = c.getContext('2d'), [fw, fh] = s.latestSize;
                      return [...s.tracks.values()].map(r => ctx.getImageData(
                        Math.round(r.box[0] * c.width / fw), Math.round((r.box[1] + r.box[3] / 2) * c.height / fh),
                        1, 1).data[3]); }"""
                ))  # fmt: skip

            wait_for(lambda: len(drawn()) == 3 and all(a > 0 for a in drawn()), 10, "a box drawn on every face")

            smallest = min(state["tracks"], key=lambda t: t[1][2])[0]
            page.select_option("#track", str(smallest))
            wait_for(lambda: faces()["shown"] == smallest and faces()["selected"] == smallest, 15,
                     "the chosen face's bars")  # fmt: skip
            wait_for(lambda: faces()["history"] == [smallest], 5, "a timeline of the chosen face only")

            other = next(t for t in ids if t not in (smallest, largest))
            box = dict(faces()["tracks"])[other]
            rect = page.evaluate("() => { const r = document.getElementById('overlay').getBoundingClientRect();"
                                 " return [r.left, r.top, r.width, r.height]; }")
            fw, fh = faces()["size"]
            cx, cy = box[0] + box[2] / 2, box[1] + box[3] / 2
            page.mouse.click(rect[0] + cx * rect[2] / fw, rect[1] + cy * rect[3] / fh)
            wait_for(lambda: faces()["shown"] == other and faces()["choice"] == str(other), 15,
                     "the clicked face's bars")  # fmt: skip
            page.screenshot(path=str(tmp_path / "multiface.png"))
            if os.environ.get("AUNETS_SCREENSHOT_MULTIFACE"):
                page.screenshot(path=os.environ["AUNETS_SCREENSHOT_MULTIFACE"])
        finally:
            context.close()
