#!/usr/bin/env python
"""Regenerates the test corpus: tiny TF1 Hub format modules exported by the GENUINE legacy library + golden answers.

Run from the repository root with the legacy environment (`make testdata` does exactly this):

    .venv-legacy/bin/python testdata/generate.py

Deletes and rewrites testdata/modules/ and testdata/golden/, and refreshes testdata/images/ from /work/shared/images
when that directory exists. Everything is seeded and op determinism is on, so reruns reproduce the same arrays.
See testdata/README.md for what each module covers and the golden file schema.
"""

import os
import shutil
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "oracle"))

import legacy_oracle  # noqa: E402  pylint: disable=g-import-not-at-top

legacy_oracle.setup()  # determinism + tf_keras.legacy_tf_layers alias, before tf_slim builds any layer

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_hub as hub  # noqa: E402
import tf_slim as slim  # noqa: E402

MODULES_DIR = os.path.join(HERE, "modules")
GOLDEN_DIR = os.path.join(HERE, "golden")
IMAGES_DIR = os.path.join(HERE, "images")
SHARED_IMAGES_DIR = "/work/shared/images"
PHOTOS = ("astronaut.png", "chelsea.png", "camera.png", "horse.png")  # RGB, RGB, grayscale, RGBA
NUM_RANDOM_IMAGES = 2
MODULE_SEED = 1234
FINETUNE_STEPS = 3
FINETUNE_LR = 0.01
LABELS = ("person", "cat", "camera", "horse", "other")


# ---------------------------------------------------------------------------------------------------------------------
# module_fns


def _bn_params(is_training):
  """slim.batch_norm with non-trivial initial parameters, so a wrong mapping of any of them changes the outputs."""
  return {
      "is_training": is_training,
      "decay": 0.9,
      "scale": True,
      "epsilon": 1e-3,
      "updates_collections": tf.compat.v1.GraphKeys.UPDATE_OPS,
      "param_initializers": {
          "beta": tf.compat.v1.random_uniform_initializer(-0.1, 0.1),
          "gamma": tf.compat.v1.random_uniform_initializer(0.8, 1.2),
          "moving_mean": tf.compat.v1.random_uniform_initializer(-0.1, 0.1),
          "moving_variance": tf.compat.v1.random_uniform_initializer(0.5, 1.5),
      },
  }


def _convnet(images, is_training):
  """conv3x3(8)+BN+relu -> conv3x3(16)+BN+relu -> global average pool (16 features) -> dense(10) logits."""
  regularizer = slim.l2_regularizer(1e-3)
  with slim.arg_scope([slim.conv2d], kernel_size=[3, 3], padding="SAME",
                      activation_fn=tf.nn.relu,
                      weights_initializer=tf.compat.v1.glorot_uniform_initializer(),
                      weights_regularizer=regularizer,
                      normalizer_fn=slim.batch_norm,
                      normalizer_params=_bn_params(is_training)):
    conv1 = slim.conv2d(images, 8, scope="conv1")
    conv2 = slim.conv2d(conv1, 16, stride=2, scope="conv2")
  features = tf.reduce_mean(conv2, axis=[1, 2], name="global_pool")
  logits = slim.fully_connected(
      features, 10, activation_fn=None,
      weights_initializer=tf.compat.v1.glorot_uniform_initializer(),
      biases_initializer=tf.compat.v1.random_uniform_initializer(-0.1, 0.1),
      weights_regularizer=regularizer, scope="logits")
  return conv1, features, logits


def convnet_bn_fn(is_training):
  tf.compat.v1.set_random_seed(MODULE_SEED)
  images = tf.compat.v1.placeholder(tf.float32, [None, 32, 32, 3], name="images")
  conv1, features, logits = _convnet(images, is_training)
  hub.add_signature("default", inputs=dict(images=images), outputs=dict(default=features))
  hub.add_signature("image_feature_vector", inputs=dict(images=images),
                    outputs=dict(default=features, conv1=conv1))
  hub.add_signature("image_classification", inputs=dict(images=images), outputs=dict(default=logits))
  hub.attach_image_module_info(hub.ImageModuleInfo(
      default_image_size=hub.ImageModuleInfo.InputSize(height=32, width=32)))


def convnet_refvars_fn(is_training):
  tf.compat.v1.set_random_seed(MODULE_SEED + 1)
  images = tf.compat.v1.placeholder(tf.float32, [None, 24, 40, 3], name="images")
  # Legacy reference variables (VariableV2), as in modules exported by TF 1.x.
  with tf.compat.v1.variable_scope(tf.compat.v1.get_variable_scope(), use_resource=False):
    conv1, features, _ = _convnet(images, is_training)
  hub.add_signature("default", inputs=dict(images=images), outputs=dict(default=features))
  hub.add_signature("image_feature_vector", inputs=dict(images=images),
                    outputs=dict(default=features, conv1=conv1))


def classifier_assets_fn(labels_path):
  tf.compat.v1.set_random_seed(MODULE_SEED + 2)
  images = tf.compat.v1.placeholder(tf.float32, [None, None, None, 3], name="images")
  net = slim.conv2d(images, 8, [3, 3], activation_fn=tf.nn.relu,
                    weights_initializer=tf.compat.v1.glorot_uniform_initializer(),
                    biases_initializer=tf.compat.v1.random_uniform_initializer(-0.1, 0.1), scope="conv")
  net = tf.reduce_mean(net, axis=[1, 2], name="global_pool")
  logits = slim.fully_connected(net, len(LABELS), activation_fn=None,
                                weights_initializer=tf.compat.v1.glorot_uniform_initializer(),
                                biases_initializer=tf.compat.v1.random_uniform_initializer(-0.1, 0.1),
                                scope="logits")
  # The hub way of shipping a file: a scalar string constant holding its path, in ASSET_FILEPATHS.
  labels_file = tf.constant(labels_path, name="labels_file")
  tf.compat.v1.add_to_collection(tf.compat.v1.GraphKeys.ASSET_FILEPATHS, labels_file)
  hub.add_signature("default", inputs=dict(images=images), outputs=dict(default=logits))
  hub.add_signature("image_classification", inputs=dict(images=images), outputs=dict(default=logits))
  hub.attach_image_module_info(hub.ImageModuleInfo(
      default_image_size=hub.ImageModuleInfo.InputSize(height=28, width=28)))


# ---------------------------------------------------------------------------------------------------------------------
# Export


def export_module(spec, path):
  graph = tf.Graph()
  with graph.as_default():
    tf.compat.v1.set_random_seed(MODULE_SEED)
    module = hub.Module(spec)
    with tf.compat.v1.Session(graph=graph) as sess:
      sess.run(tf.compat.v1.global_variables_initializer())
      module.export(path, sess)
  canonicalize_saved_model(path)


def canonicalize_saved_model(path):
  """Rewrites saved_model.pb with deterministic protobuf serialization (map entries sorted by key).

  The genuine exporter serializes maps (signature_def, collection_def, node attrs) in hash order, so two exports of the
  same module differ byte-wise although the protos are equal. Re-serializing changes no field, only the byte order of
  map entries, and keeps `make testdata` from rewriting unchanged files.
  """
  from tensorflow.core.protobuf import saved_model_pb2  # pylint: disable=g-import-not-at-top
  filename = os.path.join(path, "saved_model.pb")
  with open(filename, "rb") as f:
    original = saved_model_pb2.SavedModel.FromString(f.read())
  data = original.SerializeToString(deterministic=True)
  if saved_model_pb2.SavedModel.FromString(data) != original:
    raise AssertionError("re-serialization changed %s" % filename)
  with open(filename, "wb") as f:
    f.write(data)


def build_modules(workdir):
  """{name: spec}. Specs are built in graph mode by create_module_spec; nothing is written yet."""
  specs = {}
  specs["convnet_bn"] = hub.create_module_spec(
      convnet_bn_fn, tags_and_args=[(set(), {"is_training": False}), ({"train"}, {"is_training": True})])
  specs["convnet_refvars"] = hub.create_module_spec(
      convnet_refvars_fn, tags_and_args=[(set(), {"is_training": False}), ({"train"}, {"is_training": True})])
  labels_path = os.path.join(workdir, "labels.txt")
  with open(labels_path, "w") as f:
    f.write("".join(label + "\n" for label in LABELS))
  specs["classifier_assets"] = hub.create_module_spec(
      classifier_assets_fn, tags_and_args=[(set(), {"labels_path": labels_path})])
  return specs


def check_module(name, path):
  """Structural checks of what was written (fails loudly instead of producing a misleading corpus)."""
  desc = legacy_oracle.describe(path)
  expected_op = {"convnet_bn": ["VarHandleOp"], "convnet_refvars": ["VariableV2"],
                 "classifier_assets": ["VarHandleOp"]}[name]
  if desc["variable_op_types"] != expected_op:
    raise AssertionError("%s: variable op types %s, expected %s" % (name, desc["variable_op_types"], expected_op))
  if name == "classifier_assets":
    if desc["assets"] != ["labels.txt"] or desc["tags"] != [[]]:
      raise AssertionError("%s: assets %s tags %s" % (name, desc["assets"], desc["tags"]))
  elif desc["update_op_count"] == 0 or desc["regularization_loss_count"] == 0:
    raise AssertionError("%s: no update ops or regularization losses" % name)
  return desc


# ---------------------------------------------------------------------------------------------------------------------
# Inputs


def copy_images():
  if not os.path.isdir(SHARED_IMAGES_DIR):
    return  # keep the committed copies
  os.makedirs(IMAGES_DIR, exist_ok=True)
  for fname in PHOTOS + ("SOURCES.md",):
    shutil.copyfile(os.path.join(SHARED_IMAGES_DIR, fname), os.path.join(IMAGES_DIR, fname))


def load_photo(path, height, width):
  """float32 [height, width, 3] in [0, 1]: grayscale repeated to RGB, alpha dropped, bilinear resize."""
  data = tf.io.read_file(path)
  image = tf.io.decode_image(data, expand_animations=False)
  channels = image.shape[-1]
  if channels == 1:
    image = tf.tile(image, [1, 1, 3])
  elif channels == 4:
    image = image[:, :, :3]
  elif channels != 3:
    raise ValueError("%s: unexpected channel count %d" % (path, channels))
  image = tf.image.convert_image_dtype(image, tf.float32)
  image = tf.image.resize(image, [height, width], method="bilinear", antialias=False)
  return image.numpy().astype(np.float32)


def make_images(height, width):
  photos = [load_photo(os.path.join(IMAGES_DIR, f), height, width) for f in PHOTOS]
  rng = np.random.default_rng(0)
  noise = rng.uniform(0.0, 1.0, size=(NUM_RANDOM_IMAGES, height, width, 3)).astype(np.float32)
  return np.concatenate([np.stack(photos), noise], axis=0).astype(np.float32)


def make_loss_weights(desc, batch):
  tags = "train" if ["train"] in desc["tags"] else "infer"
  shape = desc["outputs"][tags]["default"]["default"]["shape"]
  if shape is None or any(d is None for d in shape[1:]):
    raise ValueError("default output has no static shape: %s" % shape)
  return np.random.default_rng(1).standard_normal([batch] + shape[1:]).astype(np.float32)


# ---------------------------------------------------------------------------------------------------------------------


def main():
  start = time.time()
  for d in (MODULES_DIR, GOLDEN_DIR):
    if os.path.exists(d):
      shutil.rmtree(d)
    os.makedirs(d)
  copy_images()

  workdir = tempfile.mkdtemp(prefix="tf-hub-bridge-testdata-")
  try:
    specs = build_modules(workdir)
    for name, spec in specs.items():
      t0 = time.time()
      path = os.path.join(MODULES_DIR, name)
      export_module(spec, path)
      desc = check_module(name, path)
      height, width = desc["expected_image_size"]
      images = make_images(height, width)
      loss_weights = make_loss_weights(desc, images.shape[0])
      info, arrays = legacy_oracle.answers(path, images, loss_weights, steps=FINETUNE_STEPS, lr=FINETUNE_LR)
      arrays["inputs/images"] = images
      arrays["inputs/loss_weights"] = loss_weights
      legacy_oracle.write_answers(os.path.join(GOLDEN_DIR, name), info, arrays)
      print("%-18s %5.1fs  %d arrays" % (name, time.time() - t0, len(arrays)), file=sys.stderr)
  finally:
    shutil.rmtree(workdir, ignore_errors=True)
  print("testdata regenerated in %.1fs" % (time.time() - start), file=sys.stderr)


if __name__ == "__main__":
  main()
