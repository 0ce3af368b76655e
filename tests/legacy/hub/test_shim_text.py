"""The shim's hub.Module on text modules, against the genuine library (tests/oracle/text_oracle.py, run live):
lookup tables from vocabulary assets, SparseTensor / RaggedTensor signatures, partitioned variables, reference
variables and colocation, in graph mode and eager mode, including a fine-tuning loop."""

from __future__ import annotations

import os

import numpy as np
import pytest
import tensorflow as tf

from legacy import hub
from tests.oracle.text_modules import text_oracle
from tests.tolerances import GENUINE_OUTPUTS, GENUINE_TRAINING, assert_close


@pytest.fixture(scope="module")
def genuine_text(oracle):
    return text_oracle()


def _close(actual, expected, what, tolerance=GENUINE_OUTPUTS):
    __tracebackhide__ = True
    assert_close(actual, expected, tolerance, what)


def _tokens(answers):
    tok = answers["tokens"]
    return tf.compat.v1.SparseTensorValue(np.array(tok["indices"], np.int64), np.array(tok["values"], object),
                                          np.array(tok["dense_shape"], np.int64))


def _assemble(value):
    return np.concatenate(value, axis=0) if isinstance(value, list) else value


def _info(info) -> dict:
    shape = info.get_shape()
    return {"dtype": info.dtype.name, "shape": shape.as_list() if shape.rank is not None else None,
            "is_sparse": info.is_sparse, "is_composite": info.is_composite,
            "is_supported_type": info.is_supported_type, "type_spec": type(info.type_spec).__name__}


def test_signature_infos_as_genuine(genuine_text):
    path, answers, _ = genuine_text
    spec = hub.load_module_spec(os.path.join(path, "text"))
    assert sorted(spec.get_signature_names()) == answers["text_signatures"]
    for sig in answers["text_signatures"]:
        assert {k: _info(v) for k, v in spec.get_input_info_dict(sig).items()} == answers["text_inputs"][sig]
        assert {k: _info(v) for k, v in spec.get_output_info_dict(sig).items()} == answers["text_outputs"][sig]


def test_graph_mode_tables_partitions_sparse_ragged(genuine_text):
    path, answers, arrays = genuine_text
    with tf.Graph().as_default():
        module = hub.Module(os.path.join(path, "text"))
        assert sorted(v.op.name for v in tf.compat.v1.global_variables()) == answers["text_global_variables"]
        assert {k: [p.op.name for p in v] if isinstance(v, list) else v.op.name
                for k, v in module.variable_map.items()} == answers["text_variable_map"]
        assert len(tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.TABLE_INITIALIZERS)) == \
            answers["text_table_initializers"]
        sentences = tf.compat.v1.placeholder(tf.string, [None])
        out = module(sentences)
        tokens = tf.compat.v1.sparse_placeholder(tf.string, [None, None])
        token_out = module(tokens, signature="tokens", as_dict=True)
        assert {k: type(v).__name__ for k, v in token_out.items()} == answers["text_token_output_types"]
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            expected = answers["text_without_tables_initializer"]["type"]
            with pytest.raises(getattr(tf.errors, expected)):
                sess.run(out, {sentences: answers["sentences"]})
            sess.run(tf.compat.v1.tables_initializer())
            _close(sess.run(out, {sentences: answers["sentences"]}), arrays["text/default"], "default")
            result = sess.run(token_out, {tokens: _tokens(answers)})
    _close(result["default"], arrays["tokens/default"], "tokens/default")
    for part in ("indices", "values", "dense_shape"):
        np.testing.assert_array_equal(getattr(result["ids"], part), arrays["tokens/ids/" + part])
    np.testing.assert_array_equal(result["ragged_ids"].flat_values, arrays["tokens/ragged_ids/flat_values"])
    np.testing.assert_array_equal(result["ragged_ids"].row_splits, arrays["tokens/ragged_ids/row_splits"])


def test_monitored_session_initializes_tables(genuine_text):
    path, answers, arrays = genuine_text
    with tf.Graph().as_default():
        out = hub.Module(os.path.join(path, "text"))(tf.constant(answers["sentences"]))
        with tf.compat.v1.train.MonitoredSession() as sess:
            _close(sess.run(out), arrays["monitored/default"], "MonitoredSession")


def test_eager_tables_partitions_sparse_ragged(genuine_text):
    path, answers, arrays = genuine_text
    module = hub.Module(os.path.join(path, "text"))
    assert {k: len(v) if isinstance(v, list) else 1 for k, v in module.variable_map.items()} == \
        {k: len(v) if isinstance(v, list) else 1 for k, v in answers["text_variable_map"].items()}
    for name, value in module.variable_map.items():
        np.testing.assert_array_equal(_assemble([p.numpy() for p in value] if isinstance(value, list)
                                                else value.numpy()), arrays["initial/" + name])
    _close(module(tf.constant(answers["sentences"])), arrays["text/default"], "eager default")
    tokens = _tokens(answers)
    result = module(tf.SparseTensor(tokens.indices, tokens.values, tokens.dense_shape), signature="tokens",
                    as_dict=True)
    _close(result["default"], arrays["tokens/default"], "eager tokens/default")
    assert isinstance(result["ids"], tf.SparseTensor) and isinstance(result["ragged_ids"], tf.RaggedTensor)
    np.testing.assert_array_equal(result["ids"].values, arrays["tokens/ids/values"])
    np.testing.assert_array_equal(result["ragged_ids"].row_splits, arrays["tokens/ragged_ids/row_splits"])


def test_fine_tuning_graph_and_eager(genuine_text):
    path, answers, arrays = genuine_text
    sentences, lr, steps = answers["sentences"], answers["lr"], answers["steps"]
    weights = arrays["finetune_weights"]
    with tf.Graph().as_default():
        module = hub.Module(os.path.join(path, "text"), trainable=True)
        loss = tf.reduce_sum(module(tf.constant(sentences)) * weights)
        assert sorted(v.op.name for v in tf.compat.v1.trainable_variables()) == answers["text_trainable_variables"]
        train = tf.compat.v1.train.GradientDescentOptimizer(lr).minimize(loss)
        with tf.compat.v1.Session() as sess:
            sess.run([tf.compat.v1.global_variables_initializer(), tf.compat.v1.tables_initializer()])
            losses = [sess.run([loss, train])[0] for _ in range(steps)]
            graph_values = {k: _assemble(sess.run(v)) for k, v in module.variable_map.items()}
    _close(losses, arrays["finetune_loss"], "graph losses", GENUINE_TRAINING)
    for name, value in graph_values.items():
        _close(value, arrays["finetune/" + name], "graph " + name, GENUINE_TRAINING)

    module = hub.Module(os.path.join(path, "text"), trainable=True)
    optimizer = tf.keras.optimizers.SGD(lr)
    losses = []
    for _ in range(steps):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(module(tf.constant(sentences)) * weights)
        grads = tape.gradient(loss, module.trainable_variables)
        optimizer.apply_gradients(zip(grads, module.trainable_variables))
        losses.append(loss.numpy())
    _close(losses, arrays["finetune_loss"], "eager losses", GENUINE_TRAINING)
    for name, value in module.variable_map.items():
        _close(_assemble([p.numpy() for p in value] if isinstance(value, list) else value.numpy()),
               arrays["finetune/" + name], "eager " + name, GENUINE_TRAINING)


def test_reference_variables_and_colocation(genuine_text):
    path, answers, arrays = genuine_text
    with tf.Graph().as_default() as graph:
        module = hub.Module(os.path.join(path, "refvar"), trainable=True)
        assert {k: type(v).__name__ for k, v in module.variable_map.items()} == answers["refvar_variable_types"]
        assert {k: v.op.type for k, v in module.variable_map.items()} == answers["refvar_variable_ops"]
        out = module(tf.constant(arrays["refvar/x"]))
        # The applied ops and the variables carry the genuine library's colocation, on the new names (the
        # variables' initializers differ: the genuine library imports the module's own, unused here).
        genuine = answers["refvar_colocation"]
        checked = 0
        for op in graph.get_operations():
            groups = [g.decode() for g in op.colocation_groups()]
            applied = op.name.startswith("module_apply_default/")
            if applied == (op.type != "VariableV2") and (groups != ["loc:@" + op.name] or op.name in genuine):
                assert genuine.get(op.name, ["loc:@" + op.name]) == groups, op.name
                checked += 1
        assert "module_apply_default/matmul" in genuine and "module/dense/b" in genuine and checked >= 4
        train = tf.compat.v1.train.GradientDescentOptimizer(answers["lr"]).minimize(tf.reduce_sum(out * out))
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            _close(sess.run(out), arrays["refvar/default"], "refvar default")
            for _ in range(answers["steps"]):
                sess.run(train)
            for name, var in module.variable_map.items():
                _close(sess.run(var), arrays["refvar_finetune/" + name], "refvar " + name, GENUINE_TRAINING)


def _bad_state_colocation_fn():
    x = tf.compat.v1.placeholder(tf.float32, [None], name="x")
    with tf.compat.v1.colocate_with(x):
        v = tf.compat.v1.get_variable("v", [], initializer=tf.compat.v1.zeros_initializer())
    hub.add_signature(inputs=x, outputs=x + v)


def _bad_input_colocation_fn():
    x = tf.compat.v1.placeholder(tf.float32, [None], name="x")
    with tf.compat.v1.colocate_with(x):
        y = tf.identity(x, name="y")
    hub.add_signature(inputs=y, outputs=y * 2.0)


@pytest.mark.parametrize("fn,key", [(_bad_state_colocation_fn, "bad_state_colocation"),
                                    (_bad_input_colocation_fn, "bad_input_colocation")])
def test_colocation_errors_as_genuine(genuine_text, fn, key):
    genuine = genuine_text[1][key]
    assert genuine["is_value_error"]
    with pytest.raises(ValueError) as info:
        hub.create_module_spec(fn)
    assert str(info.value).startswith(genuine["first_line"].split(".")[0])
