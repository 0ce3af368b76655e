"""Every zoo module through every check: convert, outputs/gradients/updates against the genuine library, the round
trip, the shim's image-guide snippets, and the TFLite converter.

The genuine library (TF 2.15) and this project (TF 2.21) run different kernels, so arrays are compared with the
project's tolerance semantics (bridge.parity.tolerance: an element fails only when it exceeds both the atol, a
fraction of the reference's scale, and the rtol); genuine-against-genuine comparisons (the round trip) are exact.
Random ops (dropout) are given the same seed attributes on both sides (see conftest.seeded_copy and
zoo_oracle.seed_random_ops), so training outputs and gradients are compared like the rest.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import tensorflow as tf

from tests.tolerances import PARITY_RULE, TFLITE, TFLITE_FAKE_QUANT, Tolerance, assert_parity_rule
from tests.zoo.conftest import MOMENTUM
from tests.zoo.image_guide import NAMED, run_image_guide
from tests.zoo.members import FULL, ZOO, ZOO_DIR, Member, full_manifest, manifest

pytestmark = pytest.mark.oracle

def _ids(member: Member) -> str:
    return member.name


# The committed members in `make test`; the full-size ones (built on demand, tens of MB) in the slow tier.
MEMBERS = ZOO + [pytest.param(m, marks=pytest.mark.slow, id=m.name) for m in FULL]


def assert_close(actual, expected, what: str, tolerance: Tolerance = PARITY_RULE, scale: float | None = None):
    """The zoo's comparison: the parity harness's rule, stated once in tests/tolerances.py."""
    __tracebackhide__ = True
    assert_parity_rule(actual, expected, what, tolerance, scale)


def _call(obj, signature: str, images, training: bool) -> dict:
    """A converted signature's outputs. Extra inputs (batch_norm_momentum) are keyword arguments."""
    fn = getattr(obj, signature)
    if signature.endswith("_with_bn_hparams"):
        return fn(images, training=training, batch_norm_momentum=tf.constant(MOMENTUM))
    return fn(images, training=training)


def _by_prefix(arrays: dict, prefix: str) -> dict:
    return {k[len(prefix) + 1:]: v for k, v in arrays.items() if k.startswith(prefix + "/")}


def _name(var) -> str:
    return var.name.split(":")[0]


# -- the zoo itself -----------------------------------------------------------------------------------------------


def test_every_generated_module_has_a_row():
    assert sorted(manifest()) == sorted(m.name for m in ZOO)
    assert sorted(os.listdir(os.path.join(ZOO_DIR, "modules"))) == sorted(m.name for m in ZOO)


@pytest.mark.slow
def test_every_full_size_module_has_a_row():
    assert sorted(full_manifest()) == sorted(m.name for m in FULL)
    for member in FULL:  # published sizes: more than a million parameters each, and not committed
        assert member.facts["parameters"] > 1_000_000 and not member.path.startswith(ZOO_DIR)


@pytest.mark.parametrize("rows,facts", [(ZOO, manifest), pytest.param(FULL, full_manifest, marks=pytest.mark.slow)],
                         ids=["committed", "full"])
def test_every_any_size_module_is_checked_at_another_size(rows, facts):
    """A module taking any input size is verified at a second size only when its row names one."""
    for member in rows:
        assert bool(facts()[member.name]["any_size"]) == (member.other_size is not None), member.name


def test_the_zoo_covers_every_published_shape():
    facts = manifest().values()
    assert {f["variables"] for f in facts} == {"resource", "reference"}
    for shape in ("random_ops", "any_size", "bn_hparams", "fake_quant"):
        assert any(f[shape] for f in facts), shape
    assert any(f["tags"] == [[]] for f in facts) and any(f["tags"] == [[], ["train"]] for f in facts)
    assert sum(f["bytes"] for f in facts) < 5_000_000  # what is committed stays small


# -- TF1 -> TF2 ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("member", MEMBERS, ids=_ids)
def test_convert_with_default_options_verifies(zoo, member):
    run = zoo.to_tf2(member)
    assert run.exit_code == 0, run.stderr[-3000:]
    assert "verified: PASS" in run.stdout + run.stderr
    obj = tf.saved_model.load(run.destination)
    for signature in member.facts["signatures"]:  # every signature survives, extra inputs included
        assert hasattr(obj, signature), f"{signature} is missing from the converted model"


@pytest.mark.parametrize("member", MEMBERS, ids=_ids)
def test_inference_outputs_equal_the_genuine_library(zoo, member):
    info, genuine = zoo.genuine(member)
    obj = tf.saved_model.load(zoo.seeded_tf2(member))
    sizes = [("outputs", zoo.inputs[member.name]["images"])]
    if member.other_size:
        sizes.append(("other_size", zoo.inputs[member.name]["images_other"]))
    compared = 0
    for prefix, images in sizes:
        for signature in info["signatures"]["infer"]:
            outputs = _call(obj, signature, images, training=False)
            for key, value in outputs.items():
                assert_close(value.numpy(), genuine[f"{prefix}/infer/{signature}/{key}"],
                             f"{prefix}/infer/{signature}/{key}")
                compared += 1
    assert compared == len([k for k in genuine if k.split("/")[1:2] == ["infer"]])


@pytest.mark.parametrize("member", MEMBERS, ids=_ids)
def test_training_outputs_equal_the_genuine_library(zoo, member):
    info, genuine = zoo.genuine(member)
    if "train" not in info["signatures"]:
        assert member.facts["tags"] == [[]]
        return
    obj = tf.saved_model.load(zoo.seeded_tf2(member))  # a fresh load: every random op draws its first numbers
    images = zoo.inputs[member.name]["images"]
    for signature in info["signatures"]["train"]:
        outputs = _call(obj, signature, images, training=True)
        assert sorted(outputs) == sorted(info["outputs"]["train"][signature])
        for key, value in outputs.items():
            assert_close(value.numpy(), genuine[f"outputs/train/{signature}/{key}"], f"train/{signature}/{key}")


@pytest.mark.parametrize("member", MEMBERS, ids=_ids)
def test_gradients_and_batch_norm_updates_equal_the_genuine_library(zoo, member):
    info, genuine = zoo.genuine(member)
    obj = tf.saved_model.load(zoo.seeded_tf2(member))
    inputs = zoo.inputs[member.name]
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(obj(inputs["images"], training=True) * inputs["loss_weights"])
    grads = tape.gradient(loss, obj.trainable_variables)
    expected = _by_prefix(genuine, "gradients")
    assert sorted(expected) == sorted(_name(v) for v, g in zip(obj.trainable_variables, grads) if g is not None)
    scale = max(float(np.abs(g).max()) for g in expected.values())
    for var, grad in zip(obj.trainable_variables, grads):
        if grad is not None:
            assert_close(grad.numpy(), expected[_name(var)], f"gradient of {_name(var)}", scale=scale)
    updated = _by_prefix(genuine, "updated")
    if "train" in info["signatures"]:
        assert sorted(updated) == sorted(_name(v) for v in obj.variables)
        for var in obj.variables:
            assert_close(var.numpy(), updated[_name(var)], f"after the update ops: {_name(var)}")
    hparams = _by_prefix(genuine, "updated_hparams")
    if hparams:  # batch_norm_momentum reaches the moving averages
        signature = sorted(s for s in info["signatures"]["train"] if s.endswith("_with_bn_hparams"))[0]
        obj = tf.saved_model.load(zoo.seeded_tf2(member))
        _call(obj, signature, inputs["images"], training=True)
        for var in obj.variables:
            assert_close(var.numpy(), hparams[_name(var)], f"after the update ops at momentum {MOMENTUM}")


# -- TF1 -> TF2 -> TF1 --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("member", MEMBERS, ids=_ids)
def test_round_trip_gives_the_genuine_library_the_original_module(zoo, member):
    run = zoo.back_to_tf1(member)
    assert run.exit_code == 0, run.stderr[-3000:]
    info, answers = zoo.genuine_round_trip(member)
    original_info, original = zoo.genuine(member)
    for key in ("tags", "signatures", "inputs", "outputs", "expected_image_size", "num_image_channels",
                "image_module_info", "variables", "update_op_count", "regularization_loss_count"):
        assert info[key] == original_info[key], key
    assert sorted(answers) == sorted(original)
    for key, value in original.items():  # one genuine library, one process, the same kernels: bit for bit
        np.testing.assert_array_equal(answers[key], value, err_msg=key)


# -- the shim -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("member", MEMBERS, ids=_ids)
def test_image_guide_snippets_run_on_the_shim(zoo, member):
    """The TF Hub image guide's TF1 snippets as written (graph mode, a Session, the spec's expected size, every named
    signature the module has) on the module and on its TF2 conversion, computing what the genuine library computes."""
    info, genuine = zoo.genuine(member)
    images = zoo.inputs[member.name]["images"]
    for path in (member.path, zoo.to_tf2(member).destination):
        results = run_image_guide(path, images)
        assert list(results["size"]) == member.facts["default_image_size"]
        assert sorted(results) == sorted(["size", "default"] + [s for s in NAMED if s in info["signatures"]["infer"]])
        for signature in ["default"] + [s for s in NAMED if s in results]:
            assert_close(results[signature], genuine[f"outputs/infer/{signature}/default"], f"{path}: {signature}")


# -- TFLite -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("member", MEMBERS, ids=_ids)
def test_tflite_converter_accepts_the_conversion(zoo, member):
    _, genuine = zoo.genuine(member)
    images = zoo.inputs[member.name]["images"]
    converter = tf.lite.TFLiteConverter.from_saved_model(zoo.to_tf2(member).destination)
    interpreter = tf.lite.Interpreter(model_content=converter.convert())
    (name,) = interpreter.get_signature_list()["serving_default"]["inputs"]
    (detail,) = interpreter.get_input_details()  # resized before any runner holds the tensors
    interpreter.resize_tensor_input(detail["index"], images.shape)
    interpreter.allocate_tensors()
    outputs = interpreter.get_signature_runner("serving_default")(**{name: images})
    assert sorted(outputs) == sorted(k.split("/")[-1] for k in genuine if k.startswith("outputs/infer/default/"))
    for key, value in outputs.items():
        assert_close(value, genuine[f"outputs/infer/default/{key}"], f"TFLite {key}",
                     TFLITE_FAKE_QUANT if member.facts["fake_quant"] else TFLITE)
