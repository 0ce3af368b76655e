"""`bridge convert` proves every conversion before it appears, and writes nothing when the proof fails.

A broken conversion is simulated by moving one weight on its way to disk (monkeypatching the writer); the
reference is always the untouched source, so the verification must catch it.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from bridge.cli import main
from bridge.conversion.converter import VERIFY_RANDOM, VerificationError, convert
from bridge.parity import compare
from tests.corpus import IMAGES_DIR, MODULES, golden_json, module_path

NAME = "convnet_bn"
QUIET = dict(progress=lambda message: None)


def tiny_reusable(path: str) -> str:
    """A TF2 Reusable SavedModel without Keras: conv 3x3/4, a moving mean updated in training mode (as batch norm
    does), relu, mean pool, dense to 3 logits; 8x8 images."""
    rng = np.random.default_rng(0)
    kernel = tf.Variable(rng.normal(size=(3, 3, 3, 4)).astype(np.float32), name="conv/kernel")
    moving_mean = tf.Variable(rng.normal(size=(4,)).astype(np.float32), trainable=False, name="norm/moving_mean")
    dense = tf.Variable(rng.normal(size=(4, 3)).astype(np.float32), name="dense/kernel")

    def call(images, training=False):
        x = tf.nn.conv2d(images, kernel, 1, "SAME")
        if training:
            mean = tf.reduce_mean(x, axis=[0, 1, 2])
            moving_mean.assign(0.9 * moving_mean + 0.1 * mean)
        else:
            mean = moving_mean
        return tf.matmul(tf.reduce_mean(tf.nn.relu(x - mean), axis=[1, 2]), dense)

    obj = tf.__internal__.tracking.AutoTrackable()
    obj.variables = [kernel, moving_mean, dense]
    obj.trainable_variables = [kernel, dense]
    obj.regularization_losses = []
    obj.__call__ = tf.function(call)
    for training in (False, True):
        obj.__call__.get_concrete_function(tf.TensorSpec([None, 8, 8, 3], tf.float32), training=training)
    tf.saved_model.save(obj, path)
    return path


@pytest.fixture(scope="module")
def tiny_tf2(tmp_path_factory) -> str:
    return tiny_reusable(str(tmp_path_factory.mktemp("tiny") / "tf2"))


def _moving_save(real):
    """tf.saved_model.save, but logits/biases[0] moves by 0.05 just before the SavedModel is written."""
    def save(obj, path, *args, **kwargs):
        var = next(v for v in obj.variables if v.name.startswith("logits/biases"))
        var.assign_add(tf.one_hot(0, var.shape[0]) * 0.05)
        return real(obj, path, *args, **kwargs)

    return save


@pytest.fixture
def broken_tf1_to_tf2(monkeypatch):
    """TF1 -> TF2 that writes a model with one moved weight."""
    monkeypatch.setattr(tf.saved_model, "save", _moving_save(tf.saved_model.save))


@pytest.fixture
def broken_tf2_to_tf1(monkeypatch):
    """TF2 -> TF1 that moves dense/kernel[0, 0] by 0.05 in the checkpoint it writes."""
    import bridge.conversion.tf2_to_tf1

    real = bridge.conversion.tf2_to_tf1.write_module

    def write_module(dst, meta_graphs, variables=None, **kwargs):
        variables = dict(variables)
        variables["dense/kernel"] = tf.identity(variables["dense/kernel"]).numpy()  # a copy: the source stays
        variables["dense/kernel"][0, 0] += 0.05
        return real(dst, meta_graphs, variables=variables, **kwargs)

    monkeypatch.setattr(bridge.conversion.tf2_to_tf1, "write_module", write_module)


def _failed(report) -> set:
    return {(r.mode, r.name) for r in report.failures}


@pytest.mark.parametrize("name", MODULES)
def test_conversions_verify_themselves_by_default(tmp_path, name):
    result = convert(module_path(name), str(tmp_path / "tf2"), verify_images=IMAGES_DIR, **QUIET)
    report = result.verification
    assert report.passed and report.identical, report.table()
    assert report.inputs["image_files"] == 4 and report.inputs["random_images"] == VERIFY_RANDOM
    assert report.settings["modes"] == ["inference", "training", "updates"]
    info = golden_json(name)
    # Every output of every signature is compared: on its own row, or named as an alias of an earlier signature
    # computing the same tensor (default and image_classification of a classifier share one function).
    assert {n for r in report.results if r.mode == "inference" for n in [r.name] + r.aliases} == {
        f"{sig}/{key}" for sig, outs in info["outputs"]["infer"].items() for key in outs}
    assert {r.name for r in report.results if r.mode == "updates"} == {
        f"updates/{v}" for v, d in info["variables"].items() if not d["trainable"]}
    assert result.to_json()["verification"]["status"] == "ok"


def test_a_conversion_that_does_not_match_leaves_nothing(tmp_path, broken_tf1_to_tf2):
    with pytest.raises(VerificationError, match="nothing was written to .*--no-verify") as e:
        convert(module_path(NAME), str(tmp_path / "tf2"), **QUIET)
    assert _failed(e.value.report) == {("inference", "image_classification/default"),
                                       ("training", "image_classification/default")}
    assert os.listdir(tmp_path) == []  # neither the destination nor a temporary directory


def test_force_keeps_the_old_destination_when_verification_fails(tmp_path, monkeypatch):
    dst = str(tmp_path / "tf2")
    convert(module_path(NAME), dst, verify=False, **QUIET)
    before = {f: open(os.path.join(root, f), "rb").read() for root, _, files in os.walk(dst) for f in files}
    monkeypatch.setattr(tf.saved_model, "save", _moving_save(tf.saved_model.save))
    with pytest.raises(VerificationError):
        convert(module_path(NAME), dst, force=True, **QUIET)
    after = {f: open(os.path.join(root, f), "rb").read() for root, _, files in os.walk(dst) for f in files}
    assert after == before and os.listdir(tmp_path) == ["tf2"]


def test_no_verify_skips_the_check(tmp_path, broken_tf1_to_tf2):
    result = convert(module_path(NAME), str(tmp_path / "tf2"), verify=False, **QUIET)
    assert result.verification is None and result.to_json()["verification"] is None
    # The check would have caught it: the written model does differ from its source.
    assert not compare(module_path(NAME), result.destination, random=2).passed


def test_tf2_to_tf1_verifies_itself(tmp_path, tiny_tf2):
    result = convert(tiny_tf2, str(tmp_path / "tf1"), kind="classification", **QUIET)
    report = result.verification
    assert result.direction == "tf2->tf1" and report.passed and report.identical
    assert {(r.mode, r.name) for r in report.results} == {
        ("inference", "default/default"), ("training", "default/default"), ("updates", "updates/norm/moving_mean")}


def test_tf2_to_tf1_refuses_a_mismatch(tmp_path, tiny_tf2, broken_tf2_to_tf1):
    with pytest.raises(VerificationError) as e:
        convert(tiny_tf2, str(tmp_path / "tf1"), kind="classification", **QUIET)
    assert _failed(e.value.report) == {("inference", "default/default"), ("training", "default/default")}
    assert os.listdir(tmp_path) == []


# -- the command line ----------------------------------------------------------------------------------------------


def test_cli_convert_prints_the_verification_on_stderr(tmp_path, capsys):
    dst = str(tmp_path / "tf2")
    assert main(["convert", module_path(NAME), dst, "--verify-images", IMAGES_DIR, "--json"]) == 0
    out, err = capsys.readouterr()
    data = json.loads(out)  # stdout holds the JSON and nothing else
    assert data["destination"] == dst and data["verification"]["status"] == "ok"
    assert data["verification"]["inputs"]["image_files"] == 4
    assert "bridge: parity: PASS: all 12 outputs within tolerance (all identical)" in err


def test_cli_convert_exits_1_and_writes_nothing_on_a_mismatch(tmp_path, capsys, broken_tf1_to_tf2):
    dst = str(tmp_path / "tf2")
    assert main(["convert", module_path(NAME), dst]) == 1
    out, err = capsys.readouterr()
    assert out == "" and not os.path.exists(dst)
    assert "  image_classification/default" in err and "FAIL: 2 of 12 outputs do not match" in err
    assert err.rstrip().splitlines()[-1].startswith("bridge convert: error: the converted model does not match")


def test_cli_convert_no_verify_and_bad_verify_images(tmp_path, capsys):
    assert main(["convert", module_path(NAME), str(tmp_path / "a"), "--verify-images",
                 str(tmp_path / "missing")]) == 2
    assert "missing: no such file or directory" in capsys.readouterr().err
    assert os.listdir(tmp_path) == []
    assert main(["convert", module_path(NAME), str(tmp_path / "b"), "--no-verify"]) == 0
    out, err = capsys.readouterr()
    assert "verified" not in out and "parity" not in err and os.path.isdir(tmp_path / "b")


@pytest.fixture
def broken_gamma(monkeypatch):
    """TF1 -> TF2 that writes conv2/BatchNorm/gamma[0] 0.05 higher: outputs and the gradients of conv1 move."""
    real = tf.saved_model.save

    def save(obj, path, *args, **kwargs):
        var = next(v for v in obj.variables if v.name.startswith("conv2/BatchNorm/gamma"))
        var.assign_add(tf.one_hot(0, var.shape[0]) * 0.05)
        return real(obj, path, *args, **kwargs)

    monkeypatch.setattr(tf.saved_model, "save", save)


def test_cli_verify_gradients_compares_every_trainable_variable(tmp_path, capsys):
    trainable = {f"gradients/{v}" for v, d in golden_json(NAME)["variables"].items() if d["trainable"]}
    assert main(["convert", module_path(NAME), str(tmp_path / "plain"), "--json"]) == 0
    plain = json.loads(capsys.readouterr().out)["verification"]
    assert "gradients" not in plain["settings"]["modes"]
    assert not [o for o in plain["outputs"] if o["mode"] == "gradients"]

    assert main(["convert", module_path(NAME), str(tmp_path / "with"), "--verify-gradients", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)["verification"]
    assert report["status"] == "ok" and "gradients" in report["settings"]["modes"]
    gradients = {o["name"]: o for o in report["outputs"] if o["mode"] == "gradients"}
    assert set(gradients) == trainable
    assert all(o["status"] == "pass" for o in gradients.values())


def test_verify_gradients_catches_a_gradient_that_differs(tmp_path, broken_gamma):
    with pytest.raises(VerificationError) as e:
        convert(module_path(NAME), str(tmp_path / "tf2"), verify_gradients=True, **QUIET)
    failed = _failed(e.value.report)
    assert ("gradients", "gradients/conv1/weights") in failed  # behind the moved gamma: its gradient moves too
    assert ("inference", "default/default") in failed
    assert os.listdir(tmp_path) == []


def test_unsafe_sources_are_refused_before_anything_runs(tmp_path):
    from tests.bridge.tf2_models import reads_a_file
    from legacy.errors import UnsafeModelError

    unsafe = reads_a_file(str(tmp_path / "unsafe"))
    with pytest.raises(UnsafeModelError, match="ReadFile.*--allow-unsafe-ops"):
        convert(unsafe, str(tmp_path / "tf1"), kind="feature_vector", image_size=(4, 4), **QUIET)
    assert not os.path.exists(tmp_path / "tf1")
