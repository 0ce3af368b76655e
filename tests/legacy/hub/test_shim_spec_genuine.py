"""The shim's `create_module_spec`, `ModuleSpec.export(checkpoint_path=...)`, colocation and ASSET_FILEPATHS,
against the genuine library (tests/oracle/spec_oracle.py, run live in the legacy environment and cached per
machine): the same module_fns, built by each, must raise the same kinds of errors with the phrases legacy code
matches on, accept the same specs, place the same ops and fill the same collections."""

from __future__ import annotations

import contextlib
import os
import re

import numpy as np
import pytest
import tensorflow as tf

from legacy import hub
from legacy.errors import BridgeError
from tests.corpus import ROOT
from tests.oracle import spec_module_fns
from tests.oracle.spec_module_fns import (NO_INFERENCE, dense_fn, indexed_slices_input_fn,
                                          indexed_slices_output_fn, no_signature_fn, scaled_fn, split_colocation_fn,
                                          state_colocation_fn, write_checkpoint)
from tests.oracle.text_modules import oracle_answers
from tests.tolerances import GENUINE_OUTPUTS, assert_close

pytestmark = pytest.mark.numerics

SPEC_ORACLE = os.path.join(ROOT, "tests", "oracle", "spec_oracle.py")


@pytest.fixture(scope="module")
def genuine_spec(oracle):
    _, answers, arrays = oracle_answers(SPEC_ORACLE)
    return answers, arrays


def _graph_or_eager(mode: str):
    return tf.Graph().as_default() if mode == "graph" else contextlib.nullcontext()


# The same module_fns as tests/oracle/spec_oracle.py builds with the genuine library, on the shim.
spec_module_fns.bind(hub)


# -- create_module_spec mistakes: the genuine library's key phrase, in a one-line BridgeError --------------------

@pytest.mark.parametrize("fn,key,phrase,detail", [
    (no_signature_fn, "no_signatures", "No signatures present", None),
    (indexed_slices_input_fn, "indexed_slices_input", "should have one of the types", "input 'x'"),
    (indexed_slices_output_fn, "indexed_slices_output", "should have one of the types", "output 'default'")])
def test_module_fn_mistakes_say_what_genuine_says(genuine_spec, fn, key, phrase, detail):
    genuine = genuine_spec[0][key]
    assert genuine["is_value_error"] and phrase in genuine["message"]
    with pytest.raises(BridgeError) as info:
        hub.create_module_spec(fn)
    assert isinstance(info.value, ValueError) and phrase in str(info.value)
    if detail:
        assert detail in genuine["message"] and detail in str(info.value) and "IndexedSlices" in str(info.value)


# -- a spec without an inference variant ---------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["graph", "eager"])
def test_spec_without_inference_variant_as_genuine(genuine_spec, mode, tmp_path):
    answers = genuine_spec[0]
    spec = hub.create_module_spec(scaled_fn, tags_and_args=NO_INFERENCE)
    assert [sorted(t) for t in spec.get_tags()] == answers["no_inference_tags"]
    assert spec.get_signature_names(tags={"train"}) == answers["no_inference_signatures_train"]
    genuine = answers["no_inference_signatures_default_tags"]
    with pytest.raises(KeyError if genuine["is_key_error"] else ValueError):  # the genuine spec: KeyError
        spec.get_signature_names()
    for label, tags in (("none", None), ("empty", set()), ("unknown", {"serve"})):
        genuine = answers[f"no_inference_module_tags_{label}"]
        with _graph_or_eager(mode), pytest.raises(ValueError) as info:
            hub.Module(spec, tags=tags)
        assert genuine["is_value_error"]
        assert str(info.value).startswith(genuine["message"].split("=")[0] + "=")  # "No such graph variant: tags="
    x = np.array(answers["no_inference_input"], np.float32)
    for tags, _ in NO_INFERENCE:
        expected = np.array(answers["no_inference_outputs"]["+".join(sorted(tags))], np.float32)
        if mode == "graph":
            with tf.Graph().as_default():
                out = hub.Module(spec, tags=tags)(tf.constant(x))
                with tf.compat.v1.Session() as sess:
                    sess.run(tf.compat.v1.global_variables_initializer())
                    value = sess.run(out)
        else:
            value = hub.Module(spec, tags=tags)(tf.constant(x)).numpy()
        assert_close(value, expected, GENUINE_OUTPUTS, f"{mode} {sorted(tags)}")
    exported = str(tmp_path / "exported")
    if mode == "graph":
        with tf.Graph().as_default():
            module = hub.Module(spec, tags={"train"})
            with tf.compat.v1.Session() as sess:
                sess.run(tf.compat.v1.global_variables_initializer())
                module.export(exported, sess)
    else:
        hub.Module(spec, tags={"train"}).export(exported)
    assert [sorted(t) for t in hub.load_module_spec(exported).get_tags()] == answers["no_inference_exported_tags"]
    genuine = answers["no_inference_spec_export"]
    with pytest.raises(ValueError) as info:
        spec.export(str(tmp_path / "from_checkpoint"), checkpoint_path=str(tmp_path / "nothing"))
    assert genuine["is_value_error"] and str(info.value).startswith(genuine["message"])  # "... tags=None"
    assert not os.path.exists(tmp_path / "from_checkpoint")


# -- ModuleSpec.export(path, checkpoint_path=...) ----------------------------------------------------------------

@pytest.fixture(scope="module")
def checkpoint(genuine_spec, tmp_path_factory) -> tuple:
    path = str(tmp_path_factory.mktemp("checkpoint") / "model")
    return path, write_checkpoint(path, "block", genuine_spec[0]["dim"])


@pytest.mark.parametrize("mode", ["graph", "eager"])
def test_export_from_checkpoint_as_genuine(genuine_spec, checkpoint, mode, tmp_path):
    answers, arrays = genuine_spec
    dim, path, values = answers["dim"], checkpoint[0], checkpoint[1]
    cases = {"matching": (lambda: dense_fn(dim), "block/"), "wrong_shape": (lambda: dense_fn(dim + 1), "block/"),
             "wrong_scope": (lambda: dense_fn(dim), "block2/"),
             "wrong_dtype": (lambda: dense_fn(dim, tf.float64), "block/")}
    assert sorted(cases) == sorted(answers["export_from_checkpoint"])
    for label, (fn, prefix) in cases.items():
        genuine = answers["export_from_checkpoint"][label]
        target = str(tmp_path / label)
        with _graph_or_eager(mode):
            spec = hub.create_module_spec(fn)
            export = lambda: spec.export(target, checkpoint_path=path,  # noqa: E731
                                         name_transform_fn=lambda name, prefix=prefix: prefix + name)
            if genuine["error"] is None:
                export()
                continue
            with pytest.raises(Exception) as info:
                export()
        error, message = genuine["error"], str(info.value)
        assert isinstance(info.value, BridgeError), label
        assert (isinstance(info.value, ValueError), isinstance(info.value, tf.errors.InvalidArgumentError)) == \
            (error["is_value_error"], error["is_invalid_argument"]), label
        # Nothing written, as with the genuine library.
        assert genuine["written"] is None and not os.path.exists(target), label
        if label == "wrong_scope":  # "Tensor block2/dense/bias is not found in ..."
            phrase = error["message"].split(" is not found in")[0] + " is not found in"
        elif label == "wrong_shape":  # "... doesn't match with shape of tensor block/dense/bias ([4]) ..."
            phrase = re.search(r"doesn't match with shape of tensor \S+ \(\[[\d, ]*\]\)", error["message"]).group(0)
        else:  # "... tensor_name = block/dense/kernel; expected dtype double does not equal original dtype float"
            # (which variable the genuine library names first depends on the order its restore ops ran in)
            assert re.search(r"tensor_name = block/dense/\w+;", error["message"]), error["message"]
            assert re.search(r"tensor_name = block/dense/\w+;", message), message
            phrase = "does not equal original dtype"
        assert phrase in message, (label, message)
    # The export that fits holds the checkpoint's values, as the genuine library's did.
    loaded = hub.Module(str(tmp_path / "matching"))
    for name, var in loaded.variable_map.items():
        np.testing.assert_array_equal(var.numpy(), values["block/" + name], err_msg=name)
        np.testing.assert_array_equal(arrays[f"exported/matching/{name}"], arrays[f"checkpoint/block/{name}"])


def test_export_from_checkpoint_of_partitioned_variables(tmp_path):
    """A partitioned variable is read whole from the checkpoint (its parts are slices of it)."""
    def fn():
        x = tf.compat.v1.placeholder(tf.float32, [None, 4])
        kernel = tf.compat.v1.get_variable("dense/kernel", [4, 4],
                                           partitioner=tf.compat.v1.fixed_size_partitioner(2))
        hub.add_signature(inputs=x, outputs=tf.matmul(x, tf.concat(list(kernel), 0)))

    path = str(tmp_path / "ckpt" / "model")
    values = write_checkpoint(path, "block", 4)
    hub.create_module_spec(fn).export(str(tmp_path / "m"), checkpoint_path=path,
                                      name_transform_fn=lambda name: "block/" + name)
    parts = hub.Module(str(tmp_path / "m")).variable_map["dense/kernel"]
    np.testing.assert_array_equal(np.concatenate([p.numpy() for p in parts]), values["block/dense/kernel"])


# -- colocation (graph mode: eager code has no placement constraints) --------------------------------------------

def _groups(tensor) -> list:
    return sorted(g.decode() for g in tensor.op.colocation_groups())


def test_colocation_with_state_and_inputs_as_genuine(genuine_spec):
    answers = genuine_spec[0]
    spec = hub.create_module_spec(state_colocation_fn)
    with tf.Graph().as_default():
        u = tf.constant(7.0, name="u")
        outputs = hub.Module(spec, name="m")(dict(x=u), as_dict=True)
        assert {k: _groups(t) for k, t in outputs.items()} == answers["state_colocation"]


def test_colocation_with_outputs_of_one_op_as_genuine(genuine_spec):
    answers = genuine_spec[0]
    spec = hub.create_module_spec(split_colocation_fn)
    with tf.Graph().as_default():
        u, v, w = spec_module_fns.split_colocation_inputs()
        m = hub.Module(spec, name="m")
        assert _groups(m(dict(x=u, y=v), signature="both")) == answers["split_colocation_same_place"]
        for key, call in (("split_colocation_apart", lambda: m(dict(x=u, y=w), signature="both")),
                          ("split_colocation_partial", lambda: m(dict(x=u), signature="partial"))):
            genuine = answers[key]
            with pytest.raises(BridgeError) as info:
                call()
            message = str(info.value)
            assert genuine["is_value_error"] and isinstance(info.value, ValueError)
            assert message.startswith(genuine["message"].splitlines()[0]), key  # "Failed to rewrite colocation ..."
            # The same constraint and the same two ways of rewriting it.
            assert set(re.findall(r"b'loc:@[^']+'", genuine["message"])) == \
                set(re.findall(r"b'loc:@[^']+'", message)), key


# -- ASSET_FILEPATHS (graph mode) -----------------------------------------------------------------------------------

def test_asset_filepaths_as_genuine(genuine_spec, tmp_path):
    answers = genuine_spec[0]
    steps, created, loaded = spec_module_fns.asset_filepath_steps(str(tmp_path))
    assert created == loaded == answers["asset_lookup"] == answers["asset_lookup_loaded"]
    assert steps == answers["asset_filepaths"]
