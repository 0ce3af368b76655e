"""`graph_defs.index_bounds`: which integer inputs index a table, and how many rows it has (what the parity
harness draws token ids below), in a TF1 graph and through the functions an input is passed to."""

from __future__ import annotations

import tensorflow as tf

from legacy.format.graph_defs import index_bounds


def _graph(build) -> tf.compat.v1.GraphDef:
    graph = tf.Graph()
    with graph.as_default():
        build()
    return graph.as_graph_def()


def test_ids_into_tables_of_known_size():
    def build():
        ids = tf.compat.v1.placeholder(tf.int32, [None, None], name="ids")
        segments = tf.compat.v1.placeholder(tf.int64, [None, None], name="segments")
        mask = tf.compat.v1.placeholder(tf.int32, [None, None], name="mask")
        offset = tf.compat.v1.placeholder(tf.int32, [None], name="offset")
        words = tf.compat.v1.get_variable("words", [50, 4], use_resource=True)
        small = tf.compat.v1.get_variable("small", [30, 4], use_resource=True)
        types = tf.constant([[0.0] * 4, [1.0] * 4])
        # Through identities and reshapes the ids reach `words`; a slice of them is not followed.
        x = tf.reduce_sum(tf.gather(words, tf.reshape(tf.identity(ids), [-1]))) + tf.gather(small, ids[:, 0])
        y = tf.gather(types, tf.cast(segments, tf.int32))
        z = tf.gather(words, offset + 1)  # shifted ids index nothing found here
        return x, y, z, tf.cast(mask, tf.float32)

    graph_def = _graph(build)
    bounds = index_bounds(graph_def, {"ids": "ids:0", "segments": "segments:0", "mask": "mask:0",
                                      "offset": "offset:0"})
    # ids reach `words` unchanged (50 rows); the slice into `small` is not followed, so the bound is 50.
    assert bounds == {"ids": 50, "segments": 2}


def test_the_smallest_table_an_input_indexes():
    def build():
        ids = tf.compat.v1.placeholder(tf.int32, [None], name="ids")
        a = tf.compat.v1.get_variable("a", [50, 4], use_resource=True)
        b = tf.compat.v1.get_variable("b", [20, 4], use_resource=False)  # a reference variable
        return tf.gather(a, ids) + tf.gather(b, ids)

    assert index_bounds(_graph(build), {"ids": "ids:0"}) == {"ids": 20}


def test_through_a_function_call():
    def build():
        ids = tf.compat.v1.placeholder(tf.int32, [None], name="ids")
        table = tf.compat.v1.get_variable("table", [7, 3], use_resource=True)

        @tf.function
        def lookup(indices, params):
            return tf.gather(params, indices)

        return lookup(ids, table)

    graph_def = _graph(build)
    assert any(node.op in ("PartitionedCall", "StatefulPartitionedCall") for node in graph_def.node)
    assert index_bounds(graph_def, {"ids": "ids:0"}) == {"ids": 7}
