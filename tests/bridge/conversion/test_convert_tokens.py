"""A BERT-style TF1 module whose `tokens` signature takes three int32 [batch, seq] inputs (tests/oracle/
tokens_oracle.py, exported by the genuine library, run live): `__call__` takes them as a dict, as TF2 text encoders
do; conversion verifies on generated token ids; the converted model serves hub.load, TFSMLayer and
bridge.keras.KerasLayer; TF2 -> TF1 writes it back with both graph variants for the genuine hub.Module; parity
compares such models on generated or recorded (.npz) inputs. An ELMo-style module (`default` on sentences, `tokens`
on padded words and their lengths) converts both ways with both signatures verified, the second on inputs drawn
for each batch.

The genuine library's answers (TF 2.15) are compared within tests/tolerances.py's GENUINE_OUTPUTS; models of this
project against each other in this process: exactly.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from bridge.cli import main
from bridge.conversion import tf1_to_tf2
from bridge.conversion.converter import convert
from bridge.parity.comparison import compare
from legacy.errors import InvalidInputError, NotAnImageModuleError
from tests.oracle.text_modules import TOKENS_ORACLE, start_text_module, tokens_oracle
from tests.tolerances import GENUINE_OUTPUTS, assert_close

pytestmark = pytest.mark.numerics

OUTPUTS = ("pooled_output", "sequence_output")


@pytest.fixture(scope="module")
def genuine_tokens(oracle):
    """(directory with the genuine library's tokens module, its answers, its arrays)."""
    return tokens_oracle()


@pytest.fixture(scope="module")
def module(genuine_tokens) -> str:
    return os.path.join(genuine_tokens[0], "tokens")


@pytest.fixture(scope="module")
def inputs(genuine_tokens) -> dict:
    return {k: np.array(v, np.int32) for k, v in genuine_tokens[1]["inputs"].items()}


@pytest.fixture(scope="module")
def converted_path(module, tmp_path_factory) -> str:
    written = convert(module, str(tmp_path_factory.mktemp("tokens") / "tf2"), progress=lambda m: None)
    assert written.verification.passed
    return written.destination


@pytest.fixture(scope="module")
def back(converted_path, tmp_path_factory) -> tuple:
    """(the converted model written back to TF1, a function returning the genuine library's outputs on it)."""
    written = convert(converted_path, str(tmp_path_factory.mktemp("tokens") / "tf1"), progress=lambda m: None)
    assert written.verification.passed
    # The TF1 module written reads the token ids into the 12-row embedding: verification drew them over it.
    assert written.verification.inputs["random_tensors"][0]["index_ranges"] == {"input_ids": [0, 12],
                                                                                "segment_ids": [0, 2]}
    return written.destination, start_text_module(written.destination, TOKENS_ORACLE)


def _check_genuine(outputs: dict, arrays: dict, what: str) -> None:
    assert sorted(outputs) == sorted(OUTPUTS), what
    for key in OUTPUTS:
        assert_close(np.asarray(outputs[key]), arrays[f"tokens/{key}"], GENUINE_OUTPUTS, f"{what} {key}")


def test_adapter_call_takes_a_dict_of_the_signatures_inputs(module, genuine_tokens, inputs):
    adapter = tf1_to_tf2.adapt(module)
    assert adapter.metadata.primary_signature == "tokens"  # no `default`: the only signature with inputs
    info = adapter.call_signature("tokenization_info")  # a signature without inputs: a function of none
    assert bool(info["do_lower_case"]) == bool(genuine_tokens[2]["tokenization_info/do_lower_case"])
    assert os.path.relpath(info["vocab_file"].numpy().decode(), module) == \
        str(genuine_tokens[2]["tokenization_info/vocab_file"]) == "assets/vocab.txt"
    assert adapter.input_kind == "tensors"
    outputs = {k: v.numpy() for k, v in adapter(inputs).items()}
    _check_genuine(outputs, genuine_tokens[2], "adapter")
    by_name = adapter.call_signature("tokens", **inputs)
    for key in OUTPUTS:
        np.testing.assert_array_equal(by_name[key].numpy(), outputs[key])
    trained = adapter(inputs, training=True)["pooled_output"].numpy()  # the {"train"} variant: dropout
    assert not np.array_equal(trained, outputs["pooled_output"])
    with pytest.raises(InvalidInputError, match="takes a dict of the inputs of signature 'tokens'"):
        adapter(inputs["input_ids"])
    with pytest.raises(InvalidInputError, match="needs input 'input_mask'"):
        adapter({"input_ids": inputs["input_ids"], "segment_ids": inputs["segment_ids"]})
    with pytest.raises(InvalidInputError, match="no input 'mask'"):
        adapter({**inputs, "mask": inputs["input_mask"]})


def test_a_module_without_default_and_several_signatures_needs_one_chosen(module, tmp_path):
    from bridge.conversion.text_adapter import primary_signature

    takes = {"x": tf.TensorSpec([None], tf.int32)}
    assert primary_signature({"a": 0, "info": 0}, {"a": takes, "info": {}}) == "a"  # info takes no input
    with pytest.raises(NotAnImageModuleError, match="no 'default' signature; pick the one __call__ serves with "
                                                    "--signature: a, b"):
        primary_signature({"a": 0, "b": 0, "info": 0}, {"a": takes, "b": takes, "info": {}})
    assert primary_signature({"default": 0, "b": 0}, {"default": takes, "b": takes}) == "default"


def test_converted_model_serves_tf2_consumers(module, converted_path, genuine_tokens, inputs):
    import keras
    import tensorflow_hub as hub

    from bridge.keras import KerasLayer

    arrays = genuine_tokens[2]
    obj = hub.load(converted_path)
    feed = {k: tf.constant(v) for k, v in inputs.items()}
    called = {k: v.numpy() for k, v in obj(feed).items()}
    _check_genuine(called, arrays, "hub.load __call__")
    served = obj.signatures["serving_default"](**feed)  # keyword arguments, as the TF1 signature's inputs
    tokens = obj.tokens(**feed)
    for key in OUTPUTS:
        np.testing.assert_array_equal(served[key].numpy(), called[key])
        np.testing.assert_array_equal(tokens[key].numpy(), called[key])
    # The {"train"} variant's L2 loss on the word embeddings, as the genuine library collects it.
    info = obj.tokenization_info()  # the vocabulary, in the SavedModel's own assets/
    with open(info["vocab_file"].numpy().decode()) as f:
        assert f.read().split() == list(arrays["tokenization_info/vocab"])
    assert os.path.dirname(info["vocab_file"].numpy().decode()) == os.path.join(converted_path, "assets")
    assert bool(info["do_lower_case"]) is True
    assert len(obj.regularization_losses) == genuine_tokens[1]["train_regularization_losses"] == 1
    words = next(v for v in obj.variables if "embeddings/word" in v.name).numpy()
    assert float(obj.regularization_losses[0]()) == pytest.approx(0.01 * float(np.sum(np.square(words))), rel=1e-6)
    tfsm = keras.layers.TFSMLayer(converted_path, call_endpoint="serve", call_training_endpoint="serve_training")
    np.testing.assert_array_equal(tfsm(feed)["pooled_output"].numpy(), called["pooled_output"])
    layer = KerasLayer(converted_path, trainable=True, output_key="pooled_output")
    np.testing.assert_array_equal(layer(feed).numpy(), called["pooled_output"])
    assert len(layer.trainable_weights) == len(obj.trainable_variables) == 6
    assert len(layer.losses) == 1
    adapted = KerasLayer(module, output_key="pooled_output")  # the TF1 module itself, adapted in memory
    np.testing.assert_array_equal(adapted(feed).numpy(), called["pooled_output"])


def test_written_back_to_tf1_runs_in_the_genuine_library(back, genuine_tokens):
    from legacy.format.reader import read_module

    destination, genuine = back
    stored = read_module(destination)
    assert sorted(sorted(t) for t in stored.tags) == [[], ["train"]]
    result = genuine()
    # `default`: the primary signature's alias
    assert list(result["signatures"]) == ["default", "tokenization_info", "tokens"]
    for key in ("do_lower_case", "vocab_file", "vocab"):  # the vocabulary in the module's own assets/
        np.testing.assert_array_equal(result[f"tokenization_info/{key}"],
                                      genuine_tokens[2][f"tokenization_info/{key}"])
    assert list(result["tokens/inputs"]) == ["input_ids", "input_mask", "segment_ids"]
    for key in OUTPUTS:
        assert_close(result[f"tokens/{key}"], genuine_tokens[2][f"tokens/{key}"], GENUINE_OUTPUTS,
                     f"written back {key}")


def test_parity_on_generated_and_recorded_token_ids(module, converted_path, inputs, tmp_path, capsys):
    report = compare(module, converted_path, training=True, gradients=True)
    assert report.passed
    assert report.inputs["input_keys"] == ["input_ids", "input_mask", "segment_ids"]
    assert {r.name for r in report.results} >= {"tokens/pooled_output", "tokens/sequence_output",
                                                "tokenization_info/vocab_file"}  # compared as assets/vocab.txt
    assert any(r.name.startswith("gradients/") for r in report.results)

    recorded = tmp_path / "tokens.npz"
    np.savez(recorded, **inputs)
    assert main(["parity", module, converted_path, "--images", str(recorded), "--json-file",
                 str(tmp_path / "r.json")]) == 0
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["status"] == "ok" and result["passed"] is True and result["inputs"]["examples"] == 3
    assert result["inputs"]["example_files"] == 3

    saved = tmp_path / "saved.npz"  # what --save-inputs writes is read back as the same inputs
    assert main(["parity", module, converted_path, "--images", str(recorded), "--batch-size", "2", "--save-inputs",
                 str(saved), "--quiet"]) == 0
    assert sorted(np.load(saved).files)[:3] == [f"batch_00000/{k}" for k in sorted(inputs)]
    assert main(["parity", module, converted_path, "--images", str(saved), "--json-file", str(tmp_path / "s.json"),
                 "--quiet"]) == 0
    assert json.loads((tmp_path / "s.json").read_text())["inputs"]["examples"] == 3

    capsys.readouterr()
    assert main(["parity", module, converted_path, "--input", "input_ids=1"]) == 2
    assert "input 'input_ids' is fed one value per example, from the batches: pass it in an .npz" in \
        capsys.readouterr().err

    assert main(["parity", module, converted_path, "--runner", "beam"]) == 2
    assert "--runner beam compares image models, and these take named tensors; compare them with the local " \
        "runner" in capsys.readouterr().err

    np.savez(tmp_path / "bad.npz", input_ids=inputs["input_ids"])
    capsys.readouterr()
    assert main(["parity", module, converted_path, "--images", str(tmp_path / "bad.npz")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].endswith("has no array 'input_mask'; the models take input_ids, input_mask, segment_ids"), err


def _with_changed_weight(source: str, name: str, change, destination: str) -> str:
    """A copy of TF1 module `source` whose variable `name` is `change(value)`."""
    from legacy.format.reader import read_module
    from legacy.format.writer import write_module

    stored = read_module(source)
    reader = tf.train.load_checkpoint(stored.variables_prefix)
    values = {key: reader.get_tensor(key) for key in reader.get_variable_to_shape_map()}
    values[name] = change(values[name].copy())
    return write_module(destination, [v.meta_graph for v in stored.variants.values()], variables=values,
                        assets={n: os.path.join(stored.assets_dir, n) for n in stored.asset_files()})


def test_drawn_token_ids_reach_every_row_of_the_embedding(module, genuine_tokens, tmp_path):
    """Token ids are drawn over the rows of the embedding they index (read from the module's graph), so a change
    in a row that ids 0 and 1 never reach is caught too."""
    vocabulary = len(genuine_tokens[1]["vocab"])

    def change_last_row(value):
        value[vocabulary - 1] += np.float32(0.5)
        return value

    changed = _with_changed_weight(module, "bert/embeddings/word", change_last_row, str(tmp_path / "changed"))
    report = compare(module, changed, random=16)
    assert report.inputs["random_tensors"][0]["index_ranges"] == {"input_ids": [0, vocabulary],
                                                                  "segment_ids": [0, 2]}
    assert not report.passed
    assert {r.name for r in report.results if r.status == "fail"} == {"tokens/pooled_output",
                                                                       "tokens/sequence_output"}


def test_inspect_names_the_input_kind(module, converted_path, capsys):
    for path in (module, converted_path):
        assert main(["inspect", path]) == 0
        assert "inputs: named tensors" in capsys.readouterr().out


def test_shim_serves_the_converted_model_as_tf1_graph_variants(converted_path, genuine_tokens, inputs):
    from legacy import hub

    spec = hub.load_module_spec(converted_path)
    assert spec.get_tags() == [set(), {"train"}]
    assert sorted(spec.get_input_info_dict("tokens")) == ["input_ids", "input_mask", "segment_ids"]
    eager = hub.Module(spec)(inputs, signature="tokens", as_dict=True)
    _check_genuine({k: v.numpy() for k, v in eager.items()}, genuine_tokens[2], "eager shim")
    with tf.Graph().as_default():
        module = hub.Module(converted_path, trainable=True)
        outputs = module({k: tf.constant(v) for k, v in inputs.items()}, signature="tokens", as_dict=True)
        assert len(tf.compat.v1.losses.get_regularization_losses()) == 1
        with tf.compat.v1.Session() as session:
            session.run([tf.compat.v1.global_variables_initializer(), tf.compat.v1.tables_initializer()])
            _check_genuine(session.run(outputs), genuine_tokens[2], "graph-mode shim")


def test_shim_runs_the_tf1_module_as_the_genuine_library(module, genuine_tokens, inputs):
    from legacy import hub

    spec = hub.load_module_spec(module)
    assert sorted(spec.get_signature_names()) == list(genuine_tokens[2]["signatures"])
    assert sorted(spec.get_input_info_dict("tokens")) == list(genuine_tokens[2]["tokens/inputs"])
    eager = hub.Module(spec)(inputs, signature="tokens", as_dict=True)
    _check_genuine({k: v.numpy() for k, v in eager.items()}, genuine_tokens[2], "eager shim on the TF1 module")
    with tf.Graph().as_default():
        outputs = hub.Module(module, trainable=True)({k: tf.constant(v) for k, v in inputs.items()},
                                                     signature="tokens", as_dict=True)
        with tf.compat.v1.Session() as session:
            session.run([tf.compat.v1.global_variables_initializer(), tf.compat.v1.tables_initializer()])
            _check_genuine(session.run(outputs), genuine_tokens[2], "graph-mode shim on the TF1 module")


# -- an ELMo-style module: `default` on sentences, `tokens` on padded words and their lengths -----------------------


@pytest.fixture(scope="module")
def elmo(genuine_tokens, tmp_path_factory) -> tuple:
    """(the genuine library's ELMo-style module, it converted to TF2, that written back to TF1 with a function
    returning the genuine library's outputs on it)."""
    source = os.path.join(genuine_tokens[0], "elmo")
    converted = convert(source, str(tmp_path_factory.mktemp("elmo") / "tf2"), progress=lambda m: None)
    assert converted.verification.passed
    back = convert(converted.destination, str(tmp_path_factory.mktemp("elmo") / "tf1"), progress=lambda m: None)
    assert back.verification.passed
    return source, converted.destination, back.destination, start_text_module(back.destination, TOKENS_ORACLE)


def test_elmo_style_tokens_signature_is_verified_on_drawn_inputs(elmo):
    source, converted, _, _ = elmo
    report = compare(source, converted, training=True)
    assert report.passed
    names = {r.name for r in report.results}
    assert {"default/default", "tokens/default", "tokens/elmo"} <= names  # compared, not skipped
    assert any("signature tokens takes no sentences: its inputs sequence_len, tokens were drawn for each batch"
               in note for note in report.notes)
    assert "signatures_not_compared" not in report.settings


def test_elmo_style_drawn_inputs_catch_a_changed_weight(elmo, genuine_tokens, tmp_path):
    """The drawn words come from the module's vocabulary: a change to the row of `<S>`, a word no built-in list
    holds, fails on `tokens` too."""
    source = elmo[0]
    row = genuine_tokens[1]["elmo_words"].index("<S>")

    def change_row(value):
        value[row] += np.float32(0.01)
        return value

    changed = _with_changed_weight(source, "embeddings", change_row, str(tmp_path / "changed"))
    report = compare(source, changed, signatures=["tokens"])
    assert not report.passed
    assert {r.name for r in report.results if r.status == "fail"} == {"tokens/default", "tokens/elmo"}


def test_elmo_style_module_round_trip_runs_in_the_genuine_library(elmo, genuine_tokens, tmp_path):
    import tensorflow_hub as hub

    _, converted, _, genuine = elmo
    arrays = genuine_tokens[2]
    obj = hub.load(converted)
    sentences = tf.constant(genuine_tokens[1]["elmo_sentences"])
    assert_close(obj(sentences).numpy(), arrays["elmo/default"], GENUINE_OUTPUTS, "converted __call__")
    tokens = obj.tokens(tokens=tf.constant(genuine_tokens[1]["elmo_tokens"]),
                        sequence_len=tf.constant(genuine_tokens[1]["elmo_lengths"], tf.int32))
    for key in ("default", "elmo"):
        assert_close(tokens[key].numpy(), arrays[f"elmo_tokens/{key}"], GENUINE_OUTPUTS, f"converted tokens {key}")
    result = genuine()
    assert list(result["elmo_signatures"]) == ["default", "tokens"]
    for key in ("elmo/default", "elmo_tokens/default", "elmo_tokens/elmo"):
        assert_close(result[key], arrays[key], GENUINE_OUTPUTS, f"written back {key}")
