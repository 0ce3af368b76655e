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


def rename_functions(graph_def, suffix: str) -> None:
    """Append `suffix` to the name of every function of the graph's library, and to every reference to one (ops
    calling it, function attributes, gradient registrations), in place."""
    renamed = {f.signature.name: f.signature.name + suffix for f in graph_def.library.function}
    if not renamed:
        return

    def fix_attrs(attrs) -> None:
        for value in attrs.values():
            if value.HasField("func") and value.func.name in renamed:
                value.func.name = renamed[value.func.name]
            for func in value.list.func:
                if func.name in renamed:
                    func.name = renamed[func.name]

    nodes = list(graph_def.node)
    for fdef in graph_def.library.function:
        fdef.signature.name = renamed[fdef.signature.name]
        nodes += list(fdef.node_def)
    for node in nodes:
        if node.op in renamed:
            node.op = renamed[node.op]
        fix_attrs(node.attr)
    for gradient in graph_def.library.gradient:
        if gradient.function_name in renamed:
            gradient.function_name = renamed[gradient.function_name]
        if gradient.gradient_func in renamed:
            gradient.gradient_func = renamed[gradient.gradient_func]


def name_functions_by_content(graph_def) -> None:
    """Give the graph's library functions names derived from the library's content (in place).

    TensorFlow registers functions by name, process-wide: two models whose graphs hold different functions of the
    same name (the `while_body_14` of one model's loop and of another's, or of a model and its conversion) cannot
    run in one process. With the digest of the whole library in every name, the same library keeps the same
    names (registering it again is allowed) and a different one gets names of its own.
    """
    import hashlib

    if not graph_def.library.function:
        return
    digest = hashlib.sha256(graph_def.library.SerializeToString(deterministic=True)).hexdigest()[:12]
    rename_functions(graph_def, f"_{digest}")


# The ops of a TF1 `tf.compat.v1.while_loop` (control flow v1; TF2 loops are `While` ops over functions).
TF1_LOOP_OPS = frozenset({"Enter", "RefEnter", "Exit", "RefExit", "LoopCond", "NextIteration", "RefNextIteration"})


def has_tf1_loops(graph_def) -> bool:
    """Whether the graph or a function of its library holds a TF1 while loop (see `TF1_LOOP_OPS`)."""
    return any(n.op in TF1_LOOP_OPS for n in graph_def.node) or any(
        n.op in TF1_LOOP_OPS for f in graph_def.library.function for n in f.node_def)
