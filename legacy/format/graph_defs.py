"""GraphDef helpers that read graphs without running them, shared by the format's scans and the engine.

    op_name("scope/op:0")                         # "scope/op"
    called_functions(graph_def.node, functions)   # names of the library functions the nodes reach
"""

from __future__ import annotations

from typing import Iterable


def node_def(op: str, name: str, inputs: Iterable[str] = (), device: str = "", **attrs):
    """A NodeDef built as a proto, without a graph: `attrs` maps attr names to AttrValue protos."""
    from tensorflow.core.framework import node_def_pb2

    node = node_def_pb2.NodeDef(op=op, name=name, input=list(inputs), device=device)
    for key, value in attrs.items():
        node.attr[key].CopyFrom(value)
    return node


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


# Ops whose output holds the same integers as their first input (an id passed along unchanged).
_SAME_VALUES = frozenset({"Identity", "Cast", "Reshape", "ExpandDims", "Squeeze", "StopGradient",
                          "EnsureShape", "PlaceholderWithDefault", "IdentityN"})
_READS = frozenset({"Identity", "ReadVariableOp", "Enter"})
_GATHERS = frozenset({"GatherV2", "Gather", "ResourceGather"})
_CALLS = frozenset({"PartitionedCall", "StatefulPartitionedCall"})


class _Scope:
    """The nodes of a graph or of a function body, with who consumes what; a function's scope knows the call
    that entered it, so a resource argument can be followed back to the variable the caller passed."""

    def __init__(self, node_defs, library: dict, args: list | None = None, call=None, outer=None):
        self.nodes = {node.name: node for node in node_defs}
        self.library, self.args, self.call, self.outer = library, args or [], call, outer
        self.consumers: dict = {}
        for node in node_defs:
            for position, name in enumerate(node.input):
                if not name.startswith("^"):
                    self.consumers.setdefault(op_name(name), []).append((node, position))

    def enter(self, call, position: int):
        """(the called function's scope, the name of argument `position` in it), or None."""
        function = self.library.get(call.attr["f"].func.name)
        if function is None or position >= len(function.signature.input_arg):
            return None
        args = [arg.name for arg in function.signature.input_arg]
        return _Scope(function.node_def, self.library, args, call, self), args[position]

    def leading_size(self, tensor: str, depth: int = 0) -> int | None:
        """The first dimension of the variable or constant `tensor` reads (through identities and calls)."""
        name = op_name(tensor)
        if depth > 32:
            return None
        if name in self.args and self.outer is not None:  # an argument: what the caller passed
            position = self.args.index(name)
            return self.outer.leading_size(self.call.input[position], depth + 1) \
                if position < len(self.call.input) else None
        node = self.nodes.get(name)
        if node is None:
            return None
        if node.op in _READS and node.input:
            return self.leading_size(node.input[0], depth + 1)
        if node.op in ("VarHandleOp", "VariableV2", "Variable"):
            dims = node.attr["shape"].shape.dim
        elif node.op == "Const":
            dims = node.attr["value"].tensor.tensor_shape.dim
        else:
            return None
        return int(dims[0].size) if dims and dims[0].size > 0 else None


def index_bounds(graph_def, tensor_names: dict) -> dict:
    """{key: number of rows} for integer inputs that index a table of known size (a gather's `indices`, e.g.
    token ids into an embedding, segment ids into a segment table): the smallest such size over every gather
    the input reaches unchanged, also inside the functions it is passed to. Inputs that index nothing found here
    are left out. Reads the graph only."""
    library = {f.signature.name: f for f in graph_def.library.function}
    top = _Scope(graph_def.node, library)
    bounds = {}
    for key, tensor in tensor_names.items():
        found, frontier, seen = [], [(top, op_name(tensor))], set()
        while frontier:
            scope, name = frontier.pop()
            if (id(scope), name) in seen or len(seen) > 100_000:
                continue
            seen.add((id(scope), name))
            for node, position in scope.consumers.get(name, []):
                if node.op in _SAME_VALUES and position == 0:
                    frontier.append((scope, node.name))
                elif node.op in _GATHERS and position == 1:
                    rows = scope.leading_size(node.input[0])
                    if rows:
                        found.append(rows)
                elif node.op in _CALLS:
                    entered = scope.enter(node, position)
                    if entered is not None:
                        frontier.append(entered)
        if found:
            bounds[key] = min(found)
    return bounds
