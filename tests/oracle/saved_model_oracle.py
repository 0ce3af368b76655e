#!/usr/bin/env python
"""Oracle for hub.create_module_spec_from_saved_model: TF1 SavedModels built here, and what the GENUINE library does
with them.

Runs only in the legacy environment (.venv-legacy: tensorflow-cpu 2.15.1, tensorflow-hub 0.15.0). Self-contained
(stdlib + numpy + tensorflow + tensorflow_hub) so that tests run it as one subprocess and compare the project's
re-implementation against the real thing.

CLI:
  saved_model_oracle.py OUT_DIR
      Writes with tf.compat.v1.saved_model.Builder OUT_DIR/saved_model: a `serve` meta graph (signatures
      `serving_default`, two outputs, and `embed`, a vocabulary lookup table on an asset) and an untagged one
      (`default`), variables trainable and not, resource and reference, a global step, the main op, and a `losses`
      collection the TF1 Hub format does not allow; and with simple_save OUT_DIR/serve_only (tags {serve} only).
      Then OUT_DIR/answers.json and OUT_DIR/answers.npz hold what the genuine library does with them, and
      OUT_DIR/exported_spec and OUT_DIR/exported_module the TF1 Hub modules it exports from them.
  saved_model_oracle.py --run MODULE_DIR OUT_PREFIX [MODULE_DIR OUT_PREFIX ...]
      Genuine hub.Module on TF1 Hub modules with these signatures (e.g. ones the shim exported): each one's tags,
      signatures, files, variables and outputs, to OUT_PREFIX.json and OUT_PREFIX.npz.
"""

import json
import os
import sys
import traceback

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_hub as hub  # noqa: E402
from tensorflow.python.ops import lookup_ops  # noqa: E402  (tf.contrib.lookup.index_table_from_file in TF1)

SEED = 0
VOCAB = ["a", "b", "c"]
OOV_BUCKETS = 1
X = (np.arange(12, dtype=np.float32).reshape(4, 3) / 5.0 - 1.0)
WORDS = ["a", "c", "zz", "b"]
DROP = ["losses"]
GLOBAL_STEP = 7
EXPORTED_MEAN = [0.25, 0.75]  # stats/mean as assigned in the session Module.export saves
SERVE = ["serve"]


def build_saved_model(path, vocab_path):
  """The TF1 SavedModel, as an Estimator or serving export writes one."""
  with tf.Graph().as_default():
    x = tf.compat.v1.placeholder(tf.float32, [None, 3], name="x")
    words = tf.compat.v1.placeholder(tf.string, [None], name="words")
    kernel = tf.compat.v1.get_variable("dense/kernel", [3, 2],
                                       initializer=tf.compat.v1.random_normal_initializer(seed=SEED))
    bias = tf.compat.v1.get_variable("dense/bias", [2], initializer=tf.compat.v1.constant_initializer(0.1))
    mean = tf.compat.v1.get_variable("stats/mean", [2], trainable=False, use_resource=False,
                                     initializer=tf.compat.v1.constant_initializer([0.5, -0.25]))
    embeddings = tf.compat.v1.get_variable("embeddings", [len(VOCAB) + OOV_BUCKETS, 2],
                                           initializer=tf.compat.v1.random_normal_initializer(seed=SEED + 1))
    step = tf.compat.v1.train.get_or_create_global_step()
    table = lookup_ops.index_table_from_file(vocab_path, num_oov_buckets=OOV_BUCKETS)
    logits = tf.matmul(x, kernel) + bias - mean
    probabilities = tf.nn.softmax(logits)
    embedding = tf.nn.embedding_lookup(embeddings, table.lookup(words))
    tf.compat.v1.losses.add_loss(tf.reduce_sum(logits))  # collection `losses`: not allowed in a module
    serving = tf.compat.v1.saved_model.predict_signature_def({"x": x}, {"logits": logits,
                                                                         "probabilities": probabilities})
    embed = tf.compat.v1.saved_model.predict_signature_def({"words": words}, {"embedding": embedding})
    default = tf.compat.v1.saved_model.predict_signature_def({"x": x}, {"default": probabilities})
    with tf.compat.v1.Session() as sess:
      sess.run([tf.compat.v1.global_variables_initializer(), tf.compat.v1.tables_initializer()])
      sess.run(step.assign(GLOBAL_STEP))
      builder = tf.compat.v1.saved_model.Builder(path)
      builder.add_meta_graph_and_variables(
          sess, SERVE, signature_def_map={"serving_default": serving, "embed": embed},
          assets_collection=tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.ASSET_FILEPATHS),
          main_op=tf.compat.v1.tables_initializer())
      builder.add_meta_graph([], signature_def_map={"default": default, "embed": embed})
      builder.save()


def build_serve_only(path):
  with tf.Graph().as_default():
    x = tf.compat.v1.placeholder(tf.float32, [None, 3], name="x")
    scale = tf.compat.v1.get_variable("scale", [3], initializer=tf.compat.v1.constant_initializer([1.0, 2.0, 3.0]))
    with tf.compat.v1.Session() as sess:
      sess.run(tf.compat.v1.global_variables_initializer())
      tf.compat.v1.saved_model.simple_save(sess, path, {"x": x}, {"y": x * scale})


def _error(fn):
  try:
    fn()
  except Exception as e:  # pylint: disable=broad-except
    return {"type": type(e).__name__, "is_value_error": isinstance(e, ValueError), "message": str(e)}
  return None


def _info(info):
  shape = info.get_shape()
  return {"dtype": tf.as_dtype(info.dtype).name, "shape": shape.as_list() if shape.rank is not None else None}


def _label(tags):
  return "+".join(sorted(tags)) or "infer"


def describe(spec, answers):
  """Tags, and per graph variant its signatures with their inputs and outputs."""
  answers["tags"] = sorted(sorted(t) for t in spec.get_tags())
  answers["signatures"] = {}
  for tags in spec.get_tags():
    answers["signatures"][_label(tags)] = {
        name: {"inputs": {k: _info(v) for k, v in spec.get_input_info_dict(name, tags).items()},
               "outputs": {k: _info(v) for k, v in spec.get_output_info_dict(name, tags).items()}}
        for name in spec.get_signature_names(tags)}


def _feed(name):
  return {"x": X} if name in ("serving_default", "default") else {"words": tf.constant(WORDS)}


def apply_all(module, tags, arrays, prefix):
  """Every output of every signature of `module` on X / WORDS, into arrays[prefix/<variant>/<signature>/<key>]."""
  fetches = {}
  for name in module.get_signature_names():
    for key, tensor in module(_feed(name), signature=name, as_dict=True).items():
      fetches[f"{prefix}/{_label(tags)}/{name}/{key}"] = tensor
  return fetches


def saved_model_answers(path, answers, arrays):
  answers["unsupported_collections"] = _error(lambda: hub.create_module_spec_from_saved_model(path))
  spec = hub.create_module_spec_from_saved_model(path, drop_collections=DROP)
  describe(spec, answers)
  answers["missing_default_signature"] = _error(lambda: spec.get_input_info_dict(tags=SERVE))

  for tags in spec.get_tags():
    with tf.Graph().as_default():
      module = hub.Module(spec, tags=tags)
      fetches = apply_all(module, tags, arrays, "outputs")
      if tags:
        answers["variable_map"] = {k: v.op.name for k, v in module.variable_map.items()}
        answers["variable_types"] = {k: type(v).__name__ for k, v in module.variable_map.items()}
        answers["global_variables"] = sorted(v.op.name for v in tf.compat.v1.global_variables())
        answers["trainable_variables_untrainable_module"] = sorted(
            v.op.name for v in tf.compat.v1.trainable_variables())
        answers["table_initializers"] = len(tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.TABLE_INITIALIZERS))
      with tf.compat.v1.Session() as sess:
        sess.run([tf.compat.v1.global_variables_initializer(), tf.compat.v1.tables_initializer()])
        arrays.update(sess.run(fetches))
        if tags:
          for name, var in module.variable_map.items():
            arrays["initial/" + name] = sess.run(var)

  with tf.Graph().as_default():
    module = hub.Module(spec, tags=SERVE, trainable=True)
    answers["trainable_variables"] = sorted(v.op.name for v in tf.compat.v1.trainable_variables())

  # Module.export writes the session's values (one of them changed), spec.export the checkpoint's.
  with tf.Graph().as_default():
    module = hub.Module(spec, tags=SERVE)
    assign = tf.compat.v1.assign(module.variable_map["stats/mean"], EXPORTED_MEAN)
    with tf.compat.v1.Session() as sess:
      sess.run(tf.compat.v1.global_variables_initializer())
      sess.run(assign)
      module.export(os.path.join(os.path.dirname(path), "exported_module"), sess)
  spec.export(os.path.join(os.path.dirname(path), "exported_spec"),
              checkpoint_path=os.path.join(path, "variables", "variables"))
  for name in ("exported_module", "exported_spec"):
    answers[name] = run_module(os.path.join(os.path.dirname(path), name), arrays, name)


def serve_only_answers(path, answers, arrays):
  spec = hub.create_module_spec_from_saved_model(path)
  answers["serve_only_tags"] = sorted(sorted(t) for t in spec.get_tags())
  answers["serve_only_spec_export"] = _error(lambda: spec.export(
      os.path.join(os.path.dirname(path), "serve_only_spec_export"),
      checkpoint_path=os.path.join(path, "variables", "variables")))
  answers["serve_only_module_without_tags"] = _error(lambda: hub.Module(spec))
  exported = os.path.join(os.path.dirname(path), "serve_only_exported")
  with tf.Graph().as_default():
    module = hub.Module(spec, tags=SERVE)
    out = module({"x": X}, signature="serving_default", as_dict=True)
    with tf.compat.v1.Session() as sess:
      sess.run(tf.compat.v1.global_variables_initializer())
      arrays["serve_only/y"] = sess.run(out["y"])
      module.export(exported, sess)  # a module of variant {serve} only
  answers["serve_only_exported"] = run_module(exported, arrays, "serve_only_exported")


def run_module(path, arrays, prefix):
  """Genuine hub.Module on an exported module: every variant's outputs and variables (into arrays[prefix/...]),
  and its tags and signatures (returned)."""
  spec = hub.load_module_spec(path)
  result = {"tags": sorted(sorted(t) for t in spec.get_tags()),
            "signatures": {_label(t): sorted(spec.get_signature_names(t)) for t in spec.get_tags()},
            "files": sorted(os.listdir(path)), "assets": sorted(os.listdir(os.path.join(path, "assets")))}
  for tags in spec.get_tags():
    with tf.Graph().as_default():
      module = hub.Module(spec, tags=tags)
      fetches = apply_all(module, tags, arrays, prefix)
      with tf.compat.v1.Session() as sess:
        sess.run([tf.compat.v1.global_variables_initializer(), tf.compat.v1.tables_initializer()])
        arrays.update(sess.run(fetches))
        for name, var in module.variable_map.items():
          arrays[f"{prefix}/variables/{_label(tags)}/{name}"] = sess.run(var)
  return result


def _write(prefix, answers, arrays):
  with open(prefix + ".json", "w") as f:
    json.dump(answers, f, indent=1, sort_keys=True)
  np.savez(prefix + ".npz", **{k: np.asarray(v) for k, v in arrays.items()})


def main(out_dir):
  tf.get_logger().setLevel("ERROR")
  tf.config.experimental.enable_op_determinism()
  sources = os.path.join(out_dir, "sources")
  os.makedirs(sources, exist_ok=True)
  vocab_path = os.path.join(sources, "vocab.txt")
  with open(vocab_path, "w") as f:
    f.write("\n".join(VOCAB) + "\n")
  build_saved_model(os.path.join(out_dir, "saved_model"), vocab_path)
  build_serve_only(os.path.join(out_dir, "serve_only"))
  answers = {"x": X.tolist(), "words": WORDS, "drop_collections": DROP, "global_step": GLOBAL_STEP,
             "exported_mean": EXPORTED_MEAN, "versions": {"tensorflow": tf.__version__,
                                                          "tensorflow_hub": hub.__version__}}
  arrays = {}
  saved_model_answers(os.path.join(out_dir, "saved_model"), answers, arrays)
  serve_only_answers(os.path.join(out_dir, "serve_only"), answers, arrays)
  _write(os.path.join(out_dir, "answers"), answers, arrays)


if __name__ == "__main__":
  try:
    if sys.argv[1] == "--run":
      tf.config.experimental.enable_op_determinism()
      for module_dir, out_prefix in zip(sys.argv[2::2], sys.argv[3::2]):
        found = {}
        info = run_module(module_dir, found, "run")
        info["versions"] = {"tensorflow": tf.__version__, "tensorflow_hub": hub.__version__}
        _write(out_prefix, info, found)
    else:
      main(sys.argv[1])
  except Exception:  # pylint: disable=broad-except
    traceback.print_exc()
    sys.exit(1)
