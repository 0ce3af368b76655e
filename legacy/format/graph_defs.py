"""GraphDef helpers that read graphs without running them, shared by the format's scans and the engine.

    op_name("scope/op:0")                         # "scope/op"
    called_functions(graph_def.node, functions)   # names of the library functions the nodes reach
"""

from __future__ import annotations

from typing import Iterable


def op_name(name: str) -> str:
    """`scope/op:0` or `^scope/op` -> `scope/op`."""
    name = name[1:] if name.startswith("^") else name
    return name.split(":")[0]


def called_functions(start_nodes: Iterable, functions: dict) -> set:
    """Library functions that `start_nodes` call (as their op or through function attributes), transitively."""
    seen, stack = set(), []

    def visit(node):
        if node.op in functions:
            stack.append(node.op)
        for value in node.attr.values():
            if value.HasField("func"):
                stack.append(value.func.name)
            stack.extend(f.name for f in value.list.func)

    for node in start_nodes:
        visit(node)
    while stack:
        name = stack.pop()
        if name in seen or name not in functions:
            continue
        seen.add(name)
        for node in functions[name].node_def:
            visit(node)
    return seen


def input_closure(nodes: dict, roots: Iterable[str]) -> set:
    """Names of the graph nodes that `roots` depend on (data and control inputs), roots included."""
    seen, stack = set(), [r for r in roots if r in nodes]
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        stack.extend(op_name(i) for i in nodes[name].input if op_name(i) in nodes)
    return seen
