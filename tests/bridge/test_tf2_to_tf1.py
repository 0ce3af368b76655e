"""TF2 -> TF1: Reusable SavedModels written as TF1 Hub modules, checked with the genuine tensorflow_hub 0.15.

The genuine library (TF 2.15) and TF 2.21 run different kernels, so results are compared at rel <= 1e-5 of each
output's scale (the bar the issue sets), not bit for bit.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from bridge.conversion.converter import convert
from legacy.errors import ConversionError
from tests import corpus
from tests.bridge import tf2_models
from tests.oracle import runner

pytestmark = pytest.mark.oracle
RTOL = 1e-5


@dataclasses.dataclass
class Case:
    name: str
    build: object
    kind: str
    image_size: tuple | None  # given on the command line (the model's input is dynamic)
    expected_size: tuple


CASES = [
    Case("mobilenet_v2_feature_vector", tf2_models.mobilenet_feature_vector, "feature_vector", None, (32, 32)),
    Case("keras3_classifier", tf2_models.keras3_classifier, "classification", None, (24, 24)),
    Case("dynamic_size_classifier", tf2_models.dynamic_size_classifier, "classification", (20, 28), (20, 28)),
]


def _images(size, n=4, seed=0):
    return np.random.default_rng(seed).uniform(0, 1, (n, *size, 3)).astype(np.float32)


@pytest.fixture(scope="module", params=CASES, ids=lambda c: c.name)
def exported(request, tmp_path_factory):
    case = request.param
    root = tmp_path_factory.mktemp(case.name)
    src = case.build(str(root / "tf2"))
    dst = convert(src, str(root / "tf1"), kind=case.kind, image_size=case.image_size,
                  progress=lambda m: None).destination
    images = _images(case.expected_size)
    out = tf.saved_model.load(src)(images)
    weights = np.random.default_rng(1).standard_normal(out.shape).astype(np.float32)
    info, arrays = runner.answers(dst, images, weights, root)
    return case, src, dst, images, weights, info, arrays


def _close(actual, expected, what, floor=0.0):
    scale = max(float(np.abs(expected).max()), 1e-30)
    err = float(np.abs(np.asarray(actual) - expected).max()) if np.size(expected) else 0.0
    assert err <= RTOL * scale + floor, f"{what}: max abs diff {err:.3g} > {RTOL} * {scale:.3g} + {floor}"


def _name(var):
    return var.name.split(":")[0]


def test_genuine_library_reads_the_module(exported):
    case, src, dst, _, _, info, _ = exported
    signature = {"feature_vector": "image_feature_vector", "classification": "image_classification"}[case.kind]
    assert info["tags"] == [[], ["train"]]
    assert info["signatures"] == {"infer": sorted(["default", signature]), "train": sorted(["default", signature])}
    assert tuple(info["expected_image_size"]) == case.expected_size
    assert info["num_image_channels"] == 3
    assert info["inputs"]["infer"]["default"]["images"]["dtype"] == "float32"
    obj = tf.saved_model.load(src)
    assert sorted(info["variables"]) == sorted(_name(v) for v in obj.variables)
    trainable = {_name(v) for v in obj.trainable_variables}
    assert {k for k, v in info["variables"].items() if v["trainable"]} == trainable
    assert info["regularization_loss_count"] == len(obj.regularization_losses)
    assert info["update_op_count"] > 0  # batch norm: the moving statistics are updated the TF1 way


def test_outputs_match_the_tf2_model(exported):
    _, src, _, images, _, _, arrays = exported
    for training, label in ((False, "infer"), (True, "train")):
        expected = tf.saved_model.load(src)(images, training=training).numpy()
        for key, value in arrays.items():
            if key.startswith(f"outputs/{label}/") and key.endswith("/default"):
                _close(value, expected, key)


def test_gradients_match(exported):
    _, src, _, images, weights, _, arrays = exported
    obj = tf.saved_model.load(src)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(obj(images, training=True) * weights)
    grads = dict(zip((_name(v) for v in obj.trainable_variables), tape.gradient(loss, obj.trainable_variables)))
    genuine = {k[len("gradients/"):]: v for k, v in arrays.items() if k.startswith("gradients/")}
    assert sorted(genuine) == sorted(k for k, g in grads.items() if g is not None)
    for name, value in genuine.items():
        _close(value, grads[name].numpy(), f"gradient of {name}")


def test_update_ops_change_moving_statistics_as_the_tf2_training_call(exported):
    _, src, _, images, _, _, arrays = exported
    obj = tf.saved_model.load(src)
    before = {_name(v): v.numpy() for v in obj.variables}
    obj(images, training=True)
    moved = 0
    for var in obj.variables:
        _close(arrays["updated/" + _name(var)], var.numpy(), f"after UPDATE_OPS: {_name(var)}")
        moved += not np.array_equal(before[_name(var)], var.numpy())
    assert moved > 0


def test_sgd_fine_tuning_steps_match(exported):
    _, src, _, images, weights, info, arrays = exported
    obj = tf.saved_model.load(src)
    lr = info["finetune"]["lr"]
    for _ in range(info["finetune"]["steps"]):  # the genuine loop: loss + regularization, SGD, UPDATE_OPS
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(obj(images, training=True) * weights)
            loss += tf.add_n([f() for f in obj.regularization_losses]) if obj.regularization_losses else 0.0
        for var, grad in zip(obj.trainable_variables, tape.gradient(loss, obj.trainable_variables)):
            if grad is not None:
                var.assign_sub(lr * grad)
    for var in obj.variables:
        # A conv bias followed by batch norm has a mathematically zero gradient: both sides hold float32 noise of
        # ~1e-8 there, so an absolute floor far below any real weight (1e-6) is added to the relative bar.
        _close(arrays["finetune/" + _name(var)], var.numpy(), f"after fine-tuning: {_name(var)}", floor=1e-6)


def test_regularization_losses_match(exported):
    _, src, _, _, _, info, _ = exported
    obj = tf.saved_model.load(src)
    if obj.regularization_losses:
        _close(info["regularization_loss_sum"], float(tf.add_n([f() for f in obj.regularization_losses])),
               "regularization loss sum")


def test_tf2_tf1_tf2_round_trip(exported, tmp_path):
    _, src, dst, images, _, _, _ = exported
    back = convert(dst, str(tmp_path / "back"), verify=False, progress=lambda m: None).destination
    original, returned = tf.saved_model.load(src), tf.saved_model.load(back)
    for training in (False, True):
        np.testing.assert_allclose(returned(images, training=training).numpy(),
                                   original(images, training=training).numpy(), rtol=1e-5, atol=1e-6)


def test_dynamic_input_without_size_asks_for_it(tmp_path):
    src = tf2_models.dynamic_size_classifier(str(tmp_path / "tf2"))
    with pytest.raises(ConversionError, match=r"image_size=\(height, width\)"):  # Python spelling for Python callers
        convert(src, str(tmp_path / "tf1"), kind="classification", progress=lambda m: None)
    assert not (tmp_path / "tf1").exists()


def test_generic_model_needs_a_kind(tmp_path):
    src = tf2_models.keras3_classifier(str(tmp_path / "tf2"))
    with pytest.raises(ConversionError, match="kind='feature_vector' or kind='classification'"):
        convert(src, str(tmp_path / "tf1"), progress=lambda m: None)


# -- TF1 (genuine corpus) -> TF2 -> TF1: the genuine library sees the module it started from -------------------------

# image_module_info is always attached on the way back (the size the original gave from its static shape).
RECORDED_KEYS = ("tags", "signatures", "inputs", "outputs", "expected_image_size", "num_image_channels", "variables",
                 "update_op_count", "regularization_loss_count", "regularization_loss_sum", "assets", "finetune")
ARRAY_GROUPS = ("outputs", "gradients", "updated", "finetune", "finetune_loss", "initial")


@pytest.mark.parametrize("name", corpus.MODULES)
def test_tf1_tf2_tf1_round_trip_in_the_genuine_library(name, tmp_path):
    """Everything the genuine library computes on the round-tripped module equals what it computes on the original.

    Both runs use the same genuine library, inputs and loss in one environment with op determinism on, so the
    comparison is bit for bit: outputs of every variant, signature and key, gradients, moving statistics after
    UPDATE_OPS, and the weights after the classic fine-tuning loop.
    """
    tf2 = convert(corpus.module_path(name), str(tmp_path / "tf2"), verify=False, progress=lambda m: None).destination
    back = convert(tf2, str(tmp_path / "tf1"), verify=False, progress=lambda m: None).destination
    arrays = corpus.golden_arrays(name)
    inputs = (arrays["inputs/images"], arrays["inputs/loss_weights"])
    (tmp_path / "original").mkdir()
    (tmp_path / "back").mkdir()
    info, answers = runner.answers(back, *inputs, tmp_path / "back")
    original_info, original = runner.answers(corpus.module_path(name), *inputs, tmp_path / "original")
    for key in RECORDED_KEYS:
        assert info[key] == original_info[key], key
    assert info["expected_image_size"] == corpus.golden_json(name)["expected_image_size"]
    compared = sorted(k for k in original if k.split("/")[0] in ARRAY_GROUPS)
    assert compared and compared == sorted(k for k in answers if k.split("/")[0] in ARRAY_GROUPS)
    for key in compared:
        np.testing.assert_array_equal(answers[key], original[key], err_msg=key)


def test_adapter_over_the_written_module_gives_the_tf2_gradients(exported):
    """The module read back on TF 2.21 (its reads name variables as `var:0`) is differentiable like the source."""
    from bridge.conversion.tf1_to_tf2 import adapt

    _, src, dst, images, weights, _, _ = exported
    results = []
    for obj in (tf.saved_model.load(src), adapt(dst)):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(obj(images, training=True) * weights)
        grads = tape.gradient(loss, obj.trainable_variables)
        results.append({_name(v): g for v, g in zip(obj.trainable_variables, grads)})
    expected, actual = results
    assert sorted(actual) == sorted(expected)
    assert all(g is not None for g in actual.values())
    for name, grad in expected.items():
        if grad is not None:
            _close(actual[name].numpy(), grad.numpy(), f"gradient of {name}")
