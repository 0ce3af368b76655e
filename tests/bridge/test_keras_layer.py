"""bridge.keras.KerasLayer: in Keras 3, what tf-keras + hub.KerasLayer computes in Keras 2, fine-tuning included.

The reference is the genuine `hub.KerasLayer` (tensorflow_hub 0.16.1 on tf-keras, run in this process) on the model
`bridge convert` writes from testdata/modules/convnet_bn. The Keras 3 layer, on that SavedModel and on the TF1 module
itself (adapted in memory), must give the same outputs, gradients, regularization losses and weights after `fit`.

Equality is exact: both sides run the same TensorFlow kernels in the same process (the model's graph functions; the
Dense head is MatMul plus one elementwise add, BiasAdd in tf-keras and AddV2 in Keras 3, each a single correctly
rounded float addition; the same SGD update), so no tolerance is needed. Checked bit-identical under
ONEDNN_MAX_CPU_ISA=AVX2 and SSE41, TF_ENABLE_ONEDNN_OPTS=0 and TF_NUM_INTRAOP_THREADS=1, each run separately: a CPU
changes the bits of both sides alike.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import warnings

import numpy as np
import pytest
import tensorflow as tf

from legacy.errors import BridgeError
from tests.corpus import golden_arrays, golden_json, module_path

NAME = "convnet_bn"  # both graph variants, batch norm, regularization losses: the whole fine-tuning story
CLASSES = 3
FIT_STEPS = 3
LEARNING_RATE = 0.1


def _images():
    return golden_arrays(NAME)["inputs/images"]


def _labels():
    return np.arange(len(_images())) % CLASSES


def _head_kernel():
    features = golden_arrays(NAME)["outputs/infer/default/default"].shape[-1]
    return np.random.default_rng(0).normal(size=(features, CLASSES)).astype(np.float32)


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    import bridge

    return bridge.convert(module_path(NAME), str(tmp_path_factory.mktemp("keras3") / NAME),
                          progress=lambda m: None).destination


def _answers(K, model, layer) -> dict:
    """Everything compared, computed the same way for tf-keras (K = tf_keras) and Keras 3 (K = keras).

    Order matters (the training-mode call updates the moving statistics): inference outputs, then gradients of
    cross-entropy plus the model's losses in training mode, then `fit` with SGD on one full batch per step.
    """
    images, labels = _images(), _labels()
    answers = {"names": [w.name for w in layer.weights], "trainable": len(layer.trainable_weights),
               "outputs": np.asarray(model(images, training=False))}
    with tf.GradientTape() as tape:
        logits = model(images, training=True)
        regularization = [tf.convert_to_tensor(loss) for loss in model.losses]
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)) + tf.add_n(regularization)
    answers["regularization"] = [float(r) for r in regularization]
    answers["gradients"] = [None if g is None else np.asarray(g)
                            for g in tape.gradient(loss, model.trainable_weights)]
    answers["before_fit"] = [np.asarray(w.numpy()) for w in model.weights]
    model.compile(optimizer=K.optimizers.SGD(LEARNING_RATE),
                  loss=K.losses.SparseCategoricalCrossentropy(from_logits=True))
    with warnings.catch_warnings():  # the logits/* variables of the module are not on the feature-vector path
        warnings.filterwarnings("ignore", "Gradients do not exist")
        answers["history"] = model.fit(images, labels, epochs=FIT_STEPS, batch_size=len(images), shuffle=False,
                                       verbose=0).history["loss"]
    answers["after_fit"] = [np.asarray(w.numpy()) for w in model.weights]
    return answers


@pytest.fixture(scope="module")
def reference(converted) -> dict:
    """What tf-keras + hub.KerasLayer computes on the converted model (Keras 2, the behaviour to keep)."""
    import tensorflow_hub as hub
    import tf_keras

    layer = hub.KerasLayer(converted, trainable=True)
    model = tf_keras.Sequential([tf_keras.Input((32, 32, 3)), layer, tf_keras.layers.Dense(
        CLASSES, kernel_initializer=tf_keras.initializers.Constant(_head_kernel()))])
    return _answers(tf_keras, model, layer)


def _keras3_model(layer, style: str):
    import keras

    head = keras.layers.Dense(CLASSES, kernel_initializer=keras.initializers.Constant(_head_kernel()))
    if style == "sequential":
        return keras.Sequential([keras.Input((32, 32, 3)), layer, head])
    inputs = keras.Input((32, 32, 3))
    return keras.Model(inputs, head(layer(inputs)))


@pytest.mark.parametrize("source, style", [("converted", "sequential"), ("tf1", "functional")])
def test_fine_tuning_matches_hub_keras_layer(converted, reference, source, style):
    from bridge.keras import KerasLayer

    layer = KerasLayer(converted if source == "converted" else module_path(NAME), trainable=True)
    ours = _answers(__import__("keras"), _keras3_model(layer, style), layer)

    # The same weights in the same order; Keras 3 names cannot hold "/".
    assert ours["names"] == [n.split(":")[0].replace("/", "_") for n in reference["names"]]
    assert ours["trainable"] == reference["trainable"] == sum(
        v["trainable"] for v in golden_json(NAME)["variables"].values())
    np.testing.assert_array_equal(ours["outputs"], reference["outputs"])
    # The module's regularization losses are the layer's losses, with the values the genuine library recorded.
    assert ours["regularization"] == reference["regularization"]
    assert len(ours["regularization"]) == golden_json(NAME)["regularization_loss_count"]
    np.testing.assert_allclose(sum(ours["regularization"]), golden_json(NAME)["regularization_loss_sum"], rtol=1e-6)
    assert [g is None for g in ours["gradients"]] == [g is None for g in reference["gradients"]]
    for got, want in zip(ours["gradients"], reference["gradients"]):
        if want is not None:
            np.testing.assert_array_equal(got, want)
    for got, want in zip(ours["after_fit"], reference["after_fit"]):
        np.testing.assert_array_equal(got, want)
    # fit trained the module: its weights and (training reached it) its moving statistics changed.
    moved = [not np.array_equal(a, b) for a, b in zip(reference["before_fit"], reference["after_fit"])]
    moving = [i for i, n in enumerate(reference["names"]) if "moving" in n]
    assert len(moving) == golden_json(NAME)["update_op_count"] and all(moved[i] for i in moving)
    assert sum(moved) >= len(moved) - 1  # all but logits/biases, which nothing depends on
    # The loss fit reports sums the same terms in another order (Keras 3 adds its losses with one reduce_sum).
    np.testing.assert_allclose(ours["history"], reference["history"], rtol=1e-6)
