#!/usr/bin/env python
"""Oracle: answers about a TF1 Hub format module computed by the GENUINE legacy library.

Runs only in the legacy environment (.venv-legacy: tensorflow-cpu 2.15.1, tensorflow-hub 0.15.0, tf-keras 2.15.0).
It is self-contained on purpose (stdlib + numpy + tensorflow + tensorflow_hub, nothing from this project) so that
tests can run it as a subprocess and compare the project's re-implementation against the real thing.

CLI:
  legacy_oracle.py describe MODULE_DIR
      JSON description of the module on stdout (stdout carries nothing else).
  legacy_oracle.py answers MODULE_DIR INPUTS_NPZ OUT_PREFIX [--steps 3] [--lr 0.01]
      INPUTS_NPZ holds `images` (float32 NHWC) and `loss_weights` (float32, shape [N, *default_output.shape[1:]]).
      Writes OUT_PREFIX.json (description + scalars) and OUT_PREFIX.npz (arrays, keys below).
  legacy_oracle.py run MODULE_DIR INPUTS_NPZ OUT_NPZ [--tags train]
      Writes only `outputs/<variant>/<signature>/<output_key>` for one graph variant.
  legacy_oracle.py batch PLAN_JSON OUT_JSON
      Answers many questions in one process (TensorFlow starts once). PLAN_JSON: {"questions": [{"ask": "describe"
      | "run" | "answers", "module": MODULE_DIR, "inputs": INPUTS_NPZ, "out": OUT_PREFIX, "tags": [...],
      "steps": 3, "lr": 0.01}, ...]}; each answer goes to OUT_PREFIX.json and/or OUT_PREFIX.npz as above.
      OUT_JSON records the library versions that answered: {"tensorflow": ..., "tensorflow_hub": ..., "answered": N}.

NPZ keys (variant label: `infer` for tags set(), `train` for {"train"}, otherwise the sorted tags joined by "+"):
  outputs/<variant>/<signature>/<output_key>   every output of every signature of every variant
  gradients/<checkpoint name>                  d loss / d variable, for the module's trainable variables
  updated/<checkpoint name>                    all variables after running UPDATE_OPS once (train variant only)
  finetune/<checkpoint name>                   all variables after --steps GradientDescent steps
  finetune_loss                                loss before each fine-tuning step
  initial/<checkpoint name>                    all variables right after initialization (the module's weights)
where loss = reduce_sum(default_signature["default"] * loss_weights) (+ regularization losses for fine-tuning).

Every computation runs in its own fresh tf.Graph and tf.compat.v1.Session, with op determinism enabled and fixed
seeds, so results are reproducible bit for bit on the same machine.
"""

import argparse
import io
import json
import os
import sys
import traceback
import zipfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_hub as hub  # noqa: E402

SEED = 0
INFER = "infer"
TRAIN = "train"
LOSS_DESCRIPTION = "reduce_sum(default_signature['default'] * loss_weights)"
_SET_UP = False


def setup():
  """Process-wide settings: determinism, seeds, the tf_keras.legacy_tf_layers alias. Idempotent."""
  global _SET_UP
  if _SET_UP:
    return
  _SET_UP = True
  tf.get_logger().setLevel("ERROR")
  try:
    from absl import logging as absl_logging  # pylint: disable=g-import-not-at-top
    absl_logging.set_verbosity(absl_logging.ERROR)
  except ImportError:
    pass
  tf.config.experimental.enable_op_determinism()
  np.random.seed(SEED)
  register_legacy_tf_layers()


def register_legacy_tf_layers():
  """tf.compat.v1.layers / slim.batch_norm look for tf_keras.legacy_tf_layers; tf-keras 2.15 ships it under src."""
  if "tf_keras.legacy_tf_layers" in sys.modules:
    return
  try:
    import tf_keras.src.legacy_tf_layers as legacy_tf_layers  # pylint: disable=g-import-not-at-top
  except ImportError:
    return
  sys.modules["tf_keras.legacy_tf_layers"] = legacy_tf_layers


# ---------------------------------------------------------------------------------------------------------------------
# Small helpers


def variant_label(tags):
  tags = sorted(tags)
  if not tags:
    return INFER
  if tags == [TRAIN]:
    return TRAIN
  return "+".join(tags)


def _sorted_tag_sets(spec):
  return sorted((sorted(t) for t in spec.get_tags()), key=lambda t: (len(t), t))


def _variants(spec):
  """[(label, frozenset(tags))] for every graph variant, inference first."""
  return [(variant_label(t), frozenset(t)) for t in _sorted_tag_sets(spec)]


def _has_variant(spec, tags):
  return frozenset(tags) in {frozenset(t) for t in spec.get_tags()}


def _primary_tags(spec):
  """Tags used where the brief says `hub.Module(spec)`: set() if that variant exists, else the first variant."""
  if _has_variant(spec, set()):
    return set()
  return set(_sorted_tag_sets(spec)[0])


def _training_tags(spec):
  """{"train"} when the module has a train variant, else the primary variant."""
  if _has_variant(spec, {TRAIN}):
    return {TRAIN}
  return _primary_tags(spec)


def _info_json(info):
  shape = info.get_shape()
  d = {
      "dtype": tf.as_dtype(info.dtype).name,
      "shape": shape.as_list() if shape.rank is not None else None,
  }
  if getattr(info, "is_sparse", False):
    d["sparse"] = True
  elif getattr(info, "is_composite", False):
    d["composite"] = True
  return d


def _load_spec(module_dir):
  return hub.load_module_spec(module_dir)


def _new_graph():
  graph = tf.Graph()
  with graph.as_default():
    tf.compat.v1.set_random_seed(SEED)
  return graph


def _session(graph):
  config = tf.compat.v1.ConfigProto(inter_op_parallelism_threads=1)
  return tf.compat.v1.Session(graph=graph, config=config)


def _module_variables(module):
  """[(checkpoint_name, [variable parts])], sorted by name. Parts has one element unless partitioned."""
  items = []
  for name, value in module.variable_map.items():
    parts = list(value) if isinstance(value, (list, tuple)) else [value]
    items.append((name, parts))
  return sorted(items, key=lambda kv: kv[0])


def _full_shape(parts):
  if len(parts) == 1:
    return parts[0].shape.as_list()
  info = getattr(parts[0], "_save_slice_info", None)
  if info is not None:
    return list(info.full_shape)
  shapes = [p.shape.as_list() for p in parts]
  return [sum(s[0] for s in shapes)] + shapes[0][1:]


def _assemble(parts, values):
  """Joins the values of a (possibly partitioned) variable into one array."""
  if len(parts) == 1:
    return values[0]
  infos = [getattr(p, "_save_slice_info", None) for p in parts]
  if all(i is not None for i in infos):
    full = np.zeros(infos[0].full_shape, dtype=values[0].dtype)
    for info, value in zip(infos, values):
      index = tuple(slice(o, o + s) for o, s in zip(info.var_offset, info.var_shape))
      full[index] = value
    return full
  return np.concatenate(values, axis=0)


def _placeholders(spec, signature, tags):
  inputs = spec.get_input_info_dict(signature, tags)
  feeds = {}
  for key, info in inputs.items():
    if getattr(info, "is_sparse", False) or getattr(info, "is_composite", False):
      raise ValueError("signature %r input %r is not a dense tensor" % (signature, key))
    feeds[key] = tf.compat.v1.placeholder(info.dtype, info.get_shape(), name="input_" + key)
  return feeds


def _image_input_key(spec, signature, tags):
  """The input key that receives the image batch, or None when the signature cannot be fed images alone."""
  keys = sorted(spec.get_input_info_dict(signature, tags))
  if keys == ["images"]:
    return "images"
  if len(keys) == 1:
    return keys[0]
  return None


def _to_numpy(value):
  value = np.asarray(value)
  if value.dtype == object:
    value = value.astype(np.bytes_)
  return value


def _read_variables(sess, variables):
  """{checkpoint_name: np.ndarray} for [(name, parts)]."""
  fetches = {name: parts for name, parts in variables}
  values = sess.run(fetches)
  return {name: _assemble(parts, values[name]) for name, parts in variables}


def _default_signature_name(spec, tags):
  names = spec.get_signature_names(tags)
  if "default" in names:
    return "default"
  return None


# ---------------------------------------------------------------------------------------------------------------------
# describe


def describe(module_dir):
  """The JSON-able description of the module (see the module docstring / testdata/README.md)."""
  setup()
  spec = _load_spec(module_dir)
  variants = _variants(spec)
  result = {
      "tf_version": tf.__version__,
      "hub_version": hub.__version__,
      "tags": [sorted(t) for t in _sorted_tag_sets(spec)],
  }
  result["tags"].sort()
  result["signatures"] = {}
  result["inputs"] = {}
  result["outputs"] = {}
  for label, tags in variants:
    names = sorted(spec.get_signature_names(tags))
    result["signatures"][label] = names
    result["inputs"][label] = {
        s: {k: _info_json(v) for k, v in sorted(spec.get_input_info_dict(s, tags).items())} for s in names}
    result["outputs"][label] = {
        s: {k: _info_json(v) for k, v in sorted(spec.get_output_info_dict(s, tags).items())} for s in names}

  for field, fn in (("expected_image_size", hub.get_expected_image_size),
                    ("num_image_channels", hub.get_num_image_channels)):
    try:
      value = fn(spec)
      result[field] = list(value) if isinstance(value, (list, tuple)) else int(value)
    except Exception as e:  # pylint: disable=broad-except
      result[field] = None
      result[field + "_error"] = "%s: %s" % (type(e).__name__, e)

  try:
    info = spec.get_attached_message("image_module_info", hub.ImageModuleInfo, tags=set())
    result["image_module_info"] = None if info is None else {
        "height": info.default_image_size.height, "width": info.default_image_size.width}
  except Exception as e:  # pylint: disable=broad-except
    result["image_module_info"] = None
    result["image_module_info_error"] = "%s: %s" % (type(e).__name__, e)

  # Variables, as seen by hub.Module(spec, trainable=True).
  graph = _new_graph()
  with graph.as_default():
    module = hub.Module(spec, trainable=True, tags=_primary_tags(spec))
    trainable_names = {v.name for v in tf.compat.v1.trainable_variables()}
    variables = _module_variables(module)
    result["variables"] = {
        name: {
            "shape": _full_shape(parts),
            "dtype": parts[0].dtype.base_dtype.name,
            "trainable": all(p.name in trainable_names for p in parts),
        } for name, parts in variables}
    result["variable_op_types"] = sorted({p.op.type for _, parts in variables for p in parts})

  # Update ops and regularization losses: trainable=True, train variant (else the primary one), module applied once.
  counts = _collections_after_apply(spec, _training_tags(spec))
  result.update(counts)

  assets_dir = os.path.join(module_dir, "assets")
  assets = []
  if os.path.isdir(assets_dir):
    for root, _, files in os.walk(assets_dir):
      for f in files:
        assets.append(os.path.relpath(os.path.join(root, f), assets_dir).replace(os.sep, "/"))
  result["assets"] = sorted(assets)
  return result


def _collections_after_apply(spec, tags):
  graph = _new_graph()
  with graph.as_default():
    module = hub.Module(spec, trainable=True, tags=tags)
    signature = _default_signature_name(spec, tags) or sorted(spec.get_signature_names(tags))[0]
    module(_placeholders(spec, signature, tags), signature=signature, as_dict=True)
    return {
        "update_op_count": len(tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.UPDATE_OPS)),
        "regularization_loss_count": len(
            tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.REGULARIZATION_LOSSES)),
    }


# ---------------------------------------------------------------------------------------------------------------------
# run / answers


def run_outputs(module_dir, images, tags=(), spec=None):
  """({"outputs/<variant>/<sig>/<key>": array}, {what was skipped: why}) for one variant; a fresh graph per signature."""
  setup()
  spec = spec or _load_spec(module_dir)
  tags = set(tags)
  label = variant_label(tags)
  arrays, skipped = {}, {}
  for signature in sorted(spec.get_signature_names(tags)):
    key = _image_input_key(spec, signature, tags)
    if key is None:
      skipped[signature] = "inputs %s cannot be fed from images alone" % sorted(
          spec.get_input_info_dict(signature, tags))
      continue
    graph = _new_graph()
    with graph.as_default():
      module = hub.Module(spec, trainable=bool(tags), tags=tags)
      feeds = _placeholders(spec, signature, tags)
      outputs = module(feeds, signature=signature, as_dict=True)
      dense = {}
      for out_key, tensor in sorted(outputs.items()):
        if isinstance(tensor, tf.Tensor):
          dense[out_key] = tensor
        else:
          skipped["%s/%s" % (signature, out_key)] = "not a dense tensor (%s)" % type(tensor).__name__
      with _session(graph) as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        sess.run(tf.compat.v1.tables_initializer())
        values = sess.run(dense, {feeds[key]: images})
    for out_key, value in values.items():
      arrays["outputs/%s/%s/%s" % (label, signature, out_key)] = _to_numpy(value)
  return arrays, skipped


def _build_loss(spec, tags, images, loss_weights):
  """Applies the module (trainable=True) in the current graph; returns (module, feed_dict, loss).

  The `default` signature is applied and loss = reduce_sum(outputs["default"] * loss_weights). A module whose
  `default` signature is missing or cannot be fed images gets its first feedable signature applied instead (so update
  ops and regularization losses still exist) and loss None.
  """
  module = hub.Module(spec, trainable=True, tags=tags)
  names = sorted(spec.get_signature_names(tags))
  feedable = [s for s in names if _image_input_key(spec, s, tags) is not None]
  if not feedable:
    raise ValueError("no signature of variant %s can be fed images alone" % sorted(tags))
  signature = "default" if "default" in feedable else feedable[0]
  key = _image_input_key(spec, signature, tags)
  feeds = _placeholders(spec, signature, tags)
  outputs = module(feeds, signature=signature, as_dict=True)
  loss = None
  if signature == "default" and isinstance(outputs.get("default"), tf.Tensor):
    default = outputs["default"]
    weights = tf.constant(loss_weights, dtype=default.dtype, name="loss_weights")
    loss = tf.reduce_sum(default * weights, name="oracle_loss")
  return module, {feeds[key]: images}, loss


def answers(module_dir, images, loss_weights, steps=3, lr=0.01):
  """(json_dict, {npz_key: array}): the full set of golden answers for one module."""
  setup()
  images = np.asarray(images, dtype=np.float32)
  loss_weights = np.asarray(loss_weights, dtype=np.float32)
  spec = _load_spec(module_dir)
  info = describe(module_dir)
  has_train = _has_variant(spec, {TRAIN})
  train_tags = _training_tags(spec)
  arrays = {}
  notes = {}

  # 1. Outputs of every signature of every variant.
  skipped = {}
  for label, tags in _variants(spec):
    out, skip = run_outputs(module_dir, images, tags, spec=spec)
    arrays.update(out)
    if skip:
      skipped[label] = skip
  if skipped:
    notes["outputs_skipped"] = skipped

  # 2. Gradients of the loss w.r.t. the module's trainable variables.
  graph = _new_graph()
  with graph.as_default():
    module, feed, loss = _build_loss(spec, train_tags, images, loss_weights)
    trainable_names = {v.name for v in tf.compat.v1.trainable_variables()}
    trainable = [(n, parts) for n, parts in _module_variables(module)
                 if all(p.name in trainable_names for p in parts)]
    flat = [p for _, parts in trainable for p in parts] if loss is not None else []
    grads = tf.gradients(loss, flat) if flat else []
    fetch, none_grads, i = {}, [], 0
    for name, parts in (trainable if flat else []):
      g = grads[i:i + len(parts)]
      i += len(parts)
      if any(x is None for x in g):
        none_grads.append(name)
        continue
      fetch[name] = [tf.convert_to_tensor(x) for x in g]
    with _session(graph) as sess:
      sess.run(tf.compat.v1.global_variables_initializer())
      sess.run(tf.compat.v1.tables_initializer())
      values = sess.run(fetch, feed) if fetch else {}
    for name, parts in trainable:
      if name in values:
        arrays["gradients/" + name] = _assemble(parts, values[name])
  if loss is None:
    notes["gradients_skipped"] = "no default signature with a dense 'default' output fed by images"
  notes["gradient_variant"] = variant_label(train_tags)
  notes["trainable_variable_count"] = len(trainable)
  notes["gradients_none"] = none_grads

  # 3. Variables after running UPDATE_OPS once (train variant only).
  if has_train:
    graph = _new_graph()
    with graph.as_default():
      module, feed, _ = _build_loss(spec, {TRAIN}, images, loss_weights)
      update_ops = tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.UPDATE_OPS)
      variables = _module_variables(module)
      with _session(graph) as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        sess.run(tf.compat.v1.tables_initializer())
        initial = _read_variables(sess, variables)
        if update_ops:
          sess.run(update_ops, feed)
        updated = _read_variables(sess, variables)
    for name, value in updated.items():
      arrays["updated/" + name] = value
    notes["updated_update_op_count"] = len(update_ops)
  else:
    initial = None

  # 4. Classic TF1 fine-tuning loop.
  graph = _new_graph()
  finetune = {"steps": int(steps), "lr": float(lr), "optimizer": "GradientDescent"}
  with graph.as_default():
    module, feed, loss = _build_loss(spec, train_tags, images, loss_weights)
    reg_losses = tf.compat.v1.losses.get_regularization_losses()
    reg_sum = tf.add_n(reg_losses) if reg_losses else None
    total = loss + reg_sum if (reg_sum is not None and loss is not None) else loss
    update_ops = tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.UPDATE_OPS)
    variables = _module_variables(module)
    skip_reason = None
    if total is None:
      skip_reason = "no loss (no default signature with a dense 'default' output fed by images)"
    elif not tf.compat.v1.trainable_variables():
      skip_reason = "no trainable variables"
    else:
      try:
        with tf.control_dependencies(update_ops):
          train_op = tf.compat.v1.train.GradientDescentOptimizer(lr).minimize(total)
      except ValueError as e:  # e.g. "No gradients provided for any variable"
        skip_reason = "minimize() failed: %s" % e
    has_trainable = skip_reason is None
    with _session(graph) as sess:
      sess.run(tf.compat.v1.global_variables_initializer())
      sess.run(tf.compat.v1.tables_initializer())
      values = _read_variables(sess, variables)
      if initial is None:
        initial = values
      reg_value = float(sess.run(reg_sum, feed)) if reg_sum is not None else None
      if has_trainable:
        losses = []
        for _ in range(int(steps)):
          losses.append(sess.run(total, feed))
          sess.run(train_op, feed)
        finetuned = _read_variables(sess, variables)
  if has_trainable:
    for name, value in finetuned.items():
      arrays["finetune/" + name] = value
    arrays["finetune_loss"] = np.asarray(losses, dtype=np.float32)
  else:
    finetune["skipped"] = skip_reason
  for name, value in initial.items():
    arrays["initial/" + name] = value

  info.update({
      "regularization_loss_sum": reg_value,
      "has_train_variant": has_train,
      "loss": LOSS_DESCRIPTION,
      "finetune": finetune,
      "notes": notes,
  })
  return info, arrays


# ---------------------------------------------------------------------------------------------------------------------
# Files


def save_npz(path, arrays):
  """np.savez_compressed with fixed zip metadata, so equal arrays give byte-identical files."""
  with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
    for key in sorted(arrays):
      buf = io.BytesIO()
      np.lib.format.write_array(buf, np.ascontiguousarray(arrays[key]), allow_pickle=False)
      zinfo = zipfile.ZipInfo(key + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
      zinfo.compress_type = zipfile.ZIP_DEFLATED
      zinfo.external_attr = 0o644 << 16
      zf.writestr(zinfo, buf.getvalue())


def dump_json(obj):
  return json.dumps(obj, indent=2, sort_keys=True) + "\n"


def write_answers(out_prefix, info, arrays):
  with open(out_prefix + ".json", "w") as f:
    f.write(dump_json(info))
  save_npz(out_prefix + ".npz", arrays)


def _load_inputs(path):
  with np.load(path, allow_pickle=False) as data:
    images = np.asarray(data["images"], dtype=np.float32)
    weights = np.asarray(data["loss_weights"], dtype=np.float32) if "loss_weights" in data.files else None
  return images, weights


def batch(plan):
  """Answers every question of `plan` (see the module docstring) and returns the versions that answered."""
  setup()
  for question in plan["questions"]:
    ask, module_dir, out = question["ask"], question["module"], question["out"]
    if ask == "describe":
      with open(out + ".json", "w") as f:
        f.write(dump_json(describe(module_dir)))
    elif ask == "run":
      images, _ = _load_inputs(question["inputs"])
      arrays, _ = run_outputs(module_dir, images, set(question.get("tags") or ()))
      save_npz(out + ".npz", arrays)
    elif ask == "answers":
      images, weights = _load_inputs(question["inputs"])
      info, arrays = answers(module_dir, images, weights, steps=question.get("steps", 3), lr=question.get("lr", 0.01))
      write_answers(out, info, arrays)
    else:
      raise ValueError("unknown question %r" % ask)
  return {"tensorflow": tf.__version__, "tensorflow_hub": hub.__version__, "answered": len(plan["questions"])}


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  sub = parser.add_subparsers(dest="command", required=True)
  p = sub.add_parser("describe")
  p.add_argument("module_dir")
  p = sub.add_parser("answers")
  p.add_argument("module_dir")
  p.add_argument("inputs_npz")
  p.add_argument("out_prefix")
  p.add_argument("--steps", type=int, default=3)
  p.add_argument("--lr", type=float, default=0.01)
  p = sub.add_parser("batch")
  p.add_argument("plan_json")
  p.add_argument("out_json")
  p = sub.add_parser("run")
  p.add_argument("module_dir")
  p.add_argument("inputs_npz")
  p.add_argument("out_npz")
  p.add_argument("--tags", action="append", default=[],
                 help="graph variant tag; repeat or comma-separate for several (default: the empty tag set)")
  args = parser.parse_args(argv)

  # Keep stdout clean: anything written to fd 1 while working (C++ or Python) goes to stderr instead.
  sys.stdout.flush()
  real_stdout = os.dup(1)
  os.dup2(2, 1)
  try:
    setup()
    if args.command == "describe":
      text = dump_json(describe(args.module_dir))
    elif args.command == "answers":
      images, weights = _load_inputs(args.inputs_npz)
      if weights is None:
        raise ValueError("%s has no 'loss_weights' array" % args.inputs_npz)
      info, arrays = answers(args.module_dir, images, weights, steps=args.steps, lr=args.lr)
      write_answers(args.out_prefix, info, arrays)
      text = ""
    elif args.command == "batch":
      with open(args.plan_json) as f:
        versions = batch(json.load(f))
      with open(args.out_json, "w") as f:
        f.write(dump_json(versions))
      text = ""
    else:
      images, _ = _load_inputs(args.inputs_npz)
      tags = {t for arg in args.tags for t in arg.split(",") if t}
      arrays, skipped = run_outputs(args.module_dir, images, tags)
      if skipped:
        print("skipped: %s" % json.dumps(skipped), file=sys.stderr)
      save_npz(args.out_npz, arrays)
      text = ""
  except Exception:  # pylint: disable=broad-except
    traceback.print_exc(file=sys.stderr)
    sys.stderr.flush()
    return 1
  finally:
    sys.stdout.flush()
    os.dup2(real_stdout, 1)
    os.close(real_stdout)
  if text:
    sys.stdout.write(text)
    sys.stdout.flush()
  return 0


if __name__ == "__main__":
  sys.exit(main())
