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
      moving statistics) moved when the variant's UPDATE_OPS ran with the signature's outputs. --gradients: also
      `gradients/<signature>/<variable>`, d reduce_sum(outputs["default"] * loss_weights) / d variable for each
      trainable variable (the parts of a partitioned one joined), by tf.gradients in the same session run, for each
      signature whose weights INPUTS_NPZ holds as `loss_weights/<signature>`; the module is then trainable.
      --apart (with --updates): the outputs come from a run without the update ops, and each update op then runs
      alone from the state before the call. For graphs whose forward pass reads variables the update ops assign
      (quantization ranges), where one session run of both races (measured: 4 different outputs and act_quant/max
      updates over 12 runs of qat_net), this is the one order that does not: every read sees the state before
      the call, as when all reads run before any assignment (a schedule a single run also takes: it was the
      result of 5 to 8 of those 12 runs, the most frequent one).
  real_modules.py describe MODULE_DIR OUT_JSON
      {tags: {signature: {"inputs": {key: [dtype, shape]}, "outputs": [keys]}}} as the genuine ModuleSpec sees them.
  real_modules.py call MODULE_DIR OUT_JSON --batch N
      Whether `hub.Module(spec)(images)` accepts a float32 placeholder of static shape [N, height, width, 3]
      (height and width those of the default signature's `images`): {"accepted": bool, "error_type": name or
      null, "error": first line or null}.
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
  partitioned_bn a conv kernel split in two by tf.compat.v1.fixed_size_partitioner(2) (variables
                 conv1/kernel/part_0 and part_1; one checkpoint key conv1/kernel), then batch norm; 16x16.
  cf_v1_net      built with control flow v1 (Enter/Exit/NextIteration ops, a while_context collection): a
                 tf.compat.v1.while_loop between two trainable layers whose body convolves with a trainable kernel.
  qat_net        quantization-aware training: fake-quant ops whose min/max variables the train variant's UPDATE_OPS
                 assign (moving averages of the batch min/max) while the forward pass reads them.
  renorm_net     tf.compat.v1.layers.batch_normalization(renorm=True) with clipping.
  while_v2_net, while_v2b_net  control-flow-v2 while loops (While ops calling functions in the graph's library) of
                 the same structure with different weights and loop step: built each first in its own process, so
                 their loop functions carry the same names (as modules exported by different programs do).
  keyword_inputs_net  signature inputs named like the converted functions' own arguments: `training` (a
                 placeholder_with_default feeding a tf.compat.v1.cond) in image_feature_vector_with_training, and
                 `name` (a scale with default 2.0) in `scaled`.
  variant_defaults_net  a signature input whose default differs between the graph variants: `scale`, a
                 placeholder_with_default of 1.0 in the inference variant and 0.5 in the train variant, in
                 image_feature_vector_scaled (batch norm before it, so the train variant has updates).
  zero_debias_net  a zero-debiased moving average of the features in the train variant's UPDATE_OPS, which creates
                 variables (feature_avg/biased, feature_avg/local_step) the inference variant does not have.
  fixed_batch_net, fixed_batch3_net  exported with a static batch dimension (`images` is [2, 16, 16, 3], resp.
                 [3, 16, 16, 3]), as modules exported from a fixed-batch training graph are: conv+BN, then a
                 Reshape to [batch, -1] (the batch baked in) before the logits.
"""

import argparse
import os
import sys

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


def partitioned_bn_fn(is_training):
  v1 = tf.compat.v1
  v1.set_random_seed(SEED + 3)
  images = v1.placeholder(tf.float32, [None, 16, 16, 3], name="images")
  with v1.variable_scope("conv1", partitioner=v1.fixed_size_partitioner(2)):
    kernel = v1.get_variable("kernel", [3, 3, 3, 8], initializer=v1.glorot_uniform_initializer())
  net = tf.nn.conv2d(images, kernel, strides=2, padding="SAME")
  net = v1.layers.batch_normalization(net, training=is_training, momentum=0.9, name="bn1",
                                      beta_initializer=v1.random_uniform_initializer(-0.1, 0.1),
                                      gamma_initializer=v1.random_uniform_initializer(0.8, 1.2),
                                      moving_mean_initializer=v1.random_uniform_initializer(-0.1, 0.1),
                                      moving_variance_initializer=v1.random_uniform_initializer(0.5, 1.5))
  features = tf.reduce_mean(tf.nn.relu(net), axis=[1, 2], name="global_pool")
  _image_signatures(images, features, _logits(features))


def cf_v1_net_fn(is_training):
  """Built while control flow v2 is disabled (see build)."""
  del is_training  # the same graph in both variants
  v1 = tf.compat.v1
  v1.set_random_seed(SEED + 4)
  images = v1.placeholder(tf.float32, [None, 16, 16, 3], name="images")
  net = v1.layers.conv2d(images, 4, 3, strides=2, padding="same", activation=tf.nn.relu, name="conv1",
                         bias_initializer=v1.random_uniform_initializer(-0.1, 0.1))
  kernel = v1.get_variable("refine/kernel", [3, 3, 4, 4], initializer=v1.glorot_uniform_initializer())

  def body(i, y):
    return i + 1, y + 0.5 * tf.nn.tanh(tf.nn.conv2d(y, kernel, 1, "SAME"))

  _, net = v1.while_loop(lambda i, y: i < 3, body, [tf.constant(0), net], name="refine_loop")
  features = tf.reduce_mean(net, axis=[1, 2], name="global_pool")
  _image_signatures(images, features, _logits(features))


def qat_net_fn(is_training):
  v1 = tf.compat.v1
  v1.set_random_seed(SEED + 5)
  images = v1.placeholder(tf.float32, [None, 16, 16, 3], name="images")

  def fake_quant(x, name, low, high):
    with v1.variable_scope(name):
      lo = v1.get_variable("min", [], initializer=v1.constant_initializer(low), trainable=False)
      hi = v1.get_variable("max", [], initializer=v1.constant_initializer(high), trainable=False)
      if is_training:
        v1.add_to_collection(v1.GraphKeys.UPDATE_OPS, v1.assign(lo, 0.9 * lo + 0.1 * tf.reduce_min(x)))
        v1.add_to_collection(v1.GraphKeys.UPDATE_OPS, v1.assign(hi, 0.9 * hi + 0.1 * tf.reduce_max(x)))
      return tf.quantization.fake_quant_with_min_max_vars(x, lo, hi, num_bits=8)

  net = fake_quant(images, "act_quant_in", 0.0, 1.0)
  kernel = v1.get_variable("conv1/kernel", [3, 3, 3, 8], initializer=v1.glorot_uniform_initializer())
  net = tf.nn.relu6(tf.nn.conv2d(net, fake_quant(kernel, "weight_quant", -0.5, 0.5), 2, "SAME"))
  net = fake_quant(net, "act_quant", 0.0, 6.0)
  features = tf.reduce_mean(net, axis=[1, 2], name="global_pool")
  _image_signatures(images, features, _logits(features))


def renorm_net_fn(is_training):
  v1 = tf.compat.v1
  v1.set_random_seed(SEED + 6)
  images = v1.placeholder(tf.float32, [None, 16, 16, 3], name="images")
  net = v1.layers.conv2d(images, 6, 3, strides=2, padding="same", name="conv1")
  net = v1.layers.batch_normalization(net, training=is_training, renorm=True, renorm_momentum=0.9,
                                      renorm_clipping={"rmax": 3.0, "rmin": 1 / 3.0, "dmax": 5.0},
                                      momentum=0.9, name="bn1")
  features = tf.reduce_mean(tf.nn.relu(net), axis=[1, 2], name="global_pool")
  _image_signatures(images, features, _logits(features))


def while_v2_net_fn(is_training, step=0.1, seed=SEED + 7):
  """Control flow v2 (the default): the loop's cond and body are functions named from a process-wide counter."""
  del is_training
  v1 = tf.compat.v1
  v1.set_random_seed(seed)
  images = v1.placeholder(tf.float32, [None, 16, 16, 3], name="images")
  kernel = v1.get_variable("loop/kernel", [3, 3, 3, 3], initializer=v1.glorot_uniform_initializer())

  def body(i, y):
    return i + 1, y + step * tf.nn.tanh(tf.nn.conv2d(y, kernel, 1, "SAME"))

  _, net = v1.while_loop(lambda i, y: i < 3, body, [tf.constant(0), images])
  head = v1.get_variable("head/kernel", [3, 3, 3, 8], initializer=v1.glorot_uniform_initializer())
  features = tf.reduce_mean(tf.nn.relu(tf.nn.conv2d(net, head, 2, "SAME")), axis=[1, 2], name="global_pool")
  _image_signatures(images, features, None)


def zero_debias_net_fn(is_training):
  v1 = tf.compat.v1
  v1.set_random_seed(SEED + 8)
  images = v1.placeholder(tf.float32, [None, 16, 16, 3], name="images")
  net = v1.layers.conv2d(images, 6, 3, strides=2, padding="same", activation=tf.nn.relu, name="conv1",
                         bias_initializer=v1.random_uniform_initializer(-0.1, 0.1))
  features = tf.reduce_mean(net, axis=[1, 2], name="global_pool")
  average = v1.get_variable("feature_avg", [6], initializer=v1.zeros_initializer(), trainable=False)
  if is_training:
    from tensorflow.python.training import moving_averages  # pylint: disable=g-import-not-at-top
    v1.add_to_collection(v1.GraphKeys.UPDATE_OPS, moving_averages.assign_moving_average(
        average, tf.reduce_mean(features, 0), 0.9, zero_debias=True))
  _image_signatures(images, features, _logits(features))


def keyword_inputs_net_fn(is_training):
  """Signature inputs whose keys are arguments the converted functions take themselves or use inside."""
  del is_training  # the same graph in both variants
  v1 = tf.compat.v1
  v1.set_random_seed(SEED + 10)
  images = v1.placeholder(tf.float32, [None, 16, 16, 3], name="images")
  training = v1.placeholder_with_default(tf.constant(False), [], name="training")
  scale = v1.placeholder_with_default(tf.constant(2.0), [], name="scale")
  net = v1.layers.conv2d(images, 4, 3, strides=2, padding="same", activation=tf.nn.relu, name="conv1",
                         bias_initializer=v1.random_uniform_initializer(-0.1, 0.1))
  features = tf.reduce_mean(net, axis=[1, 2], name="global_pool")
  switched = v1.cond(training, lambda: features * 0.5, lambda: features)
  _image_signatures(images, features, None)
  hub.add_signature("image_feature_vector_with_training", inputs=dict(images=images, training=training),
                    outputs=dict(default=switched))
  hub.add_signature("scaled", inputs=dict(images=images, name=scale), outputs=dict(default=features * scale))


def variant_defaults_net_fn(is_training):
  """A hyperparameter input whose default is 1.0 in the inference variant and 0.5 in the train variant."""
  v1 = tf.compat.v1
  v1.set_random_seed(SEED + 11)
  images = v1.placeholder(tf.float32, [None, 16, 16, 3], name="images")
  scale = v1.placeholder_with_default(tf.constant(0.5 if is_training else 1.0), [], name="scale")
  net = slim.conv2d(images, 4, 3, stride=2, normalizer_fn=slim.batch_norm, normalizer_params=_bn(is_training),
                    scope="conv1")
  features = tf.reduce_mean(net, axis=[1, 2], name="global_pool")
  _image_signatures(images, features, None)
  hub.add_signature("image_feature_vector_scaled", inputs=dict(images=images, scale=scale),
                    outputs=dict(default=features * scale))


def fixed_batch_net_fn(is_training, batch=2):
  """A module whose graph is built for one batch size only (the placeholder's batch dimension is static)."""
  v1 = tf.compat.v1
  v1.set_random_seed(SEED + 20 + batch)
  images = v1.placeholder(tf.float32, [batch, 16, 16, 3], name="images")
  conv1 = _conv(images, is_training)
  # As fixed-batch training graphs wrote it: the batch is baked into the Reshape, so the graph computes for `batch`
  # images only (fed more through a placeholder of unknown batch, it mixes images up or fails).
  features = tf.reshape(tf.reduce_mean(conv1, axis=[1, 2], keepdims=True), [batch, -1], name="global_pool")
  _image_signatures(images, features, _logits(features))


def _image_signatures(images, features, logits, size=16):
  hub.add_signature("default", inputs=dict(images=images), outputs=dict(default=features))
  hub.add_signature("image_feature_vector", inputs=dict(images=images), outputs=dict(default=features))
  if logits is not None:
    hub.add_signature("image_classification", inputs=dict(images=images), outputs=dict(default=logits))
  hub.attach_image_module_info(hub.ImageModuleInfo(
      default_image_size=hub.ImageModuleInfo.InputSize(height=size, width=size)))


def _train_and_infer(fn):
  return dict(module_fn=fn, tags_and_args=[(set(), {"is_training": False}), ({"train"}, {"is_training": True})])


MODULES = {
    "dropout_net": lambda: _train_and_infer(dropout_net_fn),
    "dropout_unseeded": lambda: _train_and_infer(lambda is_training: dropout_net_fn(is_training, seeded=False)),
    "hparams_net": lambda: _train_and_infer(hparams_net_fn),
    "fakequant_net": lambda: dict(module_fn=fakequant_net_fn),
    "partitioned_bn": lambda: _train_and_infer(partitioned_bn_fn),
    "cf_v1_net": lambda: _train_and_infer(cf_v1_net_fn),
    "qat_net": lambda: _train_and_infer(qat_net_fn),
    "renorm_net": lambda: _train_and_infer(renorm_net_fn),
    "while_v2_net": lambda: _train_and_infer(while_v2_net_fn),
    "while_v2b_net": lambda: _train_and_infer(
        lambda is_training: while_v2_net_fn(is_training, step=0.2, seed=SEED + 9)),
    "zero_debias_net": lambda: _train_and_infer(zero_debias_net_fn),
    "keyword_inputs_net": lambda: _train_and_infer(keyword_inputs_net_fn),
    "variant_defaults_net": lambda: _train_and_infer(variant_defaults_net_fn),
    "fixed_batch_net": lambda: _train_and_infer(fixed_batch_net_fn),
    "fixed_batch3_net": lambda: _train_and_infer(lambda is_training: fixed_batch_net_fn(is_training, batch=3)),
}
# Built first in a second process (see build): the other while loop's twin, then the control flow v1 module, so
# that neither the process-wide control flow switch nor the function-name counter touches the other modules.
SECOND_PROCESS = ("while_v2b_net", "cf_v1_net")
# Built first in this process: the loop functions get the names while_v2b_net's get in the second process.
FIRST = "while_v2_net"


def build(out_dir, names=None, here=False):
  """Exports the modules named (all by default). Unless `here`, those of SECOND_PROCESS are built by a second
  process started first (it runs while this one builds the rest) and FIRST is built first."""
  import subprocess  # pylint: disable=g-import-not-at-top
  from tensorflow.python.framework import config  # pylint: disable=g-import-not-at-top
  names = list(names or sorted(MODULES))
  second = None
  if not here:
    elsewhere = [n for n in SECOND_PROCESS if n in names]
    names = sorted((n for n in names if n not in elsewhere), key=lambda n: n != FIRST)
    if elsewhere:
      second = subprocess.Popen([sys.executable, os.path.abspath(__file__), "build", out_dir, *elsewhere, "--here"],
                                stderr=subprocess.PIPE, text=True)
  try:
    for name in names:
      if name == "dropout_unseeded":  # op determinism refuses random ops without a seed, which is the point here
        config.disable_op_determinism()
      if name == "cf_v1_net":  # process-wide: only a process that builds nothing after it may switch it off
        tf.compat.v1.disable_control_flow_v2()
      try:
        _export(hub.create_module_spec(**MODULES[name]()), os.path.join(out_dir, name))
      finally:
        tf.config.experimental.enable_op_determinism()
  finally:
    if second is not None:
      _, err = second.communicate()
      if second.returncode != 0:
        raise RuntimeError("building %s failed:\n%s" % (", ".join(elsewhere), err[-4000:]))


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


def _updates_apart(sess, update_ops, watched, before, feed_dict):
  """The watched variables after each update op ran alone from the state `before` (restored before each), so its
  inputs read no variable another update op assigned; a variable no update op changed keeps its value."""
  placeholders = {name: [tf.compat.v1.placeholder(v.dtype.base_dtype, v.shape) for v in parts]
                  for name, parts in watched.items()}
  restore = [v.assign(p) for name, parts in watched.items() for v, p in zip(parts, placeholders[name])]
  restore_feed = {p: value for name in watched for p, value in zip(placeholders[name], before[name])}
  after = {name: list(values) for name, values in before.items()}
  for op in update_ops:
    sess.run(restore, restore_feed)
    sess.run(op, feed_dict)
    now = sess.run(watched)
    for name in watched:
      for i, (old, new) in enumerate(zip(before[name], now[name])):
        if not np.array_equal(old, new):
          after[name][i] = new
  sess.run(restore, restore_feed)
  return after


def run(module_dir, inputs, tags=(), updates=False, gradients=False, apart=False):
  spec = hub.load_module_spec(module_dir)
  tags = set(tags)
  arrays = {}
  for signature in sorted(spec.get_signature_names(tags)):
    info = spec.get_input_info_dict(signature, tags)
    graph = tf.Graph()
    with graph.as_default():
      module = hub.Module(spec, trainable=bool(tags) or gradients, tags=tags)
      feeds = {key: tf.compat.v1.placeholder(i.dtype, i.get_shape(), name="input_" + key) for key, i in info.items()}
      outputs = module(feeds, signature=signature, as_dict=True)
      update_ops = tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.UPDATE_OPS) if updates else []
      trainable = set(id(v) for v in tf.compat.v1.trainable_variables())
      variables = {name: var if isinstance(var, list) else [var] for name, var in module.variable_map.items()}
      watched = {name: parts for name, parts in sorted(variables.items())
                 if updates and not all(id(v) in trainable for v in parts)}
      weights = inputs.get("loss_weights/" + signature) if gradients else None
      grads = {}
      if weights is not None:  # d sum(default output * weights) / d each trainable variable (its parts joined)
        wrt = {name: parts for name, parts in sorted(variables.items()) if all(id(v) in trainable for v in parts)}
        loss = tf.reduce_sum(outputs["default"] * tf.constant(weights))
        flat = tf.gradients(loss, [v for parts in wrt.values() for v in parts])
        for name, parts in wrt.items():
          part_grads, flat = flat[:len(parts)], flat[len(parts):]
          if all(g is not None for g in part_grads):
            grads[name] = tf.concat(part_grads, 0) if len(parts) > 1 else part_grads[0]
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
        if not apart:
          values, grad_values, _ = sess.run((outputs, grads, update_ops), feed_dict)
          after = sess.run(watched)
        else:
          values, grad_values = sess.run((outputs, grads), feed_dict)
          after = _updates_apart(sess, update_ops, watched, before, feed_dict)
    for key, value in values.items():
      arrays["outputs/%s/%s" % (signature, key)] = np.asarray(value)
    for name in watched:
      arrays["updates/%s/%s" % (signature, name)] = _joined(after[name]) - _joined(before[name])
    for name, value in grad_values.items():
      arrays["gradients/%s/%s" % (signature, name)] = np.asarray(value)
  return arrays


def call(module_dir, batch):
  spec = hub.load_module_spec(module_dir)
  shape = spec.get_input_info_dict()["images"].get_shape().as_list()
  graph = tf.Graph()
  with graph.as_default():
    module = hub.Module(spec)
    try:
      module(tf.compat.v1.placeholder(tf.float32, [batch] + shape[1:]))
    except (TypeError, ValueError) as e:
      return {"accepted": False, "error_type": type(e).__name__, "error": str(e).strip().splitlines()[0]}
  return {"accepted": True, "error_type": None, "error": None}


def _joined(parts):
  """A variable's value from the values of its parts (one part: the value itself, which may be a scalar)."""
  return np.concatenate(parts) if len(parts) > 1 else np.asarray(parts[0])


def main(argv=None):
  import json  # pylint: disable=g-import-not-at-top
  parser = argparse.ArgumentParser()
  sub = parser.add_subparsers(dest="command", required=True)
  p = sub.add_parser("build")
  p.add_argument("out_dir")
  p.add_argument("names", nargs="*")
  p.add_argument("--here", action="store_true", help="build every module named in this process, in that order")
  p = sub.add_parser("run")
  p.add_argument("module_dir")
  p.add_argument("inputs")
  p.add_argument("out")
  p.add_argument("--tags", default="")
  p.add_argument("--updates", action="store_true")
  p.add_argument("--gradients", action="store_true")
  p.add_argument("--apart", action="store_true")
  p = sub.add_parser("describe")
  p.add_argument("module_dir")
  p.add_argument("out")
  p = sub.add_parser("call")
  p.add_argument("module_dir")
  p.add_argument("out")
  p.add_argument("--batch", type=int, required=True)
  p = sub.add_parser("batch")
  p.add_argument("jobs")
  args = parser.parse_args(argv)
  if args.command == "build":
    build(args.out_dir, args.names, here=args.here)
  elif args.command == "describe":
    with open(args.out, "w") as f:
      json.dump(describe(args.module_dir), f, indent=1, sort_keys=True)
  elif args.command == "call":
    with open(args.out, "w") as f:
      json.dump(call(args.module_dir, args.batch), f)
  elif args.command == "batch":
    with open(args.jobs) as f:
      for job in json.load(f):
        main(job)
  else:
    with np.load(args.inputs) as data:
      inputs = {k: data[k] for k in data.files}
    arrays = run(args.module_dir, inputs, [t for t in args.tags.split(",") if t], updates=args.updates,
                 gradients=args.gradients, apart=args.apart)
    np.savez(args.out, **arrays)


if __name__ == "__main__":
  main()
