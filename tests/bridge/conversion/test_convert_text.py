"""`bridge convert` of a text module (tests/oracle/text_oracle.py: vocabulary assets, lookup tables, a partitioned
embedding, a `default` signature on sentences and a SparseTensor `tokens` signature), checked against the genuine
library's answers (run live) and with the TF2 consumers: hub.load, hub.KerasLayer, bridge.keras.KerasLayer, TFSMLayer.

The genuine library's answers come from TF 2.15 running the TF1 graph: compared within tests/tolerances.py's
GENUINE_* tolerances. The converted model against its own consumers in this process: exactly.

Speed: the text oracle runs once per session (tests/oracle/text_modules.py), each module converts once per session
(`text_converted`), and the genuine library's run of the module written back to TF1 starts in the background as
soon as that module exists and is collected by the last test.
"""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from bridge.cli import main
from bridge.conversion import tf1_to_tf2
from bridge.conversion.converter import convert
from bridge.parity.comparison import compare
from legacy.errors import VerificationError
from tests.oracle.text_modules import text_oracle
from tests.tolerances import GENUINE_OUTPUTS, GENUINE_TRAINING, assert_close

pytestmark = pytest.mark.numerics


@pytest.fixture(scope="module")
def genuine_text(oracle):
    """(directory with the genuine library's text module, its answers, its arrays)."""
    return text_oracle()


@pytest.fixture(scope="module")
def converted_path(text_converted, tmp_path_factory) -> str:
    """The text module converted (and verified) by bridge convert, copied elsewhere: it must be relocatable."""
    moved = str(tmp_path_factory.mktemp("text") / "moved")
    shutil.copytree(text_converted("text"), moved)
    return moved


@pytest.fixture(scope="module")
def back(converted_path, tmp_path_factory) -> tuple:
    """(the converted model written back to TF1 by bridge convert, a function returning the genuine library's
    outputs on it, computed in the background from the moment the module exists)."""
    from tests.oracle.text_modules import start_text_module

    written = convert(converted_path, str(tmp_path_factory.mktemp("text") / "tf1"), progress=lambda m: None)
    assert written.verification.passed
    return written.destination, start_text_module(written.destination)


def _tokens(answers):
    tok = answers["tokens"]
    return tf.SparseTensor(np.array(tok["indices"], np.int64), tf.constant(tok["values"]),
                           np.array(tok["dense_shape"], np.int64))


def _parts(obj, name: str) -> np.ndarray:
    """A variable of the module by name, the parts of a partitioned one stacked along the first axis."""
    found = {v.name.split(":")[0]: v for v in obj.variables}
    if name in found:
        return found[name].numpy()
    parts = sorted((k for k in found if k.startswith(name + "/part_")), key=lambda k: int(k.rsplit("_", 1)[1]))
    return np.concatenate([found[k].numpy() for k in parts])


def test_outputs_tables_and_assets_as_genuine(converted_path, back, genuine_text):
    _, answers, arrays = genuine_text
    assert sorted(os.listdir(os.path.join(converted_path, "assets"))) == ["vocab.txt", "weights.tsv"]
    obj = tf.saved_model.load(converted_path)
    assert_close(obj(tf.constant(answers["sentences"])), arrays["text/default"], GENUINE_OUTPUTS, "__call__")
    assert_close(obj(tf.constant(answers["sentences"]), training=True), arrays["text/default"], GENUINE_OUTPUTS,
                 "__call__ training")
    tokens = obj.tokens(_tokens(answers))
    assert_close(tokens["default"], arrays["tokens/default"], GENUINE_OUTPUTS, "tokens/default")
    np.testing.assert_array_equal(tokens["ids"].values, arrays["tokens/ids/values"])  # table lookups: exact
    np.testing.assert_array_equal(tokens["ids"].indices, arrays["tokens/ids/indices"])
    np.testing.assert_array_equal(tokens["ragged_ids"].row_splits, arrays["tokens/ragged_ids/row_splits"])
    serving = obj.signatures["serving_default"](default=tf.constant(answers["sentences"]))
    np.testing.assert_array_equal(serving["default"], obj(tf.constant(answers["sentences"])))
    # Partitioned variables stay one variable per part; their values are the module's.
    names = sorted(v.name.split(":")[0] for v in obj.variables)
    assert names == sorted(p.split("/", 1)[1] for v in answers["text_variable_map"].values() for p in
                           (v if isinstance(v, list) else [v]))  # the genuine names, under scope "module/"
    np.testing.assert_array_equal(_parts(obj, "embeddings"), arrays["initial/embeddings"])
    # Loaded twice in one process: each load has its own tables.
    again = tf.saved_model.load(converted_path)
    np.testing.assert_array_equal(again(tf.constant(answers["sentences"])), obj(tf.constant(answers["sentences"])))


def test_fine_tuning_as_genuine(converted_path, genuine_text):
    """The genuine library's loop (trainable=True, SGD on sum(embedding * W)) on the converted model."""
    _, answers, arrays = genuine_text
    obj = tf.saved_model.load(converted_path)
    assert sorted(v.name.split(":")[0] for v in obj.trainable_variables) == sorted(
        p.split("/", 1)[1] for p in answers["text_trainable_variables"])
    sentences, weights = tf.constant(answers["sentences"]), tf.constant(arrays["finetune_weights"])
    losses = []
    for _ in range(answers["steps"]):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(obj(sentences, training=True) * weights)
        grads = tape.gradient(loss, obj.trainable_variables)
        for var, grad in zip(obj.trainable_variables, grads):
            var.assign_sub(answers["lr"] * tf.convert_to_tensor(grad))
        losses.append(float(loss))
    assert_close(losses, arrays["finetune_loss"], GENUINE_TRAINING, "fine-tuning losses")
    for name in ("embeddings", "scale"):
        assert_close(_parts(obj, name), arrays[f"finetune/{name}"], GENUINE_TRAINING, f"fine-tuned {name}")


def test_keras_consumers(converted_path, genuine_text):
    import keras
    import tensorflow_hub as hub

    from bridge.keras import KerasLayer

    _, answers, _ = genuine_text
    sentences = tf.constant(answers["sentences"])
    expected = tf.saved_model.load(converted_path)(sentences).numpy()
    np.testing.assert_array_equal(hub.KerasLayer(converted_path, trainable=True)(sentences), expected)
    layer = KerasLayer(converted_path, trainable=True)
    np.testing.assert_array_equal(layer(sentences), expected)
    assert len(layer.trainable_weights) == 4  # three embedding parts and the scale
    tfsm = keras.layers.TFSMLayer(converted_path, call_endpoint="serve", call_training_endpoint="serve_training")
    np.testing.assert_array_equal(tfsm(sentences)["default"], expected)


def test_a_perturbed_embedding_fails_verification(genuine_text, tmp_path, monkeypatch):
    """Verification is a real check on text modules: a model written with one embedding value off is refused."""
    path, _, _ = genuine_text
    write = tf1_to_tf2.write

    def perturbed(adapter, dst, progress=None):
        part = next(v for v in adapter.variables if "embeddings/part_0" in v.name)
        part.assign_add(np.eye(*part.shape, dtype=np.float32) * 1e-3)
        write(adapter, dst, progress)

    monkeypatch.setattr(tf1_to_tf2, "write", perturbed)
    with pytest.raises(VerificationError) as error:
        convert(os.path.join(path, "text"), str(tmp_path / "out"), progress=lambda m: None)
    failed = {r.name for r in error.value.report.results if not r.passed}
    assert "default/default" in failed and "tokens/default" in failed
    assert not os.path.exists(tmp_path / "out")


def test_parity_on_sentence_files(converted_path, genuine_text, tmp_path, capsys):
    path, answers, _ = genuine_text
    source = os.path.join(path, "text")
    text_file = tmp_path / "sentences.txt"
    text_file.write_text("\n".join(answers["sentences"]) + "\n")
    code = main(["parity", source, converted_path, "--input", f"default=@{text_file}", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["status"] == "ok"
    assert report["inputs"]["sentences"] == len(answers["sentences"])
    assert report["inputs"]["random_sentences"] == 0
    names = {r["name"] for r in report["outputs"]}
    assert {"default/default", "tokens/default", "tokens/ids/values", "tokens/ragged_ids/flat_values"} <= names
    # The same sentences from .json and .npz, plus seeded words from the vocabulary, through the Python API.
    (tmp_path / "s.json").write_text(json.dumps(answers["sentences"]))
    np.savez(tmp_path / "s.npz", sentences=np.array(answers["sentences"]))
    result = compare(source, converted_path, images=[str(tmp_path / "s.json"), str(tmp_path / "s.npz")], random=3,
                     training=True, gradients=True)
    assert result.passed, result.table()
    assert result.inputs["sentences"] == 2 * len(answers["sentences"]) + 3
    assert any(r.name == "gradients/embeddings/part_0" and r.elements for r in result.results)


def test_train_variant_as_genuine(text_converted, genuine_text):
    """A module with a {"train"} variant (dropout, a regularization loss): inference and training outputs, the
    regularization loss and a fine-tuning loop as the genuine library's train variant computes them. The
    vocabulary table is the same in both variants: the converted model holds it once. The training outputs are
    the dropout op's draws in order (a fresh load draws what a fresh genuine session draws)."""
    _, answers, arrays = genuine_text
    path = text_converted("text_train")
    assert answers["train_module_tags"] == [[], ["train"]]
    obj = tf.saved_model.load(path)
    assert len(obj.tables) == answers["train_module_table_initializers"] == 1
    assert len(obj.regularization_losses) == answers["train_module_regularization_losses"]
    sentences = tf.constant(answers["sentences"])
    assert_close(obj(sentences), arrays["train_module/inference"], GENUINE_OUTPUTS, "inference")
    assert_close(obj.regularization_losses[0](), arrays["train_module/regularization"], GENUINE_OUTPUTS, "reg loss")
    weights = tf.constant(arrays["finetune_weights"])
    draws, losses = [], []
    for _ in range(answers["steps"]):
        with tf.GradientTape() as tape:
            out = obj(sentences, training=True)
            loss = tf.reduce_sum(out * weights) + tf.add_n([fn() for fn in obj.regularization_losses])
        for var, grad in zip(obj.trainable_variables, tape.gradient(loss, obj.trainable_variables)):
            var.assign_sub(answers["lr"] * tf.convert_to_tensor(grad))
        draws.append(out.numpy())
        losses.append(float(loss))
    assert_close(np.stack(draws), arrays["train_module/train_draws"], GENUINE_TRAINING, "training outputs")
    assert_close(losses, arrays["train_module/finetune_loss"], GENUINE_TRAINING, "fine-tuning losses")
    assert_close(obj.variables[0], arrays["train_module/finetune_embeddings"], GENUINE_TRAINING, "fine-tuned")
    # Inference after training reads the trained embedding through the same (shared) table.
    assert not np.array_equal(obj(sentences).numpy(), arrays["train_module/inference"])


def test_parity_errors_and_sentences_through_images(converted_path, genuine_text, tmp_path, capsys):
    """--input NAME=@FILE must name an input sentences feed (else a one-line error, exit 2); --images takes a
    sentence file for a text model as --input does."""
    path, answers, _ = genuine_text
    text_file = tmp_path / "sentences.txt"
    text_file.write_text("\n".join(answers["sentences"]) + "\n")
    code = main(["parity", os.path.join(path, "text"), converted_path, "--input", f"sentence=@{text_file}"])
    captured = capsys.readouterr()
    error = captured.err.strip().splitlines()[-1]
    assert code == 2 and captured.out == "" and error.startswith("bridge parity: error: ")
    assert "--input sentence=@FILE names no sentence input" in error and "default, tokens" in error
    code = main(["parity", converted_path, converted_path, "--images", str(text_file), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["inputs"]["sentences"] == len(answers["sentences"])


def test_round_trip_back_to_tf1_for_the_genuine_library(back, genuine_text):
    """TF1 -> TF2 -> TF1: the genuine hub.Module loads the module written back (tables from its assets, sparse
    and ragged signatures) and computes what it computed on the original (another process of the same library:
    floats within GENUINE_OUTPUTS, table lookups exactly)."""
    _, _, arrays = genuine_text
    destination, genuine_outputs = back
    assert sorted(os.listdir(os.path.join(destination, "assets"))) == ["vocab.txt", "weights.tsv"]
    genuine = genuine_outputs()
    for key in ("text/default", "tokens/default"):
        assert_close(genuine[key], arrays[key], GENUINE_OUTPUTS, key)
    for key in ("tokens/ids/values", "tokens/ragged_ids/flat_values"):
        np.testing.assert_array_equal(genuine[key], arrays[key], err_msg=key)
