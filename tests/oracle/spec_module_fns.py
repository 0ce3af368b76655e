"""The module_fns and the checkpoint that tests/oracle/spec_oracle.py builds with the genuine library (legacy
environment) and tests/legacy/hub/test_shim_spec_genuine.py with the shim: one source, so both build the same modules.

Imports only TensorFlow, so it runs in either environment; the caller binds the `hub` the functions call
(`bind(tensorflow_hub)` in the oracle, `bind(legacy.hub)` in the test).
"""

import tensorflow as tf

DIM = 4
NO_INFERENCE = [({"train"}, {"scale": 2.0}), ({"eval"}, {"scale": 1.0})]  # tags_and_args without set()

hub = None  # bound by `bind`


def bind(module) -> None:
    global hub
    hub = module


# -- create_module_spec mistakes ---------------------------------------------------------------------------------

def no_signature_fn():
    tf.compat.v1.placeholder(tf.float32, [None, 2])


def indexed_slices_input_fn():
    x = tf.IndexedSlices(tf.compat.v1.placeholder(tf.int64, None), tf.compat.v1.placeholder(tf.int64, None))
    hub.add_signature(inputs={"x": x}, outputs=x.values)


def indexed_slices_output_fn():
    x = tf.compat.v1.placeholder(tf.int64, None)
    y = tf.compat.v1.placeholder(tf.int64, None)
    hub.add_signature(inputs={"x": x, "y": y}, outputs=tf.IndexedSlices(x, y))


# -- no inference variant ------------------------------------------------------------------------------------------

def scaled_fn(scale):
    x = tf.compat.v1.placeholder(tf.float32, [None, 2])
    w = tf.compat.v1.get_variable("w", [2], initializer=tf.compat.v1.constant_initializer([0.5, 3.0]))
    hub.add_signature(inputs=x, outputs=x * w * scale)


# -- export from a checkpoint --------------------------------------------------------------------------------------

def dense_fn(dim=DIM, dtype=tf.float32):
    x = tf.compat.v1.placeholder(dtype, [None, dim])
    kernel = tf.compat.v1.get_variable("dense/kernel", [dim, dim], dtype=dtype)
    bias = tf.compat.v1.get_variable("dense/bias", [dim], dtype=dtype)
    hub.add_signature(inputs=x, outputs=tf.matmul(x, kernel) + bias)


def write_checkpoint(path, scope, dim=DIM):
    """A training checkpoint: the dense layer under `scope`, beside a variable of its own; its values by name."""
    with tf.Graph().as_default():
        tf.compat.v1.set_random_seed(0)
        tf.compat.v1.get_variable("step", [], initializer=tf.compat.v1.zeros_initializer())
        with tf.compat.v1.variable_scope(scope):
            tf.compat.v1.get_variable("dense/kernel", [dim, dim])
            tf.compat.v1.get_variable("dense/bias", [dim], initializer=tf.compat.v1.ones_initializer())
        saver = tf.compat.v1.train.Saver()
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            saver.save(sess, path)
            return {v.op.name: sess.run(v) for v in tf.compat.v1.global_variables()}


# -- colocation ----------------------------------------------------------------------------------------------------

def state_colocation_fn():
    """An op colocated with a variable the signature does not read (w) and one colocated with its input."""
    w = tf.Variable(42 + 69, name="w")
    with tf.compat.v1.colocate_with(w.op):
        v = tf.Variable(1.0, name="v")
        y = tf.add(v, 1, name="y")
    x = tf.compat.v1.placeholder(dtype=tf.float32, name="x")
    with tf.compat.v1.colocate_with(x):
        z = tf.add(x, 1, name="z")
    hub.add_signature(inputs=dict(x=x), outputs=dict(y=y, z=z))


def split_colocation_fn():
    """Signature inputs that are two outputs of one op, which a colocation constraint names."""
    x, y = tf.split([1, 2], 2, name="split")
    with tf.compat.v1.colocate_with(x), tf.compat.v1.colocate_with(y):
        z = tf.add(x, y, name="add")
    hub.add_signature(inputs=dict(x=x, y=y), outputs=z, name="both")
    hub.add_signature(inputs=dict(x=x), outputs=z, name="partial")


def split_colocation_inputs() -> tuple:
    """In the current graph, what `split_colocation_fn`'s module is applied to: u, v colocated with u, w apart."""
    u = tf.constant([1], name="u")
    with tf.compat.v1.colocate_with(u):
        v = tf.constant([2], name="v")
    w = tf.constant([3], name="w")
    return u, v, w


# -- assets --------------------------------------------------------------------------------------------------------

def assets_fn(vocabulary_file):
    from tensorflow.python.ops import lookup_ops

    indices = tf.compat.v1.placeholder(dtype=tf.int64, name="indices")
    table = lookup_ops.index_to_string_table_from_file(vocabulary_file=vocabulary_file, default_value="UNKNOWN")
    hub.add_signature(inputs=indices, outputs=table.lookup(indices))
    hub.add_signature("twice", inputs=indices, outputs=tf.strings.join([table.lookup(indices)] * 2))


VOCAB = ["emerson", "lake", "palmer"]


def asset_filepath_steps(work: str) -> tuple:
    """Build a module from `assets_fn` (a vocabulary file in `work`), apply it, export it and load it back, reading
    ASSET_FILEPATHS after each step (paths with the export's directory as MODULE, `work` as SOURCE).
    Returns (steps, the table lookups of the created module, of the loaded one)."""
    import os

    vocabulary_file = os.path.join(work, "tokens.txt")
    with open(vocabulary_file, "w") as f:
        f.write("\n".join(VOCAB) + "\n")
    export_path = os.path.join(work, "assets_module")
    spec = hub.create_module_spec(assets_fn, tags_and_args=[(set(), {"vocabulary_file": vocabulary_file})])
    key = tf.compat.v1.GraphKeys.ASSET_FILEPATHS

    def collection(sess):
        return [sess.run(t).decode().replace(export_path, "MODULE").replace(work, "SOURCE")
                for t in tf.compat.v1.get_collection(key)]

    steps, lookups = {}, []
    with tf.Graph().as_default():
        module = hub.Module(spec)
        with tf.compat.v1.Session() as sess:
            steps["created/constructed"] = collection(sess)
            out = module(tf.constant([1, 2], dtype=tf.int64))
            steps["created/applied"] = collection(sess)
            module(tf.constant([0], dtype=tf.int64), signature="twice")
            steps["created/applied_twice"] = collection(sess)
            sess.run(tf.compat.v1.tables_initializer())
            lookups.append([b.decode() for b in sess.run(out)])
            module.export(export_path, sess)
    with tf.Graph().as_default():
        module = hub.Module(export_path)
        out = module(tf.constant([1, 2], dtype=tf.int64))
        with tf.compat.v1.Session() as sess:
            steps["loaded/applied"] = collection(sess)
            steps["loaded/names"] = [t.name for t in tf.compat.v1.get_collection(key)]
            sess.run(tf.compat.v1.tables_initializer())
            lookups.append([b.decode() for b in sess.run(out)])
    return steps, lookups[0], lookups[1]
