#!/usr/bin/env python
"""Oracle for building and exporting specs: what the GENUINE legacy library does with `hub.create_module_spec`
mistakes, specs without an inference variant, `ModuleSpec.export(checkpoint_path=...)` with a mismatched
checkpoint, colocation constraints when a module is applied, and the ASSET_FILEPATHS collection.

Runs only in the legacy environment (.venv-legacy: tensorflow-cpu 2.15.1, tensorflow-hub 0.15.0). Self-contained
(stdlib + numpy + tensorflow + tensorflow_hub) so that tests run it as one subprocess (tests/oracle/text_modules.py
`oracle_answers`, cached per machine) and compare the project's re-implementation with the real thing. The
module_fns come from spec_module_fns.py, which tests/legacy/hub/test_shim_spec_genuine.py builds with the shim.

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
from spec_module_fns import (DIM, NO_INFERENCE, asset_filepath_steps, bind, dense_fn, indexed_slices_input_fn,  # noqa: E402
                             indexed_slices_output_fn, no_signature_fn, scaled_fn, split_colocation_fn,
                             split_colocation_inputs, state_colocation_fn, write_checkpoint)

bind(hub)  # the module_fns call the genuine library's add_signature

NO_INFERENCE_INPUT = [[1.0, 2.0]]


def _error(fn):
  try:
    fn()
  except Exception as e:  # pylint: disable=broad-except
    return {"type": type(e).__name__, "is_value_error": isinstance(e, ValueError),
            "is_key_error": isinstance(e, KeyError), "is_invalid_argument": isinstance(e, tf.errors.InvalidArgumentError),
            "message": str(e)}
  return None


# -- colocation ----------------------------------------------------------------------------------------------------

def colocation_answers(answers):
  spec = hub.create_module_spec(state_colocation_fn)
  with tf.Graph().as_default():
    u = tf.constant(7.0, name="u")
    outputs = hub.Module(spec, name="m")(dict(x=u), as_dict=True)
    answers["state_colocation"] = {k: sorted(g.decode() for g in t.op.colocation_groups())
                                   for k, t in outputs.items()}
  spec = hub.create_module_spec(split_colocation_fn)
  with tf.Graph().as_default():
    u, v, w = split_colocation_inputs()
    m = hub.Module(spec, name="m")
    answers["split_colocation_same_place"] = sorted(
        g.decode() for g in m(dict(x=u, y=v), signature="both").op.colocation_groups())
    answers["split_colocation_apart"] = _error(lambda: m(dict(x=u, y=w), signature="both"))
    answers["split_colocation_partial"] = _error(lambda: m(dict(x=u), signature="partial"))


# -- assets --------------------------------------------------------------------------------------------------------

def asset_answers(answers, work):
  """ASSET_FILEPATHS after each step, for a created spec and for its export loaded back (spec_module_fns)."""
  answers["asset_filepaths"], answers["asset_lookup"], answers["asset_lookup_loaded"] = asset_filepath_steps(work)


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
