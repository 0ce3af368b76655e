#!/usr/bin/env python
"""Oracle for building and exporting specs: what the GENUINE legacy library does with `hub.create_module_spec`
mistakes, specs without an inference variant, `ModuleSpec.export(checkpoint_path=...)` with a mismatched
checkpoint, colocation constraints when a module is applied, and the ASSET_FILEPATHS collection.

Runs only in the legacy environment (.venv-legacy: tensorflow-cpu 2.15.1, tensorflow-hub 0.15.0). Self-contained
(stdlib + numpy + tensorflow + tensorflow_hub) so that tests run it as one subprocess (tests/oracle/text_modules.py
`oracle_answers`, cached per machine) and compare the project's re-implementation with the real thing. The
module_fns below are repeated in tests/legacy/hub/test_shim_spec_behaviour.py, which builds the same modules with
the shim.

CLI:
  spec_oracle.py OUT_DIR
      Writes OUT_DIR/answers.json (errors as {type, is_value_error, is_key_error, message}, colocation groups,
      tags, outputs, collection contents) and OUT_DIR/answers.npz (the checkpoint of the export questions).
"""

import json
import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_hub as hub  # noqa: E402
from tensorflow.python.ops import lookup_ops  # noqa: E402

DIM = 4
VOCAB = ["emerson", "lake", "palmer"]
NO_INFERENCE_INPUT = [[1.0, 2.0]]


def _error(fn):
  try:
    fn()
  except Exception as e:  # pylint: disable=broad-except
    return {"type": type(e).__name__, "is_value_error": isinstance(e, ValueError),
            "is_key_error": isinstance(e, KeyError), "is_invalid_argument": isinstance(e, tf.errors.InvalidArgumentError),
            "message": str(e)}
  return None


# -- create_module_spec mistakes ---------------------------------------------------------------------------------

def no_signature_fn():
  tf.compat.v1.placeholder(tf.float32, [None, 2])


def indexed_slices_input_fn():
  x = tf.IndexedSlices(tf.compat.v1.placeholder(tf.int64, None), tf.compat.v1.placeholder(tf.int64, None))
  hub.add_signature(inputs={"x": x}, outputs=x.values)


def indexed_slices_output_fn():
  x = tf.compat.v1.placeholder(tf.int64, None)
  y = tf.compat.v1.placeholder(tf.int64, None)
  hub.add_signature(inputs={"x": x, "y": y}, outputs=tf.IndexedSlices(x, y))


# -- no inference variant ------------------------------------------------------------------------------------------

def scaled_fn(scale):
  x = tf.compat.v1.placeholder(tf.float32, [None, 2])
  w = tf.compat.v1.get_variable("w", [2], initializer=tf.compat.v1.constant_initializer([0.5, 3.0]))
  hub.add_signature(inputs=x, outputs=x * w * scale)


NO_INFERENCE = [({"train"}, {"scale": 2.0}), ({"eval"}, {"scale": 1.0})]


# -- export from a checkpoint --------------------------------------------------------------------------------------

def dense_fn(dim=DIM, dtype=tf.float32):
  x = tf.compat.v1.placeholder(dtype, [None, dim])
  kernel = tf.compat.v1.get_variable("dense/kernel", [dim, dim], dtype=dtype)
  bias = tf.compat.v1.get_variable("dense/bias", [dim], dtype=dtype)
  hub.add_signature(inputs=x, outputs=tf.matmul(x, kernel) + bias)


def write_checkpoint(path, scope):
  """A training checkpoint: the dense layer under `scope`, beside a variable of its own."""
  with tf.Graph().as_default():
    tf.compat.v1.set_random_seed(0)
    tf.compat.v1.get_variable("step", [], initializer=tf.compat.v1.zeros_initializer())
    with tf.compat.v1.variable_scope(scope):
      tf.compat.v1.get_variable("dense/kernel", [DIM, DIM])
      tf.compat.v1.get_variable("dense/bias", [DIM], initializer=tf.compat.v1.ones_initializer())
    saver = tf.compat.v1.train.Saver()
    with tf.compat.v1.Session() as sess:
      sess.run(tf.compat.v1.global_variables_initializer())
      saver.save(sess, path)
      return {v.op.name: sess.run(v) for v in tf.compat.v1.global_variables()}


# -- colocation ----------------------------------------------------------------------------------------------------

def state_colocation_fn():
  """An op colocated with a variable the signature does not read (w) and one colocated with its input."""
  w = tf.Variable(42 + 69, name="w")
  with tf.compat.v1.colocate_with(w.op):
    v = tf.Variable(1.0, name="v")
    y = tf.add(v, 1, name="y")
  x = tf.compat.v1.placeholder(dtype=tf.float32, name="x")
  with tf.compat.v1.colocate_with(x):
    z = tf.add(x, 1, name="z")
  hub.add_signature(inputs=dict(x=x), outputs=dict(y=y, z=z))


def split_colocation_fn():
  """Signature inputs that are two outputs of one op, which a colocation constraint names."""
  x, y = tf.split([1, 2], 2, name="split")
  with tf.compat.v1.colocate_with(x), tf.compat.v1.colocate_with(y):
    z = tf.add(x, y, name="add")
  hub.add_signature(inputs=dict(x=x, y=y), outputs=z, name="both")
  hub.add_signature(inputs=dict(x=x), outputs=z, name="partial")


def colocation_answers(answers):
  spec = hub.create_module_spec(state_colocation_fn)
  with tf.Graph().as_default():
    u = tf.constant(7.0, name="u")
    outputs = hub.Module(spec, name="m")(dict(x=u), as_dict=True)
    answers["state_colocation"] = {k: sorted(g.decode() for g in t.op.colocation_groups())
                                   for k, t in outputs.items()}
  spec = hub.create_module_spec(split_colocation_fn)
  with tf.Graph().as_default():
    u = tf.constant([1], name="u")
    with tf.compat.v1.colocate_with(u):
      v = tf.constant([2], name="v")
    w = tf.constant([3], name="w")
    m = hub.Module(spec, name="m")
    answers["split_colocation_same_place"] = sorted(
        g.decode() for g in m(dict(x=u, y=v), signature="both").op.colocation_groups())
    answers["split_colocation_apart"] = _error(lambda: m(dict(x=u, y=w), signature="both"))
    answers["split_colocation_partial"] = _error(lambda: m(dict(x=u), signature="partial"))


# -- assets --------------------------------------------------------------------------------------------------------

def assets_fn(vocabulary_file):
  indices = tf.compat.v1.placeholder(dtype=tf.int64, name="indices")
  table = lookup_ops.index_to_string_table_from_file(vocabulary_file=vocabulary_file, default_value="UNKNOWN")
  hub.add_signature(inputs=indices, outputs=table.lookup(indices))
  hub.add_signature("twice", inputs=indices, outputs=tf.strings.join([table.lookup(indices)] * 2))


def asset_answers(answers, work):
  """ASSET_FILEPATHS after each step (values with the module's directory as MODULE), for a created spec and for
  its export loaded back."""
  vocabulary_file = os.path.join(work, "tokens.txt")
  with open(vocabulary_file, "w") as f:
    f.write("\n".join(VOCAB) + "\n")
  export_path = os.path.join(work, "assets_module")
  spec = hub.create_module_spec(assets_fn, tags_and_args=[(set(), {"vocabulary_file": vocabulary_file})])

  def collection(sess):
    paths = [sess.run(t).decode() for t in tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.ASSET_FILEPATHS)]
    return [p.replace(export_path, "MODULE").replace(work, "SOURCE") for p in paths]

  steps = {}
  with tf.Graph().as_default():
    module = hub.Module(spec)
    with tf.compat.v1.Session() as sess:
      steps["created/constructed"] = collection(sess)
      out = module(tf.constant([1, 2], dtype=tf.int64))
      steps["created/applied"] = collection(sess)
      module(tf.constant([0], dtype=tf.int64), signature="twice")
      steps["created/applied_twice"] = collection(sess)
      sess.run(tf.compat.v1.tables_initializer())
      answers["asset_lookup"] = [b.decode() for b in sess.run(out)]
      module.export(export_path, sess)
  with tf.Graph().as_default():
    module = hub.Module(export_path)
    out = module(tf.constant([1, 2], dtype=tf.int64))
    with tf.compat.v1.Session() as sess:
      steps["loaded/applied"] = collection(sess)
      steps["loaded/names"] = [t.name for t in tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.ASSET_FILEPATHS)]
  answers["asset_filepaths"] = steps


def main(out_dir):
  tf.get_logger().setLevel("ERROR")
  os.makedirs(out_dir, exist_ok=True)
  work = tempfile.mkdtemp(prefix="spec_oracle_")
  answers = {"dim": DIM, "no_inference_input": NO_INFERENCE_INPUT}
  arrays = {}
  answers["no_signatures"] = _error(lambda: hub.create_module_spec(no_signature_fn))
  answers["indexed_slices_input"] = _error(lambda: hub.create_module_spec(indexed_slices_input_fn))
  answers["indexed_slices_output"] = _error(lambda: hub.create_module_spec(indexed_slices_output_fn))

  spec = hub.create_module_spec(scaled_fn, tags_and_args=NO_INFERENCE)
  answers["no_inference_tags"] = [sorted(t) for t in spec.get_tags()]
  answers["no_inference_signatures_default_tags"] = _error(spec.get_signature_names)
  answers["no_inference_signatures_train"] = spec.get_signature_names(tags={"train"})
  for label, tags in (("none", None), ("empty", set()), ("unknown", {"serve"})):
    with tf.Graph().as_default():
      answers[f"no_inference_module_tags_{label}"] = _error(lambda tags=tags: hub.Module(spec, tags=tags))
  outputs = {}
  for tags, _ in NO_INFERENCE:
    with tf.Graph().as_default():
      out = hub.Module(spec, tags=tags)(tf.constant(NO_INFERENCE_INPUT))
      with tf.compat.v1.Session() as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        outputs["+".join(sorted(tags))] = sess.run(out).tolist()
  answers["no_inference_outputs"] = outputs
  with tf.Graph().as_default():
    module = hub.Module(spec, tags={"train"})
    with tf.compat.v1.Session() as sess:
      sess.run(tf.compat.v1.global_variables_initializer())
      module.export(os.path.join(work, "no_inference"), sess)
  answers["no_inference_exported_tags"] = [
      sorted(t) for t in hub.load_module_spec(os.path.join(work, "no_inference")).get_tags()]
  answers["no_inference_spec_export"] = _error(lambda: spec.export(
      os.path.join(work, "no_inference_spec"), checkpoint_path=os.path.join(work, "nothing")))

  checkpoint = os.path.join(work, "checkpoint", "model")
  values = write_checkpoint(checkpoint, "block")
  arrays.update({"checkpoint/" + k: v for k, v in values.items()})
  export = {}
  for label, fn, transform in (("matching", dense_fn, "block/"), ("wrong_shape", lambda: dense_fn(DIM + 1), "block/"),
                               ("wrong_scope", dense_fn, "block2/"),
                               ("wrong_dtype", lambda: dense_fn(dtype=tf.float64), "block/")):
    target = os.path.join(work, "export_" + label)
    error = _error(lambda fn=fn, transform=transform, target=target: hub.create_module_spec(fn).export(
        target, checkpoint_path=checkpoint, name_transform_fn=lambda name: transform + name))
    if error:
      error["message"] = error["message"].replace(checkpoint, "CHECKPOINT")
    export[label] = {"error": error, "written": sorted(os.listdir(target)) if os.path.isdir(target) else None}
    if not error:
      with tf.Graph().as_default():
        module = hub.Module(target)
        with tf.compat.v1.Session() as sess:
          sess.run(tf.compat.v1.global_variables_initializer())
          for name, value in sess.run(module.variable_map).items():
            arrays[f"exported/{label}/{name}"] = value
  answers["export_from_checkpoint"] = export

  colocation_answers(answers)
  asset_answers(answers, work)
  with open(os.path.join(out_dir, "answers.json"), "w") as f:
    json.dump(answers, f, indent=1, sort_keys=True)
  np.savez(os.path.join(out_dir, "answers.npz"), **arrays)


if __name__ == "__main__":
  main(sys.argv[1])
