"""Random ops in training mode: dropout models verify, draws matched while comparing, fresh draws in training.

Modules: dropout_net (op seeds from a graph seed) and dropout_unseeded (seed = seed2 = 0), exported by the genuine
library (tests/oracle/real_modules.py); a TF2 model with unseeded tf.nn.dropout and tf.random.normal noise.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf

from tests.bridge.real_modules import assert_close_to_genuine, genuine_outputs, images, real_module

DROPOUT_MODULES = ("dropout_net", "dropout_unseeded")


def _quiet(message):
    pass


@pytest.fixture(scope="module")
def conversions(tmp_path_factory, oracle):
    from bridge.conversion.converter import convert

    root = tmp_path_factory.mktemp("random_ops")
    return {name: convert(real_module(name), str(root / name), progress=_quiet) for name in DROPOUT_MODULES}


@pytest.mark.parametrize("name", DROPOUT_MODULES)
def test_convert_verifies_training_outputs_that_depend_on_dropout(conversions, name):
    """The verification passes on outputs behind dropout, within the parity tolerance, not bit for bit: it runs
    every signature of the module in one traced function and each signature of the SavedModel in its own, and
    Grappler's remapper fuses the conv and batch norm differently when the activations are also an output. Under
    ONEDNN_MAX_CPU_ISA=SSE41 the fused and unfused kernels differ in the last bits (measured on dropout_net: training
    logits 2.4e-7 apart at magnitude 0.76, 0.0 with the remapper off); unmatched draws would differ by O(1) (see
    test_matching_is_what_makes_unseeded_dropout_comparable). Bit-identity holds where both sides run one graph."""
    from bridge.parity.runners import open_runner

    report = conversions[name].verification
    assert report.passed, report.table()
    logits = report.result("image_classification/default", mode="training")
    assert "depends on random ops" in logits.reason
    assert logits.elements and logits.max_abs <= logits.atol, logits.reason
    # The inference graph has no dropout: nothing to say there.
    assert "random" not in report.result("image_classification/default").reason
    note = next(n for n in report.notes if n.startswith("random ops:"))
    assert "image_classification/default" in note and "draws matched" in note
    assert report.settings["random_ops"]["A"]["matched"] and report.settings["random_ops"]["B"]["matched"]
    # One signature alone: the adapter traces the very graph the SavedModel saved, so both draw and compute alike.
    ra, rb = open_runner(real_module(name)), open_runner(conversions[name].destination)
    x = images(4)
    a, b = (r.run("image_classification", x, training=True)["default"] for r in (ra, rb))
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_matching_is_what_makes_unseeded_dropout_comparable(conversions):
    """Without the matched draws the same comparison fails: the check is not vacuous."""
    from bridge.parity.comparison import compare
    from bridge.parity.runners import open_runner

    name = "dropout_unseeded"
    ra = open_runner(real_module(name), match_random=False)
    rb = open_runner(conversions[name].destination, match_random=False)
    report = compare(ra, rb, random=4, training=True)
    assert not report.result("image_classification/default", mode="training").passed
    assert compare(real_module(name), conversions[name].destination, random=4, training=True).passed


def test_cli_parity_training_passes_and_names_random_outputs(conversions, capsys, tmp_path):
    from bridge.cli import main

    out = tmp_path / "report.json"
    code = main(["parity", real_module("dropout_unseeded"), conversions["dropout_unseeded"].destination,
                 "--training", "--gradients", "--random", "4", "--json-file", str(out)])
    assert code == 0, capsys.readouterr().err
    data = json.loads(out.read_text())
    assert any(n.startswith("random ops:") for n in data["notes"])
    gradients = [r for r in data["outputs"] if r["mode"] == "gradients"]
    assert gradients and all(r["identical"] for r in gradients)


@pytest.mark.parametrize("name", DROPOUT_MODULES)
def test_converted_model_draws_fresh_numbers_in_training_only(conversions, name):
    obj = tf.saved_model.load(conversions[name].destination)
    x = tf.constant(images(4))
    train = [obj.image_classification(x, training=True)["default"].numpy() for _ in range(2)]
    assert not np.array_equal(train[0], train[1])
    infer = [obj.image_classification(x, training=False)["default"].numpy() for _ in range(2)]
    np.testing.assert_array_equal(infer[0], infer[1])
    assert not np.array_equal(train[0], infer[0])


def test_shim_train_variant_drops_out_as_the_genuine_library(tmp_path, oracle):
    """The shim's first train-variant call draws what genuine hub.Module draws in its first session run (the ops
    carry seeds), and later calls draw fresh numbers."""
    from legacy import hub

    path = real_module("dropout_net")
    x = images(4)
    genuine = genuine_outputs(path, x, tmp_path, tags="train")
    module = hub.Module(path, tags={"train"}, trainable=True)
    first = module(x, signature="image_classification", as_dict=True)["default"].numpy()
    assert_close_to_genuine(first, genuine["image_classification/default"], "train logits")
    second = module(x, signature="image_classification", as_dict=True)["default"].numpy()
    assert not np.array_equal(first, second)
    inference = hub.Module(path)
    a, b = (inference(x, signature="image_classification").numpy() for _ in range(2))
    np.testing.assert_array_equal(a, b)
    genuine_infer = genuine_outputs(path, x, tmp_path)
    assert_close_to_genuine(a, genuine_infer["image_classification/default"], "inference logits")


def _save_dropout_net(path: str) -> None:
    """A TF2 Reusable SavedModel with unseeded dropout and Gaussian noise in training mode."""
    rng = np.random.default_rng(0)
    kernel = tf.Variable(rng.normal(0, 0.3, (3, 3, 3, 8)).astype(np.float32), name="conv/kernel")
    dense = tf.Variable(rng.normal(0, 0.5, (8, 5)).astype(np.float32), name="logits/kernel")

    def call(images, training=False):
        net = tf.nn.relu(tf.nn.conv2d(images, kernel, 1, "SAME"))
        if training:
            net = tf.nn.dropout(net, rate=0.3) + 0.01 * tf.random.normal(tf.shape(net))
        return tf.matmul(tf.reduce_mean(net, [1, 2]), dense)

    obj = tf.__internal__.tracking.AutoTrackable()
    obj.variables = obj.trainable_variables = [kernel, dense]
    obj.regularization_losses = []
    obj.__call__ = tf.function(call, reduce_retracing=True)
    spec = tf.TensorSpec([None, 16, 16, 3], tf.float32)
    for training in (False, True):
        obj.__call__.get_concrete_function(spec, training=training)
    tf.saved_model.save(obj, path)


def test_tf2_dropout_model_converts_to_tf1_and_verifies(tmp_path):
    from bridge.conversion.converter import convert
    from legacy import hub
    from legacy.engine.random_ops import random_ops
    from legacy.format.reader import read_module

    _save_dropout_net(str(tmp_path / "tf2"))
    result = convert(str(tmp_path / "tf2"), str(tmp_path / "tf1"), kind="classification", progress=_quiet)
    report = result.verification
    assert report.passed, report.table()
    assert report.result("default/default", mode="training").identical
    assert "depends on random ops" in report.result("default/default", mode="training").reason
    module = read_module(str(tmp_path / "tf1"))
    ops = {op for _, _, op in random_ops(module.variant({"train"}).meta_graph.graph_def)}
    assert ops == {"RandomUniform", "RandomStandardNormal"}
    assert not random_ops(module.variant(set()).meta_graph.graph_def)
    # The written module still draws: the shim's train variant gives fresh numbers on each call.
    m = hub.Module(str(tmp_path / "tf1"), tags={"train"})
    x = images(2)
    assert not np.array_equal(m(x).numpy(), m(x).numpy())
