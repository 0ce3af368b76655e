"""Instantiate one graph variant of a TF1 module in the current graph, on variables owned by the caller.

This is the engine under the adapter (TF1 → TF2), the shim's `hub.Module` (eager and graph mode) and the
converter. It works in any graph: a `tf.compat.v1.Graph`, or the FuncGraph of `tf.compat.v1.wrap_function`.

How: the variant's GraphDef is pruned to what the requested tensors need (so initializers never run), reference
variables (`VariableV2`, as TF 1.x exported them) are rewritten into resource variables, and the result is imported
with an `input_map` that sends the image input to the caller's tensor, every variable handle to the caller's
`tf.Variable` and every plain read to a read through that variable (so gradient tapes see it). One set of
variables can thus back both graph variants: nothing is copied.
"""

from __future__ import annotations

from typing import Mapping, Sequence

from legacy.errors import ConversionError, InvalidInputError, ModuleFormatError
from legacy.format.graph_defs import name_functions_by_content, op_name
from legacy.format.reader import REF_VARIABLE_OPS, VARIABLE_OPS
from legacy.engine.inline import ASSIGN_OPS
from legacy.engine.native_log import quiet_native_log

# Reference-variable ops and their resource-variable counterparts (the ref is always input 0).
_REF_ASSIGN_OPS = {"Assign": "AssignVariableOp", "AssignAdd": "AssignAddVariableOp",
                   "AssignSub": "AssignSubVariableOp"}
# Ops that take a reference variable as a mutable input and have no simple resource counterpart here.
_UNSUPPORTED_REF_CONSUMERS = frozenset({
    "ScatterUpdate", "ScatterAdd", "ScatterSub", "ScatterMul", "ScatterDiv", "ScatterNdUpdate", "ScatterNdAdd",
    "CountUpTo", "ApplyGradientDescent", "ApplyMomentum", "ApplyAdam", "ApplyRMSProp", "ApplyAdagrad",
})
_READ_SUFFIX = "/_bridge_read"
_ASSIGN_SUFFIX = "/_bridge_assign"


def _tensor_name(name: str) -> str:
    return name if ":" in name else name + ":0"


def prune(graph_def, fetches: Sequence[str], groups: Sequence[set] = ()):
    """The part of `graph_def` that the fetched tensors or ops depend on (data and control inputs), in order.

    groups: sets of node names kept whole: once one of them is needed, all are (with what they depend on). A TF1
    control-flow context is restored only when every op it names was imported (see `restore_control_flow`).
    """
    from tensorflow.core.framework import graph_pb2

    nodes = {n.name: n for n in graph_def.node}
    missing = sorted({op_name(f) for f in fetches} - set(nodes))
    if missing:
        raise ModuleFormatError(f"the graph has no node {missing[0]!r} although a signature or collection names "
                                "it; the module is corrupt: re-export it")
    keep, stack = set(), [op_name(f) for f in fetches]
    known = set(nodes)
    pending = [set(g) & known for g in groups]
    while stack:
        while stack:
            name = stack.pop()
            if name in keep:
                continue
            if name not in nodes:
                raise ModuleFormatError(f"node {name!r} is used but missing from the graph; the module is corrupt: "
                                        "re-export it")
            keep.add(name)
            stack.extend(op_name(i) for i in nodes[name].input)
        for group in pending:
            if group & keep and not group <= keep:
                stack.extend(group - keep)
    out = graph_pb2.GraphDef()
    out.versions.CopyFrom(graph_def.versions)
    out.library.CopyFrom(graph_def.library)
    out.node.extend(n for n in graph_def.node if n.name in keep)
    return out


def state_node_names(graph_def) -> list:
    """Nodes that hold state other than variables (lookup tables): registered stateful ops without inputs.

    They are created once per module instance, like its variables, and every application uses them.
    """
    from tensorflow.python.framework import op_def_registry

    names = []
    for node in graph_def.node:
        if node.op in VARIABLE_OPS:
            continue
        op_def = op_def_registry.get(node.op)
        if op_def is not None and op_def.is_stateful and not op_def.input_arg:
            names.append(node.name)
    return names


def to_resource_variables(graph_def, keep: frozenset = frozenset()):
    """Rewrite reference variables into resource variables, keeping every node name that others refer to.

    `VariableV2` -> `VarHandleOp`; its `Identity` reads -> `ReadVariableOp`; `Assign`/`AssignAdd`/`AssignSub` ->
    their `...VariableOp` form plus a `ReadVariableOp` under the old name that yields the new value, as the ref op
    did; any other consumer reads through one shared `ReadVariableOp`.
    """
    from tensorflow.core.framework import graph_pb2

    ref_vars = {n.name: n for n in graph_def.node if n.op in REF_VARIABLE_OPS and n.name not in keep}
    if not ref_vars:
        return graph_def
    out = graph_pb2.GraphDef()
    out.versions.CopyFrom(graph_def.versions)
    out.library.CopyFrom(graph_def.library)
    shared_reads = {}

    def dtype_of(var_name):
        return ref_vars[var_name].attr["dtype"].type

    def shared_read(var_name):
        if var_name not in shared_reads:
            read = out.node.add(name=var_name + _READ_SUFFIX, op="ReadVariableOp", input=[var_name])
            read.attr["dtype"].type = dtype_of(var_name)
            shared_reads[var_name] = read.name
        return shared_reads[var_name]

    for node in graph_def.node:
        if node.op in REF_VARIABLE_OPS:
            handle = out.node.add(name=node.name, op="VarHandleOp")
            handle.attr["dtype"].type = node.attr["dtype"].type
            handle.attr["shape"].CopyFrom(node.attr["shape"])
            handle.attr["container"].s = node.attr["container"].s
            handle.attr["shared_name"].s = node.attr["shared_name"].s or node.name.encode()
            continue
        data_inputs = [i for i in node.input if not i.startswith("^")]
        control_inputs = [i for i in node.input if i.startswith("^")]
        ref_positions = [k for k, i in enumerate(data_inputs)
                         if op_name(i) in ref_vars and i.split(":")[-1] in (op_name(i), "0")]
        if not ref_positions:
            out.node.add().CopyFrom(node)
            continue
        if node.op in _REF_ASSIGN_OPS and ref_positions == [0]:
            var_name = op_name(data_inputs[0])
            assign = out.node.add(name=node.name + _ASSIGN_SUFFIX, op=_REF_ASSIGN_OPS[node.op],
                                  input=[var_name, data_inputs[1]] + control_inputs)
            assign.attr["dtype"].type = dtype_of(var_name)
            read = out.node.add(name=node.name, op="ReadVariableOp", input=[var_name, "^" + assign.name])
            read.attr["dtype"].type = dtype_of(var_name)
        elif node.op == "Identity" and ref_positions == [0]:
            read = out.node.add(name=node.name, op="ReadVariableOp",
                                input=[op_name(data_inputs[0])] + control_inputs)
            read.attr["dtype"].type = dtype_of(op_name(data_inputs[0]))
        elif node.op in _UNSUPPORTED_REF_CONSUMERS or node.op in _REF_ASSIGN_OPS:
            raise ConversionError(
                f"op {node.name!r} ({node.op}) modifies reference variable {op_name(data_inputs[ref_positions[0]])!r}"
                "; only Assign/AssignAdd/AssignSub updates of reference variables are supported")
        else:
            new = out.node.add()
            new.CopyFrom(node)
            del new.input[:]
            for k, i in enumerate(data_inputs):
                new.input.append(shared_read(op_name(i)) if k in ref_positions else i)
            new.input.extend(control_inputs)
    return out


def _strip_placement(graph_def) -> dict:
    """Drop devices and colocation constraints; return the constraints: node name -> its `_class` values.

    Devices recorded at export time (often GPUs) would only get in the way of placement here, and colocation with
    nodes that input_map replaces cannot be imported as it stands: `rewrite_colocation` puts it back afterwards.
    """
    colocation = {}
    for node in graph_def.node:
        node.device = ""
        if "_class" in node.attr:
            colocation[node.name] = list(node.attr["_class"].list.s)
            del node.attr["_class"]
    return colocation


def _prefix_shared_names(graph_def, prefix: str) -> None:
    # Two instances of a module must not share a table through a shared_name recorded at export.
    for node in graph_def.node:
        if "shared_name" in node.attr and node.op not in VARIABLE_OPS:
            node.attr["shared_name"].s = (prefix + (node.attr["shared_name"].s.decode() or node.name)).encode()


def prepare(graph_def, fetches: Sequence[str], keep_reference: frozenset = frozenset(),
            shared_name_prefix: str | None = None, contexts: Sequence = ()) -> tuple:
    """Prune to `fetches` (each TF1 control-flow context of `contexts`, from `context_defs`, whole or not at all),
    convert reference variables (except `keep_reference`), drop device placement.

    Returns (graph_def, colocation constraints that were dropped: node name -> `_class` values).
    """
    pruned = prune(graph_def, fetches, control_flow_groups(contexts))
    name_functions_by_content(pruned)  # another model's functions may be registered under the same names
    pruned = to_resource_variables(pruned, keep=frozenset(keep_reference))
    order_reads_before_writes(pruned)
    if shared_name_prefix is not None:
        _prefix_shared_names(pruned, shared_name_prefix)
    return pruned, _strip_placement(pruned)


# Ops that read a resource variable's value, and ops that change it (input 0 is the variable's handle).
_RESOURCE_READS = frozenset({"ReadVariableOp", "ResourceGather", "ResourceGatherNd"})
_RESOURCE_WRITES = ASSIGN_OPS | {"ResourceStridedSliceAssign"}
_RESOURCE_WRITE_PREFIXES = ("ResourceApply", "ResourceSparseApply", "ResourceScatter")


def order_reads_before_writes(graph_def) -> None:
    """Make every write of a resource variable wait for the graph's reads of it that do not depend on that write
    (in place: control inputs added to the writes).

    A TF1 graph leaves the order open between, say, the forward pass reading a quantization range and the update op
    that assigns its moving average in the same `session.run` (tensorflow_hub 0.15's outputs on such a module vary
    from run to run), and so does a function it is imported into. Here the outputs always see the values from
    before the call, and a read that is meant to see the new value (it depends on the write, e.g. through a control
    input) keeps doing so.
    """
    nodes = {n.name: n for n in graph_def.node}

    def variable_of(name: str) -> str | None:
        node = nodes.get(op_name(name))
        while node is not None and node.op == "Identity" and node.input:
            node = nodes.get(op_name(node.input[0]))
        return node.name if node is not None and node.op == "VarHandleOp" else None

    reads: dict = {}
    writes: dict = {}
    for node in graph_def.node:
        if not node.input or node.input[0].startswith("^"):
            continue
        if node.op in _RESOURCE_READS:
            found = reads
        elif node.op in _RESOURCE_WRITES or node.op.startswith(_RESOURCE_WRITE_PREFIXES):
            found = writes
        else:
            continue
        variable = variable_of(node.input[0])
        if variable is not None:
            found.setdefault(variable, []).append(node)

    def depends_on(name: str, target: str) -> bool:
        """Whether node `name` depends on node `target`, through the graph as it stands (edges added included)."""
        seen, stack = {name}, [name]
        while stack:
            for parent in nodes[stack.pop()].input:
                parent = op_name(parent)
                if parent == target:
                    return True
                if parent not in seen and parent in nodes:
                    seen.add(parent)
                    stack.append(parent)
        return False

    for variable, written in writes.items():
        for write in written:
            for read in reads.get(variable, ()):
                if f"^{read.name}" not in write.input and not depends_on(read.name, write.name):
                    write.input.append(f"^{read.name}")


def rewrite_colocation(colocation: dict, prefix: str, imported: set, input_map: Mapping,
                       state_groups: Mapping[str, list] | None = None) -> None:
    """Put the module's colocation constraints back onto the imported ops, under their new names.

    As the TF1 hub library did: `loc:@X` becomes the colocation of the tensor that replaced X (a signature input,
    a variable or table of the module's state), `loc:@<prefix>X` for a node imported here, or the colocation of the
    module's state X when this import does not need X itself (`state_groups`: state node name -> the colocation
    groups of what the module created for it, e.g. `loc:@module/w`); the op moves to the device of what it is
    colocated with. A constraint on a node that was pruned away (not needed for the fetched tensors) is dropped
    with it. When X has several outputs that would be rewritten differently (two of them replaced by inputs
    placed apart, or one replaced and another imported), the constraint has no single meaning: `InvalidInputError`
    (a ValueError), as the legacy library raised.
    """
    import tensorflow as tf

    graph = tf.compat.v1.get_default_graph()
    state_groups = state_groups or {}
    replaced: dict = {}  # op name in the module -> {output index: (replacement tensor, its colocation groups)}
    for key, tensor in input_map.items():
        if key.startswith("^"):
            continue
        name, _, index = key.rpartition(":")
        replaced.setdefault(name, {})[int(index)] = (tensor, sorted(tensor.op.colocation_groups()))

    def target_groups(node_name: str, target: str) -> list:
        if target not in replaced:
            if target in imported:
                return [("loc:@" + prefix + target).encode()]
            return list(state_groups.get(target, []))
        outputs = dict(replaced[target])
        if target in imported:
            for i in range(len(graph.get_operation_by_name(prefix + target).outputs)):
                outputs.setdefault(i, (None, [("loc:@" + prefix + target).encode()]))
        # The replaced outputs first: the message names an input the caller passed before what was not replaced.
        (first, (tensor_a, groups_a)), *others = sorted(outputs.items(), key=lambda o: (o[1][0] is None, o[0]))
        for second, (tensor_b, groups_b) in others:
            if groups_b != groups_a:
                def why(index, tensor):
                    source = f"{prefix}{target}:{index}"
                    return (f"input {source!r} is replaced by {tensor.name!r}" if tensor is not None else
                            f"tensor {source!r} is not replaced by an input")
                raise InvalidInputError(
                    f"Failed to rewrite colocation constraints while applying hub.Module: node "
                    f"{prefix + node_name!r} has a colocation constraint {('loc:@' + prefix + target).encode()!r} "
                    f"with ambiguous rewriting {groups_a} vs {groups_b} because {why(first, tensor_a)} and "
                    f"{why(second, tensor_b)}; publish the module without signature inputs made of several outputs "
                    "of one op that tf.colocate_with(...) constraints on other ops refer to (e.g. pass each "
                    "through tf.identity outside the constraints)")
        return groups_a

    for node_name, values in colocation.items():
        groups = []
        for value in values:
            if value.startswith(b"loc:@"):
                groups.extend(target_groups(node_name, value[5:].decode()))
        groups = sorted(set(groups))
        op = graph.get_operation_by_name(prefix + node_name)
        if not groups or groups == [("loc:@" + op.name).encode()]:
            continue
        op._set_attr("_class", tf.compat.v1.AttrValue(list=tf.compat.v1.AttrValue.ListValue(s=groups)))
        for group in groups:
            device = graph.get_operation_by_name(group[5:].decode()).device
            if device:
                op._set_device(device)
                break


def _in_graph(tensor):
    """`tensor` usable in the current graph: eager tensors (variable handles, constants) are captured."""
    import tensorflow as tf

    if isinstance(tensor, tf.Tensor) and hasattr(tensor, "numpy") and not tf.executing_eagerly():
        return tf.compat.v1.get_default_graph().capture(tensor)
    return tensor


def with_constant_values(graph_def, values: Mapping[str, str]):
    """A copy of `graph_def` whose scalar string constants `values` names (tensor name -> string) hold those strings
    (the module's asset paths, which the exported graph stores as a placeholder value)."""
    from tensorflow.core.framework import graph_pb2

    out = graph_pb2.GraphDef()
    out.CopyFrom(graph_def)
    by_node = {op_name(k): v for k, v in values.items()}
    for node in out.node:
        if node.name in by_node and node.op == "Const":
            node.attr["value"].tensor.string_val[:] = [by_node[node.name].encode()]
    return out


def _is_reference(var) -> bool:
    from tensorflow.python.ops import resource_variable_ops

    return not isinstance(var, resource_variable_ops.BaseResourceVariable) and hasattr(var, "_ref")


def _without_replaced_nodes(graph_def, input_map: dict, fetches: Sequence[str]) -> tuple:
    """`graph_def` without the nodes that `input_map` replaces entirely (variable handles, their plain reads, fed
    placeholders, tables), and the input_map entries still used.

    import_graph_def imports a node even when every consumer reads its replacement instead: a module's hundreds of
    variable handles and reads would sit in every function imported from it, unused but traced, saved, loaded and,
    being stateful, run on every call. A node that is fetched or is a control input stays.
    """
    from tensorflow.core.framework import graph_pb2

    used: dict = {}
    controlled = {op_name(f) for f in fetches}
    for node in graph_def.node:
        for name in node.input:
            if name.startswith("^"):
                if name not in input_map:  # a control input on a replaced node waits for its replacement
                    controlled.add(name[1:])
            else:
                used.setdefault(op_name(name), set()).add(_tensor_name(name))
    drop = {node.name for node in graph_def.node if node.name not in controlled and node.name in used
            and all(t in input_map for t in used[node.name])}
    if not drop:
        return graph_def, input_map
    out = graph_pb2.GraphDef()
    out.versions.CopyFrom(graph_def.versions)
    out.library.CopyFrom(graph_def.library)
    out.node.extend(n for n in graph_def.node if n.name not in drop)
    referenced = {i if i.startswith("^") else _tensor_name(i) for n in out.node for i in n.input}
    kept = {n.name for n in out.node}
    return out, {k: v for k, v in input_map.items() if k in referenced or op_name(k) in kept}


def import_fetches(graph_def, fetches: Sequence[str], inputs: Mapping[str, object],
                   variables: Mapping[str, object], name: str = "", states: Mapping[str, object] | None = None,
                   colocate: bool = False, shared_name_prefix: str | None = None,
                   collections=None) -> list:
    """Import what `fetches` need into the current graph and return them (tensors, or ops for op names).

    inputs: graph tensor name -> tensor to use instead (the signature's placeholders, asset paths).
    variables: variable op name (= checkpoint name) -> the `tf.Variable` that holds it. A reference variable
      (graph mode, a module exported with `VariableV2`) is used as such: the graph's reads and assignments act on it.
    states: state node name (a lookup table) -> the handle of the instance created for the module.
    colocate: rewrite the module's colocation constraints onto the new names (graph mode; needs `name` to be an
      absolute scope ending in "/").
    shared_name_prefix: prefix the `shared_name` of imported stateful ops (tables created by this import).
    collections: the MetaGraphDef's `collection_def`, for the contexts of TF1 control flow (`tf.compat.v1.while_loop`,
      `tf.compat.v1.cond`) imported here: gradients through a TF1 loop need them (see `restore_control_flow`).
    """
    import tensorflow as tf

    states = states or {}
    keep_reference = frozenset(k for k, v in variables.items() if _is_reference(v))
    contexts = context_defs(collections) if collections is not None else []
    graph_def, colocation = prepare(graph_def, fetches, keep_reference, shared_name_prefix, contexts)
    nodes = {n.name: n for n in graph_def.node}
    waited_for = {i[1:] for n in graph_def.node for i in n.input if i.startswith("^")}  # control inputs
    input_map = {_tensor_name(k): _in_graph(v) for k, v in inputs.items() if op_name(k) in nodes}
    for node in graph_def.node:
        if node.name in states:
            input_map[node.name + ":0"] = _in_graph(states[node.name])
        elif node.name in keep_reference:
            input_map[node.name + ":0"] = variables[node.name]._ref()  # pylint: disable=protected-access
        elif node.op in VARIABLE_OPS:
            var = variables.get(node.name)
            if var is None:
                raise ModuleFormatError(
                    f"the graph uses variable {node.name!r}, which the module's checkpoint does not provide; "
                    "the module is incomplete: re-export it")
            input_map[node.name + ":0"] = _in_graph(var.handle)
        elif (node.op == "ReadVariableOp" and len(node.input) == 1 and op_name(node.input[0]) in nodes
              and nodes[op_name(node.input[0])].op in VARIABLE_OPS):
            # A plain read (its input may be spelled `var` or `var:0`): read through the variable object, so
            # that a GradientTape watches it; writes ordered after the read (order_reads_before_writes) wait
            # for this read instead.
            input_map[node.name + ":0"] = variables[op_name(node.input[0])].value()
            if node.name in waited_for:
                input_map["^" + node.name] = input_map[node.name + ":0"]
    if not colocate:
        graph_def, input_map = _without_replaced_nodes(graph_def, input_map, fetches)
    try:
        with quiet_native_log():  # the producer-version warning of every TF1 graph import
            result = tf.compat.v1.import_graph_def(graph_def, input_map=input_map, return_elements=list(fetches),
                                                   name=name)
    except (ValueError, TypeError, KeyError, IndexError, tf.errors.OpError) as e:
        # The graph parsed but does not fit together (a node's inputs or attrs do not match its op, an unknown op).
        text = " ".join((getattr(e, "message", None) or str(e)).split())
        raise ModuleFormatError(f"the module graph cannot be imported ({text[:200]}); the module is damaged or "
                                "was made for another TensorFlow: re-download or re-export it") from None
    if colocate and colocation:
        state_groups = {k: v.op.colocation_groups() for k, v in variables.items() if hasattr(v, "op")}
        state_groups.update({k: _in_graph(v).op.colocation_groups() for k, v in states.items()})
        rewrite_colocation(colocation, name, set(nodes), input_map, state_groups)
    if contexts:
        restore_control_flow(contexts, name)
    return result


_CONTROL_FLOW_COLLECTIONS = ("cond_context", "while_context")


def context_defs(collections) -> list:
    """The outermost TF1 control-flow contexts in `collections`: [(collection key, parsed context proto)]."""
    from google.protobuf.message import DecodeError
    from tensorflow.core.protobuf import control_flow_pb2

    protos = {"cond_context": control_flow_pb2.CondContextDef, "while_context": control_flow_pb2.WhileContextDef}
    found = []
    for key in _CONTROL_FLOW_COLLECTIONS:
        if key in collections:
            for raw in collections[key].bytes_list.value:
                try:
                    found.append((key, protos[key].FromString(raw)))
                except DecodeError:
                    continue  # damaged: not restored (see restore_control_flow)
    return found


def control_flow_groups(contexts: Sequence) -> list:
    """For each outermost TF1 control-flow context (`context_defs`): the names of every node it (or a context nested
    in it) names."""
    def names(context_def, into: set) -> set:
        for field in ("pred_name", "pivot_name", "pivot_for_pred_name", "pivot_for_body_name",
                      "maximum_iterations_name"):
            value = getattr(context_def, field, "")
            if value:
                into.add(op_name(value))
        for field in ("loop_exit_names", "loop_enter_names"):
            into.update(op_name(v) for v in getattr(context_def, field, ()))
        into.update(op_name(v) for v in context_def.values_def.values)
        into.update(op_name(v) for v in context_def.values_def.external_values.values())
        for nested in context_def.nested_contexts:
            inner = nested.cond_ctxt if nested.WhichOneof("ctxt") == "cond_ctxt" else nested.while_ctxt
            names(inner, into)
        return into

    return [names(context_def, set()) for _, context_def in contexts]


def restore_control_flow(contexts: Sequence, scope: str) -> int:
    """Rebuild the TF1 control-flow contexts (`WhileContext`, `CondContext`, from `context_defs`) of the ops just
    imported under `scope`, as `tf.compat.v1.train.import_meta_graph` does from the collections; returns how many.

    import_graph_def brings the ops of a `tf.compat.v1.while_loop` but not the context that tells the gradient code
    which ops form the loop; without it, gradients through the loop fail ('NoneType' object has no attribute
    'outer_context'). A context whose ops were not all imported (pruned away, or renamed by the import because the
    graph already had those names) is left out: gradients through that loop stay unavailable.
    """
    from tensorflow.python.ops import control_flow_ops

    kinds = {"cond_context": control_flow_ops.CondContext, "while_context": control_flow_ops.WhileContext}
    restored = 0
    for key, context_def in contexts:
        try:
            kinds[key].from_proto(context_def, import_scope=scope.rstrip("/") or None)
        except (KeyError, ValueError, TypeError, AttributeError):
            continue  # its ops are not all here (see the docstring), or the entry is damaged
        restored += 1
    return restored
