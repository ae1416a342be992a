"""One rule for every output path, on real processes: an input is never an output, two outputs are never one
file, special files are refused, a second writer is refused by a lock, and whole-file outputs (JSON, plots) are
written beside and renamed into place, so a full disk never leaves an empty or torn file."""

from __future__ import annotations

import os
import resource
import select
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import build_tiny_engine, write_long_video
from tests.test_faults import CLI, NO_ENGINE, _check_csv, _cli, _csv_rows, _free_port, _wait_for, strict_json


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_engine(tmp_path_factory.mktemp("outputs") / "tiny")


@pytest.fixture(scope="module")
def long_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """600 frames (24 s at 25 fps) of the bundled clip's first 40 frames, looped."""
    path = tmp_path_factory.mktemp("outputs") / "long.avi"
    write_long_video(path)
    return path


def _one_line_error(res: subprocess.CompletedProcess[str], command: str, says: str) -> None:
    assert res.returncode == 1, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"aunets {command}: error: ") and says in lines[0], res.stderr


def _aunets(*argv: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *argv], capture_output=True, text=True, timeout=60, **kwargs)  # type: ignore[call-overload,no-any-return]


def test_an_input_is_never_an_output(test_video: tuple[Path, int], tmp_path: Path) -> None:
    video, _ = test_video
    before = video.read_bytes()
    _one_line_error(_aunets("process", str(video), "--csv", str(video), *NO_ENGINE), "process",
                    "is the input video being read")  # fmt: skip
    link = tmp_path / "link.mp4"  # the same file by another name: a symlink, and a hard link
    link.symlink_to(video)
    _one_line_error(_aunets("process", str(video), "--csv", str(link), *NO_ENGINE), "process", "input video")
    hard = tmp_path / "hard.mp4"
    os.link(video, hard)
    _one_line_error(_aunets("run", str(video), "--stats-json", str(hard), *NO_ENGINE), "run", "the source")
    assert video.read_bytes() == before
    assert not list(tmp_path.glob("*.config.json")) and not list(tmp_path.glob("*.lock"))


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["process", "{video}", "--csv", "{tmp}/o.png", "--plot", "{tmp}/o.png"], "--plot {tmp}/o.png and --csv"),
        (["process", "{video}", "--csv", "{tmp}/o.png", "--plot", "{tmp}/./sub/../o.png"], "are the same file"),
        (["run", "{video}", "--csv", "{tmp}/o.out", "--stats-json", "{tmp}/o.out"], "--stats-json {tmp}/o.out and"),
    ],
)
def test_two_outputs_are_never_one_file(argv: list[str], says: str, test_video: tuple[Path, int],
                                        tmp_path: Path) -> None:  # fmt: skip
    (tmp_path / "sub").mkdir()
    values = {"video": str(test_video[0]), "tmp": str(tmp_path)}
    _one_line_error(_aunets(*(a.format(**values) for a in argv), *NO_ENGINE), argv[0], says.format(**values))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "sub"]  # nothing created, nothing left


def test_special_files_are_refused_and_nothing_is_written_beside_them(test_video: tuple[Path, int],
                                                                      tmp_path: Path) -> None:  # fmt: skip
    video, _ = test_video
    in_dev = set(os.listdir("/dev"))
    # stdout into a pipe (a FIFO), and redirected into a file (the summary would be written over the CSV)
    _one_line_error(_aunets("process", str(video), "--csv", "/dev/stdout", *NO_ENGINE), "process",
                    "not a regular file")  # fmt: skip
    redirected = tmp_path / "stdout.txt"
    with redirected.open("w") as fh:
        res = subprocess.run([*CLI, "process", str(video), "--csv", "/dev/stdout", *NO_ENGINE], stdout=fh,
                             stderr=subprocess.PIPE, text=True, timeout=60)  # fmt: skip
    _one_line_error(res, "process", "own standard output")  # type: ignore[arg-type]
    assert redirected.read_text() == ""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    _one_line_error(_aunets("run", str(video), "--stats-json", str(fifo), *NO_ENGINE), "run", "not a regular")
    if os.path.exists("/dev/full"):
        _one_line_error(_aunets("process", str(video), "--csv", "/dev/full", *NO_ENGINE), "process", "/dev/full")
    assert not [p for p in set(os.listdir("/dev")) - in_dev if p.endswith((".config.json", ".lock"))]


@pytest.mark.slow
def test_a_second_writer_of_one_csv_is_refused_and_the_first_keeps_whole_rows(
    engine: Path, long_video: Path, tmp_path: Path
) -> None:
    out = tmp_path / "o.csv"
    with _cli("process", str(long_video), "--csv", str(out), "--engine", str(engine), "--no-progress") as first:
        _wait_for(lambda: _csv_rows(out) >= 5 or first.poll() is not None, 90, "5 CSV rows")
        assert (tmp_path / "o.csv.lock").read_text().strip() == str(first.pid)
        second = _aunets("process", str(long_video), "--csv", str(out), "--engine", str(engine), "--no-progress")
        _one_line_error(second, "process", f"being written by another aunets process (pid {first.pid})")
        # a `run` writing the same CSV, named another way, is refused too
        third = _aunets("run", str(long_video), "--csv", str(tmp_path / "." / "o.csv"), "--engine", str(engine),
                        "--pub", f"tcp://127.0.0.1:{_free_port()}")  # fmt: skip
        _one_line_error(third, "run", "being written by another aunets process")
        assert first.poll() is None
        first.send_signal(signal.SIGTERM)
        stdout, stderr = first.communicate(timeout=10)
    assert first.returncode == 128 + signal.SIGTERM, stderr
    rows = _check_csv(out)  # one run's rows, every one whole
    assert len(rows) == strict_json(stdout.strip().splitlines()[-1])["rows"]
    assert not (tmp_path / "o.csv.lock").exists()
    # the lock was released: the next run may write it
    res = _aunets("process", str(long_video), "--csv", str(out), "--engine", str(engine), "--no-progress",
                  "--max-frames", "3")  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert len(_check_csv(out)) == 3


@pytest.mark.slow
def test_a_lock_left_by_a_killed_run_holds_nothing(engine: Path, long_video: Path, tmp_path: Path) -> None:
    out = tmp_path / "o.csv"
    with _cli("process", str(long_video), "--csv", str(out), "--engine", str(engine), "--no-progress") as proc:
        _wait_for(lambda: _csv_rows(out) >= 3 or proc.poll() is not None, 90, "3 CSV rows")
        proc.kill()
        proc.wait(timeout=5)
    assert (tmp_path / "o.csv.lock").exists()  # SIGKILL: no cleanup ran, but the kernel dropped the lock
    assert len(_check_csv(out)) >= 3  # and every row it wrote is there, whole
    res = _aunets("process", str(long_video), "--csv", str(out), "--engine", str(engine), "--no-progress",
                  "--max-frames", "2")  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert len(_check_csv(out)) == 2 and not (tmp_path / "o.csv.lock").exists()


@pytest.mark.slow
def test_stats_json_on_a_full_disk_is_one_line_and_leaves_no_empty_file(
    engine: Path, long_video: Path, tmp_path: Path
) -> None:
    """A real short write: a file-size limit set on the running process (after its capture process has made
    its shared memory) makes the kernel refuse the stats JSON, as a full disk does."""
    stats = tmp_path / "stats.json"
    with _cli("run", str(long_video), "--realtime", "--engine", str(engine), "--pub",
              f"tcp://127.0.0.1:{_free_port()}", "--stats-json", str(stats)) as proc:  # fmt: skip
        assert proc.stderr is not None
        deadline = time.monotonic() + 90
        seen = ""
        while "publishing" not in seen and time.monotonic() < deadline and proc.poll() is None:
            if select.select([proc.stderr], [], [], 0.5)[0]:
                seen += proc.stderr.readline()
        assert "publishing" in seen, seen
        resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, (64, 64))  # CPython ignores SIGXFSZ: writes get EFBIG
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=10)
    assert proc.returncode == 1, stderr
    lines = stderr.strip().splitlines()
    assert lines[-1].startswith("aunets run: error: cannot write --stats-json") and "File too large" in lines[-1]
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no 0-byte file, no temporary file


def test_json_and_plot_outputs_replace_the_old_file_only_when_whole(tmp_path: Path) -> None:
    """In a real child process with a file-size limit: the old file stays as it was, no temporary is left."""
    old = tmp_path / "s.json"
    old.write_text('{"earlier": true}\n')
    code = ("import resource, sys\nfrom pathlib import Path\nfrom aunets.stream.outputs import write_json\n"
            "resource.setrlimit(resource.RLIMIT_FSIZE, (64, 64))\n"
            f"write_json(Path({str(old)!r}), '{{\"x\": \"' + 'y' * 200 + '\"}}', '--stats-json')\n")  # fmt: skip
    res = subprocess.run([CLI[0], "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 1 and "ConfigError: cannot write --stats-json" in res.stderr, res.stderr
    assert old.read_text() == '{"earlier": true}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.json"]


def test_a_camera_index_is_not_a_path(engine: Path, tmp_path: Path) -> None:
    """`run 97 --csv 97` names a CSV called 97 and camera 97, not one file twice."""
    res = _aunets("run", "97", "--csv", "97", "--engine", str(engine), "--pub", f"tcp://127.0.0.1:{_free_port()}",
                  cwd=tmp_path)  # fmt: skip
    _one_line_error(res, "run", "camera 97 does not open")
