"""The README and docs/ stay true: links resolve, figures match their JSON, and the commands marked runnable run.

A code block right after a ``<!-- runnable -->`` line is run command by command on the bundled media, from a
scratch folder that sees the repository's ``media/`` and ``.venv``; every ``--csv`` and ``--plot`` it names must then
exist. Figures are checked by ``benchmarks/report.py`` (the same check as ``python benchmarks/report.py --check``).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*$", re.M)
RUNNABLE = re.compile(r"^<!-- runnable -->\n```bash\n(.*?)^```", re.M | re.S)


def markdown_files() -> list[Path]:
    """Every Markdown file git tracks (and new ones beside them), outside the virtual environment."""
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.md"], cwd=REPO,
                         capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
    return sorted(REPO / f for f in out if (REPO / f).is_file())


def anchors(path: Path) -> set[str]:
    """GitHub's anchors for the headings of ``path``: lower case, punctuation dropped, spaces as hyphens."""
    seen: dict[str, int] = {}
    out = set()
    for title in HEADING.findall(path.read_text(encoding="utf-8")):
        slug = re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def broken_links(path: Path) -> list[str]:
    broken = []
    for target in LINK.findall(path.read_text(encoding="utf-8")):
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        file, _, anchor = target.partition("#")
        dest = (path.parent / file).resolve() if file else path
        if not dest.exists():
            broken.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target}: no heading #{anchor} in {dest.name}")
    return broken


def test_every_relative_link_and_image_resolves() -> None:
    files = markdown_files()
    assert REPO / "README.md" in files and len(files) > 10
    broken = {str(p.relative_to(REPO)): b for p in files if (b := broken_links(p))}
    assert broken == {}


def test_the_link_checker_sees_a_broken_link_and_anchor(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("# Speed and size\n[ok](a.md#speed-and-size) [bad](b.md) [no](a.md#nope) "
                                   "![img](x.png) [web](https://example.org/x)\n")
    found = broken_links(tmp_path / "a.md")
    assert [f.split(":")[0] for f in found] == ["b.md", "a.md#nope", "x.png"]


def _report():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("report", REPO / "benchmarks" / "report.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_figure_is_the_one_its_json_holds() -> None:
    assert _report().stale() == [], "run: python benchmarks/report.py"


def test_a_figure_typed_over_is_caught_and_rendered_back(tmp_path: Path) -> None:
    report = _report()
    (tmp_path / "r.json").write_text('{"a": {"fps": 153.89, "list": [{"x": 0.0275}]}, "none": null}')
    template = ("<!-- fig r=r.json | {r:a.fps:.1f} frames/s, {r:a.list.0.x:.1%}, {r:none:.1f}\n"
                "@for K in fps: | $K | {r:a.$K:.0f} |\n-->")
    text = f"{template}160.4 frames/s<!-- /fig -->"
    rendered = report.render(text, tmp_path)
    assert rendered == f"{template}\n\n153.9 frames/s, 2.8 %, –\n| fps | 154 |\n\n<!-- /fig -->"
    assert report.render(rendered, tmp_path) == rendered
    with pytest.raises(report.FigureError, match="no 'fpz'"):
        report.render("<!-- fig r=r.json | {r:a.fpz} --><!-- /fig -->", tmp_path, "t.md")


def runnable_commands() -> list[tuple[str, str]]:
    """(file, command) of every command in a block marked runnable in README.md and docs/."""
    out = []
    for path in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        for block in RUNNABLE.findall(path.read_text(encoding="utf-8")):
            for line in block.replace("\\\n", " ").splitlines():
                command = line.split(" #")[0].strip()
                if command:
                    out.append((str(path.relative_to(REPO)), command))
    return out


def test_the_readme_main_command_is_marked_runnable() -> None:
    commands = [c for _, c in runnable_commands()]
    assert any(c.startswith(".venv/bin/aunets process media/pexels_wolfganglanger_expressions.mp4") for c in commands)


@pytest.mark.slow
@pytest.mark.parametrize(("where", "command"), runnable_commands())
def test_runnable_command_runs_on_the_bundled_media(where: str, command: str, tmp_path: Path) -> None:
    words = shlex.split(command)
    assert words[0] in (".venv/bin/aunets", "aunets"), f"{where}: a runnable command starts with aunets"
    (tmp_path / "media").symlink_to(REPO / "media")
    venv = Path(sys.executable).parent.parent
    (tmp_path / ".venv").symlink_to(venv)
    env = {**os.environ, "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"}
    out = subprocess.run(words, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, f"{where}: {command}\n{out.stderr[-2000:]}"
    for option in ("--csv", "--plot"):
        if option in words:
            written = tmp_path / words[words.index(option) + 1]
            assert written.is_file() and written.stat().st_size > 0, f"{where}: {command} wrote no {written}"
