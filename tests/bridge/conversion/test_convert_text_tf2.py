"""`bridge convert` TF2 -> TF1 of a text model saved by TensorFlow itself (no bridge metadata): a Reusable SavedModel
whose `__call__` takes a batch of sentences, with a vocabulary file asset, a lookup table with out-of-vocabulary
buckets, ragged word lists and a trainable embedding with a regularization loss. The genuine hub.Module (TF 2.15, run
live in the legacy environment) loads the module written and computes what the model computes, within
tests/tolerances.py's GENUINE_OUTPUTS; the shim loads both the SavedModel and the module and agrees exactly.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.python.trackable.autotrackable import AutoTrackable

from bridge.cli import main
from bridge.conversion.converter import convert
from tests.oracle.text_modules import start_text_module, text_oracle
from tests.tolerances import GENUINE_OUTPUTS, assert_close

pytestmark = pytest.mark.numerics

VOCAB = ["the", "cat", "sat", "on", "mat", "dog", "ran"]
OOV_BUCKETS = 3
DIM = 5
REGULARIZATION = 1e-3


class SentenceEmbedding(AutoTrackable):
    """Mean of word embeddings: split on spaces, look the words up in a vocabulary file (unknown words hash into
    OOV_BUCKETS extra rows), average the rows (zeros for an empty sentence)."""

    def __init__(self, vocab_file: str):
        initializer = tf.lookup.TextFileInitializer(vocab_file, tf.string, tf.lookup.TextFileIndex.WHOLE_LINE,
                                                    tf.int64, tf.lookup.TextFileIndex.LINE_NUMBER)
        self.table = tf.lookup.StaticVocabularyTable(initializer, num_oov_buckets=OOV_BUCKETS)
        rows = len(VOCAB) + OOV_BUCKETS
        self.embeddings = tf.Variable(tf.random.stateless_normal([rows, DIM], seed=[7, 11]), name="embeddings")
        self.scale = tf.Variable(1.5, trainable=False, name="scale")
        self.variables = [self.embeddings, self.scale]
        self.trainable_variables = [self.embeddings]
        self.regularization_losses = [
            tf.function(lambda: REGULARIZATION * tf.reduce_sum(tf.square(self.embeddings)), input_signature=[])]

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def __call__(self, sentences):
        words = tf.strings.split(sentences)
        ids = tf.ragged.map_flat_values(self.table.lookup, words)
        vectors = tf.ragged.map_flat_values(tf.nn.embedding_lookup, self.embeddings, ids)
        count = tf.cast(words.row_lengths(), tf.float32)[:, tf.newaxis]
        return self.scale * tf.math.divide_no_nan(tf.reduce_sum(vectors, axis=1), count)


@pytest.fixture(scope="module")
def sentences(oracle) -> list:
    """The sentences the genuine library's runner feeds (tests/oracle/text_oracle.py SENTENCES, an empty one too)."""
    return text_oracle()[1]["sentences"]


@pytest.fixture(scope="module")
def model(sentences, tmp_path_factory) -> tuple:
    """(the SavedModel's directory, its outputs on the sentences, its regularization loss), computed before saving."""
    root = tmp_path_factory.mktemp("native_text")
    vocab = root / "words.txt"
    vocab.write_text("\n".join(VOCAB) + "\n")
    obj = SentenceEmbedding(str(vocab))
    path = str(root / "saved_model")
    tf.saved_model.save(obj, path)
    vocab.unlink()  # the SavedModel must carry its own copy of the vocabulary
    return path, obj(tf.constant(sentences)).numpy(), obj.regularization_losses[0]().numpy()


@pytest.fixture(scope="module")
def written(model, tmp_path_factory, oracle) -> tuple:
    """(the TF1 module bridge convert wrote, the genuine library's run of it, started in the background)."""
    path, _, _ = model
    result = convert(path, str(tmp_path_factory.mktemp("native_text") / "tf1"), progress=lambda m: None)
    assert result.direction == "tf2->tf1" and result.verification.passed
    return result.destination, start_text_module(result.destination)


def test_the_genuine_library_computes_what_the_model_computes(sentences, model, written):
    _, expected, loss = model
    destination, genuine_outputs = written
    assert os.listdir(os.path.join(destination, "assets")) == ["words.txt"]
    genuine = genuine_outputs()
    assert list(genuine["signatures"]) == ["default"] and list(genuine["default/inputs"]) == ["default"]
    assert np.abs(expected).max() > 0.1 and not np.any(expected[sentences.index("")])  # real words, an empty row
    assert_close(genuine["text/default"], expected, GENUINE_OUTPUTS, "default")
    assert_close(genuine["regularization_losses"], [loss], GENUINE_OUTPUTS, "regularization loss")


def test_the_shim_loads_the_model_and_the_module_alike(sentences, model, written):
    from legacy import hub

    path, expected, _ = model
    destination, _ = written
    for handle in (path, destination):
        module = hub.Module(handle)
        np.testing.assert_array_equal(module(tf.constant(sentences)).numpy(), expected, err_msg=handle)


def test_cli_converts_it_without_a_kind(model, tmp_path, capsys):
    path, _, _ = model
    code = main(["convert", path, str(tmp_path / "out"), "--no-verify"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert os.path.exists(os.path.join(tmp_path, "out", "tfhub_module.pb"))
