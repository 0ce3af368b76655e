"""`tf.compat.v1.wrap_function` around the shim's hub.Module in eager mode, against the genuine library doing the
same (tests/oracle/text_oracle.py `wrapped_answers`, run live): the module is built in the traced graph as in TF1,
its resource variables are lifted out by the wrapper uninitialized, `global_variables_initializer()` and
`tables_initializer()` run through `prune` fill them, and an SGD loop on the wrapper's trainable variables trains it.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import tensorflow as tf

from legacy import hub
from tests.oracle.text_modules import text_oracle
from tests.tolerances import GENUINE_OUTPUTS, GENUINE_TRAINING, assert_close

pytestmark = pytest.mark.numerics


@pytest.fixture(scope="module")
def genuine_text(oracle):
    return text_oracle()


def _wrapped(module_dir: str, trainable: bool, signature):
    held = {}

    def fn(value):
        held["module"] = hub.Module(module_dir, trainable=trainable)
        out = held["module"](value)
        held["init"] = [tf.compat.v1.global_variables_initializer(), tf.compat.v1.tables_initializer()]
        return out

    wrapped = tf.compat.v1.wrap_function(fn, [signature])
    return wrapped, wrapped.prune([], held["init"]), held["module"]


def _error_type(fn) -> str | None:
    try:
        fn()
    except tf.errors.OpError as e:
        return type(e).__name__
    return None


def _state(wrapped) -> dict:
    keys = tf.compat.v1.GraphKeys
    return {"variables": sorted({v.name for v in wrapped.variables}),
            "trainable_variables": sorted({v.name for v in wrapped.trainable_variables}),
            "collections": {k: len(wrapped.graph.get_collection(k))
                            for k in (keys.GLOBAL_VARIABLES, keys.TRAINABLE_VARIABLES, keys.TABLE_INITIALIZERS)}}


def test_text_module_in_wrap_function_as_genuine(genuine_text):
    path, answers, arrays = genuine_text
    sentences = tf.constant(answers["sentences"])
    wrapped, init, module = _wrapped(os.path.join(path, "text"), False, tf.TensorSpec([None], tf.string))
    genuine = answers["wrapped"]
    assert _error_type(lambda: wrapped(sentences)) == genuine["before_init"]  # tables not initialized yet
    assert _state(wrapped) == {k: genuine[k] for k in ("variables", "trainable_variables", "collections")}
    assert not module.trainable_variables
    init()
    assert_close(wrapped(sentences), arrays["wrapped/default"], GENUINE_OUTPUTS, "wrapped default")


def test_fine_tuning_through_wrap_function_as_genuine(genuine_text):
    path, answers, arrays = genuine_text
    sentences = tf.constant(answers["sentences"])
    wrapped, init, _ = _wrapped(os.path.join(path, "text"), True, tf.TensorSpec([None], tf.string))
    genuine = answers["wrapped_trainable"]
    assert _state(wrapped) == {k: genuine[k] for k in ("variables", "trainable_variables", "collections")}
    init()
    assert_close(wrapped(sentences), arrays["wrapped_trainable/default"], GENUINE_OUTPUTS, "wrapped trainable")
    weights = tf.constant(arrays["finetune_weights"])
    losses, with_gradients = [], set()
    for _ in range(answers["steps"]):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(wrapped(sentences) * weights)
        for var, grad in zip(wrapped.trainable_variables, tape.gradient(loss, wrapped.trainable_variables)):
            if grad is not None:
                with_gradients.add(var.name)
                var.assign_sub(answers["lr"] * tf.convert_to_tensor(grad))
        losses.append(float(loss))
    assert sorted(with_gradients) == genuine["with_gradients"]
    assert_close(losses, arrays["wrapped_finetune_loss"], GENUINE_TRAINING, "wrapped fine-tuning losses")
    assert_close(wrapped(sentences), arrays["wrapped_finetune/default"], GENUINE_TRAINING, "wrapped fine-tuned")


def test_reference_variables_stay_in_the_wrapped_graph_as_genuine(genuine_text):
    """Reference variables cannot be lifted: they stay in the traced graph, initialized through prune."""
    path, answers, arrays = genuine_text
    x = tf.constant(arrays["refvar/x"])
    wrapped, init, _ = _wrapped(os.path.join(path, "refvar"), True, tf.TensorSpec([None, 3], tf.float32))
    genuine = answers["wrapped_refvar"]
    assert _error_type(lambda: wrapped(x)) == genuine["before_init"]
    assert sorted(v.name for v in wrapped.variables) == genuine["variables"]
    assert sorted(v.name for v in wrapped.graph.get_collection(tf.compat.v1.GraphKeys.GLOBAL_VARIABLES)) == \
        genuine["collection_variables"]
    init()
    assert_close(wrapped(x), arrays["wrapped_refvar/default"], GENUINE_OUTPUTS, "wrapped refvar")


def test_a_tf_function_keeps_the_eager_module(genuine_text):
    """Only wrap_function's graph is a TF1 graph: a module built in a tf.function's first trace is eager."""
    path, answers, arrays = genuine_text
    held = {}

    @tf.function
    def run(sentences):
        if "module" not in held:
            held["module"] = hub.Module(os.path.join(path, "text"))
        return held["module"](sentences)

    assert_close(run(tf.constant(answers["sentences"])), arrays["text/default"], GENUINE_OUTPUTS, "tf.function")
    assert "mode=eager" in repr(held["module"])
