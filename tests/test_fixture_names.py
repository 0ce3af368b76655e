"""Each fixture name means one thing: no test file defines a fixture under the name of one of tests/conftest.py's
session fixtures (a local `converted` that is a path where the shared one is a dict, a local `oracle` that is a
tuple of answers where the shared one is the runner)."""

from __future__ import annotations

import ast
import os

from tests.corpus import ROOT

TESTS = os.path.join(ROOT, "tests")


def _fixtures(path: str) -> set:
    """Names of the functions decorated with pytest.fixture (with or without arguments) in `path`."""
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for decorator in node.decorator_list:
                target = decorator.func if isinstance(decorator, ast.Call) else decorator
                if isinstance(target, ast.Attribute) and target.attr == "fixture":
                    names.add(node.name)
    return names


def test_no_test_file_shadows_a_shared_fixture():
    shared = _fixtures(os.path.join(TESTS, "conftest.py"))
    assert {"oracle", "genuine", "converted"} <= shared  # the scan sees the shared fixtures
    shadowing = []
    for root, _, files in os.walk(TESTS):
        for f in sorted(files):
            path = os.path.join(root, f)
            if f.endswith(".py") and path != os.path.join(TESTS, "conftest.py"):
                shadowing += [f"{os.path.relpath(path, ROOT)}: {name}" for name in sorted(_fixtures(path) & shared)]
    assert not shadowing, f"fixtures named like tests/conftest.py's shared ones: {shadowing}"
