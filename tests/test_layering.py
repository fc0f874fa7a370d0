"""The import graph points downward only, has no circles, and hides no imports in functions.

Layers, bottom to top (a module may import its own package and the layers below it):
  0  text4seg.core                      codec, parser, masks, metrics, query, templates, config
  1  text4seg.backbone, data_builders   the pretrained text backbone; datasets into one format
  2  text4seg.mllm, stsam_refiner       the two models (they never import each other)
  3  text4seg.app                       pipeline, refiners, evaluation, CLI, web, default model
"""

from __future__ import annotations

import ast
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ROOTS = ("text4seg", "stsam_refiner", "data_builders")
LAYERS = (
    ("text4seg.core",),
    ("text4seg.backbone", "data_builders"),
    ("text4seg.mllm", "stsam_refiner"),
    ("text4seg.app",),
)
LAZY_MARK = "# lazy:"


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    line: int
    local: bool
    """Inside a function body."""
    commented: bool
    """A ``# lazy:`` comment on the import's line or the line above."""


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for root in ROOTS for p in (REPO / root).rglob("*.py")}


def _resolve(target: str, names: list[str], modules: dict[str, Path]) -> list[str]:
    """``from target import a, b``: the submodules a, b where they are modules, else target itself."""
    subs = [f"{target}.{n}" for n in names if f"{target}.{n}" in modules]
    return subs or [target]


def _edges(name: str, path: Path, modules: dict[str, Path]) -> list[Edge]:
    source = path.read_text(encoding="utf-8")
    lines = source.splitlines()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    edges = []

    def commented(node: ast.stmt) -> bool:
        """A ``# lazy:`` comment on the import's line or above its block of import lines."""
        if LAZY_MARK in lines[node.lineno - 1]:
            return True
        row = node.lineno - 2
        while row >= 0 and lines[row].strip().startswith(("from ", "import ")):
            row -= 1
        return row >= 0 and lines[row].strip().startswith(LAZY_MARK)

    def visit(node: ast.AST, local: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = local or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            targets: list[str] = []
            if isinstance(child, ast.Import):
                targets = [a.name for a in child.names]
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")[: len(package.split(".")) - (child.level - 1)]
                    target = ".".join(base + ([child.module] if child.module else []))
                else:
                    target = child.module or ""
                targets = _resolve(target, [a.name for a in child.names], modules)
            for target in targets:
                if target.split(".")[0] in ROOTS:
                    edges.append(Edge(name, target, child.lineno, local, commented(child)))
            visit(child, inner)

    visit(ast.parse(source), False)
    return edges


def _unit(module: str) -> tuple[int, str] | None:
    for level, units in enumerate(LAYERS):
        for unit in units:
            if module == unit or module.startswith(unit + "."):
                return level, unit
    return None


@pytest.fixture(scope="module")
def graph() -> tuple[dict[str, Path], list[Edge]]:
    modules = _modules()
    edges = [e for name, path in sorted(modules.items()) for e in _edges(name, path, modules)]
    return modules, edges


def test_every_module_belongs_to_a_layer(graph):
    modules, _ = graph
    loose = [m for m in modules if _unit(m) is None and m not in ROOTS]
    assert loose == [], f"modules outside every layer (add them to LAYERS or move them): {loose}"
    assert (REPO / "text4seg" / "__init__.py").read_text().count("import") == 0


def test_imports_point_downward_only(graph):
    _, edges = graph
    bad = []
    for e in edges:
        src, dst = _unit(e.source), _unit(e.target)
        if src is None or dst is None or src[1] == dst[1]:
            continue
        if dst[0] >= src[0]:
            bad.append(f"{e.source}:{e.line} imports {e.target} (layer {src[0]} -> {dst[0]})")
    assert bad == [], "imports that do not point downward:\n" + "\n".join(bad)


def test_no_import_circles(graph):
    _, edges = graph
    successors: dict[str, set[str]] = defaultdict(set)
    for e in edges:
        if e.source != e.target and not e.target.startswith(e.source + "."):
            successors[e.source].add(e.target)
    state: dict[str, int] = {}
    circles: list[list[str]] = []

    def walk(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(successors.get(node, ())):
            if state.get(nxt) == 1:
                circles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                walk(nxt, stack)
        stack.pop()
        state[node] = 2

    for node in sorted(successors):
        if node not in state:
            walk(node, [])
    assert circles == [], "import circles:\n" + "\n".join(" -> ".join(c) for c in circles)


def test_function_local_imports_of_our_modules_say_why(graph):
    _, edges = graph
    hidden = [f"{e.source}:{e.line} imports {e.target}" for e in edges if e.local and not e.commented]
    assert hidden == [], (
        f"function-local imports of our own modules need a '{LAZY_MARK} <optional heavy dependency>' "
        "comment (or move them to the top):\n" + "\n".join(hidden)
    )


def test_the_checker_sees_a_violation(tmp_path):
    # The rules above must be able to fail: a core module importing the app is caught.
    fake = tmp_path / "text4seg" / "core"
    fake.mkdir(parents=True)
    path = fake / "bad.py"
    path.write_text("def f():\n    from text4seg.app.pipeline import Text4SegPipeline\n")
    edges = _edges("text4seg.core.bad", path, {"text4seg.app.pipeline": path})
    assert [(e.target, e.local, e.commented) for e in edges] == [("text4seg.app.pipeline", True, False)]
    src, dst = _unit(edges[0].source), _unit(edges[0].target)
    assert dst[0] > src[0]
