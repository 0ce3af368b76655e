"""Small TF2 Reusable SavedModels built in code, the way tfhub.dev TF2 image models were exported.

Each is an object with `__call__(images, training=False)` traced for both values of `training`, `variables`,
`trainable_variables` and `regularization_losses` (zero-argument functions), saved with `tf.saved_model.save`.
No dropout: training-mode outputs must be deterministic to be compared.
"""

from __future__ import annotations

import os

import tensorflow as tf


class _Reusable(tf.__internal__.tracking.AutoTrackable):
    pass


def save_reusable(model, path: str, input_shape, variables=None, trainable_variables=None) -> str:
    """Save a Keras model (tf-keras or Keras 3) as a Reusable SavedModel at `path`."""
    obj = _Reusable()
    obj.variables = list(variables if variables is not None else model.variables)
    obj.trainable_variables = list(trainable_variables if trainable_variables is not None
                                   else model.trainable_variables)
    obj.regularization_losses = [_loss_function(model, i) for i in range(len(model.losses))]
    obj.__call__ = tf.function(lambda images, training=False: model(images, training=training))
    spec = tf.TensorSpec([None, *input_shape], tf.float32)
    for training in (False, True):
        obj.__call__.get_concrete_function(spec, training=training)
    tf.saved_model.save(obj, path)
    return path


def _loss_function(model, index: int):
    def loss():
        return model.losses[index]

    return tf.function(loss, input_signature=[])


def mobilenet_feature_vector(path: str, size: int = 32) -> str:
    """tf-keras MobileNetV2 (alpha 0.35, random weights, average pooling) as an image feature vector."""
    import tf_keras

    tf_keras.utils.set_random_seed(0)
    base = tf_keras.applications.MobileNetV2(input_shape=(size, size, 3), alpha=0.35, include_top=False,
                                             weights=None, pooling="avg")
    for layer in base.layers:  # L2 on the convolutions, as regularized exports carried it
        if hasattr(layer, "kernel_regularizer") and layer.name in ("Conv1", "Conv_1"):
            layer.kernel_regularizer = tf_keras.regularizers.l2(1e-4)
            layer.add_loss(lambda layer=layer: layer.kernel_regularizer(layer.kernel))
    _randomize_batch_norm(base.variables)
    return save_reusable(base, path, (size, size, 3))


def _keras3_convnet(size: int, seed: int, regularized: bool):
    """Keras 3 conv net with batch norm (random moving statistics), returning logits for 5 classes; with an L2
    regularizer on the conv and dense kernels when `regularized`."""
    import keras

    keras.utils.set_random_seed(seed)
    regularizer = keras.regularizers.L2(1e-3) if regularized else None
    model = keras.Sequential([
        keras.Input((size, size, 3)),
        keras.layers.Conv2D(8, 3, padding="same", kernel_regularizer=regularizer),
        keras.layers.BatchNormalization(),
        keras.layers.ReLU(),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(5, kernel_regularizer=regularizer),
    ])
    _randomize_batch_norm([v.value for v in model.variables])
    return model


def keras3_classifier(path: str, size: int = 24) -> str:
    """Keras 3 conv net with batch norm and an L2-regularized head, returning logits for 5 classes."""
    model = _keras3_convnet(size, seed=1, regularized=True)
    return save_reusable(model, path, (size, size, 3), variables=[v.value for v in model.variables],
                         trainable_variables=[v.value for v in model.trainable_variables])


def dynamic_size_classifier(path: str) -> str:
    """tf-keras conv net that takes any image size ([batch, None, None, 3]) and records none."""
    import tf_keras

    tf_keras.utils.set_random_seed(2)
    model = tf_keras.Sequential([
        tf_keras.Input((None, None, 3)),
        tf_keras.layers.Conv2D(8, 3, padding="same"),
        tf_keras.layers.BatchNormalization(),
        tf_keras.layers.ReLU(),
        tf_keras.layers.GlobalAveragePooling2D(),
        tf_keras.layers.Dense(4),
    ])
    _randomize_batch_norm(model.variables)
    return save_reusable(model, path, (None, None, 3))


def _randomize_batch_norm(variables) -> None:
    """Move statistics and affine parameters off 0/1 so that a wrong mapping changes the outputs."""
    rng = tf.random.Generator.from_seed(7)
    for var in variables:
        name = var.name
        if "moving_variance" in name or "gamma" in name:
            var.assign(rng.uniform(var.shape, 0.5, 1.5))
        elif "moving_mean" in name or "beta" in name:
            var.assign(rng.uniform(var.shape, -0.2, 0.2))


def reads_a_file(path: str) -> str:
    """A Reusable SavedModel whose __call__ reads a file (a ReadFile op) next to it: what the safety scan refuses."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    secret = os.path.join(os.path.dirname(path), "secret.txt")
    with open(secret, "w") as f:
        f.write("secret")
    obj = tf.__internal__.tracking.AutoTrackable()
    obj.__call__ = tf.function(lambda images, training=False: images[:, 0, 0, :] + tf.cast(
        tf.strings.length(tf.io.read_file(secret)), tf.float32))
    for training in (False, True):
        obj.__call__.get_concrete_function(tf.TensorSpec([None, 4, 4, 3], tf.float32), training=training)
    tf.saved_model.save(obj, path)
    return path


def keras3_exports(directory: str, size: int = 24) -> tuple:
    """(model.export path, tf.saved_model.save path) of one Keras 3 classifier: two signature-only SavedModels of
    the same weights, whose serving signatures name their image input differently (`keras_tensor`, `inputs`), and
    the first also keeps its `serve` endpoint as an attribute function without a training mode."""
    model = _keras3_convnet(size, seed=2, regularized=False)
    exported, saved = os.path.join(directory, "exported"), os.path.join(directory, "saved")
    model.export(exported, verbose=False)
    tf.saved_model.save(model, saved)
    return exported, saved
