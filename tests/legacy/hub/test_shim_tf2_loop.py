"""The classic TF1 fine-tuning loop over a TF2 SavedModel loaded by the shim, as over a TF1 module.

The shim serves a TF2 Reusable SavedModel as TF1 graph variants (`legacy.engine.from_saved_model`), so its batch-norm
assignments are UPDATE_OPS of the `{"train"}` variant: a graph-mode loop (loss + regularization losses, SGD under
control_dependencies(UPDATE_OPS), the loss evaluated in its own session.run) must end where three SGD steps on the
TF2 model itself end (GradientTape, training=True called once per step), and where the genuine tensorflow_hub 0.15
ends when it runs the same loop on `bridge convert`'s TF1 output of that model.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf

from tests.legacy.hub.shim_scripts.support import run_script
from tests.tolerances import TF2_GRAPH_TRAINING, assert_close

pytestmark = pytest.mark.numerics  # compares computed numbers: .ci/run repeats it under other kernels

SIZE = 24  # keras3_classifier's input size
UPDATE_OPS = tf.compat.v1.GraphKeys.UPDATE_OPS
REGULARIZATION_LOSSES = tf.compat.v1.GraphKeys.REGULARIZATION_LOSSES
TRAINABLE_VARIABLES = tf.compat.v1.GraphKeys.TRAINABLE_VARIABLES


def _name(var) -> str:
    return var.name.split(":")[0]


def tape_loop(path: str, images: np.ndarray, loss_weights: np.ndarray, steps: int, lr: float) -> dict:
    """The TF2 way: SGD steps on the model itself, each with one training=True call (which updates its statistics)."""
    obj = tf.saved_model.load(path)
    for _ in range(steps):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(obj(images, training=True) * loss_weights)
            loss += tf.add_n([f() for f in obj.regularization_losses]) if obj.regularization_losses else 0.0
        for var, grad in zip(obj.trainable_variables, tape.gradient(loss, obj.trainable_variables)):
            if grad is not None:
                var.assign_sub(lr * grad)
    names = [_name(v) for v in obj.variables]
    assert len(set(names)) == len(names), "the comparison needs unique variable names"
    return {_name(v): v.numpy() for v in obj.variables}


@pytest.fixture(scope="module")
def model(tf2_model) -> tuple:
    """(SavedModel path, images, loss weights, steps, lr, initial values) of a TF2 model with batch norm and L2."""
    path = tf2_model("keras3_classifier")
    obj = tf.saved_model.load(path)
    assert obj.regularization_losses, "the model must carry regularization losses"
    assert any("moving_mean" in _name(v) for v in obj.variables), "the model must have batch norm"
    images = np.random.default_rng(0).uniform(0, 1, (4, SIZE, SIZE, 3)).astype(np.float32)
    loss_weights = np.random.default_rng(1).standard_normal(obj(images).shape).astype(np.float32)
    initial = {_name(v): v.numpy() for v in obj.variables}
    return path, images, loss_weights, 3, 0.01, initial


@pytest.fixture(scope="module")
def graph_loop(model, tmp_path_factory) -> tuple:
    """(facts, arrays) of shim_scripts/tf2_loop.py: the verbatim TF1 loop in graph mode, in its own process."""
    path, images, loss_weights, steps, lr, _ = model
    root = tmp_path_factory.mktemp("tf2_loop_graph")
    inputs = str(root / "inputs.npz")
    np.savez(inputs, images=images, loss_weights=loss_weights)
    plan = root / "plan.json"
    plan.write_text(json.dumps({"path": path, "inputs": inputs, "steps": steps, "lr": lr}))
    run_script("tf2_loop.py", str(plan), str(root / "result"))
    facts = json.loads((root / "result.json").read_text())
    with np.load(root / "result.npz") as data:
        return facts, {k: data[k] for k in data.files}


def test_graph_mode_collections_are_those_of_a_tf1_module(model, graph_loop):
    facts, _ = graph_loop
    obj = tf.saved_model.load(model[0])
    assert facts["executing_eagerly"] is False
    assert facts["spec_type"] == "GraphVariantsSpec"
    trainable = facts["trainable_train"]
    assert trainable[UPDATE_OPS] > 0  # the batch-norm assignments, outside the forward pass
    assert trainable[REGULARIZATION_LOSSES] == len(obj.regularization_losses)
    assert trainable[TRAINABLE_VARIABLES] == len(obj.trainable_variables)
    assert facts["frozen_train"] == {UPDATE_OPS: 0, REGULARIZATION_LOSSES: 0, TRAINABLE_VARIABLES: 0}
    assert facts["trainable_infer"][UPDATE_OPS] == 0  # the inference variant updates nothing


def test_graph_mode_loop_ends_with_the_tf2_tape_weights(model, graph_loop):
    path, images, loss_weights, steps, lr, initial = model
    _, arrays = graph_loop
    expected = tape_loop(path, images, loss_weights, steps, lr)
    assert sorted(k[len("finetune/"):] for k in arrays) == sorted(expected)
    for name, value in expected.items():
        assert_close(arrays["finetune/" + name], value, TF2_GRAPH_TRAINING, f"graph loop vs tape: {name}")
    moved = [n for n in expected if "moving" in n and not np.allclose(expected[n], initial[n])]
    assert moved, "the loop must move the batch-norm statistics, or the comparison proves nothing about them"


def test_eager_loop_ends_with_the_tf2_tape_weights(model):
    """In eager code the trainable module applies its update ops on each call, like the TF2 model."""
    from legacy import hub

    path, images, loss_weights, steps, lr, _ = model
    module = hub.Module(path, trainable=True, tags={"train"})
    for _ in range(steps):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(module(images) * loss_weights) + tf.add_n([f() for f in module.regularization_losses])
        for var, grad in zip(module.trainable_variables, tape.gradient(loss, module.trainable_variables)):
            if grad is not None:
                var.assign_sub(lr * grad)
    expected = tape_loop(path, images, loss_weights, steps, lr)
    assert sorted(module.variable_map) == sorted(expected)
    for name, value in expected.items():
        assert_close(module.variable_map[name].numpy(), value, TF2_GRAPH_TRAINING, f"eager loop vs tape: {name}")


def test_genuine_library_on_the_converted_module_ends_with_the_same_weights(model, graph_loop, tmp_path, oracle):
    """The shim serves the TF2 model as the TF1 graphs `bridge convert` writes: the genuine library runs those."""
    from bridge.conversion.converter import convert

    path, images, loss_weights, steps, lr, _ = model
    _, arrays = graph_loop
    dst = convert(path, str(tmp_path / "tf1"), kind="classification", progress=lambda m: None).destination
    info, genuine = oracle.answers(dst, images, loss_weights)
    assert (info["finetune"]["steps"], info["finetune"]["lr"]) == (steps, lr)
    names = sorted(k for k in genuine if k.startswith("finetune/"))
    assert names and names == sorted(arrays)
    for name in names:
        # The TF2 model's graphs on both sides (the shim's and those bridge convert wrote): TF2_GRAPH_TRAINING.
        assert_close(arrays[name], genuine[name], TF2_GRAPH_TRAINING, f"shim graph loop vs genuine library: {name}")


def test_model_without_tf1_graph_variants_is_served_by_its_own_functions(tmp_path):
    """A model that is no image module (here: a [batch, 3] input) keeps the fallback, and says why."""
    from legacy import hub
    from legacy.hub.tf2_module import SavedModelSpec

    obj = tf.Module()
    obj.w = tf.Variable([[1.0], [2.0], [3.0]])
    obj.__call__ = tf.function(lambda x, training=False: tf.matmul(x, obj.w))
    for training in (False, True):
        obj.__call__.get_concrete_function(tf.TensorSpec([None, 3], tf.float32), training=training)
    tf.saved_model.save(obj, str(tmp_path / "model"))
    spec = hub.load_module_spec(str(tmp_path / "model"))
    assert isinstance(spec, SavedModelSpec)
    assert "float32 [batch, height, width, 3]" in spec.fallback_reason
    x = np.array([[1.0, 1.0, 1.0]], np.float32)
    np.testing.assert_array_equal(hub.Module(spec)(x).numpy(), [[6.0]])
