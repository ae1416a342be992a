"""The client examples in ``examples/`` run against a real ``aunets run`` (each where its runtime is installed;
otherwise skipped, naming what is missing), and the package is typed for its users (``py.typed``)."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import CLIP, REPO

EXAMPLES = REPO / "examples"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _with_run(video: Path, engine: Path, client: list[str], cwd: Path = REPO) -> tuple[str, int]:
    """``aunets run VIDEO`` waiting for a subscriber, and ``client`` (given the endpoint as ``{sub}``) reading it;
    returns the client's stdout and the number of frames published."""
    endpoint = f"tcp://127.0.0.1:{_free_port()}"
    run = subprocess.Popen([sys.executable, "-m", "aunets.cli", "run", str(video), "--engine", str(engine), "--pub",
                            endpoint, "--wait-subscriber", "30"], cwd=REPO, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        time.sleep(0.5)
        res = subprocess.run([c.format(sub=endpoint) for c in client], cwd=cwd, capture_output=True, text=True,
                             timeout=120)  # fmt: skip
        stdout, stderr = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 0, stderr
    assert res.returncode == 0, res.stderr
    return res.stdout, int(json.loads(stdout.strip().splitlines()[-1])["frames"])


def _check_client_output(out: str, n_frames: int) -> None:
    lines = out.strip().splitlines()
    frames = [ln for ln in lines if ln.startswith("frame ")]
    assert len(frames) == n_frames, out
    assert sum("no face" in ln for ln in frames) == 10  # the test video's blank frames
    with_face = [ln for ln in frames if "no face" not in ln]
    assert all(re.fullmatch(r"frame \d+ track 0 AU12 [01]\.\d\d state [01]", ln) for ln in with_face)
    events = [ln for ln in lines if ln.startswith("event ")]
    assert sum(" onset " in e for e in events) == sum(" offset " in e for e in events)
    assert lines[-1] == f"{len(frames) + len(events)} messages"


def test_own_loop_example_processes_the_bundled_clip() -> None:
    res = subprocess.run([sys.executable, str(EXAMPLES / "own_loop.py"), str(CLIP), "--frames", "30"], cwd=REPO,
                         capture_output=True, text=True, timeout=180)  # fmt: skip
    assert res.returncode == 0, res.stderr
    lines = res.stdout.strip().splitlines()
    face = re.compile(r"frame \d+: face 0 at \[\d+, \d+, \d+, \d+\], AU12 [01]\.\d\d (on|off)")
    faces = [ln for ln in lines if face.fullmatch(ln)]
    assert len(faces) == 30 and [int(ln.split()[1][:-1]) for ln in faces] == list(range(30))
    assert re.fullmatch(r"30 frames, \d+ onsets", lines[-1])


@pytest.mark.slow
def test_python_subscriber_example_prints_every_frame_and_event(tiny_engine: Path,
                                                                test_video: tuple[Path, int]) -> None:
    video, n_frames = test_video
    out, published = _with_run(video, tiny_engine, [sys.executable, str(EXAMPLES / "subscriber.py"), "--sub", "{sub}",
                                                    "--timeout", "5"])  # fmt: skip
    assert published == n_frames
    _check_client_output(out, n_frames)


def _node_zeromq() -> str | None:
    """Why the Node example cannot run here (None: it can)."""
    node = shutil.which("node")
    if node is None:
        return "node is not installed"
    probe = subprocess.run([node, "--input-type=module", "-e", "await import('zeromq')"], cwd=EXAMPLES / "node",
                           capture_output=True, text=True, timeout=30)  # fmt: skip
    return None if probe.returncode == 0 else "the npm package zeromq is not installed in examples/node"


@pytest.mark.slow
def test_node_subscriber_example_prints_every_frame_and_event(tiny_engine: Path, test_video: tuple[Path, int]) -> None:
    missing = _node_zeromq()
    if missing:
        pytest.skip(f"{missing} (cd examples/node && npm install zeromq)")
    video, n_frames = test_video
    # the Node client stops after the run's messages: every frame, and its events (counted by the Python one too)
    out_py, _ = _with_run(video, tiny_engine, [sys.executable, str(EXAMPLES / "subscriber.py"), "--sub", "{sub}",
                                               "--timeout", "5"])  # fmt: skip
    total = int(out_py.strip().splitlines()[-1].split()[0])
    out, _ = _with_run(video, tiny_engine, ["node", "subscriber.mjs", "{sub}", str(total)], cwd=EXAMPLES / "node")
    _check_client_output(out, n_frames)
    assert out == out_py  # the same lines as the Python subscriber


@pytest.mark.slow
def test_unity_osc_receiver_parses_what_aunets_sends(tmp_path: Path) -> None:
    """The Unity script's OSC core (plain C#) compiled and run with Mono's mcs where it is installed."""
    mcs, mono = shutil.which("mcs"), shutil.which("mono")
    if mcs is None or mono is None:
        pytest.skip("no C# compiler and runtime (Mono's mcs and mono) to run examples/unity/AUNetsOsc.cs")
    pytest.importorskip("pythonosc", reason="the [osc] extra (python-osc) is not installed")
    from pythonosc.udp_client import SimpleUDPClient

    program = tmp_path / "Program.cs"
    program.write_text("""
using System; using System.Threading;
class Program { static void Main() {
    using (var osc = new AUNetsOsc(0)) {
        Console.WriteLine(osc.Port);
        for (int i = 0; i < 100 && (osc.Get("AU12") == null || osc.Events.Count == 0); i++) Thread.Sleep(50);
        var v = osc.Get("AU12"); AUEvent e; osc.Events.TryDequeue(out e);
        Console.WriteLine($"{v.Smoothed:F3} {v.State} {v.Probability:F3} {v.Intensity:F3} {v.Track} {e.AU} {e.Type}");
    } } }
""")
    exe = tmp_path / "osc.exe"
    subprocess.run([mcs, "-out:" + str(exe), str(EXAMPLES / "unity" / "AUNetsOsc.cs"), str(program)], check=True,
                   timeout=120)  # fmt: skip
    proc = subprocess.Popen([mono, str(exe)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    port = int(proc.stdout.readline())
    client = SimpleUDPClient("127.0.0.1", port)
    client.send_message("/aunets/au/AU12", [0.75, 1, 0.8, 2.5, 3])
    client.send_message("/aunets/event/AU12", ["onset", 3, 0.8, 0.0])
    out, _ = proc.communicate(timeout=30)
    assert out.split() == ["0.750", "1", "0.800", "2.500", "3", "AU12", "onset"]


@pytest.mark.slow
def test_the_wheel_carries_py_typed(tmp_path: Path) -> None:
    """``py.typed`` is in what users install, so their mypy checks against aunets' annotations, not ``Any``."""
    import zipfile

    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path), str(REPO)], check=True, capture_output=True, timeout=600)  # fmt: skip
    wheel = next(tmp_path.glob("aunets-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "aunets/py.typed" in names and "aunets/stream/pipeline.py" in names


def test_version_and_verbose_after_the_subcommand(tmp_path: Path) -> None:
    from aunets import __version__
    from aunets.cli import build_parser

    res = subprocess.run([sys.executable, "-m", "aunets.cli", "--version"], capture_output=True, text=True,
                         timeout=60)  # fmt: skip
    assert res.returncode == 0 and res.stdout.strip() == f"aunets {__version__}"
    parser = build_parser("listen")
    assert parser.parse_args(["listen", "-vv"]).verbose == 2
    assert parser.parse_args(["-v", "listen"]).verbose == 1
    assert parser.parse_args(["listen"]).verbose == 0
    res = subprocess.run([sys.executable, "-m", "aunets.cli", "process", str(tmp_path / "missing.mp4"), "--csv",
                          str(tmp_path / "o.csv"), "-v"],
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert res.returncode == 1 and "does not exist" in res.stderr  # -v accepted: the error is the file's
