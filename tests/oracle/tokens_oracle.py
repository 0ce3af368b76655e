#!/usr/bin/env python
"""Oracle for token-id modules (BERT-style): built with the GENUINE legacy library, answers about them.

Runs only in the legacy environment (.venv-legacy: tensorflow-cpu 2.15.1, tensorflow-hub 0.15.0). Self-contained
(stdlib + numpy + tensorflow + tensorflow_hub) so that tests run it as one subprocess.

CLI:
  tokens_oracle.py OUT_DIR
      Exports OUT_DIR/tokens: a BERT-style module whose `tokens` signature takes three int32 [batch, seq] inputs
      (input_ids, input_mask, segment_ids) and returns pooled_output [batch, H] and sequence_output [batch, seq, H];
      a `tokenization_info` signature without inputs (the vocabulary asset path and do_lower_case); a {"train"}
      variant with dropout and an L2 regularization loss. Writes OUT_DIR/answers.json and OUT_DIR/answers.npz with
      what genuine hub.Module returns on INPUTS.
  tokens_oracle.py --run MODULE_DIR OUT.npz
      Genuine hub.Module on another module with a `tokens` signature (e.g. one written back by the bridge): its
      signatures, input names and `tokens` outputs on INPUTS (for an ELMo-style module: both signatures' outputs).
Also exports OUT_DIR/elmo: an ELMo-style module (`default` on sentences; `tokens` on padded words [batch, len] and
their lengths [batch], a string and an int input) with its outputs.
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
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "the", "cat", "sat", "on", "mat", "dog", "ran", "far"]
HIDDEN = 6
MAX_LEN = 16
DROPOUT = 0.1
REGULARIZATION = 0.01
# Three sequences of length 5: [CLS] words [SEP] padding, two segments in the second one.
INPUTS = {
    "input_ids": [[2, 4, 5, 6, 3], [2, 9, 10, 3, 11], [2, 8, 3, 0, 0]],
    "input_mask": [[1, 1, 1, 1, 1], [1, 1, 1, 1, 1], [1, 1, 1, 0, 0]],
    "segment_ids": [[0, 0, 0, 0, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]],
}


def tokens_module_fn(vocab_path, training):
  """Embeddings of ids, segments and positions, a masked self-attention-like mix, a dense layer; pooled from
  [CLS]. Dropout and an L2 loss in the train variant."""
  input_ids = tf.compat.v1.placeholder(tf.int32, [None, None], name="input_ids")
  input_mask = tf.compat.v1.placeholder(tf.int32, [None, None], name="input_mask")
  segment_ids = tf.compat.v1.placeholder(tf.int32, [None, None], name="segment_ids")
  init = tf.compat.v1.random_normal_initializer(stddev=0.5, seed=SEED)
  regularizer = (lambda w: REGULARIZATION * tf.reduce_sum(tf.square(w))) if training else None
  with tf.compat.v1.variable_scope("bert"):
    words = tf.compat.v1.get_variable("embeddings/word", [len(VOCAB), HIDDEN], initializer=init,
                                      regularizer=regularizer)
    segments = tf.compat.v1.get_variable("embeddings/segment", [2, HIDDEN], initializer=init)
    positions = tf.compat.v1.get_variable("embeddings/position", [MAX_LEN, HIDDEN], initializer=init)
    kernel = tf.compat.v1.get_variable("encoder/kernel", [HIDDEN, HIDDEN], initializer=init)
    bias = tf.compat.v1.get_variable("encoder/bias", [HIDDEN], initializer=tf.compat.v1.constant_initializer(0.1))
    pool_kernel = tf.compat.v1.get_variable("pooler/kernel", [HIDDEN, HIDDEN], initializer=init)
    length = tf.shape(input_ids)[1]
    x = tf.gather(words, input_ids) + tf.gather(segments, segment_ids) + positions[tf.newaxis, :length]
    if training:
      x = tf.compat.v1.nn.dropout(x, rate=DROPOUT, seed=SEED + 1)
    mask = tf.cast(input_mask, tf.float32)
    scores = tf.matmul(x, x, transpose_b=True) / np.sqrt(HIDDEN) + (1.0 - mask[:, tf.newaxis, :]) * -10000.0
    mixed = tf.matmul(tf.nn.softmax(scores), x)
    sequence_output = tf.tanh(tf.tensordot(mixed + x, kernel, 1) + bias)
    pooled_output = tf.tanh(tf.matmul(sequence_output[:, 0], pool_kernel))
  hub.add_signature("tokens", {"input_ids": input_ids, "input_mask": input_mask, "segment_ids": segment_ids},
                    {"pooled_output": pooled_output, "sequence_output": sequence_output})
  vocab_file = tf.constant(vocab_path)
  tf.compat.v1.add_to_collection(tf.compat.v1.GraphKeys.ASSET_FILEPATHS, vocab_file)
  hub.add_signature("tokenization_info", inputs={},
                    outputs={"vocab_file": vocab_file, "do_lower_case": tf.constant(True)})


ELMO_WORDS = ["<S>", "</S>", "<UNK>", "the", "cat", "sat", "on", "mat", "a", "dog"]
SENTENCES = ["the cat sat", "a dog", "the mat on the cat"]
# The `tokens` signature's inputs: padded words and the number of real ones per row.
ELMO_TOKENS = [["the", "cat", "sat", "", ""], ["a", "dog", "", "", ""], ["the", "mat", "on", "the", "cat"]]
ELMO_LENGTHS = [3, 2, 5]


def elmo_module_fn(vocab_path):
  """ELMo-style: `default` on sentences, `tokens` on padded words plus their lengths (a string and an int input),
  both through one vocabulary table and embedding; `elmo` is the per-word output, masked beyond each length."""
  ids_table = lookup_ops.index_table_from_file(vocab_path, default_value=2)
  embeddings = tf.compat.v1.get_variable("embeddings", [len(ELMO_WORDS), HIDDEN],
                                         initializer=tf.compat.v1.random_normal_initializer(seed=SEED))
  kernel = tf.compat.v1.get_variable("kernel", [HIDDEN, HIDDEN],
                                     initializer=tf.compat.v1.random_normal_initializer(seed=SEED + 2))

  def encode(words, lengths):
    mask = tf.sequence_mask(lengths, tf.shape(words)[1], dtype=tf.float32)
    per_word = tf.tanh(tf.tensordot(tf.gather(embeddings, ids_table.lookup(words)), kernel, 1)) * mask[..., None]
    mean = tf.reduce_sum(per_word, 1) / tf.maximum(tf.reduce_sum(mask, 1, keepdims=True), 1.0)
    return mean, per_word

  sentences = tf.compat.v1.placeholder(tf.string, [None], name="sentences")
  words = tf.compat.v1.string_split(sentences)
  dense = tf.sparse.to_dense(words, default_value="")
  lengths = tf.cast(tf.math.bincount(tf.cast(words.indices[:, 0], tf.int32), minlength=tf.shape(sentences)[0]),
                    tf.int32)
  mean, _ = encode(dense, lengths)
  hub.add_signature("default", {"default": sentences}, {"default": mean})
  tokens = tf.compat.v1.placeholder(tf.string, [None, None], name="tokens")
  sequence_len = tf.compat.v1.placeholder(tf.int32, [None], name="sequence_len")
  mean, per_word = encode(tokens, sequence_len)
  hub.add_signature("tokens", {"tokens": tokens, "sequence_len": sequence_len}, {"default": mean, "elmo": per_word})


def run_elmo(path, arrays, prefix=""):
  """Genuine outputs of both signatures of an ELMo-style module on SENTENCES / ELMO_TOKENS + ELMO_LENGTHS."""
  with tf.Graph().as_default():
    module = hub.Module(path)
    arrays[prefix + "elmo_signatures"] = np.array(sorted(module.get_signature_names()))
    default = module(tf.constant(SENTENCES))
    tokens = module({"tokens": tf.constant(ELMO_TOKENS), "sequence_len": tf.constant(ELMO_LENGTHS)},
                    signature="tokens", as_dict=True)
    with tf.compat.v1.Session() as sess:
      sess.run([tf.compat.v1.global_variables_initializer(), tf.compat.v1.tables_initializer()])
      arrays[prefix + "elmo/default"] = sess.run(default)
      for key, value in sess.run(tokens).items():
        arrays[f"{prefix}elmo_tokens/{key}"] = value


def _inputs():
  return {k: np.array(v, np.int32) for k, v in INPUTS.items()}


def run_tokens(path, arrays, prefix=""):
  """Genuine outputs of the `tokens` signature on INPUTS (inference variant, trainable so that regularization
  losses are collected) and the module's signature names and input keys."""
  with tf.Graph().as_default():
    module = hub.Module(path, trainable=True)
    signatures = sorted(module.get_signature_names())
    arrays[prefix + "signatures"] = np.array(signatures)
    arrays[prefix + "tokens/inputs"] = np.array(sorted(module.get_input_info_dict("tokens")))
    out = module({k: tf.constant(v) for k, v in _inputs().items()}, signature="tokens", as_dict=True)
    info = module(signature="tokenization_info", as_dict=True) if "tokenization_info" in signatures else {}
    losses = tf.compat.v1.losses.get_regularization_losses()
    with tf.compat.v1.Session() as sess:
      sess.run([tf.compat.v1.global_variables_initializer(), tf.compat.v1.tables_initializer()])
      for key, value in sess.run(out).items():
        arrays[f"{prefix}tokens/{key}"] = value
      arrays[prefix + "regularization_losses"] = np.array(sess.run(losses), np.float32)
      if info:
        value = sess.run(info)
        arrays[prefix + "tokenization_info/do_lower_case"] = np.array(value["do_lower_case"])
        # Where the module's asset is, relative to the module: assets/<name> when the path is the module's own.
        arrays[prefix + "tokenization_info/vocab_file"] = np.array(
            os.path.relpath(value["vocab_file"].decode(), path))
        with open(value["vocab_file"].decode()) as f:
          arrays[prefix + "tokenization_info/vocab"] = np.array(f.read().split())


def main(out_dir):
  tf.get_logger().setLevel("ERROR")
  tf.config.experimental.enable_op_determinism()
  os.makedirs(out_dir, exist_ok=True)
  sources = os.path.join(out_dir, "sources")
  os.makedirs(sources, exist_ok=True)
  vocab_path = os.path.join(sources, "vocab.txt")
  with open(vocab_path, "w") as f:
    f.write("\n".join(VOCAB) + "\n")
  spec = hub.create_module_spec(tokens_module_fn, tags_and_args=[
      (set(), {"vocab_path": vocab_path, "training": False}),
      ({"train"}, {"vocab_path": vocab_path, "training": True})])
  path = os.path.join(out_dir, "tokens")
  with tf.Graph().as_default():
    module = hub.Module(spec)
    with tf.compat.v1.Session() as sess:
      sess.run(tf.compat.v1.global_variables_initializer())
      module.export(path, sess)
  elmo_vocab = os.path.join(sources, "elmo_vocab.txt")
  with open(elmo_vocab, "w") as f:
    f.write("\n".join(ELMO_WORDS) + "\n")
  with tf.Graph().as_default():
    module = hub.Module(hub.create_module_spec(elmo_module_fn, tags_and_args=[(set(), {"vocab_path": elmo_vocab})]))
    with tf.compat.v1.Session() as sess:
      sess.run([tf.compat.v1.global_variables_initializer(), tf.compat.v1.tables_initializer()])
      module.export(os.path.join(out_dir, "elmo"), sess)
  arrays = {}
  run_tokens(path, arrays)
  run_elmo(os.path.join(out_dir, "elmo"), arrays)
  with tf.Graph().as_default():
    module = hub.Module(path, tags={"train"}, trainable=True)
    answers = {"inputs": INPUTS, "vocab": VOCAB, "hidden": HIDDEN, "elmo_sentences": SENTENCES,
               "elmo_tokens": ELMO_TOKENS, "elmo_lengths": ELMO_LENGTHS, "elmo_words": ELMO_WORDS,
               "train_regularization_losses": len(tf.compat.v1.losses.get_regularization_losses()),
               "tags": sorted(sorted(t) for t in hub.load_module_spec(path).get_tags())}
    info = module(signature="tokenization_info", as_dict=True)
    with tf.compat.v1.Session() as sess:
      sess.run(tf.compat.v1.global_variables_initializer())
      value = sess.run(info)
    answers["do_lower_case"] = bool(value["do_lower_case"])
    answers["vocab_file_name"] = os.path.basename(value["vocab_file"].decode())
  with open(os.path.join(out_dir, "answers.json"), "w") as f:
    json.dump(answers, f, indent=1, sort_keys=True)
  np.savez(os.path.join(out_dir, "answers.npz"), **{k: np.asarray(v) for k, v in arrays.items()})


def run_module(path, out_npz):
  tf.config.experimental.enable_op_determinism()
  arrays = {}
  if "elmo" in sorted(hub.load_module_spec(path).get_signature_names()) or \
      "sequence_len" in hub.load_module_spec(path).get_input_info_dict("tokens"):
    run_elmo(path, arrays)
  else:
    run_tokens(path, arrays)
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
