"""The import graph shows the architecture: `bridge` -> `legacy`; inside `legacy`, `hub` -> `engine` -> `format`
(and every layer -> `legacy.errors`), never upward, and no cycle between modules, not even through imports inside
functions. Read from the source with `ast`, so a lazy import cannot hide a dependency."""

from __future__ import annotations

import ast
import os

import pytest

from tests.corpus import ROOT

# May a module of the first package import a module of the second? Packages are matched by longest prefix.
LAYERS = {  # package -> the project packages it may import
    "legacy.errors": set(),
    "legacy.format": {"legacy.errors", "legacy.format"},
    "legacy.engine": {"legacy.errors", "legacy.format", "legacy.engine"},
    "legacy.hub": {"legacy.errors", "legacy.format", "legacy.engine", "legacy.hub"},
    "legacy": {"legacy.errors", "legacy.format", "legacy.engine", "legacy.hub", "legacy"},
    "bridge": {"legacy.errors", "legacy.format", "legacy.engine", "legacy.hub", "legacy", "bridge"},
}


def project_modules() -> dict:
    """Module name -> source path for every module of `bridge` and `legacy`."""
    modules = {}
    for package in ("bridge", "legacy"):
        for root, _, files in os.walk(os.path.join(ROOT, package)):
            for f in files:
                if f.endswith(".py"):
                    rel = os.path.relpath(os.path.join(root, f), ROOT)[:-3].replace(os.sep, ".")
                    modules[rel[:-len(".__init__")] if rel.endswith(".__init__") else rel] = os.path.join(root, f)
    return modules


def imports_of(name: str, path: str, modules: dict, source: str | None = None) -> set:
    """The project modules that `name` imports anywhere in its source (top level or inside functions); `source`
    stands in for the file's text (the self-tests plant imports that way)."""
    found = set()
    package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
    if source is None:
        with open(path) as f:
            source = f.read()
    for node in ast.walk(ast.parse(source, path)):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1] + ([base] if base else []))
            # `from X import a`: module X.a when it is one, else a name defined in X.
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        found.update(t for t in targets if t in modules and t != name)
    return found


def layer_of(name: str) -> str:
    return max((p for p in LAYERS if name == p or name.startswith(p + ".")), key=len)


MODULES = project_modules()
GRAPH = {name: imports_of(name, path, MODULES) for name, path in MODULES.items()}


def test_the_scan_sees_the_layers():
    # The rules below are only as good as the scan: it must find the known edges.
    assert "legacy.format.reader" in GRAPH["legacy.engine.graph_import"]
    assert "legacy.hub.module" in GRAPH["legacy.hub"]
    assert any(t.startswith("legacy.") for t in GRAPH["bridge.conversion.converter"])


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_point_down_only(name):
    allowed = LAYERS[layer_of(name)]
    wrong = sorted(t for t in GRAPH[name] if layer_of(t) not in allowed
                   and not (name == "legacy" and t.startswith("legacy.")))
    assert not wrong, f"{name} ({layer_of(name)}) imports {wrong}: only {sorted(allowed)} are below it"


def import_cycles(graph: dict) -> list:
    """Every cycle of `graph` (module -> the modules it imports), each as a path that ends where it starts.

    Every edge counts, a child's import of its own package too: importing `legacy.hub.image_info` runs
    `legacy/hub/__init__.py` first, which imports `image_info`, so `from legacy.hub import Module` inside
    `image_info` (even in a function) closes a cycle. A package's `__init__` importing its submodules is the usual
    way of exporting names, and is a cycle only when one of them imports the package back."""
    state, cycles = {}, []

    def visit(name, stack):
        state[name] = "open"
        for target in sorted(graph[name]):
            if state.get(target) == "open":
                cycles.append(stack[stack.index(target):] + [target])
            elif target not in state:
                visit(target, stack + [target])
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    return cycles


def test_no_import_cycles():
    cycles = import_cycles(GRAPH)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


@pytest.mark.parametrize("planted", ["from legacy.hub import Module", "from . import Module", "import legacy.hub",
                                     "from legacy import hub"])
def test_a_child_importing_its_own_package_is_a_cycle(planted):
    # legacy/hub/__init__.py imports image_info; image_info importing the package back, even inside a function,
    # is a cycle the check must see (it once dropped every child -> parent edge).
    name = "legacy.hub.image_info"
    assert name in GRAPH["legacy.hub"]
    path = MODULES[name]
    with open(path) as f:
        source = f.read() + f"\n\ndef _planted():\n    {planted}\n"
    graph = dict(GRAPH, **{name: imports_of(name, path, MODULES, source)})
    assert "legacy.hub" in graph[name]
    cycles = import_cycles(graph)
    assert any(set(c) == {name, "legacy.hub"} for c in cycles), cycles


def test_a_child_importing_a_package_that_does_not_import_it_is_no_cycle():
    # legacy.hub.installer imports legacy.hub, which does not import installer: that edge is fine.
    assert "legacy.hub" in GRAPH["legacy.hub.installer"]
    assert "legacy.hub.installer" not in GRAPH["legacy.hub"]
    assert not [c for c in import_cycles(GRAPH) if "legacy.hub.installer" in c]


def test_no_private_name_crosses_modules():
    # A name with a leading underscore is its module's own business: what another module needs is made public.
    crossing = []
    for name, path in sorted(MODULES.items()):
        with open(path) as f:
            tree = ast.parse(f.read(), path)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in ("bridge", "legacy"):
                crossing += [f"{name} imports {node.module}.{a.name}" for a in node.names
                             if a.name.startswith("_") and not a.name.startswith("__")]
    assert not crossing, crossing
