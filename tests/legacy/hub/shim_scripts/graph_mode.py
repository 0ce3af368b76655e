"""Run legacy TF1 code verbatim in graph mode against the shim, and save what it computed.

    python graph_mode.py PLAN_JSON OUT_PREFIX

Graph mode (`tf.compat.v1.disable_eager_execution()`) is process-wide, hence this script: tests run it as a
subprocess and compare OUT_PREFIX.npz (arrays) and OUT_PREFIX.json (facts) with the golden answers. PLAN_JSON:

    {"hub": "legacy" | "install",          # `from legacy import hub`, or legacy.install() + import tensorflow_hub
     "cases": [{"label": ..., "path": ..., "inputs": NPZ with images (and loss_weights),
                "finetune": {"steps": 3, "lr": 0.01} or null}]}
"""

import json
import sys

import numpy as np
import tensorflow as tf

tf.compat.v1.disable_eager_execution()
tf.config.experimental.enable_op_determinism()  # as in the oracle: reruns give the same bits

PLAN = json.load(open(sys.argv[1]))
if PLAN["hub"] == "legacy":
    from legacy import hub
else:
    import legacy

    legacy.install()
    import tensorflow_hub as hub
    from tensorflow_hub import *  # noqa: F401,F403  (the star import fails on plain tensorflow_hub 0.16)

arrays, facts = {}, {"executing_eagerly": tf.executing_eagerly(), "hub_module": hub.__name__,
                     "Module": f"{hub.Module.__module__}.{hub.Module.__name__}"}
GraphKeys = tf.compat.v1.GraphKeys


def count(key):
    return len(tf.compat.v1.get_collection(key))


def snippets(case, images_value):
    """The TF Hub image-signature documentation, line for line, then every signature with as_dict=True."""
    label, path = case["label"], case["path"]
    with tf.Graph().as_default() as graph:
        module_spec = hub.load_module_spec(path)
        height, width = hub.get_expected_image_size(module_spec)
        images = tf.compat.v1.placeholder(tf.float32, [None, height, width, 3])
        module = hub.Module(module_spec)
        features = module(images)
        fetches = {"snippet/features": features}
        if "image_feature_vector" in module.get_signature_names():
            outputs = module(dict(images=images), signature="image_feature_vector", as_dict=True)
            features = outputs["default"]
            fetches["snippet/feature_vector"] = features
        for signature in module.get_signature_names():
            for key, tensor in module(dict(images=images), signature=signature, as_dict=True).items():
                fetches[f"outputs/infer/{signature}/{key}"] = tensor
        second = hub.Module(module_spec)
        facts[label] = {
            "expected_image_size": [height, width],
            "num_image_channels": hub.get_num_image_channels(module_spec),
            "tags": sorted(sorted(t) for t in module_spec.get_tags()),
            "signatures": module.get_signature_names(),
            "features_type": type(fetches["snippet/features"]).__name__,
            "features_in_graph": fetches["snippet/features"].graph is graph,
            "repr": repr(module),
            "variable_names": sorted(v.op.name for v in module.variables),
            "second_variable_names": sorted(v.op.name for v in second.variables),
            "variable_map_keys": sorted(module.variable_map),
            "global_variables": count(GraphKeys.GLOBAL_VARIABLES),
            "frozen": {"trainable_variables": count(GraphKeys.TRAINABLE_VARIABLES),
                       "regularization_losses": count(GraphKeys.REGULARIZATION_LOSSES),
                       "update_ops": count(GraphKeys.UPDATE_OPS)},
        }
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            values = sess.run(fetches, {images: images_value})
            facts[label]["initial_matches_second"] = all(
                np.array_equal(a, b) for a, b in zip(sess.run(module.variables), sess.run(second.variables)))
    arrays.update({f"{label}/{k}": v for k, v in values.items()})
    return module_spec


def train_outputs(case, module_spec, images_value):
    """Every signature of the {"train"} variant, trainable, applied once each in a fresh graph."""
    label = case["label"]
    for signature in module_spec.get_signature_names(tags={"train"}):
        with tf.Graph().as_default():
            shape = module_spec.get_input_info_dict(signature, {"train"})["images"].get_shape()
            images = tf.compat.v1.placeholder(tf.float32, shape)
            module = hub.Module(module_spec, trainable=True, tags={"train"})
            outputs = module(dict(images=images), signature=signature, as_dict=True)
            with tf.compat.v1.Session() as sess:
                sess.run(tf.compat.v1.global_variables_initializer())
                values = sess.run(outputs, {images: images_value})
        arrays.update({f"{label}/outputs/train/{signature}/{k}": v for k, v in values.items()})


def finetune(case, module_spec, images_value, loss_weights, steps, lr):
    """The classic TF1 fine-tuning loop, plus its gradients and one run of the update ops."""
    label = case["label"]
    tags = {"train"} if {"train"} in module_spec.get_tags() else set()
    height, width = hub.get_expected_image_size(module_spec)
    with tf.Graph().as_default():
        images = tf.compat.v1.placeholder(tf.float32, [None, height, width, 3])
        module = hub.Module(module_spec, trainable=True, tags=tags)
        features = module(images)
        loss = tf.reduce_sum(features * loss_weights)
        regularization_losses = tf.compat.v1.losses.get_regularization_losses()
        total_loss = loss + tf.add_n(regularization_losses) if regularization_losses else loss
        update_ops = tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.UPDATE_OPS)
        trainable = tf.compat.v1.trainable_variables()
        facts[label]["trainable"] = {"trainable_variables": len(trainable),
                                     "regularization_losses": len(regularization_losses),
                                     "update_ops": len(update_ops)}
        names = {id(v): name for name, v in module.variable_map.items()}
        gradients = tf.gradients(loss, trainable)
        with tf.control_dependencies(update_ops):
            train_op = tf.compat.v1.train.GradientDescentOptimizer(lr).minimize(total_loss)
        feed = {images: images_value}
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            facts[label]["regularization_loss_sum"] = (
                float(sess.run(tf.add_n(regularization_losses))) if regularization_losses else None)
            for var, grad in zip(trainable, gradients):
                if grad is not None:
                    arrays[f"{label}/gradients/{names[id(var)]}"] = sess.run(tf.convert_to_tensor(grad), feed)
            if update_ops:
                sess.run(update_ops, feed)
                for name, value in sess.run(module.variable_map).items():
                    arrays[f"{label}/updated/{name}"] = value
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            for name, value in sess.run(module.variable_map).items():
                arrays[f"{label}/initial/{name}"] = value
            losses = []
            for step in range(steps):
                losses.append(sess.run(total_loss, feed))
                sess.run(train_op, feed)
            for name, value in sess.run(module.variable_map).items():
                arrays[f"{label}/finetune/{name}"] = value
            arrays[f"{label}/finetune_loss"] = np.asarray(losses, np.float32)


for case in PLAN["cases"]:
    with np.load(case["inputs"]) as data:
        inputs = {k: data[k] for k in data.files}
    spec = snippets(case, inputs["images"])
    if {"train"} in spec.get_tags():
        train_outputs(case, spec, inputs["images"])
    if case.get("finetune"):
        finetune(case, spec, inputs["images"], inputs["loss_weights"], case["finetune"]["steps"],
                 case["finetune"]["lr"])

np.savez(sys.argv[2] + ".npz", **arrays)
with open(sys.argv[2] + ".json", "w") as f:
    json.dump(facts, f, indent=1, sort_keys=True)
