"""Converted TF1 modules in the hands of every TF2 consumer: plain TF, hub.load, hub.KerasLayer, Keras 3, serving.

Each consumer's outputs are the bits `tf.saved_model.load` computes in this process, and within GENUINE_OUTPUTS
(tests/tolerances.py) of the genuine library on the TF1 module.
"""

from __future__ import annotations

import glob
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tests.corpus import golden_arrays, golden_json, module_path
from tests.tolerances import GENUINE_OUTPUTS, GENUINE_TRAINING, assert_close

pytestmark = pytest.mark.numerics  # compares computed numbers: .ci/run repeats it under other kernels

NAME = "convnet_bn"  # both graph variants, batch norm, regularizers: the full fine-tuning story


@pytest.fixture(scope="module")
def model(converted) -> str:
    """The converted SavedModel of NAME (shared with the other test files: loaded, never written)."""
    return converted[NAME]


@pytest.fixture(scope="module")
def loaded(model):
    """The SavedModel loaded with plain TensorFlow, for bit-for-bit references computed in this process."""
    return tf.saved_model.load(model)


def _images():
    return golden_arrays(NAME)["inputs/images"]


def _labels():
    return np.arange(len(_images())) % 3


def test_hub_load(model, loaded, genuine):
    import tensorflow_hub as hub

    features = hub.load(model)(_images()).numpy()
    np.testing.assert_array_equal(features, loaded(_images(), training=False).numpy())
    assert_close(features, genuine[NAME].arrays["outputs/infer/default/default"], GENUINE_OUTPUTS, "hub.load")


def test_serving_signatures_answer_by_input_key_with_the_tf1_output_keys(loaded, genuine):
    """`serving_default` and one serving signature per TF1 signature: called with `images=`, keyed as in TF1."""
    images = tf.constant(_images())
    info = golden_json(NAME)
    names = ["serving_default"] + info["signatures"]["infer"]
    assert sorted(loaded.signatures) == sorted(names)
    for name in names:
        signature = "default" if name == "serving_default" else name
        function = loaded.signatures[name]
        assert list(function.structured_input_signature[1]) == ["images"], name
        outputs = function(images=images)
        assert sorted(outputs) == sorted(info["outputs"]["infer"][signature]), name
        direct = getattr(loaded, signature)(images, training=False) if signature != "default" else {
            "default": loaded(images, training=False)}
        for key, value in outputs.items():
            np.testing.assert_array_equal(value.numpy(), direct[key].numpy(), err_msg=f"{name}/{key}")
            assert_close(value.numpy(), genuine[NAME].arrays[f"outputs/infer/{signature}/{key}"], GENUINE_OUTPUTS,
                         f"{name}/{key}")


def test_hub_keras_layer_fine_tuning(model, genuine):
    import tensorflow_hub as hub
    import tf_keras

    layer = hub.KerasLayer(model, trainable=True)
    keras_model = tf_keras.Sequential([tf_keras.Input((32, 32, 3)), layer, tf_keras.layers.Dense(3)])
    # Regularization losses of the module are counted by Keras, with the values the genuine library gave.
    assert len(keras_model.losses) == golden_json(NAME)["regularization_loss_count"]
    assert_close(np.float32(tf.add_n(keras_model.losses)), np.float32(genuine[NAME].info["regularization_loss_sum"]),
                 GENUINE_TRAINING, "regularization loss sum")
    assert len(layer.trainable_weights) == sum(v["trainable"] for v in golden_json(NAME)["variables"].values())
    trainable_before = [w.numpy() for w in layer.trainable_weights]
    moving_before = {w.name: w.numpy() for w in layer.non_trainable_weights}
    keras_model.compile(optimizer=tf_keras.optimizers.SGD(0.1),
                        loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = keras_model.fit(_images(), _labels(), epochs=4, verbose=0).history["loss"]
    assert history[-1] < history[0]
    on_path = [(w, b) for w, b in zip(layer.trainable_weights, trainable_before)
               if "logits" not in w.name]  # logits/* are not on the feature-vector path
    assert len(on_path) == len(genuine[NAME].group("gradients")) > 0
    assert all(not np.array_equal(w.numpy(), b) for w, b in on_path)
    moving = [n for n in moving_before if "moving" in n]
    assert len(moving) == golden_json(NAME)["update_op_count"] > 0
    moved = [n for n in moving if not np.array_equal(
        [w for w in layer.non_trainable_weights if w.name == n][0].numpy(), moving_before[n])]
    assert moved == moving


def test_keras3_tfsm_layer_inference_and_fine_tuning(model, loaded, genuine):
    import keras

    layer = keras.layers.TFSMLayer(model, call_endpoint="serve", call_training_endpoint="serve_training",
                                   trainable=True)
    outputs = np.asarray(layer(_images())["default"])
    np.testing.assert_array_equal(outputs, loaded.serve(tf.constant(_images()))["default"].numpy())
    assert_close(outputs, genuine[NAME].arrays["outputs/infer/default/default"], GENUINE_OUTPUTS, "TFSMLayer")

    inputs = keras.Input((32, 32, 3))
    keras_model = keras.Model(inputs, keras.layers.Dense(3)(layer(inputs)["default"]))
    keras_model.compile(optimizer=keras.optimizers.SGD(0.1),
                        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    moving = [v for v in layer._reloaded_obj.variables if "moving" in v.name]
    assert len(moving) == golden_json(NAME)["update_op_count"] > 0
    moving_before = [v.numpy() for v in moving]
    history = keras_model.fit(_images(), _labels(), epochs=4, verbose=0).history["loss"]
    assert history[-1] < history[0]
    assert all(not np.array_equal(v.numpy(), b) for v, b in zip(moving, moving_before))


def test_tf1_loaders_restore_the_weights_through_the_saver_def(model, genuine):
    """TensorFlow Serving and tf.compat.v1.saved_model.load restore the variables with the saver_def's ops (plain
    graph nodes, not traced functions) and serve the TF1 module's outputs."""
    with tf.Graph().as_default(), tf.compat.v1.Session() as session:
        meta_graph = tf.compat.v1.saved_model.load(session, ["serve"], model)
        signature = meta_graph.signature_def["default"]
        features = session.run(signature.outputs["default"].name, {signature.inputs["images"].name: _images()})
    assert not [f.signature.name for f in meta_graph.graph_def.library.function if "_traced_" in f.signature.name]
    assert_close(features, genuine[NAME].arrays["outputs/infer/default/default"], GENUINE_OUTPUTS, "TF1 loader")


def test_saved_model_cli_lists_the_serving_signatures(model):
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    proc = subprocess.run([cli, "show", "--dir", model, "--tag_set", "serve"], capture_output=True, text=True,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert proc.returncode == 0, proc.stderr
    for name in ["serving_default"] + golden_json(NAME)["signatures"]["infer"]:
        assert f'"{name}"' in proc.stdout


def test_converted_model_holds_one_copy_of_the_weights(model):
    def data_bytes(path):
        return sum(os.path.getsize(f) for f in glob.glob(os.path.join(path, "variables", "variables.data-*")))

    source, converted_size = data_bytes(module_path(NAME)), data_bytes(model)
    assert source > 0
    # Both variants run on one set of variables; a naive load_v2 per variant would double this.
    assert converted_size < 1.2 * source + 1024, (converted_size, source)
