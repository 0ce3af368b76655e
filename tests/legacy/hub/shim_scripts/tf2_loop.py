"""The classic TF1 fine-tuning loop, verbatim, in graph mode over a TF2 SavedModel loaded by the shim.

    python tf2_loop.py PLAN_JSON OUT_PREFIX

PLAN_JSON: {"path": SavedModel dir, "inputs": NPZ with images and loss_weights, "steps": int, "lr": float}.
Writes OUT_PREFIX.json (collection sizes per construction) and OUT_PREFIX.npz (`finetune/<variable_map key>`:
every module variable after the loop). Graph mode is process-wide, hence a script run as a subprocess.
"""

import json
import sys

import numpy as np
import tensorflow as tf

tf.compat.v1.disable_eager_execution()
tf.config.experimental.enable_op_determinism()

from legacy import hub  # noqa: E402

PLAN = json.load(open(sys.argv[1]))
GraphKeys = tf.compat.v1.GraphKeys
with np.load(PLAN["inputs"]) as data:
    IMAGES, LOSS_WEIGHTS = data["images"], data["loss_weights"]


def collections(trainable: bool, tags) -> dict:
    """Sizes of the collections a module fills when constructed and applied once."""
    with tf.Graph().as_default():
        module = hub.Module(PLAN["path"], trainable=trainable, tags=tags)
        module(tf.compat.v1.placeholder(tf.float32, [None, *IMAGES.shape[1:]]))
        return {key: len(tf.compat.v1.get_collection(key)) for key in
                (GraphKeys.UPDATE_OPS, GraphKeys.REGULARIZATION_LOSSES, GraphKeys.TRAINABLE_VARIABLES)}


facts = {"executing_eagerly": tf.executing_eagerly(),
         "spec_type": type(hub.load_module_spec(PLAN["path"])).__name__,
         "trainable_train": collections(True, {"train"}),
         "frozen_train": collections(False, {"train"}),
         "trainable_infer": collections(True, None)}

with tf.Graph().as_default():
    module = hub.Module(PLAN["path"], trainable=True, tags={"train"})
    images = tf.compat.v1.placeholder(tf.float32, [None, *IMAGES.shape[1:]])
    loss = tf.reduce_sum(module(images) * tf.constant(LOSS_WEIGHTS))
    reg_losses = tf.compat.v1.losses.get_regularization_losses()
    total = loss + tf.add_n(reg_losses) if reg_losses else loss
    update_ops = tf.compat.v1.get_collection(GraphKeys.UPDATE_OPS)
    with tf.control_dependencies(update_ops):
        train_op = tf.compat.v1.train.GradientDescentOptimizer(PLAN["lr"]).minimize(total)
    with tf.compat.v1.Session() as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        losses = []
        for _ in range(PLAN["steps"]):
            losses.append(float(sess.run(total, {images: IMAGES})))  # evaluated apart, as TF1 loops did
            sess.run(train_op, {images: IMAGES})
        finetuned = sess.run(module.variable_map)
facts["losses"] = losses

with open(sys.argv[2] + ".json", "w") as f:
    json.dump(facts, f)
np.savez(sys.argv[2] + ".npz", **{f"finetune/{name}": value for name, value in finetuned.items()})
