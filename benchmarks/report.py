"""Write the figures of ``benchmarks/results/*.json`` into README.md and docs/, so no figure is typed by hand.

    python benchmarks/report.py            # re-render every figure block in place
    python benchmarks/report.py --check    # exit 1 and name the blocks that differ from their JSON (CI)

A figure block in a Markdown file is an HTML comment holding the JSON files it reads and a template, followed by
the rendered text and a closing comment (both comments are invisible on GitHub)::

    <!-- fig rf=benchmarks/results/real_faces.json | AUC {rf:engine_on.test.smile_auc.AU12:.2f} -->AUC 0.98<!-- /fig -->

``ALIAS=PATH`` pairs (paths relative to the repository root) come before ``|``; the template after it. A
placeholder ``{ALIAS:dotted.path}`` or ``{ALIAS:dotted.path:FORMAT}`` is replaced by that value of the JSON
(list items by their index: ``rows.0.fps``), formatted with Python's format spec; a spec ending in ``%`` writes
``12.3 %``. A missing value fails loudly; ``null`` is written as ``–``. A template may span lines (a whole table);
the rendered text then stands between blank lines after the comment. A template line
``@for NAME in A B C: TEXT`` is written once per value, with ``$NAME`` in ``TEXT`` replaced by it (a table row per
AU, say).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"<!-- fig (?P<sources>[^|]*?)\s*\|(?P<template>.*?)-->(?P<rendered>.*?)<!-- /fig -->", re.S)
LOOP = re.compile(r"^@for (?P<name>\w+) in (?P<values>[^:]+): ?(?P<text>.*)$", re.M)
PLACEHOLDER = re.compile(r"\{(?P<alias>\w+):(?P<path>[^:{}]+)(?::(?P<spec>[^{}]*))?\}")


class FigureError(ValueError):
    """A figure block names a file, alias or value that does not exist."""


def documents(root: Path = REPO) -> list[Path]:
    """The Markdown files whose figure blocks are rendered: README.md and docs/*.md."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def lookup(data: Any, dotted: str) -> Any:
    """``data`` followed along ``dotted`` (dict keys, or list indices)."""
    node = data
    for key in dotted.split("."):
        if isinstance(node, list) and key.isdigit() and int(key) < len(node):
            node = node[int(key)]
        elif isinstance(node, dict) and key in node:
            node = node[key]
        else:
            raise FigureError(f"no {key!r} in {dotted!r}")
    return node


def format_value(value: Any, spec: str | None) -> str:
    if value is None:
        return "–"
    if not spec:
        return str(value)
    try:
        text = format(value, spec)
    except (TypeError, ValueError) as exc:
        raise FigureError(f"cannot format {value!r} with {spec!r}: {exc}") from None
    return text[:-1] + " %" if spec.endswith("%") else text


def render_block(sources: str, template: str, root: Path, cache: dict[Path, Any]) -> str:
    """The text of one block: ``template`` with every placeholder filled from the JSON files in ``sources``."""
    files: dict[str, Path] = {}
    for pair in sources.split():
        alias, _, rel = pair.partition("=")
        if not rel:
            raise FigureError(f"source {pair!r} is not ALIAS=PATH")
        files[alias] = root / rel

    def fill(m: re.Match[str]) -> str:
        path = files.get(m["alias"])
        if path is None:
            raise FigureError(f"unknown alias {m['alias']!r} (sources: {sources})")
        if path not in cache:
            if not path.is_file():
                raise FigureError(f"{path.relative_to(root)} does not exist")
            cache[path] = json.loads(path.read_text(encoding="utf-8"))
        return format_value(lookup(cache[path], m["path"]), m["spec"])

    unrolled = LOOP.sub(lambda m: "\n".join(m["text"].replace("$" + m["name"], v) for v in m["values"].split()),
                        template)
    text = PLACEHOLDER.sub(fill, unrolled)
    return "\n\n" + text.strip() + "\n\n" if "\n" in template else text.strip()


def render(text: str, root: Path = REPO, where: str = "") -> str:
    """``text`` with every figure block re-rendered from its JSON files."""
    cache: dict[Path, Any] = {}

    def one(m: re.Match[str]) -> str:
        try:
            body = render_block(m["sources"], m["template"], root, cache)
        except FigureError as exc:
            line = text.count("\n", 0, m.start()) + 1
            raise FigureError(f"{where}:{line}: {exc}") from None
        return f"<!-- fig {m['sources']} |{m['template']}-->{body}<!-- /fig -->"

    return BLOCK.sub(one, text)


def stale(root: Path = REPO) -> list[str]:
    """The documents whose rendered figures differ from what their JSON files say now."""
    out = []
    for path in documents(root):
        text = path.read_text(encoding="utf-8")
        if render(text, root, str(path.relative_to(root))) != text:
            out.append(str(path.relative_to(root)))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only report documents whose figures are stale")
    args = parser.parse_args()
    try:
        if args.check:
            bad = stale()
            for name in bad:
                print(f"{name}: figures differ from benchmarks/results; run python benchmarks/report.py")
            return 1 if bad else 0
        for path in documents():
            text = path.read_text(encoding="utf-8")
            new = render(text, REPO, str(path.relative_to(REPO)))
            if new != text:
                path.write_text(new, encoding="utf-8")
                print(f"updated {path.relative_to(REPO)}")
    except FigureError as exc:
        print(f"report.py: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
