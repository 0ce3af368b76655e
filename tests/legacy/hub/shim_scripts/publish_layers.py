"""Publish a module built with tf.compat.v1.layers through the shim, in graph mode, as legacy code did.

    TF_USE_LEGACY_KERAS=1 python publish_layers.py OUT_DIR
        Builds the spec (two variants), checks the shim's module against the module_fn's own graph run plainly,
        exports it to OUT_DIR/exported, loads the export back and writes OUT_DIR/facts.json (what the shim says
        about it, in the oracle's `describe` format) and OUT_DIR/outputs.npz (every output of both variants).
    python publish_layers.py --expect-keras3
        Without Keras 2 the layers are stubs: prints the class name of the shim's error (its message to stderr).
"""

import json
import os
import sys

import numpy as np
import tensorflow as tf

tf.compat.v1.disable_eager_execution()
tf.config.experimental.enable_op_determinism()

from legacy import hub  # noqa: E402

SIZE = 16
KEYS = tf.compat.v1.GraphKeys


def l2(weights):
    return 1e-3 * tf.nn.l2_loss(weights)


def network(is_training=False):
    """conv + batch norm (random statistics) + relu + pooling + dense, with L2 regularizers."""
    tf.compat.v1.set_random_seed(2)
    uniform = tf.compat.v1.random_uniform_initializer
    # Seeded from the graph seed: the layers' default initializers draw a fresh Python seed on every build.
    glorot = tf.compat.v1.glorot_uniform_initializer
    images = tf.compat.v1.placeholder(tf.float32, [None, SIZE, SIZE, 3], name="images")
    net = tf.compat.v1.layers.conv2d(images, 8, 3, padding="same", kernel_initializer=glorot(),
                                     bias_initializer=uniform(-0.1, 0.1), kernel_regularizer=l2, name="conv1")
    net = tf.compat.v1.layers.batch_normalization(
        net, training=is_training, name="bn1", beta_initializer=uniform(-0.2, 0.2),
        gamma_initializer=uniform(0.5, 1.5), moving_mean_initializer=uniform(-0.2, 0.2),
        moving_variance_initializer=uniform(0.5, 1.5))
    features = tf.reduce_mean(tf.nn.relu(net), [1, 2])
    logits = tf.compat.v1.layers.dense(features, 5, kernel_initializer=glorot(), kernel_regularizer=l2,
                                       name="logits")
    return images, features, logits


def module_fn(is_training=False):
    images, features, logits = network(is_training)
    hub.add_signature(inputs=dict(images=images), outputs=features)
    hub.add_signature("image_feature_vector", dict(images=images), dict(default=features))
    hub.add_signature("image_classification", dict(images=images), dict(default=logits))


TAGS_AND_ARGS = [(set(), {}), ({"train"}, {"is_training": True})]

if sys.argv[1] == "--expect-keras3":
    try:
        hub.create_module_spec(module_fn, tags_and_args=TAGS_AND_ARGS)
    except Exception as e:  # noqa: BLE001  (reported to the test, which checks the type and message)
        print(type(e).__name__)
        print(e, file=sys.stderr)
        sys.exit(0)
    sys.exit("tf.compat.v1.layers worked without Keras 2")

out = sys.argv[1]
images_value = np.random.default_rng(5).uniform(size=[4, SIZE, SIZE, 3]).astype(np.float32)
facts = {"matches_reference": {}}


def variable_values(session):
    return {v.op.name: session.run(v) for v in tf.compat.v1.global_variables()}


# 1. The module_fn's network run plainly, and the shim's module of the created spec: same values, same bits.
spec = hub.create_module_spec(module_fn, tags_and_args=TAGS_AND_ARGS)
for tags, args in TAGS_AND_ARGS:
    label = "train" if tags else "infer"
    with tf.Graph().as_default():
        images, features, logits = network(**args)
        updates = tf.compat.v1.get_collection(KEYS.UPDATE_OPS)
        if tags:
            facts["reference_update_ops"] = len(updates)
            facts["reference_regularization_losses"] = len(tf.compat.v1.get_collection(KEYS.REGULARIZATION_LOSSES))
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            expected = session.run([features, logits], {images: images_value})
            if updates:
                session.run(updates, {images: images_value})
                expected_updated = variable_values(session)
    with tf.Graph().as_default():
        images = tf.compat.v1.placeholder(tf.float32, [None, SIZE, SIZE, 3])
        module = hub.Module(spec, trainable=bool(tags), tags=tags)
        features = module(images)
        logits = module(images, signature="image_classification")
        if tags:
            # Two applications, so UPDATE_OPS holds the updates twice: count those of one (the default signature).
            facts["update_ops"] = len(tf.compat.v1.get_collection(KEYS.UPDATE_OPS)) // 2
            facts["regularization_losses"] = len(tf.compat.v1.get_collection(KEYS.REGULARIZATION_LOSSES))
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            got = session.run([features, logits], {images: images_value})
            facts["matches_reference"][label] = all(np.array_equal(a, b) for a, b in zip(got, expected))
            if tags:
                session.run(tf.compat.v1.get_collection(KEYS.UPDATE_OPS)[:facts["update_ops"]],
                            {images: images_value})
                updated = {name: session.run(var) for name, var in module.variable_map.items()}
                facts["matches_reference"]["updated"] = sorted(updated) == sorted(expected_updated) and all(
                    np.array_equal(updated[k], expected_updated[k]) for k in updated)
            else:
                module.export(os.path.join(out, "exported"), session)

# 2. The export, loaded back by the shim: what `describe` of the oracle reports, and every output.
exported = hub.load_module_spec(os.path.join(out, "exported"))


def info_json(info):
    return {"dtype": info.dtype.name, "shape": info.get_shape().as_list()}


variants = [(("train" if t else "infer"), t) for t in exported.get_tags()]
describe = {
    "tags": sorted(sorted(t) for t in exported.get_tags()),
    "signatures": {label: exported.get_signature_names(t) for label, t in variants},
    "inputs": {label: {s: {k: info_json(v) for k, v in exported.get_input_info_dict(s, t).items()}
                       for s in exported.get_signature_names(t)} for label, t in variants},
    "outputs": {label: {s: {k: info_json(v) for k, v in exported.get_output_info_dict(s, t).items()}
                        for s in exported.get_signature_names(t)} for label, t in variants},
    "expected_image_size": hub.get_expected_image_size(exported),
    "num_image_channels": hub.get_num_image_channels(exported),
    "image_module_info": None,
}
with tf.Graph().as_default():
    module = hub.Module(exported, trainable=True)
    trainable = {id(v) for v in tf.compat.v1.trainable_variables()}
    describe["variables"] = {name: {"shape": var.shape.as_list(), "dtype": var.dtype.base_dtype.name,
                                    "trainable": id(var) in trainable} for name, var in module.variable_map.items()}
with tf.Graph().as_default():
    module = hub.Module(exported, trainable=True, tags={"train"})
    module(tf.compat.v1.placeholder(tf.float32, [None, SIZE, SIZE, 3]))
    describe["update_op_count"] = len(tf.compat.v1.get_collection(KEYS.UPDATE_OPS))
    describe["regularization_loss_count"] = len(tf.compat.v1.get_collection(KEYS.REGULARIZATION_LOSSES))
facts["describe"] = describe

arrays = {"images": images_value}
for label, tags in variants:
    for signature in exported.get_signature_names(tags):
        with tf.Graph().as_default():
            images = tf.compat.v1.placeholder(tf.float32, [None, SIZE, SIZE, 3])
            outputs = hub.Module(exported, trainable=bool(tags), tags=tags)(
                dict(images=images), signature=signature, as_dict=True)
            with tf.compat.v1.Session() as session:
                session.run(tf.compat.v1.global_variables_initializer())
                for key, value in session.run(outputs, {images: images_value}).items():
                    arrays[f"outputs/{label}/{signature}/{key}"] = value

np.savez(os.path.join(out, "outputs.npz"), **arrays)
with open(os.path.join(out, "facts.json"), "w") as f:
    json.dump(facts, f, indent=1, sort_keys=True)
