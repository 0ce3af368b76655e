#!/usr/bin/env python
"""Regenerates the model zoo: narrow TF1 Hub modules of real architectures, exported by the GENUINE legacy library.

Run from the repository root with the legacy environment (`make zoo` does exactly this):

    .venv-legacy/bin/python testdata/zoo/generate.py [NAME ...]

Each entry of ZOO below is one module: a module_fn built from TF-Slim's own nets (tf_slim 1.1.0 ships alexnet,
inception v1-v3, overfeat, resnet v1/v2 and vgg) or hand-built where tf_slim has nothing (MobileNet V2, quantops),
with the published shapes of the tfhub.dev image modules: dropout before the logits in the {"train"} variant,
`*_with_bn_hparams` signatures (inputs `images` + scalar `batch_norm_momentum`), any input size with
`image_module_info`, extra output keys, reference and resource variables, fake-quant graphs with an inference variant
only. Widths are narrow and images small, so the whole zoo stays a few hundred kB. Writes testdata/zoo/modules/<name>/
and testdata/zoo/manifest.json (what each module is, checked against the export). Seeds are fixed and op determinism is
on, so reruns reproduce the same files. A new module shape is one more entry in ZOO (and one row in tests/zoo/members.py).
"""

import contextlib
import dataclasses
import json
import os
import shutil
import sys
import time
from typing import Callable, List, Optional

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "oracle"))
sys.path.insert(0, os.path.join(ROOT, "testdata"))

import legacy_oracle  # noqa: E402  pylint: disable=g-import-not-at-top

legacy_oracle.setup()  # determinism + the tf_keras.legacy_tf_layers alias, before tf_slim builds any layer

import tensorflow as tf  # noqa: E402
import tensorflow_hub as hub  # noqa: E402
import tf_slim as slim  # noqa: E402
from tf_slim.nets import inception_v1, inception_v2, resnet_utils, resnet_v1, resnet_v2  # noqa: E402

from generate import canonicalize_saved_model  # noqa: E402  (the corpus generator's deterministic re-serialization)

MODULES_DIR = os.path.join(HERE, "modules")
MANIFEST = os.path.join(HERE, "manifest.json")
SEED = 4321
NUM_CLASSES = 10
BN_MOMENTUM_DEFAULT = 0.997  # TF-Slim's batch-norm decay, the default of the published `batch_norm_momentum` input
BOTH_VARIANTS = [(set(), {"is_training": False}), ({"train"}, {"is_training": True})]
INFERENCE_ONLY = [(set(), {"is_training": False})]

tf1 = tf.compat.v1


# ---------------------------------------------------------------------------------------------------------------------
# Shared pieces


def _random_bn_initializers(seed_offset=0):
  """Batch-norm parameters off their trivial 0/1 start, so a wrong mapping of any of them changes the outputs."""
  return {
      "beta": tf1.random_uniform_initializer(-0.1, 0.1, seed=SEED + seed_offset + 1),
      "gamma": tf1.random_uniform_initializer(0.8, 1.2, seed=SEED + seed_offset + 2),
      "moving_mean": tf1.random_uniform_initializer(-0.1, 0.1, seed=SEED + seed_offset + 3),
      "moving_variance": tf1.random_uniform_initializer(0.5, 1.5, seed=SEED + seed_offset + 4),
  }


def _bn_momentum():
  """The published modules' hyperparameter input: a scalar float with a default, used as the batch-norm decay."""
  return tf1.placeholder_with_default(tf.constant(BN_MOMENTUM_DEFAULT, tf.float32), shape=[],
                                      name="batch_norm_momentum")


def _images(size):
  shape = [None, None, None, 3] if size is None else [None, size, size, 3]
  return tf1.placeholder(tf.float32, shape, name="images")


def _image_signatures(images, features, logits, extra_features=None, momentum=None):
  """default (logits, else features), image_classification, image_feature_vector (+ extra keys), and the
  *_with_bn_hparams twins when `momentum` is given."""
  extra = dict(extra_features or {})
  hub.add_signature("default", inputs=dict(images=images),
                    outputs=dict(default=logits if logits is not None else features))
  if logits is not None:
    hub.add_signature("image_classification", inputs=dict(images=images), outputs=dict(default=logits))
  hub.add_signature("image_feature_vector", inputs=dict(images=images), outputs=dict(default=features, **extra))
  if momentum is not None:
    hparams = dict(images=images, batch_norm_momentum=momentum)
    if logits is not None:
      hub.add_signature("image_classification_with_bn_hparams", inputs=hparams, outputs=dict(default=logits))
    hub.add_signature("image_feature_vector_with_bn_hparams", inputs=hparams,
                      outputs=dict(default=features, **extra))


def _attach_size(size):
  hub.attach_image_module_info(hub.ImageModuleInfo(
      default_image_size=hub.ImageModuleInfo.InputSize(height=size, width=size)))


# ---------------------------------------------------------------------------------------------------------------------
# module_fns, one per architecture


def inception_v2_fn(is_training, size):
  """TF-Slim Inception V2 at depth multiplier 0.1, its base cut after Mixed_3c (the separable 7x7 stem, two Mixed
  blocks) to keep the graph small, and Inception V2's own head: average pool, dropout (keep 0.8), 1x1 logits."""
  tf1.set_random_seed(SEED)  # graph seed: the dropout op gets fixed seed attributes, as in seeded exports
  images = _images(size)
  with slim.arg_scope(inception_v2.inception_v2_arg_scope(weight_decay=4e-5)):
    with slim.arg_scope([slim.batch_norm, slim.dropout], is_training=is_training):
      with slim.arg_scope([slim.batch_norm], param_initializers=_random_bn_initializers()):
        with tf1.variable_scope("InceptionV2") as scope:
          net, end_points = inception_v2.inception_v2_base(images, final_endpoint="Mixed_3c", min_depth=4,
                                                           depth_multiplier=0.1, scope=scope)
          with tf1.variable_scope("Logits"):
            net = slim.avg_pool2d(net, net.shape[1:3], padding="VALID", scope="AvgPool_1a")
            pooled = net
            net = slim.dropout(net, keep_prob=0.8, scope="Dropout_1b")
            logits = slim.conv2d(net, NUM_CLASSES, [1, 1], activation_fn=None, normalizer_fn=None,
                                 scope="Conv2d_1c_1x1")
  features = tf.squeeze(pooled, [1, 2], name="feature_vector")
  logits = tf.squeeze(logits, [1, 2], name="logits")
  _image_signatures(images, features, logits, extra_features={"Mixed_3b": end_points["Mixed_3b"]})
  _attach_size(size)


def inception_v1_full_fn(is_training, size):
  """TF-Slim Inception V1 at full width, as published (1001 classes, 224x224, 6.6M parameters): the whole network
  with its own head, dropout (keep 0.8) before the logits in the train variant."""
  tf1.set_random_seed(SEED)
  images = _images(size)
  with slim.arg_scope(inception_v1.inception_v1_arg_scope(weight_decay=4e-5)):
    with slim.arg_scope([slim.batch_norm], param_initializers=_random_bn_initializers()):
      logits, end_points = inception_v1.inception_v1(images, num_classes=1001, is_training=is_training,
                                                     dropout_keep_prob=0.8, scope="InceptionV1")
  pooled = tf1.get_default_graph().get_tensor_by_name("InceptionV1/Logits/MaxPool_0a_7x7/AvgPool:0")  # (sic)
  features = tf.squeeze(pooled, [1, 2], name="feature_vector")
  _image_signatures(images, features, tf.identity(logits, name="logits"),
                    extra_features={"Mixed_5c": end_points["Mixed_5c"]})
  _attach_size(size)


def _narrow_resnet(net_fn, block_fn, images, is_training, scope, momentum):
  blocks = [block_fn("block1", base_depth=4, num_units=2, stride=2),
            block_fn("block2", base_depth=8, num_units=1, stride=1)]
  with slim.arg_scope(resnet_utils.resnet_arg_scope(weight_decay=1e-4, batch_norm_decay=momentum)):
    with slim.arg_scope([slim.batch_norm], param_initializers=_random_bn_initializers()):
      # include_root_block: the 7x7/2 conv + 3x3/2 max pool stem of the full nets (64 channels, fixed by tf_slim).
      pooled, end_points = net_fn(images, blocks, num_classes=None, is_training=is_training, global_pool=True,
                                  include_root_block=True, scope=scope)
      logits = slim.conv2d(pooled, NUM_CLASSES, [1, 1], activation_fn=None, normalizer_fn=None,
                           scope=scope + "/logits")
  features = tf.squeeze(pooled, [1, 2], name="feature_vector")
  logits = tf.squeeze(logits, [1, 2], name="logits")
  return features, logits, end_points


def resnet_v1_fn(is_training, size):
  """TF-Slim ResNet V1 (bottleneck units, post-activation), reference variables as TF 1.x exported them, and the
  published version-3 `*_with_bn_hparams` signatures."""
  tf1.set_random_seed(SEED + 1)
  images = _images(size)
  momentum = _bn_momentum()
  with tf1.variable_scope(tf1.get_variable_scope(), use_resource=False):
    features, logits, end_points = _narrow_resnet(resnet_v1.resnet_v1, resnet_v1.resnet_v1_block, images,
                                                  is_training, "resnet_v1_narrow", momentum)
  _image_signatures(images, features, logits, momentum=momentum,
                    extra_features={"block1": end_points["resnet_v1_narrow/block1"]})
  _attach_size(size)


def resnet_v2_fn(is_training, size):
  """TF-Slim ResNet V2 (pre-activation), any input size ([?, ?, ?, 3]) with the default in image_module_info."""
  tf1.set_random_seed(SEED + 2)
  images = _images(None)
  features, logits, end_points = _narrow_resnet(resnet_v2.resnet_v2, resnet_v2.resnet_v2_block, images,
                                                is_training, "resnet_v2_narrow", BN_MOMENTUM_DEFAULT)
  _image_signatures(images, features, logits,
                    extra_features={"block1": end_points["resnet_v2_narrow/block1"]})
  _attach_size(size)


def _glorot(offset):
  return tf1.glorot_uniform_initializer(seed=SEED + 100 + offset)


def _inverted_residual(net, expansion, depth, stride, scope, index):
  """MobileNet V2's block: 1x1 expand + BN + ReLU6, 3x3 depthwise + BN + ReLU6, 1x1 linear projection + BN,
  residual when shapes allow (scope names as in the published modules)."""
  in_depth = net.shape[-1]
  with tf1.variable_scope(scope):
    x = net
    if expansion != 1:
      x = slim.conv2d(x, in_depth * expansion, [1, 1], weights_initializer=_glorot(3 * index), scope="expand")
    x = slim.separable_conv2d(x, None, [3, 3], depth_multiplier=1, stride=stride,
                              weights_initializer=_glorot(3 * index + 1), scope="depthwise")
    x = slim.conv2d(x, depth, [1, 1], activation_fn=None, weights_initializer=_glorot(3 * index + 2),
                    scope="project")
    if stride == 1 and in_depth == depth:
      x = tf.add(x, net, name="add")
  return x


def mobilenet_v2_fn(is_training, size):
  """Hand-built MobileNet V2 stack (tf_slim ships no MobileNet): conv stem, inverted residual blocks with depthwise
  convs, ReLU6 and batch norm, 1x1 head, dropout (keep 0.8) before the logits; any input size; `*_with_bn_hparams`.

  No graph-level seed (initializers carry their own): the dropout op keeps seed 0/0 and draws fresh numbers on every
  run, as in unseeded exports."""
  images = _images(None)
  momentum = _bn_momentum()
  bn = {"is_training": is_training, "decay": momentum, "scale": True, "epsilon": 1e-3,
        "updates_collections": tf1.GraphKeys.UPDATE_OPS, "param_initializers": _random_bn_initializers(10)}
  with tf1.variable_scope("MobilenetV2"):
    with slim.arg_scope([slim.conv2d, slim.separable_conv2d], normalizer_fn=slim.batch_norm, normalizer_params=bn,
                        activation_fn=tf.nn.relu6, padding="SAME",
                        weights_regularizer=slim.l2_regularizer(4e-5)):
      net = slim.conv2d(images, 8, [3, 3], stride=2, weights_initializer=_glorot(0), scope="Conv")
      net = _inverted_residual(net, 1, 8, 1, "expanded_conv", 1)
      net = _inverted_residual(net, 4, 12, 2, "expanded_conv_1", 2)
      layer_2 = net
      net = _inverted_residual(net, 4, 12, 1, "expanded_conv_2", 3)
      net = _inverted_residual(net, 4, 16, 2, "expanded_conv_3", 4)
      net = slim.conv2d(net, 32, [1, 1], weights_initializer=_glorot(20), scope="Conv_1")
    with tf1.variable_scope("Logits"):
      pooled = tf.reduce_mean(net, [1, 2], keepdims=True, name="AvgPool")
      with _unseeded_random_ops():
        dropped = slim.dropout(pooled, keep_prob=0.8, is_training=is_training, scope="Dropout")
      logits = slim.conv2d(dropped, NUM_CLASSES, [1, 1], activation_fn=None, normalizer_fn=None,
                           weights_initializer=_glorot(21),
                           biases_initializer=tf1.random_uniform_initializer(-0.1, 0.1, seed=SEED + 22),
                           scope="Conv2d_1c_1x1")
  features = tf.squeeze(pooled, [1, 2], name="feature_vector")
  logits = tf.squeeze(logits, [1, 2], name="logits")
  _image_signatures(images, features, logits, momentum=momentum, extra_features={"layer_2": layer_2})
  _attach_size(size)


@contextlib.contextmanager
def _unseeded_random_ops():
  """Op determinism (on for the whole generator) refuses to build a random op without a seed; the published modules
  have such ops, so it is off while one is built. It only guards graph construction: the op runs either way."""
  from tensorflow.python.framework import config  # pylint: disable=g-import-not-at-top
  config.disable_op_determinism()
  try:
    yield
  finally:
    config.enable_op_determinism()


def _fake_quant_weights(weights, scope, limit):
  """What quantization-aware training leaves around a weight: FakeQuantWithMinMaxVars over min/max variables (here
  the range of the weights' glorot-uniform initializer)."""
  with tf1.variable_scope(scope):
    lo = tf1.get_variable("min", initializer=-limit, trainable=False)
    hi = tf1.get_variable("max", initializer=limit, trainable=False)
    return tf.quantization.fake_quant_with_min_max_vars(weights, lo, hi, num_bits=8, narrow_range=True)


def _fake_quant_activations(x, scope, hi=6.0):
  with tf1.variable_scope(scope):
    lo_var = tf1.get_variable("min", initializer=0.0, trainable=False)
    hi_var = tf1.get_variable("max", initializer=hi, trainable=False)
    return tf.quantization.fake_quant_with_min_max_vars(x, lo_var, hi_var, num_bits=8)


def _quant_conv(x, depth, kernel, stride, scope, index, depthwise=False, activation=True):
  """Conv (batch norm folded into weights and bias, as in the published quantops eval graphs), weights and
  activations fake-quantized, ReLU6."""
  with tf1.variable_scope(scope):
    in_depth = int(x.shape[-1])
    shape = [kernel, kernel, in_depth, 1] if depthwise else [kernel, kernel, in_depth, depth]
    weights = tf1.get_variable("weights", shape, initializer=_glorot(50 + index))
    biases = tf1.get_variable("biases", [in_depth if depthwise else depth],
                              initializer=tf1.random_uniform_initializer(-0.1, 0.1, seed=SEED + 200 + index))
    fan_in, fan_out = kernel * kernel * shape[2], kernel * kernel * shape[3]  # as glorot_uniform counts them
    w = _fake_quant_weights(weights, "weights_quant", (6.0 / (fan_in + fan_out)) ** 0.5)
    if depthwise:
      y = tf.nn.depthwise_conv2d(x, w, [1, stride, stride, 1], "SAME")
    else:
      y = tf.nn.conv2d(x, w, [1, stride, stride, 1], "SAME")
    y = tf.nn.bias_add(y, biases)
    if activation:
      y = tf.nn.relu6(y)
      return _fake_quant_activations(y, "act_quant")
    return y


def quantops_fn(is_training, size):
  """MobileNet V1-style quantization-aware graph (quantops): every conv's weights and activations wrapped in
  FakeQuantWithMinMaxVars, inference variant only, fixed input size, reference variables as TF 1.x exported them."""
  del is_training  # inference only
  tf1.set_random_seed(SEED + 3)
  images = _images(size)
  with tf1.variable_scope(tf1.get_variable_scope(), use_resource=False):
    with tf1.variable_scope("MobilenetV1"):
      x = _fake_quant_activations(images, "input_quant", hi=1.0)
      x = _quant_conv(x, 8, 3, 2, "Conv2d_0", 0)
      x = _quant_conv(x, None, 3, 1, "Conv2d_1_depthwise", 1, depthwise=True)
      x = _quant_conv(x, 16, 1, 1, "Conv2d_1_pointwise", 2)
      x = _quant_conv(x, None, 3, 2, "Conv2d_2_depthwise", 3, depthwise=True)
      x = _quant_conv(x, 24, 1, 1, "Conv2d_2_pointwise", 4)
      conv_2 = x
      pooled = tf.reduce_mean(x, [1, 2], keepdims=True, name="AvgPool_1a")
      with tf1.variable_scope("Logits"):
        logits = _quant_conv(pooled, NUM_CLASSES, 1, 1, "Conv2d_1c_1x1", 5, activation=False)
  features = tf.squeeze(pooled, [1, 2], name="feature_vector")
  logits = tf.squeeze(logits, [1, 2], name="logits")
  _image_signatures(images, features, logits, extra_features={"Conv2d_2_pointwise": conv_2})
  _attach_size(size)


# ---------------------------------------------------------------------------------------------------------------------
# The zoo


@dataclasses.dataclass
class Entry:
  name: str
  architecture: str
  module_fn: Callable
  size: int  # the default image size (image_module_info)
  tags_and_args: List = dataclasses.field(default_factory=lambda: BOTH_VARIANTS)
  drop_collections: List[str] = dataclasses.field(default_factory=list)
  variables: str = "resource"  # or "reference"
  random_ops: bool = False  # dropout in the train variant
  any_size: bool = False
  bn_hparams: bool = False
  fake_quant: bool = False


ZOO = [
    Entry("inception_v2", "TF-Slim inception_v2 base to Mixed_3c (depth multiplier 0.1), dropout before the logits",
          inception_v2_fn, 32, random_ops=True, drop_collections=["moving_vars"]),
    Entry("resnet_v1", "TF-Slim resnet_v1 (root block + 2 narrow bottleneck blocks)", resnet_v1_fn, 32,
          drop_collections=["resnet_v1_narrow/_end_points"], variables="reference", bn_hparams=True),
    Entry("resnet_v2", "TF-Slim resnet_v2 (root block + 2 narrow pre-activation blocks)", resnet_v2_fn, 32,
          drop_collections=["resnet_v2_narrow/_end_points"], any_size=True),
    Entry("mobilenet_v2", "MobileNet V2 stack built by hand: depthwise convs, ReLU6, batch norm, dropout",
          mobilenet_v2_fn, 32, random_ops=True, any_size=True, bn_hparams=True),
    Entry("quantops", "MobileNet V1-style quantization-aware graph (FakeQuantWithMinMaxVars), inference only",
          quantops_fn, 32, tags_and_args=INFERENCE_ONLY, variables="reference", fake_quant=True),
]

# Full-size members: too large for git (tens of MB), built on demand into a folder outside it (`generate.py --full
# DIR`; tests/zoo/members.py caches them under ~/.cache/tf-hub-bridge) and checked in the slow test tier.
FULL = [
    Entry("inception_v1_full", "TF-Slim inception_v1 at full width (1001 classes), dropout before the logits",
          inception_v1_full_fn, 224, random_ops=True, drop_collections=["moving_vars"]),
]

RANDOM_OP_TYPES = ("RandomUniform", "RandomStandardNormal", "TruncatedNormal", "RandomUniformInt")


def export(entry: Entry, path: str) -> dict:
  tags_and_args = [(tags, dict(args, size=entry.size)) for tags, args in entry.tags_and_args]
  spec = hub.create_module_spec(entry.module_fn, tags_and_args=tags_and_args,
                                drop_collections=entry.drop_collections)
  graph = tf.Graph()
  with graph.as_default():
    tf1.set_random_seed(SEED)
    module = hub.Module(spec)
    with tf1.Session(graph=graph) as sess:
      sess.run(tf1.global_variables_initializer())
      module.export(path, sess)
  canonicalize_saved_model(path)
  return check(entry, path)


def _op_types(path):
  """{variant label: set of op types} over each MetaGraph's graph and function library, variable initializers
  (which hold random ops of their own, never run by a module's user) left out."""
  from tensorflow.core.protobuf import saved_model_pb2  # pylint: disable=g-import-not-at-top
  with open(os.path.join(path, "saved_model.pb"), "rb") as f:
    saved = saved_model_pb2.SavedModel.FromString(f.read())
  result = {}
  for mg in saved.meta_graphs:
    ops = {n.op for n in mg.graph_def.node if "Initializer/" not in n.name}
    for fn in mg.graph_def.library.function:
      ops |= {n.op for n in fn.node_def}
    result[legacy_oracle.variant_label(mg.meta_info_def.tags)] = ops
  return result


def check(entry: Entry, path: str) -> dict:
  """The export has the shapes the entry promises (fails loudly rather than committing a misleading zoo)."""
  desc = legacy_oracle.describe(path)
  problems = []
  expected_ops = {"resource": ["VarHandleOp"], "reference": ["VariableV2"]}[entry.variables]
  if desc["variable_op_types"] != expected_ops:
    problems.append("variable ops %s" % desc["variable_op_types"])
  ops = _op_types(path)
  train_random = bool(set(RANDOM_OP_TYPES) & ops.get("train", set()))
  if train_random != entry.random_ops or set(RANDOM_OP_TYPES) & ops["infer"]:
    problems.append("random ops: train %s, infer %s" % (train_random, set(RANDOM_OP_TYPES) & ops["infer"]))
  if ("FakeQuantWithMinMaxVars" in ops["infer"]) != entry.fake_quant:
    problems.append("fake-quant ops")
  shape = desc["inputs"]["infer"]["default"]["images"]["shape"]
  if shape != ([None, None, None, 3] if entry.any_size else [None, entry.size, entry.size, 3]):
    problems.append("input shape %s" % shape)
  if desc["image_module_info"] != {"height": entry.size, "width": entry.size}:
    problems.append("image_module_info %s" % desc["image_module_info"])
  hparams = {s for s in desc["signatures"]["infer"] if s.endswith("_with_bn_hparams")}
  if bool(hparams) != entry.bn_hparams:
    problems.append("bn_hparams signatures %s" % sorted(hparams))
  for s in hparams:
    momentum = desc["inputs"]["infer"][s].get("batch_norm_momentum")
    if momentum != {"dtype": "float32", "shape": []}:
      problems.append("%s: batch_norm_momentum %s" % (s, momentum))
  has_train = ["train"] in desc["tags"]
  if has_train != (len(entry.tags_and_args) == 2):
    problems.append("tags %s" % desc["tags"])
  if has_train and desc["update_op_count"] == 0:
    problems.append("no update ops")
  if problems:
    raise AssertionError("%s: %s" % (entry.name, "; ".join(problems)))
  size = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(path) for f in fs)
  return {
      "architecture": entry.architecture,
      "default_image_size": [entry.size, entry.size],
      "variables": entry.variables,
      "random_ops": entry.random_ops,
      "any_size": entry.any_size,
      "bn_hparams": entry.bn_hparams,
      "fake_quant": entry.fake_quant,
      "tags": desc["tags"],
      "signatures": desc["signatures"]["infer"],
      "parameters": int(sum(_count(v["shape"]) for v in desc["variables"].values())),
      "bytes": size,
  }


def _count(shape):
  n = 1
  for d in shape:
    n *= d
  return n


def main(argv):
  zoo, modules_dir, manifest_path = ZOO, MODULES_DIR, MANIFEST
  if argv[:1] == ["--full"]:  # generate.py --full DIR [NAME ...]: the full-size members into DIR
    if len(argv) < 2:
      raise SystemExit("usage: generate.py --full DIR [NAME ...]")
    zoo, modules_dir, manifest_path = FULL, os.path.join(argv[1], "modules"), os.path.join(argv[1], "manifest.json")
    argv = argv[2:]
  wanted = set(argv)
  unknown = wanted - {e.name for e in zoo}
  if unknown:
    raise SystemExit("unknown zoo member(s) %s; the zoo has %s" % (sorted(unknown), [e.name for e in zoo]))
  manifest = {}
  if wanted and os.path.exists(manifest_path):
    with open(manifest_path) as f:
      manifest = json.load(f)
  os.makedirs(modules_dir, exist_ok=True)
  start = time.time()
  for entry in zoo:
    if wanted and entry.name not in wanted:
      continue
    t0 = time.time()
    path = os.path.join(modules_dir, entry.name)
    if os.path.exists(path):
      shutil.rmtree(path)
    manifest[entry.name] = export(entry, path)
    print("%-14s %5.1fs  %7d parameters  %7d bytes" % (
        entry.name, time.time() - t0, manifest[entry.name]["parameters"], manifest[entry.name]["bytes"]),
        file=sys.stderr)
  for name in sorted(set(os.listdir(modules_dir)) - {e.name for e in zoo}):
    shutil.rmtree(os.path.join(modules_dir, name))  # a member removed from ZOO leaves the zoo
    manifest.pop(name, None)
  with open(manifest_path, "w") as f:
    f.write(json.dumps({k: manifest[k] for k in sorted(manifest)}, indent=2, sort_keys=True) + "\n")
  print("zoo regenerated in %.1fs" % (time.time() - start), file=sys.stderr)


if __name__ == "__main__":
  main(sys.argv[1:])
