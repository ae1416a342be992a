"""The package's layers: every import points down, no modules import each other in a circle, and the installed
distribution has one import root.

``LAYERS`` is the one place the allowed direction is written: a module may import its own layer and the
layers before it in the list, never one after it. Imports under ``TYPE_CHECKING`` count (a type is a
dependency too), and so does a string constant that is exactly a module name of the package (the form
``importlib`` and plugin lists use). ``benchmarks/*.py`` are the top layer (the package never imports them);
tests may import anything.
"""

from __future__ import annotations

import ast
import itertools
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

LAYERS = (
    "aunets.core",  # shared vocabulary: AUs, views, errors, frames, faces, crop, flow, results, median
    "aunets.engines",  # running an engine bundle: format, preprocessing, network definitions, runtimes
    "aunets.stream",  # the live runtime: capture, tracking, pipeline, calibration, sinks, serve, batch
    "aunets.models",  # training and offline evaluation, building engine bundles
    "aunets.cli",  # the `aunets` command (and `python -m aunets`)
    "benchmarks",  # benchmarks/*.py: scripts that measure the package and write benchmarks/results/
)
TOP = {"aunets.__main__": "aunets.cli"}


def layer_of(module: str) -> int | None:
    """Index in :data:`LAYERS` of a module of the package (the bare root ``aunets`` is the bottom); None for a
    module that is not ours."""
    module = TOP.get(module, module)
    if module == "aunets":
        return 0
    for i, name in enumerate(LAYERS):
        if module == name or module.startswith(name + "."):
            return i
    return None


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(tree: ast.AST, module: str, package: str, names: bool = False) -> list[tuple[int, str]]:
    """(line, module) of every import in ``tree`` (of ``module`` in ``package``), relative ones resolved.

    ``names``: also ``module.name`` for every name of a ``from module import name`` (a name may be a submodule:
    ``from aunets.core import flow`` imports ``aunets.core.flow``)."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] + "." if node.level else ""
            out.append((node.lineno, base + (node.module or "")))
            if names:
                out += [(node.lineno, f"{out[-1][1]}.{a.name}".replace("..", ".")) for a in node.names]
        elif (isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("aunets.")
              and node.value.replace(".", "").replace("_", "").isalnum()):
            out.append((node.lineno, node.value))
    return out


def violations(root: Path) -> list[str]:
    """Every import under ``root/aunets`` and in ``root/benchmarks/*.py`` that points up a layer, as
    ``path:line: module -> imported``."""
    found = []
    for path in sorted((root / "aunets").rglob("*.py")) + sorted((root / "benchmarks").glob("*.py")):
        module = module_name(path, root)
        own = layer_of(module)
        assert own is not None, f"{path} is in no layer: add its package to LAYERS"
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for line, target in imported_names(ast.parse(path.read_text(encoding="utf-8")), module, package):
            theirs = layer_of(target)
            if theirs is not None and theirs > own:
                found.append(f"{path.relative_to(root)}:{line}: {module} -> {target}")
    return found


def import_graph(root: Path) -> dict[str, dict[str, str]]:
    """Module -> {module it imports: ``path:line`` of the first such import} over the modules under ``root/aunets``.

    Every import counts, wherever it stands (module level, inside a function, under ``TYPE_CHECKING``, a module
    name in a string); an imported name that is not a module stands for the module it comes from."""
    paths = {module_name(p, root): p for p in sorted((root / "aunets").rglob("*.py"))}
    graph: dict[str, dict[str, str]] = {}
    for module, path in paths.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        edges = graph.setdefault(module, {})
        for line, target in imported_names(ast.parse(path.read_text(encoding="utf-8")), module, package, names=True):
            while target and target not in paths:
                target = target.rpartition(".")[0]
            if target and target != module:
                edges.setdefault(target, f"{path.relative_to(root)}:{line}")
    return graph


def import_cycles(root: Path) -> list[str]:
    """One shortest circle through each group of modules that import each other (directly or not), as
    ``a -> b -> a (a.py:3, b.py:7)``, the lines being where each import stands."""
    graph = import_graph(root)

    def path_back(start: str) -> list[str] | None:  # shortest import path from ``start`` back to itself
        came_from: dict[str, str] = {}
        frontier = [start]
        while frontier:
            following = []
            for node in frontier:
                for nxt in sorted(graph[node]):
                    if nxt == start:
                        chain = [node]
                        while chain[-1] != start:
                            chain.append(came_from[chain[-1]])
                        return [*reversed(chain), start]
                    if nxt not in came_from:
                        came_from[nxt] = node
                        following.append(nxt)
            frontier = following
        return None

    found, seen = [], set()
    for module in sorted(graph):
        if module in seen or (chain := path_back(module)) is None:
            continue
        seen.update(chain)
        where = ", ".join(graph[a][b] for a, b in itertools.pairwise(chain))
        found.append(f"{' -> '.join(chain)} ({where})")
    return found


def test_every_import_points_down_the_layers() -> None:
    assert violations(REPO) == []


def test_no_modules_import_each_other_in_a_circle() -> None:
    """A circle (even a lazy import inside a function, or one only for types) means the two modules are one
    concept split in two, or one of them holds something the other should own: move it so imports point one way."""
    assert import_cycles(REPO) == []


def test_the_cycle_check_catches_a_planted_circle(tmp_path: Path) -> None:
    pkg = tmp_path / "aunets"
    (pkg / "core").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "core" / "__init__.py").write_text("")
    (pkg / "core" / "flow.py").write_text("def create():\n    from aunets.core import flow_gpu\n")
    (pkg / "core" / "flow_gpu.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .registry import Table\n"
    )
    (pkg / "core" / "registry.py").write_text("import importlib\nNAMES = ['aunets.core.flow']\n")
    (pkg / "core" / "errors.py").write_text("from aunets.core.flow import create\n")  # imports into it, no circle
    assert import_cycles(tmp_path) == [
        "aunets.core.flow -> aunets.core.flow_gpu -> aunets.core.registry -> aunets.core.flow "
        "(aunets/core/flow.py:2, aunets/core/flow_gpu.py:3, aunets/core/registry.py:2)"
    ]


def test_the_checker_catches_an_upward_import(tmp_path: Path) -> None:
    pkg = tmp_path / "aunets"
    for sub in ("core", "engines", "stream"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "core" / "frame.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from aunets.stream.tracking import Track\n"
    )
    (pkg / "engines" / "runtime.py").write_text(
        "import importlib\nfrom aunets.core.errors import EngineError\n"
        "def load():\n    return importlib.import_module('aunets.models.registry')\n"
    )
    (pkg / "stream" / "sink.py").write_text("from ..engines import runtime\nfrom . import tracking\n")
    assert violations(tmp_path) == [
        "aunets/core/frame.py:3: aunets.core.frame -> aunets.stream.tracking",
        "aunets/engines/runtime.py:4: aunets.engines.runtime -> aunets.models.registry",
    ]


def test_the_package_never_imports_the_benchmarks(tmp_path: Path) -> None:
    (tmp_path / "aunets" / "stream").mkdir(parents=True)
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "aunets" / "__init__.py").write_text("")
    (tmp_path / "aunets" / "stream" / "__init__.py").write_text("")
    (tmp_path / "aunets" / "stream" / "report.py").write_text("def load():\n    from benchmarks.latency import run\n")
    (tmp_path / "benchmarks" / "latency.py").write_text("from aunets.cli import main\nfrom aunets.stream import sink\n")
    assert violations(tmp_path) == ["aunets/stream/report.py:2: aunets.stream.report -> benchmarks.latency"]


def test_the_distribution_has_one_import_root(tmp_path: Path) -> None:
    """From an unrelated directory, the generic names are not ours; ``aunets.*`` is."""
    code = (
        "import importlib.util as u, json\n"
        "names = ['stream', 'engines', 'models', 'core', 'aunets.stream', 'aunets.engines.engine']\n"
        "print(json.dumps({n: (u.find_spec(n).origin if u.find_spec(n) else None) for n in names}))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    import json

    origins = json.loads(out.stdout)
    for generic in ("stream", "engines", "models", "core"):
        assert origins[generic] is None or not str(origins[generic]).startswith(str(REPO)), origins
    assert str(origins["aunets.stream"]).startswith(str(REPO / "aunets" / "stream"))
    assert str(origins["aunets.engines.engine"]).startswith(str(REPO / "aunets" / "engines"))


def test_no_module_is_over_450_lines() -> None:
    """One concept per module: a module that grows past this is split along its concepts."""
    long = {str(p.relative_to(REPO)): n for p in (REPO / "aunets").rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > 450}
    assert long == {}
