#!/usr/bin/env python
"""Oracle for the model zoo: one GENUINE legacy process (tensorflow-hub 0.15 on TF 2.15) answers every question.

Runs only in the legacy environment. Serves jobs, one JSON object per line on stdin, and answers each with one JSON
line on stdout ({"id": ..., "ok": true} or {"id": ..., "ok": false, "error": ...}), so tests can send the questions
about the original modules at once and those about round-tripped modules later, while they convert in parallel.

Job: {"id": str, "module": dir, "inputs": npz (images, loss_weights, optional images_other), "out": npz,
      "momentum": float (fed to every batch_norm_momentum input)}
Answer npz keys (variant label `infer` / `train`, checkpoint names as in hub.Module(...).variable_map):
  outputs/<variant>/<signature>/<key>   every signature of every variant, all its inputs fed
  other_size/<variant>/<signature>/<key> the same at `images_other` (modules taking any size)
  gradients/<name>                       d reduce_sum(default["default"] * loss_weights) / d variable, train variant
  updated/<name>                         every variable after UPDATE_OPS once (train variant, `default` applied)
  updated_hparams/<name>                 the same with `<sig>_with_bn_hparams` applied, momentum fed
plus out + ".json": signatures, inputs, outputs, expected image size, image_module_info, variables (trainable or
not), variable op types, update op and regularization loss counts (the module applied with trainable=True).

Random ops: every stateful random op the module imports gets seed attributes (1, 2) before its session runs, so the
draws are fixed and a converted model given the same seeds draws the same numbers.
"""

import json
import os
import sys
import time
import traceback

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "oracle"))

import legacy_oracle  # noqa: E402  pylint: disable=g-import-not-at-top

legacy_oracle.setup()

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_hub as hub  # noqa: E402
from tensorflow.core.framework import attr_value_pb2  # noqa: E402

tf1 = tf.compat.v1
RANDOM_OP_TYPES = ("RandomUniform", "RandomStandardNormal", "TruncatedNormal", "RandomUniformInt")
SEEDS = (1, 2)
MOMENTUM_KEY = "batch_norm_momentum"


def seed_random_ops(graph):
  """Fixed seed attributes on every stateful random op of the graph: the first run then draws fixed numbers."""
  for op in graph.get_operations():
    if op.type in RANDOM_OP_TYPES:
      op._set_attr("seed", attr_value_pb2.AttrValue(i=SEEDS[0]))  # pylint: disable=protected-access
      op._set_attr("seed2", attr_value_pb2.AttrValue(i=SEEDS[1]))  # pylint: disable=protected-access


def _feeds(spec, signature, tags, images, momentum):
  placeholders, values = {}, {}
  for key, info in spec.get_input_info_dict(signature, tags).items():
    placeholders[key] = tf1.placeholder(info.dtype, info.get_shape(), name="input_" + key)
    if key == MOMENTUM_KEY:
      values[placeholders[key]] = np.float32(momentum)
    elif key == "images":
      values[placeholders[key]] = images
    else:
      raise ValueError("signature %r: no value for input %r" % (signature, key))
  return placeholders, values


def _session(graph):
  seed_random_ops(graph)
  return legacy_oracle._session(graph)  # pylint: disable=protected-access


def outputs(spec, images, momentum, prefix):
  """Every signature of a variant applied in one graph (each application imports its own random ops, all seeded
  alike, so each draws what a graph of its own would)."""
  arrays = {}
  for label, tags in legacy_oracle._variants(spec):  # pylint: disable=protected-access
    graph = legacy_oracle._new_graph()  # pylint: disable=protected-access
    with graph.as_default():
      module = hub.Module(spec, trainable=bool(tags), tags=tags)
      fetches, values = {}, {}
      for signature in sorted(spec.get_signature_names(tags)):
        placeholders, feed = _feeds(spec, signature, tags, images, momentum)
        values.update(feed)
        for key, tensor in module(placeholders, signature=signature, as_dict=True).items():
          fetches["%s/%s/%s/%s" % (prefix, label, signature, key)] = tensor
      with _session(graph) as sess:
        sess.run(tf1.global_variables_initializer())
        arrays.update({k: np.asarray(v) for k, v in sess.run(fetches, values).items()})
  return arrays


def describe(spec, module_dir):
  """The facts tests compare (a cheaper cut of legacy_oracle.describe: no graph of its own)."""
  info = {"tags": [sorted(t) for t in legacy_oracle._sorted_tag_sets(spec)],  # pylint: disable=protected-access
          "signatures": {}, "inputs": {}, "outputs": {}}
  for label, tags in legacy_oracle._variants(spec):  # pylint: disable=protected-access
    names = sorted(spec.get_signature_names(tags))
    info["signatures"][label] = names
    info["inputs"][label] = {s: {k: legacy_oracle._info_json(v)  # pylint: disable=protected-access
                                 for k, v in sorted(spec.get_input_info_dict(s, tags).items())} for s in names}
    info["outputs"][label] = {s: {k: legacy_oracle._info_json(v)  # pylint: disable=protected-access
                                  for k, v in sorted(spec.get_output_info_dict(s, tags).items())} for s in names}
  info["expected_image_size"] = list(hub.get_expected_image_size(spec))
  info["num_image_channels"] = hub.get_num_image_channels(spec)
  message = spec.get_attached_message("image_module_info", hub.ImageModuleInfo, tags=set())
  info["image_module_info"] = None if message is None else {
      "height": message.default_image_size.height, "width": message.default_image_size.width}
  return info


def gradients_and_updates(spec, images, loss_weights, momentum):
  arrays = {}
  tags = {"train"} if legacy_oracle._has_variant(spec, {"train"}) else set()  # pylint: disable=protected-access
  graph = legacy_oracle._new_graph()  # pylint: disable=protected-access
  with graph.as_default():
    module = hub.Module(spec, trainable=True, tags=tags)
    placeholders, values = _feeds(spec, "default", tags, images, momentum)
    default = module(placeholders, signature="default", as_dict=True)["default"]
    loss = tf.reduce_sum(default * tf.constant(loss_weights))
    trainable = {v.name for v in tf1.trainable_variables()}
    variables = legacy_oracle._module_variables(module)  # pylint: disable=protected-access
    names = [n for n, parts in variables if parts[0].name in trainable]
    grads = tf.gradients(loss, [dict(variables)[n][0] for n in names])
    fetch = {n: g for n, g in zip(names, grads) if g is not None}
    update_ops = tf1.get_collection(tf1.GraphKeys.UPDATE_OPS)
    facts = {
        "variables": {n: {"shape": parts[0].shape.as_list(), "dtype": parts[0].dtype.base_dtype.name,
                          "trainable": n in names} for n, parts in variables},
        "variable_op_types": sorted({parts[0].op.type for _, parts in variables}),
        "update_op_count": len(update_ops),
        "regularization_loss_count": len(tf1.get_collection(tf1.GraphKeys.REGULARIZATION_LOSSES)),
    }
    with _session(graph) as sess:
      sess.run(tf1.global_variables_initializer())
      # One step, as a TF1 training loop runs it (minimize under control_dependencies(UPDATE_OPS)): the gradients
      # and the moving-statistics updates come from the same forward pass, so from the same random draws.
      gradients, _ = sess.run([fetch, update_ops if tags else []], values)
      for name, value in gradients.items():
        arrays["gradients/" + name] = value
      if tags:
        for name, value in legacy_oracle._read_variables(sess, variables).items():  # pylint: disable=protected-access
          arrays["updated/" + name] = value
  hparams = sorted(s for s in spec.get_signature_names(tags) if s.endswith("_with_bn_hparams"))
  if tags and hparams:
    graph = legacy_oracle._new_graph()  # pylint: disable=protected-access
    with graph.as_default():
      module = hub.Module(spec, trainable=True, tags=tags)
      placeholders, values = _feeds(spec, hparams[0], tags, images, momentum)
      module(placeholders, signature=hparams[0], as_dict=True)
      variables = legacy_oracle._module_variables(module)  # pylint: disable=protected-access
      with _session(graph) as sess:
        sess.run(tf1.global_variables_initializer())
        sess.run(tf1.get_collection(tf1.GraphKeys.UPDATE_OPS), values)
        for name, value in legacy_oracle._read_variables(sess, variables).items():  # pylint: disable=protected-access
          arrays["updated_hparams/" + name] = value
  return arrays, facts


def answer(job):
  spec = hub.load_module_spec(job["module"])
  with np.load(job["inputs"]) as data:
    inputs = {k: data[k] for k in data.files}
  momentum = job.get("momentum", 0.9)
  arrays = outputs(spec, inputs["images"], momentum, "outputs")
  if "images_other" in inputs:
    arrays.update(outputs(spec, inputs["images_other"], momentum, "other_size"))
  more, facts = gradients_and_updates(spec, inputs["images"], inputs["loss_weights"], momentum)
  arrays.update(more)
  legacy_oracle.save_npz(job["out"], arrays)
  info = describe(spec, job["module"])
  info.update(facts)
  with open(job["out"] + ".json", "w") as f:
    f.write(legacy_oracle.dump_json(info))


def main():
  replies = os.fdopen(os.dup(1), "w")
  os.dup2(2, 1)  # whatever TensorFlow prints goes to stderr; stdout carries only the replies
  for line in sys.stdin:
    if not line.strip():
      continue
    job = json.loads(line)
    start = time.time()
    try:
      answer(job)
      print("zoo oracle: %s in %.1fs" % (job["id"], time.time() - start), file=sys.stderr)
      reply = {"id": job["id"], "ok": True}
    except Exception:  # pylint: disable=broad-except
      reply = {"id": job["id"], "ok": False, "error": traceback.format_exc()[-4000:]}
    replies.write(json.dumps(reply) + "\n")
    replies.flush()


if __name__ == "__main__":
  main()
