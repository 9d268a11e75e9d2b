"""The first-party import graph: no import circles, and packages depend one way (the layers below).

The graph is read from the source with `ast`, nothing is imported. A node is a first-party module (a package's
`__init__.py` is the module named by the package); an edge is any import statement anywhere in a module
(module level, inside functions, under `if TYPE_CHECKING:`):
    import a.b.c                 -> a.b.c, or its longest prefix that is a first-party module
    from a.b import c            -> a.b.c when that is a module, else a.b
    from . import x, from .m import y   resolved against the importing module's package
Names in strings (importlib.import_module, the job-kind entry points of pyproject.toml) are not imports: that is
how corpus.spec finds job kinds without naming the packages above it.

1. No cycles: no strongly connected component of more than one module (a module that imports a module that
   imports it back, directly or through others). The failure prints each circle with file and line of every edge.
2. Layers, lowest first. A package may import only packages of a LOWER layer; packages of one layer are
   independent of each other. Every top-level package must appear here (a new one is placed on purpose):
       0  corpus              documents, shards, executors, specs and the job-kind registry
       1  rephrase, trainer   LLM rewriting and verification; the MoE trainer
       2  mathnotes           learning notes, built on rephrase
       3  pipeline            chains of job steps (demo, user pipelines) and their reports
       4  evidence            experiments run over corpus, rephrase, trainer and pipelines
       5  api                 the service and the CLI: may import everything
"""
from __future__ import annotations

import ast
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOT_PACKAGES = {"tests", "bench", "deploy"}  # top-level folders that hold code but ship no package

LAYERS: list[tuple[str, ...]] = [
    ("corpus",),
    ("rephrase", "trainer"),
    ("mathnotes",),
    ("pipeline",),
    ("evidence",),
    ("api",),
]

Graph = dict[str, dict[str, int]]  # module -> {imported module: line of the first such import}


def top_level_packages(root: Path = ROOT) -> list[str]:
    """Top-level folders holding Python files (with or without __init__.py), except tests/bench/deploy."""
    return sorted(p.name for p in root.iterdir()
                  if p.is_dir() and not p.name.startswith((".", "_")) and p.name not in NOT_PACKAGES
                  and any(p.glob("*.py")))


def module_files(root: Path, packages: list[str]) -> dict[str, Path]:
    mods = {}
    for pkg in packages:
        for f in sorted((root / pkg).rglob("*.py")):
            parts = f.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            mods[".".join(parts)] = f
    return mods


def _longest_module(name: str, mods: dict[str, Path]) -> str | None:
    while name and name not in mods:
        name = name.rpartition(".")[0]
    return name or None


def _from_base(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The absolute module a `from X import ...` reads from."""
    if not node.level:
        return node.module or ""
    parts = module.split(".") if is_package else module.split(".")[:-1]
    parts = parts[:len(parts) - (node.level - 1)]
    return ".".join(parts + ([node.module] if node.module else []))


def imports_of(module: str, path: Path, mods: dict[str, Path]) -> dict[str, int]:
    """{first-party module imported by `module`: first line}, from every import statement in the file."""
    out: dict[str, int] = {}
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _from_base(node, module, path.name == "__init__.py")
            subs = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in mods]
            targets = subs if len(subs) == len(node.names) else [*subs, base]  # `from pkg import sub` = sub
        else:
            continue
        for target in targets:
            dep = _longest_module(target, mods)
            if dep is not None and dep != module:
                out[dep] = min(out.get(dep, node.lineno), node.lineno)
    return out


def build_graph(root: Path = ROOT, packages: list[str] | None = None) -> tuple[Graph, dict[str, Path]]:
    mods = module_files(root, top_level_packages(root) if packages is None else packages)
    return {m: imports_of(m, f, mods) for m, f in mods.items()}, mods


def strongly_connected(graph: Graph) -> list[list[str]]:
    """Tarjan's components of more than one module, each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def one_circle(graph: Graph, component: list[str]) -> list[str]:
    """A shortest import path from the component's first module back to itself, inside the component."""
    start, inside = component[0], set(component)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v]):
                if w == start:
                    return paths[v] + [start]
                if w in inside and w not in paths:
                    paths[w] = paths[v] + [w]
                    nxt.append(w)
        frontier = nxt
    raise AssertionError(f"{component} is not strongly connected")


def describe(graph: Graph, mods: dict[str, Path], circle: list[str], root: Path = ROOT) -> str:
    edges = [f"    {a} -> {b}   ({mods[a].relative_to(root)}:{graph[a][b]})" for a, b in zip(circle, circle[1:])]
    return " -> ".join(circle) + "\n" + "\n".join(edges)


def test_no_import_circles():
    graph, mods = build_graph()
    circles = [describe(graph, mods, one_circle(graph, c)) for c in strongly_connected(graph)]
    assert not circles, "import circles (a module imports a module that imports it back):\n" + "\n".join(circles)


def test_packages_import_only_lower_layers():
    layer = {pkg: i for i, pkgs in enumerate(LAYERS) for pkg in pkgs}
    unplaced = [p for p in top_level_packages() if p not in layer]
    assert not unplaced, f"top-level packages {unplaced} are in no layer: place them in LAYERS ({__file__})"
    graph, mods = build_graph()
    wrong = []
    for module, deps in sorted(graph.items()):
        for dep, line in sorted(deps.items()):
            a, b = module.split(".")[0], dep.split(".")[0]
            if a != b and layer[b] >= layer[a]:
                wrong.append(f"  {mods[module].relative_to(ROOT)}:{line}: {module} imports {dep} "
                             f"({b}, layer {layer[b]}, is not below {a}, layer {layer[a]})")
    assert not wrong, "imports against the layering:\n" + "\n".join(wrong)


def _tree(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def test_the_graph_sees_every_kind_of_import(tmp_path):
    """The reader itself: relative imports, `from pkg import submodule`, imports inside functions and under
    TYPE_CHECKING all make edges, and a circle through them is found and printed."""
    _tree(tmp_path, {
        "low/__init__.py": "from low.a import A\n",
        "low/a.py": "A = 1\ndef f():\n    from .b import g\n",
        "low/b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from low import c\ndef g(): ...\n",
        "low/c.py": "import low.a\n",
        "low/d.py": "from . import a, b\nimport json\n",
        "high/x.py": "from low import A\nimport low.d as d\n",
        "tests/t.py": "import high.x\n",
    })
    assert top_level_packages(tmp_path) == ["high", "low"]
    graph, mods = build_graph(tmp_path)
    assert graph["low"] == {"low.a": 1}
    assert graph["low.a"] == {"low.b": 3} and graph["low.b"] == {"low.c": 3} and graph["low.c"] == {"low.a": 1}
    assert graph["low.d"] == {"low.a": 1, "low.b": 1}  # submodules named by `from . import`, not the package
    assert graph["high.x"] == {"low": 1, "low.d": 2}
    (component,) = strongly_connected(graph)
    assert component == ["low.a", "low.b", "low.c"]
    circle = one_circle(graph, component)
    assert circle == ["low.a", "low.b", "low.c", "low.a"]
    assert "low.b -> low.c   (low/b.py:3)" in describe(graph, mods, circle, tmp_path)
