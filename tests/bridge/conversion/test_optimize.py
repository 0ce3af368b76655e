"""`bridge convert --optimize`: the inference path runs a frozen, folded copy of the graph; training stays exact.

Compared within one process (same kernels): the optimized conversion against a normal conversion of the same module.
Training mode, its gradients and batch-norm updates must be bit-identical (the optimization does not touch them);
inference differs only by the rounding of the folded weights, within the project's default parity tolerance
(`bridge.parity.tolerance.DEFAULT_ATOL_SCALE` of the output's scale), which is also what the conversion's own
verification against the TF1 module applies.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf

from bridge.cli import main
from bridge.conversion import optimize
from bridge.conversion.converter import VerificationError, convert
from bridge.parity.tolerance import DEFAULT_ATOL_SCALE
from tests.corpus import module_path

NAME = "convnet_bn"  # conv + batch norm + relu twice, then a classifier: every folding case of the corpus
QUIET = dict(progress=lambda message: None)


@pytest.fixture(scope="module")
def conversions(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("optimize")
    plain = convert(module_path(NAME), str(root / "plain"), **QUIET)
    optimized = convert(module_path(NAME), str(root / "optimized"), optimize=True, **QUIET)
    return {"plain": plain, "optimized": optimized}


def _images(n: int = 4) -> np.ndarray:
    return np.random.default_rng(5).uniform(size=(n, 32, 32, 3)).astype(np.float32)


def test_optimized_conversion_verifies_and_folds(conversions):
    report = conversions["optimized"].verification
    assert report.passed, report.table()
    # Training mode and the batch-norm updates are untouched: identical to the module's.
    assert all(r.identical for r in report.results if r.mode in ("training", "updates")), report.table()
    def ops(result) -> set:  # what the serving signature (inference) runs, nested functions included
        obj = tf.saved_model.load(result.destination)
        return {n.op for f in obj.signatures["default"].graph.as_graph_def().library.function for n in f.node_def}

    assert {"FusedBatchNormV3", "ReadVariableOp"} <= ops(conversions["plain"])
    assert not {"FusedBatchNormV3", "ReadVariableOp"} & ops(conversions["optimized"])  # folded, frozen
    assert {"Conv2D", "BiasAdd"} <= ops(conversions["optimized"])


def test_training_path_is_bit_identical_to_a_normal_conversion(conversions):
    plain = tf.saved_model.load(conversions["plain"].destination)
    optimized = tf.saved_model.load(conversions["optimized"].destination)
    assert [v.name for v in plain.variables] == [v.name for v in optimized.variables]
    assert [v.name for v in plain.trainable_variables] == [v.name for v in optimized.trainable_variables]
    images = tf.constant(_images())
    results = []
    for obj in (plain, optimized):
        with tf.GradientTape() as tape:
            out = obj(images, training=True)
            loss = tf.reduce_sum(out * tf.range(1.0, out.shape[-1] + 1.0)) + tf.add_n(
                [fn() for fn in obj.regularization_losses] or [0.0])
        grads = tape.gradient(loss, obj.trainable_variables)
        results.append((out.numpy(), [None if g is None else g.numpy() for g in grads],
                        [v.numpy() for v in obj.variables]))
    (out_a, grads_a, vars_a), (out_b, grads_b, vars_b) = results
    np.testing.assert_array_equal(out_a, out_b)
    assert [g is None for g in grads_a] == [g is None for g in grads_b]
    assert any(g is not None for g in grads_a)
    for a, b in zip(grads_a + vars_a, grads_b + vars_b):  # gradients, and the batch-norm updates applied
        if a is not None:
            np.testing.assert_array_equal(a, b)


def test_inference_is_within_the_parity_tolerance_and_frozen(conversions):
    plain = tf.saved_model.load(conversions["plain"].destination)
    optimized = tf.saved_model.load(conversions["optimized"].destination)
    images = _images()
    for call in (lambda obj: obj(images, training=False),
                 lambda obj: obj.signatures["default"](images=tf.constant(images))["default"],
                 lambda obj: obj.image_feature_vector(images)["default"]):
        reference, actual = call(plain).numpy(), call(optimized).numpy()
        assert np.abs(actual - reference).max() <= DEFAULT_ATOL_SCALE * np.abs(reference).max()
    # The trade-off, as documented: fine-tuning moves the variables, not the frozen inference path.
    before = optimized(images, training=False).numpy()
    for var in optimized.trainable_variables:
        var.assign(var * 1.5)
    np.testing.assert_array_equal(optimized(images, training=False).numpy(), before)
    assert not np.array_equal(optimized(images, training=True).numpy(), plain(images, training=True).numpy())


def test_inspect_shows_an_optimized_model(conversions, capsys):
    assert main(["inspect", conversions["optimized"].destination]) == 0
    assert "optimized (--optimize): inference" in capsys.readouterr().out
    assert main(["inspect", conversions["optimized"].destination, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["bridge_metadata"]["optimized_inference"] is True
    assert main(["inspect", conversions["plain"].destination, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["bridge_metadata"]["optimized_inference"] is False


def test_a_perturbed_frozen_weight_fails_verification(tmp_path, monkeypatch):
    real = optimize._fold_batch_norms

    def fold_and_move(graph_def):
        graph_def = real(graph_def)
        bias = next(n for n in graph_def.node if n.name.endswith("/folded_bias"))
        value = tf.make_ndarray(bias.attr["value"].tensor).copy()
        value[0] += 0.05
        bias.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(value))
        return graph_def

    monkeypatch.setattr(optimize, "_fold_batch_norms", fold_and_move)
    dst = tmp_path / "tf2"
    with pytest.raises(VerificationError) as caught:
        convert(module_path(NAME), str(dst), optimize=True, **QUIET)
    assert {r.mode for r in caught.value.report.failures} == {"inference"}
    assert not dst.exists()


def test_optimize_is_refused_for_a_tf2_source(conversions, tmp_path, capsys):
    assert main(["convert", conversions["plain"].destination, str(tmp_path / "tf1"), "--optimize"]) == 2
    assert "--optimize applies to TF1 -> TF2 conversions only" in capsys.readouterr().err
