"""The TF1 -> TF2 adapter, in memory and reloaded from disk, against the genuine library's golden answers.

Every corpus module, every signature and output key: inference and training outputs, gradients of the golden
loss, moving statistics after one training call, regularization losses. The corpus models are small and run
deterministically, so the results must be bit-identical to what the genuine hub.Module computed.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from bridge.conversion.tf1_to_tf2 import adapt
from bridge.conversion.converter import convert
from tests.corpus import MODULES, golden_arrays, golden_json, golden_prefix, module_path


@pytest.fixture(scope="session")
def converted_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("converted")
    return {name: convert(module_path(name), str(root / name), progress=lambda m: None).destination
            for name in MODULES}


@pytest.fixture(params=[(m, kind) for m in MODULES for kind in ("adapter", "saved_model")],
                ids=lambda p: f"{p[0]}-{p[1]}")
def model(request, converted_dirs):
    """A fresh model per test (training calls change its moving statistics)."""
    name, kind = request.param
    obj = adapt(module_path(name)) if kind == "adapter" else tf.saved_model.load(converted_dirs[name])
    return name, obj


def _var_name(var) -> str:
    return var.name.split(":")[0]


def test_variables_are_the_module_variables(model):
    name, obj = model
    golden = golden_json(name)["variables"]
    assert sorted(_var_name(v) for v in obj.variables) == sorted(golden)
    assert sorted(_var_name(v) for v in obj.trainable_variables) == sorted(
        k for k, v in golden.items() if v["trainable"])
    assert all(v.trainable for v in obj.trainable_variables)
    for var in obj.variables:
        np.testing.assert_array_equal(var.numpy(), golden_arrays(name)["initial/" + _var_name(var)])


@pytest.mark.parametrize("training", [False, True])
def test_every_signature_and_output_matches(model, training):
    name, obj = model
    golden = golden_json(name)
    label = "train" if training and golden["has_train_variant"] else "infer"
    images = golden_arrays(name)["inputs/images"]
    for signature in golden["signatures"]["infer"]:
        outputs = getattr(obj, signature)(images, training=training)
        assert sorted(outputs) == sorted(golden["outputs"][label][signature])
        for key, value in outputs.items():
            np.testing.assert_array_equal(
                value.numpy(), golden_arrays(name)[f"outputs/{label}/{signature}/{key}"],
                err_msg=f"{signature}/{key} training={training}")
    np.testing.assert_array_equal(obj(images, training=training).numpy(),
                                  golden_arrays(name)[f"outputs/{label}/default/default"])


def test_gradients_match(model):
    name, obj = model
    arrays = golden_arrays(name)
    expected = golden_prefix(name, "gradients")
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(obj(arrays["inputs/images"], training=True) * arrays["inputs/loss_weights"])
    grads = tape.gradient(loss, obj.trainable_variables)
    for var, grad in zip(obj.trainable_variables, grads):
        if _var_name(var) in expected:
            np.testing.assert_array_equal(grad.numpy(), expected[_var_name(var)], err_msg=_var_name(var))
        else:  # the genuine library found no gradient either (the variable is not on the default path)
            assert grad is None, _var_name(var)
    assert set(expected) <= {_var_name(v) for v in obj.trainable_variables}


def test_one_training_call_updates_moving_statistics_like_update_ops(model):
    name, obj = model
    if not golden_json(name)["has_train_variant"]:
        before = {_var_name(v): v.numpy() for v in obj.variables}
        obj(golden_arrays(name)["inputs/images"], training=True)
        for var in obj.variables:  # no train variant: no update ops, nothing may change
            np.testing.assert_array_equal(var.numpy(), before[_var_name(var)])
        return
    expected = golden_prefix(name, "updated")
    initial = golden_prefix(name, "initial")
    obj(golden_arrays(name)["inputs/images"], training=True)
    changed = 0
    for var in obj.variables:
        np.testing.assert_array_equal(var.numpy(), expected[_var_name(var)], err_msg=_var_name(var))
        changed += not np.array_equal(initial[_var_name(var)], expected[_var_name(var)])
    assert changed == golden_json(name)["update_op_count"]


def test_inference_does_not_update(model):
    name, obj = model
    obj(golden_arrays(name)["inputs/images"], training=False)
    for var in obj.variables:
        np.testing.assert_array_equal(var.numpy(), golden_arrays(name)["initial/" + _var_name(var)])


def test_regularization_losses(model):
    name, obj = model
    golden = golden_json(name)
    assert len(obj.regularization_losses) == golden["regularization_loss_count"]
    if golden["regularization_loss_sum"] is not None:
        total = float(tf.add_n([f() for f in obj.regularization_losses]).numpy())
        np.testing.assert_allclose(total, golden["regularization_loss_sum"], rtol=1e-6)
