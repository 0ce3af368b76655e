"""Converted TF1 modules in the hands of every TF2 consumer: plain TF, hub.load, hub.KerasLayer, Keras 3."""

from __future__ import annotations

import glob
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from bridge.conversion.converter import convert
from tests.corpus import golden_arrays, golden_json, module_path

NAME = "convnet_bn"  # both graph variants, batch norm, regularizers: the full fine-tuning story


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    return convert(module_path(NAME), str(tmp_path_factory.mktemp("consumers") / NAME),
                   progress=lambda m: None).destination


def _images():
    return golden_arrays(NAME)["inputs/images"]


def _labels():
    return np.arange(len(_images())) % 3


def test_hub_load(converted):
    import tensorflow_hub as hub

    obj = hub.load(converted)
    np.testing.assert_array_equal(obj(_images()).numpy(), golden_arrays(NAME)["outputs/infer/default/default"])


def test_hub_keras_layer_fine_tuning(converted):
    import tensorflow_hub as hub
    import tf_keras

    layer = hub.KerasLayer(converted, trainable=True)
    model = tf_keras.Sequential([tf_keras.Input((32, 32, 3)), layer, tf_keras.layers.Dense(3)])
    # Regularization losses of the module are counted by Keras, with the values the genuine library gave.
    assert len(model.losses) == golden_json(NAME)["regularization_loss_count"]
    np.testing.assert_allclose(float(tf.add_n(model.losses)), golden_json(NAME)["regularization_loss_sum"],
                               rtol=1e-6)
    assert len(layer.trainable_weights) == sum(v["trainable"] for v in golden_json(NAME)["variables"].values())
    trainable_before = [w.numpy() for w in layer.trainable_weights]
    moving_before = {w.name: w.numpy() for w in layer.non_trainable_weights}
    model.compile(optimizer=tf_keras.optimizers.SGD(0.1),
                  loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(_images(), _labels(), epochs=4, verbose=0).history["loss"]
    assert history[-1] < history[0]
    assert all(not np.array_equal(w.numpy(), b) for w, b in zip(layer.trainable_weights, trainable_before)
               if "logits" not in w.name)  # logits/* are not on the feature-vector path
    moved = [n for n, b in moving_before.items() if "moving" in n and not np.array_equal(
        [w for w in layer.non_trainable_weights if w.name == n][0].numpy(), b)]
    assert len(moved) == golden_json(NAME)["update_op_count"]


def test_keras3_tfsm_layer_inference_and_fine_tuning(converted):
    import keras

    layer = keras.layers.TFSMLayer(converted, call_endpoint="serve", call_training_endpoint="serve_training",
                                   trainable=True)
    outputs = layer(_images())
    np.testing.assert_array_equal(np.asarray(outputs["default"]), golden_arrays(NAME)["outputs/infer/default/default"])

    inputs = keras.Input((32, 32, 3))
    model = keras.Model(inputs, keras.layers.Dense(3)(layer(inputs)["default"]))
    model.compile(optimizer=keras.optimizers.SGD(0.1),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    moving = [v for v in layer._reloaded_obj.variables if "moving" in v.name]
    moving_before = [v.numpy() for v in moving]
    history = model.fit(_images(), _labels(), epochs=4, verbose=0).history["loss"]
    assert history[-1] < history[0]
    assert all(not np.array_equal(v.numpy(), b) for v, b in zip(moving, moving_before))


def test_saved_model_cli_lists_the_serving_signatures(converted):
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    proc = subprocess.run([cli, "show", "--dir", converted, "--tag_set", "serve"], capture_output=True, text=True,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert proc.returncode == 0, proc.stderr
    for name in ["serving_default"] + golden_json(NAME)["signatures"]["infer"]:
        assert f'"{name}"' in proc.stdout


def test_converted_model_holds_one_copy_of_the_weights(converted):
    def data_bytes(path):
        return sum(os.path.getsize(f) for f in glob.glob(os.path.join(path, "variables", "variables.data-*")))

    source, converted_size = data_bytes(module_path(NAME)), data_bytes(converted)
    # Both variants run on one set of variables; a naive load_v2 per variant would double this.
    assert converted_size < 1.2 * source + 1024, (converted_size, source)
