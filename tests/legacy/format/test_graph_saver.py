"""The plain-node saver of legacy.format.graph_saver: what TF1 loaders run, checked against TensorFlow's own saver."""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from legacy.format.conventions import OBJECT_GRAPH_KEY
from legacy.format.graph_saver import add_graph_saver
from legacy.format.safety import scan_model


class _Net(tf.Module):
    """Variables of several dtypes and shapes, one of them not trainable, one used by no function."""

    def __init__(self, same_names: bool = False):
        super().__init__()
        self.w = tf.Variable(np.arange(6, dtype=np.float32).reshape(2, 3), name="dense/kernel")
        self.b = tf.Variable(np.float32(0.5), name="dense/kernel" if same_names else "dense/bias")
        self.steps = tf.Variable(np.int64(7), name="steps", trainable=False)
        self.unused = tf.Variable(np.ones([4], np.float64), name="unused")

    @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32)])
    def __call__(self, x):
        return {"out": tf.matmul(x, self.w) + self.b}


def _save(obj, path: str, skip_saver: bool = True) -> str:
    tf.saved_model.save(obj, path, signatures=obj.__call__.get_concrete_function(),
                        options=tf.saved_model.SaveOptions(experimental_skip_saver=skip_saver))
    return path


def _tf1_session_run(path: str, feeds: dict | None = None, assign: dict | None = None, save_to: str | None = None):
    """Load `path` with the TF1 loader (as TensorFlow Serving does), optionally change variables and run the
    saver_def's save; returns {variable name: value} and the serving output for `feeds`."""
    with tf.Graph().as_default() as graph, tf.compat.v1.Session() as session:
        meta_graph = tf.compat.v1.saved_model.load(session, ["serve"], path)
        handles = {op.name: op.outputs[0] for op in graph.get_operations() if op.type == "VarHandleOp"}
        for name, value in (assign or {}).items():
            session.run(tf.raw_ops.AssignVariableOp(resource=handles[name], value=value))
        values = {name: session.run(tf.raw_ops.ReadVariableOp(resource=handle, dtype=handle.op.get_attr("dtype")))
                  for name, handle in handles.items()}
        output = None
        if feeds is not None:
            signature = meta_graph.signature_def["serving_default"]
            output = session.run(signature.outputs["out"].name, {signature.inputs["x"].name: feeds})
        if save_to:
            saver = meta_graph.saver_def
            session.run(saver.save_tensor_name, {saver.filename_tensor_name: save_to})
    return values, output


def test_tf1_loader_restores_every_variable_and_serves(tmp_path):
    net = _Net()
    path = _save(net, str(tmp_path / "model"))
    assert add_graph_saver(path)
    x = np.array([[1.0, 2.0]], np.float32)
    values, output = _tf1_session_run(path, feeds=x)
    expected = {"dense/kernel": net.w, "dense/bias": net.b, "steps": net.steps, "unused": net.unused}
    assert sorted(values) == sorted(expected)
    for name, variable in expected.items():
        np.testing.assert_array_equal(values[name], variable.numpy(), err_msg=name)
    np.testing.assert_array_equal(output, net(x)["out"].numpy())


def test_same_contract_as_tensorflows_own_saver(tmp_path):
    """Same variables restored, same checkpoint keys written, as a SavedModel saved with TensorFlow's saver."""
    net = _Net()
    ours = _save(net, str(tmp_path / "ours"))
    assert add_graph_saver(ours)
    theirs = _save(net, str(tmp_path / "theirs"), skip_saver=False)
    for path in (ours, theirs):
        _tf1_session_run(path, save_to=str(tmp_path / os.path.basename(path) / "resaved"))
    keys = {path: sorted(tf.train.load_checkpoint(str(tmp_path / os.path.basename(path) / "resaved"))
                         .get_variable_to_shape_map()) for path in (ours, theirs)}
    assert keys[ours] == keys[theirs] and OBJECT_GRAPH_KEY in keys[ours]


def test_checkpoint_saved_from_tf1_restores_into_tf2_objects(tmp_path):
    path = _save(_Net(), str(tmp_path / "model"))
    assert add_graph_saver(path)
    changed = np.full([2, 3], 9.0, np.float32)
    _tf1_session_run(path, assign={"dense/kernel": changed}, save_to=str(tmp_path / "ckpt"))
    loaded = tf.saved_model.load(path)
    tf.train.Checkpoint(loaded).read(str(tmp_path / "ckpt")).assert_existing_objects_matched()
    np.testing.assert_array_equal(loaded.w.numpy(), changed)


def test_tf2_load_and_the_safety_scan_accept_it(tmp_path):
    net = _Net()
    path = _save(net, str(tmp_path / "model"))
    assert add_graph_saver(path)
    x = np.array([[3.0, -1.0]], np.float32)
    np.testing.assert_array_equal(tf.saved_model.load(path)(x)["out"].numpy(), net(x)["out"].numpy())
    assert not scan_model(path).findings


def test_a_model_without_variables(tmp_path):
    class Scale(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32)])
        def __call__(self, x):
            return {"out": 2.0 * x}

    path = _save(Scale(), str(tmp_path / "model"))
    assert add_graph_saver(path)
    x = np.array([[1.0, 2.0]], np.float32)
    values, output = _tf1_session_run(path, feeds=x, save_to=str(tmp_path / "ckpt"))
    assert values == {}
    np.testing.assert_array_equal(output, 2.0 * x)
    assert OBJECT_GRAPH_KEY in tf.train.load_checkpoint(str(tmp_path / "ckpt")).get_variable_to_shape_map()


def test_two_variables_of_one_name_keep_tensorflows_saver(tmp_path):
    path = _save(_Net(same_names=True), str(tmp_path / "model"))
    before = open(os.path.join(path, "saved_model.pb"), "rb").read()
    assert not add_graph_saver(path)
    assert open(os.path.join(path, "saved_model.pb"), "rb").read() == before


def test_a_checkpoint_holding_more_than_variables_keeps_tensorflows_saver(tmp_path):
    net = _Net()
    net.table = tf.lookup.experimental.MutableHashTable(tf.string, tf.int64, default_value=-1)
    path = _save(net, str(tmp_path / "model"))
    assert not add_graph_saver(path)


def test_a_model_saved_with_tensorflows_saver_is_left_alone(tmp_path):
    path = _save(_Net(), str(tmp_path / "model"), skip_saver=False)
    assert not add_graph_saver(path)


def test_a_handle_that_does_not_fit_its_checkpoint_entry_keeps_tensorflows_saver(tmp_path):
    """Each handle is paired with its checkpoint entry by name, then checked by dtype and shape: a pairing that
    does not fit leaves the model to TensorFlow's saver."""
    from tensorflow.core.protobuf import saved_model_pb2

    path = _save(_Net(), str(tmp_path / "model"))
    filename = os.path.join(path, "saved_model.pb")
    saved_model = saved_model_pb2.SavedModel.FromString(open(filename, "rb").read())
    handle = next(n for n in saved_model.meta_graphs[0].graph_def.node if n.name == "dense/kernel")
    handle.attr["shape"].shape.dim[0].size = 5  # [2, 3] in the checkpoint
    with open(filename, "wb") as f:
        f.write(saved_model.SerializeToString())
    assert not add_graph_saver(path)
