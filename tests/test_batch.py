"""``aunets batch``: a corpus into one OpenFace CSV each, the index, resuming, a killed batch, a Dask cluster."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from aunets.core.errors import ConfigError
from aunets.stream.corpus import plan_jobs
from tests.conftest import build_tiny_engine, write_long_video, write_test_video


def _aunets(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "aunets.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


def _summary(res: subprocess.CompletedProcess[str]) -> dict[str, object]:
    out: dict[str, object] = json.loads(res.stdout.strip().splitlines()[-1])
    return out


def _index(out: Path) -> dict[str, dict[str, str]]:
    return {Path(r["input"]).name: r for r in csv.DictReader((out / "index.csv").open())}


def _rows(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(path.open(), skipinitialspace=True))


def _no_face_video(path: Path, frames: int = 30) -> int:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (320, 240))
    for i in range(frames):
        writer.write(np.full((240, 320, 3), 60 + i, np.uint8))
    writer.release()
    return frames


def _damaged_video(path: Path, source: Path) -> int:
    """An MJPG AVI cut at 60 % of its bytes: the header still gives every frame, decoding fails mid-file."""
    cap = cv2.VideoCapture(str(source))
    avi = path.with_suffix(".full.avi")
    writer = cv2.VideoWriter(str(avi), cv2.VideoWriter_fourcc(*"MJPG"), 25, (640, 360))
    n = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        writer.write(frame)
        n += 1
    writer.release()
    path.write_bytes(avi.read_bytes()[: int(avi.stat().st_size * 0.6)])
    avi.unlink()
    return n


@pytest.fixture
def corpus(tmp_path: Path) -> tuple[Path, dict[str, int]]:
    """face.mp4 (faces, then blank frames, then faces), sub/noface.mp4 (no face), broken.avi (damaged)."""
    d = tmp_path / "corpus"
    (d / "sub").mkdir(parents=True)
    frames = {"face.mp4": write_test_video(d / "face.mp4"), "noface.mp4": _no_face_video(d / "sub" / "noface.mp4")}
    frames["broken.avi"] = _damaged_video(d / "broken.avi", d / "face.mp4")
    return d, frames


@pytest.mark.slow
def test_batch_writes_the_process_csvs_an_index_and_a_rerun_does_no_work(
        tiny_engine: Path, corpus: tuple[Path, dict[str, int]], tmp_path: Path) -> None:
    folder, frames = corpus
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("path,subject,session\ncorpus/face.mp4,P01,1\ncorpus/sub/noface.mp4,P02,1\n"
                        "corpus/broken.avi,P03,2\n")
    out = tmp_path / "out"
    res = _aunets("batch", str(manifest), "--out", str(out), "--engine", str(tiny_engine), "--workers", "2",
                  "--no-progress")
    assert res.returncode == 1, res.stderr  # one video failed: recorded, the others done
    assert "1 of 3 videos failed" in res.stderr and "index.csv" in res.stderr
    assert _summary(res)["ran"] == 3 and _summary(res)["done"] == 2
    index = _index(out)
    assert [index[n]["status"] for n in ("face.mp4", "noface.mp4", "broken.avi")] == ["done", "done", "failed"]
    assert [index[n]["subject"] for n in ("face.mp4", "noface.mp4", "broken.avi")] == ["P01", "P02", "P03"]
    assert index["face.mp4"]["frames"] == str(frames["face.mp4"]) and index["face.mp4"]["faces"] == "40"
    assert index["noface.mp4"]["faces"] == "0" and index["noface.mp4"]["error"] == ""
    assert "could not be decoded" in index["broken.avi"]["error"]
    assert Path(index["noface.mp4"]["output"]) == out / "sub" / "noface.csv"

    # the same CSV as `aunets process` (same writer, same columns, same values)
    reference = tmp_path / "process.csv"
    proc = _aunets("process", str(folder / "face.mp4"), "--csv", str(reference), "--engine", str(tiny_engine),
                   "--threads", "1", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert (out / "face.csv").read_bytes() == reference.read_bytes()
    noface = _rows(out / "sub" / "noface.csv")
    assert len(noface) == frames["noface.mp4"] and {r["success"] for r in noface} == {"0"}
    broken = _rows(out / "broken.csv")  # the rows before the damage are kept
    assert 0 < len(broken) < frames["broken.avi"]
    assert [int(r["frame"]) for r in broken] == list(range(1, len(broken) + 1))
    assert int(index["broken.avi"]["frames"]) == len(broken)
    config = json.loads((out / "face.csv.config.json").read_text())
    assert config["pipeline"]["engine"] == str(tiny_engine) and config["batch"]["status"] == "done"

    csvs = sorted(out.rglob("*.csv"))
    mtimes = [p.stat().st_mtime_ns for p in csvs if p.name != "index.csv"]
    again = _aunets("batch", str(manifest), "--out", str(out), "--engine", str(tiny_engine), "--no-progress")
    assert _summary(again)["ran"] == 0 and _summary(again)["skipped"] == 3, again.stdout
    assert [p.stat().st_mtime_ns for p in csvs if p.name != "index.csv"] == mtimes
    assert _index(out) == index

    # a partial CSV (cut short) is redone; a different configuration redoes everything
    (out / "face.csv").write_bytes(reference.read_bytes()[:2000])
    redo = _aunets("batch", str(manifest), "--out", str(out), "--engine", str(tiny_engine), "--no-progress")
    assert _summary(redo)["ran"] == 1
    assert (out / "face.csv").read_bytes() == reference.read_bytes()
    retry = _aunets("batch", str(manifest), "--out", str(out), "--engine", str(tiny_engine), "--no-progress",
                    "--retry-failed")
    assert _summary(retry)["ran"] == 1 and retry.returncode == 1
    changed = _aunets("batch", str(manifest), "--out", str(out), "--engine", str(tiny_engine), "--no-progress",
                      "--median-window", "3")
    assert _summary(changed)["ran"] == 3


@pytest.mark.slow
def test_killed_batch_resumes_and_every_csv_is_whole(tiny_engine: Path, tmp_path: Path) -> None:
    psutil = pytest.importorskip("psutil")
    folder = tmp_path / "corpus"
    folder.mkdir()
    n = write_test_video(folder / "v0.mp4")
    for i in range(1, 6):
        (folder / f"v{i}.mp4").write_bytes((folder / "v0.mp4").read_bytes())
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "aunets.cli", "batch", str(folder), "--out", str(out), "--engine",
           str(tiny_engine), "--workers", "1", "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 90
    try:
        while not list(out.glob("*.config.json")) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
        children = psutil.Process(proc.pid).children(recursive=True)
        os.kill(proc.pid, signal.SIGKILL)  # no clean-up at all
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    _, alive = psutil.wait_procs(children, timeout=10)  # workers notice the batch is gone and stop
    assert not alive, f"workers left running after the batch was killed: {alive}"
    # taken once every process has stopped: a worker may finish the video in hand before it notices
    finished = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in out.glob("*.csv") if p.name != "index.csv"
                and (out / f"{p.name}.config.json").exists()}
    assert 1 <= len(finished) < 6, "the batch was not killed mid-way"

    res = _aunets("batch", str(folder), "--out", str(out), "--engine", str(tiny_engine), "--workers", "2",
                  "--no-progress")
    assert res.returncode == 0, res.stderr
    assert _summary(res)["ran"] == 6 - len(finished)
    for name, (mtime, data) in finished.items():  # what was finished is kept as it was
        assert (out / name).stat().st_mtime_ns == mtime and (out / name).read_bytes() == data
    reference = (out / "v0.csv").read_bytes()
    for i in range(6):
        rows = _rows(out / f"v{i}.csv")
        assert [int(r["frame"]) for r in rows] == list(range(1, n + 1))
        assert (out / f"v{i}.csv").read_bytes() == reference
    assert not list(out.glob("*.partial"))
    assert {r["status"] for r in _index(out).values()} == {"done"}


@pytest.mark.slow
def test_dask_cluster_on_loopback_gives_the_same_csvs_as_local_workers(
        tiny_engine: Path, corpus: tuple[Path, dict[str, int]], tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")
    psutil = pytest.importorskip("psutil")
    folder, _ = corpus
    local = _aunets("batch", str(folder), "--out", str(tmp_path / "local"), "--engine", str(tiny_engine),
                    "--workers", "2", "--no-progress")
    assert local.returncode == 1, local.stderr  # broken.avi
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address="127.0.0.1:0") as cluster:
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
        me = psutil.Process()
        listening = {(c.laddr.ip, c.laddr.port) for p in [me, *me.children(recursive=True)]
                     for c in p.net_connections("inet") if c.status == psutil.CONN_LISTEN}
        assert listening and {ip for ip, _ in listening} == {"127.0.0.1"}, listening
        remote = _aunets("batch", str(folder), "--out", str(tmp_path / "dask"), "--engine", str(tiny_engine),
                         "--scheduler", cluster.scheduler_address, "--no-progress")
    assert remote.returncode == 1, remote.stderr
    assert _summary(remote)["ran"] == 3 and _summary(remote)["done"] == 2
    names = sorted(p.relative_to(tmp_path / "local") for p in (tmp_path / "local").rglob("*.csv"))
    assert names == sorted(p.relative_to(tmp_path / "dask") for p in (tmp_path / "dask").rglob("*.csv"))
    assert len(names) == 4  # 3 videos + index
    for name in names:
        if name.name != "index.csv":
            assert (tmp_path / "dask" / name).read_bytes() == (tmp_path / "local" / name).read_bytes(), name

    def strip(rows: dict[str, dict[str, str]]) -> dict[str, tuple[str, ...]]:
        return {k: (r["frames"], r["faces"], r["status"], r["error"]) for k, r in rows.items()}

    assert strip(_index(tmp_path / "dask")) == strip(_index(tmp_path / "local"))


def test_corpus_from_folders_and_manifests(tmp_path: Path) -> None:
    (tmp_path / "a" / "s1").mkdir(parents=True)
    for name in ("a/s1/x.mp4", "a/s1/x.avi", "a/y.MOV", "a/notes.txt"):
        (tmp_path / name).write_bytes(b"\0")
    jobs = plan_jobs([tmp_path / "a", tmp_path / "a" / "y.MOV"], tmp_path / "out")  # y.MOV only once
    out = (tmp_path / "out").resolve()
    assert [j.csv for j in jobs] == [out / "s1/x_avi.csv", out / "s1/x_mp4.csv", out / "y.csv"]
    (tmp_path / "m.csv").write_text("Path,Subject\na/y.MOV,P7\n")
    [job] = plan_jobs([tmp_path / "m.csv"], tmp_path / "out")
    assert job.video == (tmp_path / "a" / "y.MOV").resolve() and job.subject == "P7"
    (tmp_path / "bad.csv").write_text("video\nx.mp4\n")
    with pytest.raises(ConfigError, match="no 'path' column"):
        plan_jobs([tmp_path / "bad.csv"], tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="has no videos"):
        plan_jobs([tmp_path / "empty"], tmp_path / "out")


def test_missing_input_is_a_one_line_error(tmp_path: Path) -> None:
    res = _aunets("batch", str(tmp_path / "nothing.mp4"), "--out", str(tmp_path / "out"))
    assert res.returncode == 1
    assert res.stderr.strip().startswith("aunets batch: error: input") and "does not exist" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1



def _readers_of(path: Path) -> list[int]:
    """Processes that have ``path`` open, from /proc."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if any(os.readlink(fd) == str(path) for fd in (entry / "fd").iterdir()):
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


@pytest.mark.slow
def test_batch_csv_of_an_intensity_engine_is_the_process_csv(tmp_path: Path) -> None:
    engine = build_tiny_engine(tmp_path / "intense", intensity=True)
    folder = tmp_path / "corpus"
    folder.mkdir()
    write_test_video(folder / "face.mp4")
    out = tmp_path / "out"
    res = _aunets("batch", str(folder), "--out", str(out), "--engine", str(engine), "--workers", "1",
                  "--no-progress")  # fmt: skip
    assert res.returncode == 0, res.stderr
    reference = tmp_path / "process.csv"
    proc = _aunets("process", str(folder / "face.mp4"), "--csv", str(reference), "--engine", str(engine),
                   "--threads", "1", "--no-progress")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    header = [c.strip() for c in reference.read_text().splitlines()[0].split(",")]
    assert len(header) == 5 + 3 + 3 * 12 and "AU24_r" in header and header[5:8] == ["pose_Rx", "pose_Ry", "pose_Rz"]
    assert {r["AU12_r"] != "" for r in _rows(reference)} == {True, False}  # faces and blank frames
    assert (out / "face.csv").read_bytes() == reference.read_bytes()


@pytest.mark.slow
def test_a_second_batch_on_one_folder_is_refused_and_sigterm_exits_143(tiny_engine: Path, tmp_path: Path) -> None:
    folder = tmp_path / "corpus"
    folder.mkdir()
    for name in ("a.avi", "b.avi"):
        write_long_video(folder / name)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "aunets.cli", "batch", str(folder), "--out", str(out), "--engine", str(tiny_engine),
           "--workers", "1", "--no-progress"]  # fmt: skip
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        while not _readers_of(folder / "a.avi") and time.monotonic() < deadline and first.poll() is None:
            time.sleep(0.02)
        assert first.poll() is None and _readers_of(folder / "a.avi"), "the first batch never started a video"
        index_before = (out / "index.csv").read_bytes()
        second = _aunets("batch", str(folder), "--out", str(out), "--engine", str(tiny_engine), "--workers", "1",
                         "--no-progress")  # fmt: skip
        lines = second.stderr.strip().splitlines()
        assert second.returncode == 1 and len(lines) == 1, second.stderr
        assert f"is being written by another aunets process (pid {first.pid})" in lines[0]
        assert (out / "index.csv").read_bytes() == index_before  # no false failures written by the second
        first.send_signal(signal.SIGTERM)  # `kill PID`
        _, stderr = first.communicate(timeout=20)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 128 + signal.SIGTERM, stderr
    assert "stopped by SIGTERM" in stderr and "Traceback" not in stderr
    assert {r["status"] for r in _index(out).values()} == {"pending"}
    assert not (out / "index.csv.lock").exists()


@pytest.mark.slow
def test_a_killed_worker_fails_only_its_video_and_is_replaced(tiny_engine: Path, tmp_path: Path) -> None:
    folder = tmp_path / "corpus"
    folder.mkdir()
    write_long_video(folder / "a_long.avi")
    n = write_test_video(folder / "b.mp4")
    (folder / "c.mp4").write_bytes((folder / "b.mp4").read_bytes())
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "aunets.cli", "batch", str(folder), "--out", str(out), "--engine", str(tiny_engine),
           "--workers", "1", "--no-progress"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        while not (readers := _readers_of(folder / "a_long.avi")) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert readers and proc.pid not in readers, "no worker on the long video"
        os.kill(readers[0], signal.SIGKILL)  # the only worker, mid-video
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, stderr
    assert "1 of 3 videos failed" in stderr
    index = _index(out)
    assert index["a_long.avi"]["status"] == "failed"
    assert "worker process died (killed by SIGKILL)" in index["a_long.avi"]["error"]
    # a fresh worker took the dead one's place: the other videos are done, whole
    assert index["b.mp4"]["status"] == index["c.mp4"]["status"] == "done"
    for name in ("b.csv", "c.csv"):
        assert [int(r["frame"]) for r in _rows(out / name)] == list(range(1, n + 1))
    assert json.loads(stdout.strip().splitlines()[-1])["failed"] == 1
    rerun = _aunets("batch", str(folder), "--out", str(out), "--engine", str(tiny_engine), "--workers", "1",
                    "--no-progress", "--retry-failed", timeout=300)  # fmt: skip
    assert rerun.returncode == 0, rerun.stderr
    assert _summary(rerun)["ran"] == 1 and _index(out)["a_long.avi"]["status"] == "done"


def test_an_input_manifest_is_never_overwritten_by_the_index(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    write_test_video(tmp_path / "v.mp4")
    manifest = out / "index.csv"
    manifest.write_text(f"path\n{tmp_path / 'v.mp4'}\n")
    before = manifest.read_bytes()
    res = _aunets("batch", str(manifest), "--out", str(out), "--engine", "/nonexistent-engine")
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 1 and len(lines) == 1, res.stderr
    assert "is the INPUT being read" in lines[0] and "nonexistent" not in lines[0]
    assert manifest.read_bytes() == before and sorted(p.name for p in out.iterdir()) == ["index.csv"]
