#!/usr/bin/env python
"""Tiny TF1 Hub modules with the shapes of published image modules, exported by the GENUINE legacy library.

Runs only in the legacy environment (.venv-legacy), like legacy_oracle.py (whose setup it reuses). Tests build the
modules once per session in a temporary directory (tests/bridge/real_modules.py) and ask this script for the
genuine library's outputs.

CLI:
  real_modules.py build OUT_DIR [NAME ...]
      Exports the modules (all, or those named) under OUT_DIR/<name>.
  real_modules.py run MODULE_DIR INPUTS_NPZ OUT_NPZ [--tags train]
      `outputs/<signature>/<key>` of every signature of one graph variant, each signature in a fresh graph and
      session (so a random op draws its first numbers, as in the first `session.run` after loading the module).
      INPUTS_NPZ holds `images` and `input/<name>` for other inputs; a signature with an input not given is left
      out. --updates: also `updates/<signature>/<variable>`, how far each non-trainable variable (batch-norm
      moving statistics) moved when the variant's UPDATE_OPS ran with the signature's outputs.
  real_modules.py describe MODULE_DIR OUT_JSON
      {tags: {signature: {"inputs": {key: [dtype, shape]}, "outputs": [keys]}}} as the genuine ModuleSpec sees them.
  real_modules.py batch JOBS_JSON
      Several of the above in one process: a list of argument lists (["run", ...], ["describe", ...]).

The modules (MODULES):
  dropout_net    conv+BN, global pool, slim.dropout before the logits and tf.compat.v1.nn.dropout on the first
                 conv's activations in the train variant only (as the TF-Slim classifiers); 16x16; op-level seeds
                 come from the graph seed, as in a module_fn that calls tf.compat.v1.set_random_seed.
  dropout_unseeded  the same without a graph seed: its random ops carry seed = seed2 = 0 (fresh entropy per run).
  hparams_net    any input size ([?, ?, ?, 3], image_module_info 20x20), batch norm whose momentum is the
                 placeholder_with_default `batch_norm_momentum` (0.99), and the published *_with_bn_hparams
                 signatures (inputs `images` and `batch_norm_momentum`) beside the image-only ones, and
                 `scaled_features`, whose second input `scale` is a plain placeholder (no default).
  fakequant_net  a quantization-aware graph, inference variant only: FakeQuantWithMinMaxVarsPerChannel on the conv
                 kernel, FakeQuantWithMinMaxVars on activations and the logits kernel, min/max held in variables.
"""

import argparse
import os
import shutil
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import legacy_oracle  # noqa: E402  pylint: disable=g-import-not-at-top

legacy_oracle.setup()

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_hub as hub  # noqa: E402
import tf_slim as slim  # noqa: E402

SEED = 4321


def _bn(is_training, decay=0.9):
  return {"is_training": is_training, "decay": decay, "scale": True, "epsilon": 1e-3,
          "updates_collections": tf.compat.v1.GraphKeys.UPDATE_OPS,
          "param_initializers": {
              "beta": tf.compat.v1.random_uniform_initializer(-0.1, 0.1),
              "gamma": tf.compat.v1.random_uniform_initializer(0.8, 1.2),
              "moving_mean": tf.compat.v1.random_uniform_initializer(-0.1, 0.1),
              "moving_variance": tf.compat.v1.random_uniform_initializer(0.5, 1.5)}}


def _conv(images, is_training, decay=0.9):
  with slim.arg_scope([slim.conv2d], kernel_size=[3, 3], padding="SAME", activation_fn=tf.nn.relu,
                      weights_initializer=tf.compat.v1.glorot_uniform_initializer(),
                      weights_regularizer=slim.l2_regularizer(1e-3),
                      normalizer_fn=slim.batch_norm, normalizer_params=_bn(is_training, decay)):
    return slim.conv2d(images, 8, stride=2, scope="conv1")


def _logits(features, num_classes=5):
  return slim.fully_connected(features, num_classes, activation_fn=None,
                              weights_initializer=tf.compat.v1.glorot_uniform_initializer(),
                              biases_initializer=tf.compat.v1.random_uniform_initializer(-0.1, 0.1),
                              scope="logits")


def dropout_net_fn(is_training, seeded=True):
  if seeded:
    tf.compat.v1.set_random_seed(SEED)
  images = tf.compat.v1.placeholder(tf.float32, [None, 16, 16, 3], name="images")
  conv1 = _conv(images, is_training)
  if is_training:
    conv1 = tf.compat.v1.nn.dropout(conv1, rate=0.25)
  features = tf.reduce_mean(conv1, axis=[1, 2], name="global_pool")
  net = slim.dropout(features, keep_prob=0.5, is_training=is_training, scope="Dropout")
  logits = _logits(net)
  hub.add_signature("default", inputs=dict(images=images), outputs=dict(default=features))
  hub.add_signature("image_feature_vector", inputs=dict(images=images), outputs=dict(default=features, conv1=conv1))
  hub.add_signature("image_classification", inputs=dict(images=images), outputs=dict(default=logits))
  hub.attach_image_module_info(hub.ImageModuleInfo(
      default_image_size=hub.ImageModuleInfo.InputSize(height=16, width=16)))


def hparams_net_fn(is_training):
  tf.compat.v1.set_random_seed(SEED + 1)
  images = tf.compat.v1.placeholder(tf.float32, [None, None, None, 3], name="images")
  momentum = tf.compat.v1.placeholder_with_default(tf.constant(0.99), [], name="batch_norm_momentum")
  conv1 = _conv(images, is_training, decay=momentum)
  features = tf.reduce_mean(conv1, axis=[1, 2], name="global_pool")
  logits = _logits(features)
  for suffix, extra in (("", {}), ("_with_bn_hparams", {"batch_norm_momentum": momentum})):
    inputs = dict(images=images, **extra)
    hub.add_signature("image_feature_vector" + suffix, inputs=inputs, outputs=dict(default=features))
    hub.add_signature("image_classification" + suffix, inputs=inputs, outputs=dict(default=logits))
  hub.add_signature("default", inputs=dict(images=images), outputs=dict(default=features))
  # An input without a default: a conversion cannot serve calls without it, and must say so.
  scale = tf.compat.v1.placeholder(tf.float32, [], name="scale")
  hub.add_signature("scaled_features", inputs=dict(images=images, scale=scale), outputs=dict(default=features * scale))
  hub.attach_image_module_info(hub.ImageModuleInfo(
      default_image_size=hub.ImageModuleInfo.InputSize(height=20, width=20)))


def _quant_range(name, low, high):
  return (tf.compat.v1.get_variable(name + "/min", initializer=tf.constant(low), trainable=False),
          tf.compat.v1.get_variable(name + "/max", initializer=tf.constant(high), trainable=False))


def fakequant_net_fn():
  tf.compat.v1.set_random_seed(SEED + 2)
  images = tf.compat.v1.placeholder(tf.float32, [None, 16, 16, 3], name="images")
  with tf.compat.v1.variable_scope("conv1"):
    kernel = tf.compat.v1.get_variable("weights", [3, 3, 3, 8],
                                       initializer=tf.compat.v1.glorot_uniform_initializer())
    bias = tf.compat.v1.get_variable("biases", [8], initializer=tf.compat.v1.random_uniform_initializer(-.1, .1))
    kmin = tf.compat.v1.get_variable("weights_quant/min", initializer=-tf.fill([8], 0.4), trainable=False)
    kmax = tf.compat.v1.get_variable("weights_quant/max", initializer=tf.fill([8], 0.4), trainable=False)
    kernel = tf.quantization.fake_quant_with_min_max_vars_per_channel(kernel, kmin, kmax, num_bits=8,
                                                                       narrow_range=True)
    net = tf.nn.relu6(tf.nn.conv2d(images, kernel, strides=2, padding="SAME") + bias)
    amin, amax = _quant_range("act_quant", 0.0, 6.0)
    net = tf.quantization.fake_quant_with_min_max_vars(net, amin, amax, num_bits=8)
  features = tf.reduce_mean(net, axis=[1, 2], name="global_pool")
  with tf.compat.v1.variable_scope("logits"):
    w = tf.compat.v1.get_variable("weights", [8, 5], initializer=tf.compat.v1.glorot_uniform_initializer())
    wmin, wmax = _quant_range("weights_quant", -0.8, 0.8)
    w = tf.quantization.fake_quant_with_min_max_vars(w, wmin, wmax, num_bits=8, narrow_range=True)
    logits = tf.matmul(features, w)
  hub.add_signature("default", inputs=dict(images=images), outputs=dict(default=logits))
  hub.add_signature("image_classification", inputs=dict(images=images), outputs=dict(default=logits))
  hub.add_signature("image_feature_vector", inputs=dict(images=images), outputs=dict(default=features))


def _train_and_infer(fn):
  return dict(module_fn=fn, tags_and_args=[(set(), {"is_training": False}), ({"train"}, {"is_training": True})])


MODULES = {
    "dropout_net": lambda: _train_and_infer(dropout_net_fn),
    "dropout_unseeded": lambda: _train_and_infer(lambda is_training: dropout_net_fn(is_training, seeded=False)),
    "hparams_net": lambda: _train_and_infer(hparams_net_fn),
    "fakequant_net": lambda: dict(module_fn=fakequant_net_fn),
}


def build(out_dir, names=None):
  from tensorflow.python.framework import config  # pylint: disable=g-import-not-at-top
  for name in names or sorted(MODULES):
    if name == "dropout_unseeded":  # op determinism refuses random ops without a seed, which is the point here
      config.disable_op_determinism()
    try:
      _export(hub.create_module_spec(**MODULES[name]()), os.path.join(out_dir, name))
    finally:
      tf.config.experimental.enable_op_determinism()


def _export(spec, path):
  graph = tf.Graph()
  with graph.as_default():
    module = hub.Module(spec)
    with tf.compat.v1.Session(graph=graph) as sess:
      sess.run(tf.compat.v1.global_variables_initializer())
      module.export(path, sess)


def describe(module_dir):
  spec = hub.load_module_spec(module_dir)
  result = {}
  for tags in spec.get_tags():
    sigs = {}
    for signature in sorted(spec.get_signature_names(tags)):
      inputs = spec.get_input_info_dict(signature, tags)
      sigs[signature] = {
          "inputs": {k: [i.dtype.name, i.get_shape().as_list() if i.get_shape().rank is not None else None]
                     for k, i in sorted(inputs.items())},
          "outputs": sorted(spec.get_output_info_dict(signature, tags))}
    result[",".join(sorted(tags))] = sigs
  return result


def run(module_dir, inputs, tags=(), updates=False):
  spec = hub.load_module_spec(module_dir)
  tags = set(tags)
  arrays = {}
  for signature in sorted(spec.get_signature_names(tags)):
    info = spec.get_input_info_dict(signature, tags)
    graph = tf.Graph()
    with graph.as_default():
      module = hub.Module(spec, trainable=bool(tags), tags=tags)
      feeds = {key: tf.compat.v1.placeholder(i.dtype, i.get_shape(), name="input_" + key) for key, i in info.items()}
      outputs = module(feeds, signature=signature, as_dict=True)
      update_ops = tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.UPDATE_OPS) if updates else []
      trainable = set(id(v) for v in tf.compat.v1.trainable_variables())
      watched = {name: var for name, var in sorted(module.variable_map.items())
                 if updates and id(var) not in trainable}
      feed_dict = {feeds["images"]: inputs["images"]}
      for key in info:
        if key != "images" and "input/" + key in inputs:
          feed_dict[feeds[key]] = inputs["input/" + key]
        elif key != "images":
          feed_dict = None  # not given: the signature is left out
          break
      if feed_dict is None:
        continue
      with tf.compat.v1.Session(graph=graph) as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        before = sess.run(watched)
        values, _ = sess.run((outputs, update_ops), feed_dict)
        after = sess.run(watched)
    for key, value in values.items():
      arrays["outputs/%s/%s" % (signature, key)] = np.asarray(value)
    for name in watched:
      arrays["updates/%s/%s" % (signature, name)] = np.asarray(after[name] - before[name])
  return arrays


def main(argv=None):
  import json  # pylint: disable=g-import-not-at-top
  parser = argparse.ArgumentParser()
  sub = parser.add_subparsers(dest="command", required=True)
  p = sub.add_parser("build")
  p.add_argument("out_dir")
  p.add_argument("names", nargs="*")
  p = sub.add_parser("run")
  p.add_argument("module_dir")
  p.add_argument("inputs")
  p.add_argument("out")
  p.add_argument("--tags", default="")
  p.add_argument("--updates", action="store_true")
  p = sub.add_parser("describe")
  p.add_argument("module_dir")
  p.add_argument("out")
  p = sub.add_parser("batch")
  p.add_argument("jobs")
  args = parser.parse_args(argv)
  if args.command == "build":
    build(args.out_dir, args.names)
  elif args.command == "describe":
    with open(args.out, "w") as f:
      json.dump(describe(args.module_dir), f, indent=1, sort_keys=True)
  elif args.command == "batch":
    with open(args.jobs) as f:
      for job in json.load(f):
        main(job)
  else:
    with np.load(args.inputs) as data:
      inputs = {k: data[k] for k in data.files}
    arrays = run(args.module_dir, inputs, [t for t in args.tags.split(",") if t], updates=args.updates)
    np.savez(args.out, **arrays)


if __name__ == "__main__":
  main()
