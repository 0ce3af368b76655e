#!/usr/bin/env python
"""Builds the benchmark's TF1 Hub module with the GENUINE legacy library: slim ResNet V2 50, random weights.

Runs only in the legacy environment (.venv-legacy: tensorflow-cpu 2.15.1, tensorflow-hub 0.15.0, tf-keras 2.15.0,
tf-slim 1.1.0); `benchmarks/run.py` starts it as a subprocess when the cached module is missing or stale:

    .venv-legacy/bin/python benchmarks/build_module.py OUT_DIR [--image-size 224]

The module looks like the tfhub.dev ResNet V2 50 classification modules: graph variants `set()`
(is_training=False) and `{"train"}` (is_training=True, batch-norm updates in UPDATE_OPS), signatures `default` and
`image_classification` (logits [N, 1001]) and `image_feature_vector` (pooled features [N, 2048]), input `images`
float32 [None, 224, 224, 3], `image_module_info` 224x224, L2 regularization losses. Weights are seeded random, and
so are the biases and batch-norm parameters and statistics, as in a trained model: left at their initial zeros and ones,
TensorFlow's graph optimizer would remove the no-op batch norms and bias additions, which no trained model allows,
and the benchmark would time a graph no user has.
Needs nothing from this project but tests/oracle/legacy_oracle.py (the tf_keras.legacy_tf_layers alias).
"""

import argparse
import json
import os
import shutil
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402
import tensorflow_hub as hub  # noqa: E402

# The alias tf_slim needs in the legacy environment, shared with the test oracle and the testdata generator.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "oracle"))
from legacy_oracle import register_legacy_tf_layers  # noqa: E402  pylint: disable=g-import-not-at-top

SEED = 2024
NUM_CLASSES = 1001
# What the cached module was built with: run.py rebuilds it when this changes.
BUILD_VERSION = 2

# Variables that start at a constant and move away from it in training: (name suffix, draw of a trained-looking value).
TRAINED_LOOKING = (
    ("biases", lambda rng, shape: rng.normal(0.0, 0.1, shape)),
    ("beta", lambda rng, shape: rng.normal(0.0, 0.1, shape)),
    ("gamma", lambda rng, shape: rng.uniform(0.5, 1.5, shape)),
    ("moving_mean", lambda rng, shape: rng.normal(0.0, 0.1, shape)),
    ("moving_variance", lambda rng, shape: rng.uniform(0.5, 1.5, shape)),
)


def make_module_fn(image_size):
    import tf_slim as slim  # pylint: disable=g-import-not-at-top
    from tf_slim.nets import resnet_v2  # pylint: disable=g-import-not-at-top

    def module_fn(is_training):
        tf.compat.v1.set_random_seed(SEED)
        images = tf.compat.v1.placeholder(tf.float32, [None, image_size, image_size, 3], name="images")
        with slim.arg_scope(resnet_v2.resnet_arg_scope()):
            # tf-slim 1.1 neither squeezes the logits nor exposes the pooled features: build the head here.
            pooled, _ = resnet_v2.resnet_v2_50(images, num_classes=None, is_training=is_training)
            logits = slim.conv2d(pooled, NUM_CLASSES, [1, 1], activation_fn=None, normalizer_fn=None,
                                 scope="resnet_v2_50/logits")
        features = tf.squeeze(pooled, axis=[1, 2], name="feature_vector")
        logits = tf.squeeze(logits, axis=[1, 2], name="logits")
        hub.add_signature("default", inputs=dict(images=images), outputs=dict(default=logits))
        hub.add_signature("image_classification", inputs=dict(images=images), outputs=dict(default=logits))
        hub.add_signature("image_feature_vector", inputs=dict(images=images), outputs=dict(default=features))
        hub.attach_image_module_info(hub.ImageModuleInfo(
            default_image_size=hub.ImageModuleInfo.InputSize(height=image_size, width=image_size)))

    return module_fn


def _set_trained_looking(variable_map: dict, sess) -> None:
    """Seeded values like a trained model's for the variables in `TRAINED_LOOKING` (see the module docstring)."""
    import numpy as np  # pylint: disable=g-import-not-at-top

    rng = np.random.RandomState(SEED)
    for name in sorted(variable_map):
        for suffix, draw in TRAINED_LOOKING:
            if name.endswith("/" + suffix):
                variable = variable_map[name]
                shape = variable.shape.as_list()
                variable.load(draw(rng, shape).astype(variable.dtype.base_dtype.as_numpy_dtype), sess)


def build(path: str, image_size: int) -> dict:
    """Export the module to `path` (which must not exist) and return a description of what was built."""
    register_legacy_tf_layers()  # before slim builds any layer
    spec = hub.create_module_spec(
        make_module_fn(image_size),
        tags_and_args=[(set(), {"is_training": False}), ({"train"}, {"is_training": True})],
        # slim's end-point collection: the legacy loader rejects collections it does not know.
        drop_collections=["resnet_v2_50/_end_points"])
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.set_random_seed(SEED)
        module = hub.Module(spec)
        with tf.compat.v1.Session(graph=graph) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            _set_trained_looking(module.variable_map, sess)
            module.export(path, sess)
            parameters = int(sum(v.shape.num_elements() for v in module.variable_map.values()))
    return {"build_version": BUILD_VERSION, "architecture": "tf_slim resnet_v2_50", "image_size": image_size,
            "num_classes": NUM_CLASSES, "seed": SEED, "parameters": parameters,
            "tensorflow": tf.__version__, "tensorflow_hub": hub.__version__}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir")
    parser.add_argument("--image-size", type=int, default=224)
    args = parser.parse_args()
    tf.get_logger().setLevel("ERROR")
    start = time.time()
    tmp = args.out_dir.rstrip("/") + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    info = build(tmp, args.image_size)
    info["build_seconds"] = round(time.time() - start, 1)
    shutil.rmtree(args.out_dir, ignore_errors=True)
    os.replace(tmp, args.out_dir)
    # Written last: run.py takes the module as complete only when this description exists and matches.
    with open(args.out_dir.rstrip("/") + ".json", "w") as f:
        json.dump(info, f, indent=1)
    print(json.dumps(info))


if __name__ == "__main__":
    main()
