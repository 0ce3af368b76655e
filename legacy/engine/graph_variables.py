"""The TF1 resource variables of a graph variant built from a TF2 model, created in one graph import.

A TF1 graph variant needs, per variable of the model, what `tf.compat.v1.get_variable(name, shape, dtype,
initializer=zeros_initializer(), use_resource=True)` creates (a `VarHandleOp`, its zeros initializer and
`AssignVariableOp`, a `VarIsInitializedOp` and a `ReadVariableOp`) and the variable object for the collections.
get_variable builds those ops one Python call at a time: 2 ms per variable, a second for the two variants
of a 272-variable ResNet, paid by every `hub.Module` of a TF2 SavedModel and every TF2 -> TF1 conversion. Here the
same nodes are written as NodeDefs, imported at once, and the variables are made from their `VariableDef`s, as a
TF1 `import_meta_graph` does. The values never come from the initializers: the module's loader restores the
checkpoint (the zeros only give the initializer a shape and dtype).
"""

from __future__ import annotations

from typing import Iterable, Mapping

from legacy.engine.partitions import mark_part
from legacy.format.graph_defs import node_def

_SMALL = 1000  # elements: tf.zeros writes a smaller zero tensor as a constant, a larger one as a Fill


def create_graph_variables(variables: Iterable, names: Mapping[int, str], trainable_ids: set,
                           partitions: Mapping | None = None) -> dict:
    """{id(model variable): its TF1 resource variable in the current graph}, named `names[id(var)]`, trainable
    when its id is in `trainable_ids`, marked as a part of a partitioned variable when `partitions` names it."""
    import tensorflow as tf

    variables = list(variables)
    graph = tf.compat.v1.get_default_graph()
    written = [node for var in variables if _zeros_known(var.dtype)
               for node in _variable_nodes(names[id(var)], var.shape, var.dtype)]
    nodes = {node.name: node for node in written}
    taken = {op.name for op in graph.get_operations()}
    if len(nodes) != len(written) or taken & set(nodes) or not all(_zeros_known(v.dtype) for v in variables):
        # A name that another variable's ops (or the graph) already use, or a dtype without a plain zero:
        # get_variable's own naming and initializers decide.
        return {id(var): _get_variable(var, names, trainable_ids, partitions) for var in variables}
    graph_def = tf.compat.v1.GraphDef()
    # The graph's own versions: a GraphDef without them counts as producer 0, and importing it would lower the
    # graph's producer version, after which TensorFlow reads a scalar placeholder's shape as unknown.
    graph_def.versions.CopyFrom(graph.graph_def_versions)
    graph_def.node.extend(nodes.values())
    tf.compat.v1.import_graph_def(graph_def, name="")
    keys = tf.compat.v1.GraphKeys
    result = {}
    for var in variables:
        name = names[id(var)]
        trainable = id(var) in trainable_ids
        graph_var = tf.compat.v1.Variable(variable_def=_variable_def(name, trainable))
        tf.compat.v1.add_to_collection(keys.GLOBAL_VARIABLES, graph_var)
        if trainable:
            tf.compat.v1.add_to_collection(keys.TRAINABLE_VARIABLES, graph_var)
        _mark(graph_var, name, partitions)
        result[id(var)] = graph_var
    return result


def _zeros_known(dtype) -> bool:
    import tensorflow as tf

    dtype = tf.as_dtype(dtype)
    return dtype.is_floating or dtype.is_integer or dtype.is_complex or dtype == tf.bool


def _get_variable(var, names: Mapping, trainable_ids: set, partitions: Mapping | None):
    import tensorflow as tf

    graph_var = tf.compat.v1.get_variable(names[id(var)], shape=var.shape, dtype=var.dtype,
                                          trainable=id(var) in trainable_ids,
                                          initializer=tf.compat.v1.zeros_initializer(), use_resource=True)
    _mark(graph_var, names[id(var)], partitions)
    return graph_var


def _mark(graph_var, name: str, partitions: Mapping | None) -> None:
    part = (partitions or {}).get(name)
    if part is not None:
        mark_part(graph_var, part)


def _variable_def(name: str, trainable: bool):
    from tensorflow.core.framework import variable_pb2

    return variable_pb2.VariableDef(
        variable_name=f"{name}:0", initializer_name=f"{name}/Assign",
        snapshot_name=f"{name}/Read/ReadVariableOp:0", initial_value_name=f"{name}/Initializer/zeros:0",
        is_resource=True, trainable=trainable)


def _variable_nodes(name: str, shape, dtype) -> list:
    """The NodeDefs get_variable creates for a resource variable with a zeros initializer."""
    import tensorflow as tf

    dtype = tf.as_dtype(dtype)
    shape = tf.TensorShape(shape)
    colocated = tf.compat.v1.AttrValue(list=tf.compat.v1.AttrValue.ListValue(s=[f"loc:@{name}".encode()]))
    dtype_attr = tf.compat.v1.AttrValue(type=dtype.as_datatype_enum)

    def const(node_name: str, value, value_dtype, value_shape=None):
        tensor = tf.make_tensor_proto(value, dtype=value_dtype, shape=value_shape)  # one value: compact
        return node_def("Const", node_name, dtype=tf.compat.v1.AttrValue(type=value_dtype.as_datatype_enum),
                        value=tf.compat.v1.AttrValue(tensor=tensor), _class=colocated)

    zeros = f"{name}/Initializer/zeros"
    if shape.num_elements() < _SMALL:  # as tf.zeros: a constant when small, else a Fill
        initializer = [const(zeros, dtype.as_numpy_dtype(0), dtype, shape.as_list())]
    else:
        initializer = [const(f"{zeros}/shape_as_tensor", shape.as_list(), tf.int32),
                       const(f"{zeros}/Const", dtype.as_numpy_dtype(0), dtype),
                       node_def("Fill", zeros, [f"{zeros}/shape_as_tensor", f"{zeros}/Const"], T=dtype_attr,
                                index_type=tf.compat.v1.AttrValue(type=tf.int32.as_datatype_enum), _class=colocated)]
    return initializer + [
        node_def("VarHandleOp", name, dtype=dtype_attr, shape=tf.compat.v1.AttrValue(shape=shape.as_proto()),
                 shared_name=tf.compat.v1.AttrValue(s=name.encode()), container=tf.compat.v1.AttrValue(s=b""),
                 debug_name=tf.compat.v1.AttrValue(s=f"{name}/".encode()), _class=colocated),
        node_def("VarIsInitializedOp", f"{name}/IsInitialized/VarIsInitializedOp", [name]),
        node_def("AssignVariableOp", f"{name}/Assign", [name, zeros], dtype=dtype_attr),
        node_def("ReadVariableOp", f"{name}/Read/ReadVariableOp", [name], dtype=dtype_attr),
    ]
