"""legacy.engine.graph_variables writes, in one import, the very nodes and variables get_variable creates one by one."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from legacy.engine.graph_variables import create_graph_variables

# Shapes and dtypes of the variables a model holds: a scalar step counter, a small bias (a constant zero), a
# kernel large enough for a Fill, half and double precision, a flag.
VARIABLES = [("step", [], tf.int64), ("dense/bias", [3], tf.float32), ("conv/kernel", [3, 3, 8, 16], tf.float32),
             ("half", [40, 30], tf.float16), ("double", [2], tf.float64), ("flag", [], tf.bool)]
TRAINABLE = {"dense/bias", "conv/kernel", "half"}
PARTS = {"conv/kernel": {"full_name": "conv/kernel_whole", "full_shape": [3, 3, 8, 32], "offset": [0, 0, 0, 16]}}


def _model_variables(spec=VARIABLES):
    return [tf.Variable(tf.zeros(shape, dtype), name=name) for name, shape, dtype in spec]


def _build(create, spec=VARIABLES):
    """(the graph's GraphDef without defaults, its variables' VariableDefs) after `create` makes the variables."""
    variables = _model_variables(spec)
    names = {id(v): name for v, (name, _, _) in zip(variables, spec)}
    trainable = {id(v) for v, (name, _, _) in zip(variables, spec) if name in TRAINABLE}
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.placeholder(tf.float32, [None, 4], name="images")
        made = create(variables, names, trainable)
        defs = {name: made[id(v)].to_proto() for v, (name, _, _) in zip(variables, spec)}
        collections = {key: [v.name for v in tf.compat.v1.get_collection(key)]
                       for key in (tf.compat.v1.GraphKeys.GLOBAL_VARIABLES,
                                   tf.compat.v1.GraphKeys.TRAINABLE_VARIABLES)}
        meta_graph = tf.compat.v1.train.export_meta_graph(graph=graph, strip_default_attrs=True)
    nodes = {n.name: n for n in meta_graph.graph_def.node}
    for node in nodes.values():
        node.input[:] = [i[:-2] if i.endswith(":0") else i for i in node.input]  # one spelling of output 0
    return nodes, defs, collections


def _with_get_variable(variables, names, trainable):
    from legacy.engine.partitions import mark_part

    result = {}
    for var in variables:
        result[id(var)] = tf.compat.v1.get_variable(
            names[id(var)], shape=var.shape, dtype=var.dtype, trainable=id(var) in trainable,
            initializer=tf.compat.v1.zeros_initializer(), use_resource=True)
        if names[id(var)] in PARTS:
            mark_part(result[id(var)], PARTS[names[id(var)]])
    return result


def test_the_same_nodes_variables_and_collections_as_get_variable():
    expected = _build(_with_get_variable)
    actual = _build(lambda variables, names, trainable: create_graph_variables(variables, names, trainable, PARTS))
    assert sorted(actual[0]) == sorted(expected[0])
    for name, node in expected[0].items():
        assert actual[0][name] == node, name
    assert actual[1] == expected[1]  # VariableDefs, the partition's slice included
    assert actual[2] == expected[2]


def test_the_variables_initialize_read_and_assign():
    variables = _model_variables()
    names = {id(v): name for v, (name, _, _) in zip(variables, VARIABLES)}
    with tf.Graph().as_default(), tf.compat.v1.Session() as session:
        made = create_graph_variables(variables, names, set())
        session.run(tf.compat.v1.global_variables_initializer())
        kernel = made[id(variables[2])]
        session.run(kernel.assign(tf.ones(kernel.shape)))
        np.testing.assert_array_equal(session.run(kernel), np.ones([3, 3, 8, 16], np.float32))
        assert session.run(made[id(variables[0])]) == 0


@pytest.mark.parametrize("spec", [
    [("images", [2], tf.float32)],  # the graph's image placeholder already has that name
    [("a", [2], tf.float32), ("a/Assign", [2], tf.float32)],  # one variable's name is another one's op
    [("text", [2], tf.string)],  # no plain zero to write
])
def test_names_or_dtypes_it_cannot_write_are_left_to_get_variable(spec):
    variables = _model_variables(spec)
    names = {id(v): name for v, (name, _, _) in zip(variables, spec)}
    with tf.Graph().as_default() as graph:
        tf.compat.v1.placeholder(tf.float32, [None, 4], name="images")
        made = create_graph_variables(variables, names, set())
        assert len(made) == len(spec)
        assert len(tf.compat.v1.global_variables()) == len(spec)
        assert {op.type for op in graph.get_operations()} >= {"VarHandleOp", "AssignVariableOp"}


def test_the_graph_keeps_its_producer_version():
    """A GraphDef imported without versions would lower the graph's producer version, and TensorFlow then reads a
    scalar placeholder created afterwards (a hyperparameter input) as of unknown shape."""
    variables = _model_variables()
    names = {id(v): name for v, (name, _, _) in zip(variables, VARIABLES)}
    with tf.Graph().as_default() as graph:
        before = graph.graph_def_versions.producer
        create_graph_variables(variables, names, set())
        assert graph.graph_def_versions.producer == before
        assert tf.compat.v1.placeholder(tf.float32, [], name="scale").shape == tf.TensorShape([])
