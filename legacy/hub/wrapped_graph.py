"""`hub.Module` inside `tf.compat.v1.wrap_function`: TF1 code traced once, in eager TensorFlow.

`wrap_function` traces its function into a graph whose collections work as in TF1 and which owns the variables
created in it: after tracing it lifts the graph's resource variables out as uninitialized variables that keep the
graph's initializer, and the caller runs `global_variables_initializer()` / `tables_initializer()` through
`wrapped.prune`. The genuine library imports its module graph there, so its variables are graph variables.
`tf.compat.v1.Variable` cannot make such variables in that graph: it creates them under `init_scope`, which is the
outer eager context (their initializer is None and `global_variables_initializer()` fails; reference variables are
refused outright). `graph_variable` builds the variable's ops in the graph and the variable object from its
`VariableDef`, as a graph import does.
"""

from __future__ import annotations

import tensorflow as tf


def traced_by_wrap_function(graph) -> bool:
    """True while `tf.compat.v1.wrap_function` (or `WrappedGraph.wrap_function`) traces into `graph`.

    The wrapper is recognised by the variable creator it installs on the graph, a `VariableHolder` method: a
    `tf.function` graph has none, and there the module stays an eager module (a `tf.function` retraces and may
    create variables on its first call only).
    """
    from tensorflow.python.eager import wrap_function

    stack = getattr(graph, "_variable_creator_stack", ())  # [(priority, creator)], innermost last
    return any(isinstance(getattr(creator, "__self__", None), wrap_function.VariableHolder) for _, creator in stack)


def graph_variable(initial_value, name: str, dtype, shape, trainable: bool, collections: list, use_resource: bool):
    """A variable built in the current (traced) graph: its op named `name` in the current name scope, its
    initializer assigning `initial_value()`, added to `collections`.

    `trainable` is the variable's own flag, which the wrapper's `trainable_variables` reads (the genuine library
    keeps the module's flag there even when `trainable=False`); TRAINABLE_VARIABLES is among `collections` or not.
    """
    from tensorflow.core.framework import variable_pb2
    from tensorflow.python.ops import gen_resource_variable_ops, gen_state_ops, ref_variable, resource_variable_ops

    dtype, shape = tf.as_dtype(dtype), tf.TensorShape(shape)
    with tf.compat.v1.name_scope(name) as scope:
        full_name = scope[:-1]
        with tf.compat.v1.name_scope("Initializer"):
            initial = tf.convert_to_tensor(initial_value(), dtype=dtype)
        if use_resource:
            handle = gen_resource_variable_ops.var_handle_op(shape=shape, dtype=dtype, shared_name=full_name,
                                                             name=scope)
            initializer = gen_resource_variable_ops.assign_variable_op(handle, initial, name="Assign")
            with tf.compat.v1.name_scope("Read"):
                snapshot = gen_resource_variable_ops.read_variable_op(handle, dtype)
            variable = handle
        else:
            variable = gen_state_ops.variable_v2(shape=shape, dtype=dtype, name=scope)
            initializer = gen_state_ops.assign(variable, initial, name="Assign").op
            snapshot = tf.identity(variable, name="read")
    proto = variable_pb2.VariableDef(variable_name=variable.name, initial_value_name=initial.name,
                                     initializer_name=initializer.name, snapshot_name=snapshot.name,
                                     trainable=trainable, is_resource=use_resource)
    kind = resource_variable_ops.ResourceVariable if use_resource else ref_variable.RefVariable
    var = kind(variable_def=proto)
    for collection in collections:
        tf.compat.v1.add_to_collection(collection, var)
    return var
