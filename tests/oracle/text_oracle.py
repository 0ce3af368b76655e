#!/usr/bin/env python
"""Oracle for text modules: builds them with the GENUINE legacy library and answers questions about them.

Runs only in the legacy environment (.venv-legacy: tensorflow-cpu 2.15.1, tensorflow-hub 0.15.0). Self-contained
(stdlib + numpy + tensorflow + tensorflow_hub) so that tests run it as one subprocess and compare the project's
re-implementation against the real thing.

CLI:
  text_oracle.py --run MODULE_DIR OUT.npz
      Runs genuine hub.Module on another text module of the same signatures and writes its outputs.
  text_oracle.py OUT_DIR
      Exports OUT_DIR/text (an NNLM-style text module: vocabulary file asset, lookup tables from it, a partitioned
      embedding, a `default` signature on a string batch, a `tokens` signature with a SparseTensor input and
      sparse + ragged outputs), OUT_DIR/text_train (a text module with a {"train"} variant: dropout and a
      regularization loss), OUT_DIR/refvar (reference variables and colocation constraints) and
      OUT_DIR/keyword_text (signature inputs named `name`, `keys` and `class`), then writes
      OUT_DIR/answers.json and OUT_DIR/answers.npz with what genuine `hub.Module` does with them.
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
VOCAB = ["<unk>", "the", "cat", "sat", "on", "mat", "a", "dog", "ran", "far"]
WEIGHTS = ["the\t0.5", "cat\t2.0", "dog\t1.5", "mat\t1.25"]
DIM = 4
PARTS = 3
OOV_BUCKETS = 2
SENTENCES = ["the cat sat on the mat", "a dog ran far", "zebra cat", "", "dog dog dog the unknownword"]
# A SparseTensor of tokens [3, 4] for the `tokens` signature.
TOKENS = {"indices": [[0, 0], [0, 1], [1, 0], [1, 1], [1, 2], [2, 0]],
          "values": ["the", "cat", "dog", "zebra", "far", "mat"], "dense_shape": [3, 4]}
LR = 0.1
DROPOUT = 0.5
REGULARIZATION = 0.01
STEPS = 3


def text_module_fn(vocab_path, weights_path):
  """NNLM-style: sentences -> tokens -> ids (index_table_from_file) -> sqrtn mean of a partitioned embedding."""
  sentences = tf.compat.v1.placeholder(tf.string, [None], name="sentences")
  ids_table = lookup_ops.index_table_from_file(vocab_path, num_oov_buckets=OOV_BUCKETS)
  weight_table = tf.lookup.StaticHashTable(
      tf.lookup.TextFileInitializer(weights_path, tf.string, 0, tf.float32, 1, delimiter="\t"), 1.0)
  embeddings = tf.compat.v1.get_variable(
      "embeddings", [len(VOCAB) + OOV_BUCKETS, DIM],
      initializer=tf.compat.v1.random_normal_initializer(seed=SEED),
      partitioner=tf.compat.v1.fixed_size_partitioner(PARTS))
  scale = tf.compat.v1.get_variable("scale", [DIM], initializer=tf.compat.v1.ones_initializer())

  def embed(tokens):
    ids = tf.SparseTensor(tokens.indices, ids_table.lookup(tokens.values), tokens.dense_shape)
    weights = tf.SparseTensor(tokens.indices, weight_table.lookup(tokens.values), tokens.dense_shape)
    combined = tf.nn.embedding_lookup_sparse(embeddings, ids, weights, combiner="sqrtn")
    # Rows without tokens come out shorter; pad them back to the batch.
    batch = tf.cast(tokens.dense_shape[0], tf.int32)
    combined = tf.pad(combined, [[0, batch - tf.shape(combined)[0]], [0, 0]])
    return combined * scale, ids

  words = tf.compat.v1.string_split(sentences)
  default, _ = embed(words)
  hub.add_signature("default", {"default": sentences}, {"default": default})

  tokens = tf.compat.v1.sparse_placeholder(tf.string, shape=[None, None], name="tokens")
  token_embedding, token_ids = embed(tokens)
  hub.add_signature("tokens", {"tokens": tokens},
                    {"default": token_embedding, "ids": token_ids,
                     "ragged_ids": tf.RaggedTensor.from_sparse(token_ids)})


def train_module_fn(vocab_path, training):
  """A text module with a {"train"} variant: the same vocabulary table and embedding in both variants, dropout on
  the sentence embedding and an L2 regularization loss in the train variant only."""
  sentences = tf.compat.v1.placeholder(tf.string, [None], name="sentences")
  ids_table = lookup_ops.index_table_from_file(vocab_path, num_oov_buckets=OOV_BUCKETS)
  regularizer = (lambda w: REGULARIZATION * tf.reduce_sum(tf.square(w))) if training else None
  embeddings = tf.compat.v1.get_variable("embeddings", [len(VOCAB) + OOV_BUCKETS, DIM], regularizer=regularizer,
                                         initializer=tf.compat.v1.random_normal_initializer(seed=SEED))
  words = tf.compat.v1.string_split(sentences)
  ids = tf.SparseTensor(words.indices, ids_table.lookup(words.values), words.dense_shape)
  combined = tf.nn.embedding_lookup_sparse(embeddings, ids, None, combiner="sqrtn")
  combined = tf.pad(combined, [[0, tf.shape(sentences)[0] - tf.shape(combined)[0]], [0, 0]])
  if training:
    combined = tf.compat.v1.nn.dropout(combined, rate=DROPOUT, seed=SEED + 1)
  hub.add_signature("default", {"default": sentences}, {"default": combined})


def keyword_text_fn(vocab_path):
  """Signature inputs named like what the converted functions bind themselves (`name`, `keys`) or like a Python
  keyword (`class`), beside a plain `default` signature on sentences."""
  sentences = tf.compat.v1.placeholder(tf.string, [None], name="sentences")
  ids_table = lookup_ops.index_table_from_file(vocab_path, num_oov_buckets=OOV_BUCKETS)
  embeddings = tf.compat.v1.get_variable("embeddings", [len(VOCAB) + OOV_BUCKETS, DIM],
                                         initializer=tf.compat.v1.random_normal_initializer(seed=SEED + 2))
  words = tf.compat.v1.string_split(sentences)
  ids = tf.SparseTensor(words.indices, ids_table.lookup(words.values), words.dense_shape)
  combined = tf.nn.embedding_lookup_sparse(embeddings, ids, None, combiner="mean")
  combined = tf.pad(combined, [[0, tf.shape(sentences)[0] - tf.shape(combined)[0]], [0, 0]])
  name = tf.compat.v1.placeholder_with_default(tf.constant(2.0), [], name="name")
  keys = tf.compat.v1.placeholder_with_default(tf.constant(0.5), [], name="keys")
  klass = tf.compat.v1.placeholder_with_default(tf.constant(1.0), [], name="class")
  hub.add_signature("default", {"default": sentences}, {"default": combined})
  hub.add_signature("scaled", {"sentences": sentences, "name": name, "keys": keys},
                    {"default": combined * name + keys})
  hub.add_signature("keyword", {"sentences": sentences, "class": klass}, {"default": combined * klass})


KEYWORD_INPUTS = {"name": 3.0, "keys": -1.0}  # values given to keyword_text's `scaled` (besides its defaults)


def keyword_text_answers(path, answers, arrays):
  """keyword_text: its signatures, and `scaled` on SENTENCES with KEYWORD_INPUTS (hub.Module takes every input of
  a signature, those with a default too)."""
  spec = hub.load_module_spec(path)
  answers["keyword_text_signatures"] = sorted(spec.get_signature_names())
  answers["keyword_text_inputs"] = {s: sorted(spec.get_input_info_dict(s)) for s in answers["keyword_text_signatures"]}
  with tf.Graph().as_default():
    module = hub.Module(spec)
    given = module(dict(sentences=tf.constant(SENTENCES), **{k: tf.constant(v) for k, v in KEYWORD_INPUTS.items()}),
                   signature="scaled")
    with tf.compat.v1.Session() as sess:
      sess.run([tf.compat.v1.global_variables_initializer(), tf.compat.v1.tables_initializer()])
      arrays["keyword_text/scaled/given"] = sess.run(given)
  answers["keyword_inputs"] = KEYWORD_INPUTS


def refvar_module_fn():
  """Reference variables (VariableV2), an op colocated with one, a variable colocated with another."""
  x = tf.compat.v1.placeholder(tf.float32, [None, 3], name="x")
  with tf.compat.v1.variable_scope("dense", use_resource=False):
    w = tf.compat.v1.get_variable("w", [3, 2], initializer=tf.compat.v1.random_normal_initializer(seed=SEED))
    with tf.compat.v1.colocate_with(w):
      b = tf.compat.v1.get_variable("b", [2], initializer=tf.compat.v1.constant_initializer(0.5))
  with tf.compat.v1.colocate_with(w):
    y = tf.matmul(x, w, name="matmul")
  out = tf.nn.relu(y + b, name="out")
  hub.add_signature(inputs={"x": x}, outputs={"default": out})


def bad_state_colocation_fn():
  x = tf.compat.v1.placeholder(tf.float32, [None], name="x")
  with tf.compat.v1.colocate_with(x):
    v = tf.compat.v1.get_variable("v", [], initializer=tf.compat.v1.zeros_initializer())
  hub.add_signature(inputs=x, outputs=x + v)


def bad_input_colocation_fn():
  x = tf.compat.v1.placeholder(tf.float32, [None], name="x")
  with tf.compat.v1.colocate_with(x):
    y = tf.identity(x, name="y")
  hub.add_signature(inputs=y, outputs=y * 2.0)


def _error(fn):
  try:
    fn()
  except Exception as e:  # pylint: disable=broad-except
    return {"type": type(e).__name__, "is_value_error": isinstance(e, ValueError),
            "first_line": str(e).strip().splitlines()[0]}
  return None


def _info(info):
  shape = info.get_shape()
  return {"dtype": tf.as_dtype(info.dtype).name, "shape": shape.as_list() if shape.rank is not None else None,
          "is_sparse": bool(info.is_sparse), "is_composite": bool(info.is_composite),
          "is_supported_type": bool(info.is_supported_type), "type_spec": type(info.type_spec).__name__}


def _parts(value):
  return list(value) if isinstance(value, (list, tuple)) else [value]


def _assemble(parts, values):
  if len(parts) == 1:
    return values[0]
  full = np.zeros(parts[0]._save_slice_info.full_shape, dtype=values[0].dtype)
  for part, value in zip(parts, values):
    info = part._save_slice_info
    full[tuple(slice(o, o + s) for o, s in zip(info.var_offset, info.var_shape))] = value
  return full


def _tokens_value():
  return tf.compat.v1.SparseTensorValue(np.array(TOKENS["indices"], np.int64), np.array(TOKENS["values"], object),
                                        np.array(TOKENS["dense_shape"], np.int64))


def text_answers(path, answers, arrays):
  spec = hub.load_module_spec(path)
  answers["text_signatures"] = sorted(spec.get_signature_names())
  answers["text_inputs"] = {s: {k: _info(v) for k, v in spec.get_input_info_dict(s).items()}
                            for s in answers["text_signatures"]}
  answers["text_outputs"] = {s: {k: _info(v) for k, v in spec.get_output_info_dict(s).items()}
                             for s in answers["text_signatures"]}

  with tf.Graph().as_default() as graph:
    module = hub.Module(spec)
    answers["text_global_variables"] = sorted(v.op.name for v in tf.compat.v1.global_variables())
    answers["text_variable_map"] = {k: [p.op.name for p in v] if isinstance(v, (list, tuple)) else v.op.name
                                     for k, v in module.variable_map.items()}
    answers["text_table_initializers"] = len(tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.TABLE_INITIALIZERS))
    sentences = tf.compat.v1.placeholder(tf.string, [None])
    out = module(sentences)
    tokens = tf.compat.v1.sparse_placeholder(tf.string, [None, None])
    token_out = module(tokens, signature="tokens", as_dict=True)
    answers["text_token_output_types"] = {k: type(v).__name__ for k, v in token_out.items()}
    with tf.compat.v1.Session() as sess:
      sess.run(tf.compat.v1.global_variables_initializer())
      answers["text_without_tables_initializer"] = _error(lambda: sess.run(out, {sentences: SENTENCES}))
      sess.run(tf.compat.v1.tables_initializer())
      arrays["text/default"] = sess.run(out, {sentences: SENTENCES})
      result = sess.run(token_out, {tokens: _tokens_value()})
      arrays["tokens/default"] = result["default"]
      arrays["tokens/ids/indices"] = result["ids"].indices
      arrays["tokens/ids/values"] = result["ids"].values
      arrays["tokens/ids/dense_shape"] = result["ids"].dense_shape
      arrays["tokens/ragged_ids/flat_values"] = result["ragged_ids"].flat_values
      arrays["tokens/ragged_ids/row_splits"] = result["ragged_ids"].row_splits
      for name, value in module.variable_map.items():
        parts = _parts(value)
        arrays["initial/" + name] = _assemble(parts, sess.run(parts))
    del graph

  with tf.Graph().as_default():
    module = hub.Module(spec)
    out = module(tf.constant(SENTENCES))
    with tf.compat.v1.train.MonitoredSession() as sess:
      arrays["monitored/default"] = sess.run(out)

  with tf.Graph().as_default():
    tf.compat.v1.set_random_seed(SEED)
    module = hub.Module(spec, trainable=True)
    weights = tf.constant(np.linspace(-1.0, 1.0, len(SENTENCES) * DIM, dtype=np.float32).reshape(-1, DIM))
    loss = tf.reduce_sum(module(tf.constant(SENTENCES)) * weights)
    answers["text_trainable_variables"] = sorted(v.op.name for v in tf.compat.v1.trainable_variables())
    train = tf.compat.v1.train.GradientDescentOptimizer(LR).minimize(loss)
    with tf.compat.v1.Session() as sess:
      sess.run([tf.compat.v1.global_variables_initializer(), tf.compat.v1.tables_initializer()])
      losses = []
      for _ in range(STEPS):
        losses.append(sess.run([loss, train])[0])
      arrays["finetune_loss"] = np.array(losses, np.float32)
      for name, value in module.variable_map.items():
        parts = _parts(value)
        arrays["finetune/" + name] = _assemble(parts, sess.run(parts))
      arrays["finetune_weights"] = sess.run(weights)


def train_answers(path, answers, arrays):
  """The train-variant module: inference outputs, the train variant's outputs (fresh session: the dropout op's first
  draw), and a fine-tuning loop on the train variant (one draw per step)."""
  spec = hub.load_module_spec(path)
  answers["train_module_tags"] = sorted(sorted(t) for t in spec.get_tags())
  with tf.Graph().as_default():
    module = hub.Module(spec)
    out = module(tf.constant(SENTENCES))
    with tf.compat.v1.Session() as sess:
      sess.run([tf.compat.v1.global_variables_initializer(), tf.compat.v1.tables_initializer()])
      arrays["train_module/inference"] = sess.run(out)
  with tf.Graph().as_default():
    module = hub.Module(spec, trainable=True, tags={"train"})
    out = module(tf.constant(SENTENCES))
    losses = tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.REGULARIZATION_LOSSES)
    answers["train_module_regularization_losses"] = len(losses)
    answers["train_module_table_initializers"] = len(
        tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.TABLE_INITIALIZERS))
    weights = tf.constant(np.linspace(-1.0, 1.0, len(SENTENCES) * DIM, dtype=np.float32).reshape(-1, DIM))
    loss = tf.reduce_sum(out * weights) + tf.add_n(losses)
    train = tf.compat.v1.train.GradientDescentOptimizer(LR).minimize(loss)
    with tf.compat.v1.Session() as sess:
      sess.run([tf.compat.v1.global_variables_initializer(), tf.compat.v1.tables_initializer()])
      arrays["train_module/regularization"] = sess.run(losses[0])
      values = []
      for _ in range(STEPS):
        values.append(sess.run([out, loss, train])[:2])
      arrays["train_module/train_draws"] = np.stack([v[0] for v in values])
      arrays["train_module/finetune_loss"] = np.array([v[1] for v in values], np.float32)
      arrays["train_module/finetune_embeddings"] = sess.run(module.variable_map["embeddings"])


def refvar_answers(path, answers, arrays):
  spec = hub.load_module_spec(path)
  x_value = np.arange(12, dtype=np.float32).reshape(4, 3) / 10.0 - 0.5
  with tf.Graph().as_default() as graph:
    module = hub.Module(spec, trainable=True)
    answers["refvar_variable_types"] = {k: type(v).__name__ for k, v in module.variable_map.items()}
    answers["refvar_variable_ops"] = {k: v.op.type for k, v in module.variable_map.items()}
    out = module(tf.constant(x_value))
    colocation = {}
    for op in graph.get_operations():
      groups = [g.decode() for g in op.colocation_groups()]
      if groups != ["loc:@" + op.name]:
        colocation[op.name] = groups
    answers["refvar_colocation"] = colocation
    loss = tf.reduce_sum(out * out)
    train = tf.compat.v1.train.GradientDescentOptimizer(LR).minimize(loss)
    with tf.compat.v1.Session() as sess:
      sess.run(tf.compat.v1.global_variables_initializer())
      arrays["refvar/default"] = sess.run(out)
      for _ in range(STEPS):
        sess.run(train)
      for name, var in module.variable_map.items():
        arrays["refvar_finetune/" + name] = sess.run(var)
  arrays["refvar/x"] = x_value
  answers["bad_state_colocation"] = _error(lambda: hub.create_module_spec(bad_state_colocation_fn))
  answers["bad_input_colocation"] = _error(lambda: hub.create_module_spec(bad_input_colocation_fn))


def _wrapped(module_dir, trainable, signature):
  """tf.compat.v1.wrap_function around a hub.Module, in eager mode: (wrapped function, its initializer function)."""
  held = {}

  def fn(value):
    held["module"] = hub.Module(module_dir, trainable=trainable)  # the caller keeps the module, as usual code does
    out = held["module"](value)
    held["init"] = [tf.compat.v1.global_variables_initializer(), tf.compat.v1.tables_initializer()]
    return out

  wrapped = tf.compat.v1.wrap_function(fn, [signature])
  return wrapped, wrapped.prune([], held["init"])


def _error_type(fn):
  try:
    fn()
  except Exception as e:  # pylint: disable=broad-except
    return type(e).__name__
  return None


def wrapped_answers(text_path, refvar_path, answers, arrays):
  """What tf.compat.v1.wrap_function around genuine hub.Module does in eager mode: variables lifted out of the
  traced graph uninitialized, tables and variables filled by running the initializers through prune, then
  outputs and an SGD loop on the wrapper's trainable variables."""
  sentences = tf.constant(SENTENCES)
  for trainable in (False, True):
    wrapped, init = _wrapped(text_path, trainable, tf.TensorSpec([None], tf.string))
    key = "wrapped_trainable" if trainable else "wrapped"
    answers[key] = {
        "before_init": _error_type(lambda: wrapped(sentences)),
        "variables": sorted({v.name for v in wrapped.variables}),
        "trainable_variables": sorted({v.name for v in wrapped.trainable_variables}),
        "collections": {k: len(wrapped.graph.get_collection(k)) for k in (
            tf.compat.v1.GraphKeys.GLOBAL_VARIABLES, tf.compat.v1.GraphKeys.TRAINABLE_VARIABLES,
            tf.compat.v1.GraphKeys.TABLE_INITIALIZERS)}}
    init()
    arrays[key + "/default"] = wrapped(sentences).numpy()
  weights = tf.constant(np.linspace(-1.0, 1.0, len(SENTENCES) * DIM, dtype=np.float32).reshape(-1, DIM))
  losses, with_gradients = [], set()
  for _ in range(STEPS):
    with tf.GradientTape() as tape:
      loss = tf.reduce_sum(wrapped(sentences) * weights)
    for var, grad in zip(wrapped.trainable_variables, tape.gradient(loss, wrapped.trainable_variables)):
      if grad is not None:
        with_gradients.add(var.name)
        var.assign_sub(LR * tf.convert_to_tensor(grad))
    losses.append(float(loss))
  answers["wrapped_trainable"]["with_gradients"] = sorted(with_gradients)
  arrays["wrapped_finetune_loss"] = np.array(losses, np.float32)
  arrays["wrapped_finetune/default"] = wrapped(sentences).numpy()

  wrapped, init = _wrapped(refvar_path, True, tf.TensorSpec([None, 3], tf.float32))
  x = tf.constant(arrays["refvar/x"])
  answers["wrapped_refvar"] = {
      "before_init": _error_type(lambda: wrapped(x)),
      "variables": sorted(v.name for v in wrapped.variables),
      "collection_variables": sorted(v.name for v in wrapped.graph.get_collection(
          tf.compat.v1.GraphKeys.GLOBAL_VARIABLES))}
  init()
  arrays["wrapped_refvar/default"] = wrapped(x).numpy()


def main(out_dir):
  tf.get_logger().setLevel("ERROR")
  tf.config.experimental.enable_op_determinism()
  os.makedirs(out_dir, exist_ok=True)
  sources = os.path.join(out_dir, "sources")
  os.makedirs(sources, exist_ok=True)
  vocab_path = os.path.join(sources, "vocab.txt")
  weights_path = os.path.join(sources, "weights.tsv")
  with open(vocab_path, "w") as f:
    f.write("\n".join(VOCAB) + "\n")
  with open(weights_path, "w") as f:
    f.write("\n".join(WEIGHTS) + "\n")
  answers = {"sentences": SENTENCES, "tokens": TOKENS, "lr": LR, "steps": STEPS, "vocab": VOCAB}
  arrays = {}
  train_args = [(set(), {"vocab_path": vocab_path, "training": False}),
                ({"train"}, {"vocab_path": vocab_path, "training": True})]
  for name, module_fn, tags_and_args in (
      ("text", text_module_fn, [(set(), {"vocab_path": vocab_path, "weights_path": weights_path})]),
      ("text_train", train_module_fn, train_args),
      ("refvar", refvar_module_fn, None),
      ("keyword_text", keyword_text_fn, [(set(), {"vocab_path": vocab_path})])):
    spec = hub.create_module_spec(module_fn, tags_and_args=tags_and_args)
    with tf.Graph().as_default():
      module = hub.Module(spec)
      with tf.compat.v1.Session() as sess:
        sess.run([tf.compat.v1.global_variables_initializer(), tf.compat.v1.tables_initializer()])
        module.export(os.path.join(out_dir, name), sess)
  text_answers(os.path.join(out_dir, "text"), answers, arrays)
  train_answers(os.path.join(out_dir, "text_train"), answers, arrays)
  refvar_answers(os.path.join(out_dir, "refvar"), answers, arrays)
  wrapped_answers(os.path.join(out_dir, "text"), os.path.join(out_dir, "refvar"), answers, arrays)
  keyword_text_answers(os.path.join(out_dir, "keyword_text"), answers, arrays)
  with open(os.path.join(out_dir, "answers.json"), "w") as f:
    json.dump(answers, f, indent=1, sort_keys=True)
  np.savez(os.path.join(out_dir, "answers.npz"), **{k: np.asarray(v) for k, v in arrays.items()})


def run_module(path, out_npz):
  """Genuine hub.Module on another text module (e.g. one written back by the bridge): its `default` outputs on
  SENTENCES and, if it has a `tokens` signature, its outputs on TOKENS, from one graph, after the tables
  initializer; also its signatures, input names and regularization losses (trainable=True, which adds them; the
  graph variant is the inference one either way, variables as exported)."""
  tf.config.experimental.enable_op_determinism()
  arrays = {}
  with tf.Graph().as_default():
    module = hub.Module(path, trainable=True)
    signatures = sorted(module.get_signature_names())
    arrays["signatures"] = np.array(signatures)
    arrays["default/inputs"] = np.array(sorted(module.get_input_info_dict()))
    sentences = tf.compat.v1.placeholder(tf.string, [None])
    out = module(sentences)
    losses = tf.compat.v1.losses.get_regularization_losses()
    if "tokens" in signatures:
      tokens = tf.compat.v1.sparse_placeholder(tf.string, [None, None])
      token_out = module(tokens, signature="tokens", as_dict=True)
    with tf.compat.v1.Session() as sess:
      sess.run([tf.compat.v1.global_variables_initializer(), tf.compat.v1.tables_initializer()])
      arrays["text/default"] = sess.run(out, {sentences: SENTENCES})
      arrays["regularization_losses"] = np.array(sess.run(losses), np.float32)
      if "tokens" in signatures:
        result = sess.run(token_out, {tokens: _tokens_value()})
        arrays["tokens/default"] = result["default"]
        arrays["tokens/ids/values"] = result["ids"].values
        arrays["tokens/ragged_ids/flat_values"] = result["ragged_ids"].flat_values
  np.savez(out_npz, **arrays)


if __name__ == "__main__":
  try:
    if sys.argv[1] == "--run":
      run_module(sys.argv[2], sys.argv[3])
      sys.exit(0)
    main(sys.argv[1])
  except Exception:  # pylint: disable=broad-except
    traceback.print_exc()
    sys.exit(1)
