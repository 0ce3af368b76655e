"""Flatten a TF2 function graph into one GraphDef and separate its state updates from its outputs.

A TF2 function runs its side effects (batch-norm moving-average assignments) as part of the call: automatic control
dependencies tie every stateful op to the outputs, and nested function calls run whole. The TF1 Hub convention is
the opposite: the forward pass only computes, and the updates are separate ops in the UPDATE_OPS collection that a
training loop runs on purpose. To get there, calls of library functions are inlined (so the assignments become
nodes of the outer graph), then the control edges that point at variable assignments are dropped and the
assignments are returned as the update ops.
"""

from __future__ import annotations

from legacy.errors import ConversionError
from legacy.format.graph_defs import called_functions, op_name
from legacy.engine.native_log import quiet_native_log

CALL_OPS = frozenset({"PartitionedCall", "StatefulPartitionedCall"})
ASSIGN_OPS = frozenset({"AssignVariableOp", "AssignSubVariableOp", "AssignAddVariableOp"})
_MAX_DEPTH = 32


def _split(name: str) -> tuple:
    """'node:2' -> ('node', 2); 'node' -> ('node', 0)."""
    if ":" in name:
        node, index = name.rsplit(":", 1)
        return node, int(index)
    return name, 0


def inline_function_calls(graph_def):
    """A copy of `graph_def` where every call of a library function (at any depth) is replaced by its body."""
    import tensorflow as tf
    from tensorflow.core.framework import graph_pb2

    # Converting a function body needs its nested functions registered in the default graph.
    library_only = graph_pb2.GraphDef()
    library_only.versions.CopyFrom(graph_def.versions)
    library_only.library.CopyFrom(graph_def.library)
    with tf.Graph().as_default():
        with quiet_native_log():
            tf.compat.v1.import_graph_def(library_only, name="")
        return _inline_all(graph_def)


def _inline_all(graph_def):
    from tensorflow.core.framework import graph_pb2

    functions = {f.signature.name: f for f in graph_def.library.function}
    current = graph_def
    for _ in range(_MAX_DEPTH):
        calls = [n for n in current.node if _called_function(n, functions)]
        if not calls:
            return _drop_unused_functions(current)
        out = graph_pb2.GraphDef()
        out.versions.CopyFrom(current.versions)
        out.library.CopyFrom(current.library)
        renames = {}  # call output tensor "call:i" -> inlined tensor name; "^call" -> control targets
        for node in current.node:
            fname = _called_function(node, functions)
            if fname:
                _inline_one(node, functions[fname], out, renames)
            else:
                out.node.add().CopyFrom(node)
        for node in out.node:
            _rewire(node, renames)
        current = out
    raise ConversionError(f"function calls nest deeper than {_MAX_DEPTH} levels; the model cannot be flattened")


def _drop_unused_functions(graph_def):
    """Keep only the library functions still referenced (e.g. by If/While), transitively: inlined ones go."""
    functions = {f.signature.name: f for f in graph_def.library.function}
    wanted = called_functions(graph_def.node, functions)
    kept = [f for f in graph_def.library.function if f.signature.name in wanted]
    del graph_def.library.function[:]
    graph_def.library.function.extend(kept)
    gradients = [g for g in graph_def.library.gradient if g.function_name in wanted]
    del graph_def.library.gradient[:]
    graph_def.library.gradient.extend(gradients)
    return graph_def


def _called_function(node, functions) -> str | None:
    if node.op in CALL_OPS:
        name = node.attr["f"].func.name
        return name if name in functions else None
    return node.op if node.op in functions else None


def _inline_one(call, fdef, out, renames) -> None:
    from tensorflow.python.framework import function_def_to_graph

    body, flat_names = function_def_to_graph.function_def_to_graph_def(fdef)
    prefix = call.name + "/_inlined/"
    data_inputs = [i for i in call.input if not i.startswith("^")]
    call_controls = [i for i in call.input if i.startswith("^")]
    arg_names = [a.name for a in fdef.signature.input_arg]
    if len(arg_names) != len(data_inputs):
        raise ConversionError(f"call {call.name!r} passes {len(data_inputs)} inputs to function "
                              f"{fdef.signature.name!r}, which takes {len(arg_names)}")
    args = dict(zip(arg_names, data_inputs))

    def local(name: str) -> str:
        if name.startswith("^"):
            node = name[1:]
            return "^" + (op_name(args[node]) if node in args else prefix + node)
        node, index = _split(name)
        if node in args:
            return args[node]
        return f"{prefix}{node}:{index}"

    for node in body.node:
        if node.name in args:  # the argument placeholders are replaced by the call's inputs
            continue
        new = out.node.add()
        new.CopyFrom(node)
        new.name = prefix + node.name
        del new.input[:]
        new.input.extend(local(i) for i in node.input)
        if not any(i.startswith("^") for i in node.input) and not [i for i in node.input if not i.startswith("^")]:
            new.input.extend(call_controls)  # nodes without inputs still wait for the call's control inputs
    outputs = [local(flat_names.get(fdef.ret[a.name], fdef.ret[a.name])) for a in fdef.signature.output_arg]
    for k, tensor in enumerate(outputs):
        renames[f"{call.name}:{k}"] = tensor
    if len(outputs) > 0:
        renames[call.name] = outputs[0]
    controls = sorted({"^" + op_name(t) for t in outputs} |
                      {"^" + prefix + fdef.control_ret[name] for name in fdef.control_ret})
    renames["^" + call.name] = controls


def _rewire(node, renames) -> None:
    inputs = []
    for name in node.input:
        if name.startswith("^"):
            target = renames.get(name)
            inputs.extend(target if isinstance(target, list) else [name])
        else:
            inputs.append(renames.get(name if ":" in name else name + ":0", renames.get(name, name)))
    seen, unique = set(), []
    for name in inputs:  # control inputs may now repeat (a data input may repeat on purpose: If(c, c, x))
        if not name.startswith("^") or name not in seen:
            seen.add(name)
            unique.append(name)
    del node.input[:]
    node.input.extend(unique)


def detach_updates(graph_def, variable_inputs: set) -> list:
    """Drop control edges onto variable assignments (in place) and return the assignment node names.

    variable_inputs: names of the nodes (placeholders) that carry the variables' resource handles. An assignment
    is an `Assign*VariableOp` whose resource comes from one of them, directly or through Identity nodes.
    The edges dropped are those that make the outputs wait for the updates (a TF1 graph runs its updates apart,
    from UPDATE_OPS); an edge inside the updates' own computation stays (batch renorm's moving variance is
    computed from the moving standard deviation after its update: its read waits for that assignment).
    """
    nodes = {n.name: n for n in graph_def.node}

    def resource_source(name: str) -> str:
        node_name = op_name(name)
        while node_name in nodes and nodes[node_name].op == "Identity":
            node_name = op_name(nodes[node_name].input[0])
        return node_name

    updates = [n.name for n in graph_def.node
               if n.op in ASSIGN_OPS and resource_source(n.input[0]) in variable_inputs]
    update_set = set(updates)
    feeding_updates, stack = set(), list(updates)  # the updates and every node they depend on
    while stack:
        name = stack.pop()
        if name in feeding_updates or name not in nodes:
            continue
        feeding_updates.add(name)
        stack.extend(op_name(i) for i in nodes[name].input)
    for node in graph_def.node:
        if node.name in feeding_updates:
            continue
        kept = [i for i in node.input if not (i.startswith("^") and i[1:] in update_set)]
        if len(kept) != len(node.input):
            del node.input[:]
            node.input.extend(kept)
    return updates
