"""Signatures with inputs besides images (`*_with_bn_hparams`: images + batch_norm_momentum) survive conversion."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from tests.bridge.real_modules import assert_close_to_genuine, genuine_outputs, images, real_module

HPARAMS = ("image_feature_vector_with_bn_hparams", "image_classification_with_bn_hparams")


@pytest.fixture(scope="module")
def conversion_and_progress(tmp_path_factory, oracle):
    from bridge.conversion.converter import convert

    lines = []
    result = convert(real_module("hparams_net"), str(tmp_path_factory.mktemp("hparams") / "tf2"),
                     progress=lines.append)
    return result, lines


def test_hparams_signatures_are_served_and_verified_with_the_module_default(conversion_and_progress):
    result, _ = conversion_and_progress
    report = result.verification
    assert report.passed, report.table()
    for name in HPARAMS:
        for mode in ("inference", "training"):
            assert report.result(f"{name}/default", mode=mode).identical


def test_serving_signatures_take_all_inputs_and_match_the_genuine_library(conversion_and_progress, tmp_path):
    result, _ = conversion_and_progress
    obj = tf.saved_model.load(result.destination)
    x = images(3, (20, 20))
    genuine = genuine_outputs(real_module("hparams_net"), x, tmp_path, batch_norm_momentum=0.9)
    for name in HPARAMS:
        fn = obj.signatures[name]
        assert sorted(fn.structured_input_signature[1]) == ["batch_norm_momentum", "images"]
        out = fn(images=tf.constant(x), batch_norm_momentum=tf.constant(0.9))
        assert sorted(out) == ["default"]
        assert_close_to_genuine(out["default"].numpy(), genuine[f"{name}/default"], name)
        assert_close_to_genuine(getattr(obj, name)(x)["default"].numpy(), genuine[f"{name}/default"], name)


def _moving_mean_step(obj, x, **kwargs) -> np.ndarray:
    var = next(v for v in obj.variables if "moving_mean" in v.name)
    before = var.numpy()
    obj(x, training=True, **kwargs)
    step = var.numpy() - before
    var.assign(before)
    return step


def test_call_takes_the_momentum_as_a_keyword_argument(conversion_and_progress):
    """BN moving averages move by (1 - momentum) * (batch mean - moving mean): 0.5 moves them 50x as far as the
    module's default 0.99."""
    result, _ = conversion_and_progress
    obj = tf.saved_model.load(result.destination)
    x = tf.constant(images(4, (20, 20)))
    default = _moving_mean_step(obj, x)
    np.testing.assert_allclose(_moving_mean_step(obj, x, batch_norm_momentum=0.99), default, rtol=1e-6)
    np.testing.assert_allclose(_moving_mean_step(obj, x, batch_norm_momentum=0.5), 50 * default, rtol=1e-3)


def test_keras_layer_passes_the_momentum(conversion_and_progress):
    import tensorflow_hub as hub

    result, _ = conversion_and_progress
    x = tf.constant(images(4, (20, 20)))
    layer = hub.KerasLayer(result.destination, trainable=True, arguments=dict(batch_norm_momentum=0.5))
    reference = tf.saved_model.load(result.destination)
    step = _moving_mean_step(reference, x, batch_norm_momentum=0.5)
    var = next(v for v in layer.non_trainable_weights if "moving_mean" in v.name)
    before = var.numpy()
    layer(x, training=True)
    np.testing.assert_allclose(var.numpy() - before, step, rtol=1e-6)


def test_a_signature_whose_input_has_no_default_is_kept_with_it_required(conversion_and_progress, capsys):
    from bridge.cli import main

    result, lines = conversion_and_progress
    assert "signature scaled_features is kept with required input scale (no default in the module)" in lines
    assert result.verification.settings["signatures_not_compared"] == {
        "scaled_features": "its input 'scale' has no default in the model, and no value was given; pass "
                           "inputs={'scale': VALUE} to compare it"}
    obj = tf.saved_model.load(result.destination)
    assert sorted(obj.signatures["scaled_features"].structured_input_signature[1]) == ["images", "scale"]
    with pytest.raises(TypeError):  # required: no traced call without it
        obj.scaled_features(images(2, (20, 20)))
    assert main(["inspect", real_module("hparams_net")]) == 0
    out = capsys.readouterr().out
    assert "signature scaled_features converts with required input scale (no default in the module" in out
