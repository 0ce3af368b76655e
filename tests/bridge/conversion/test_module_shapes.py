"""Unusual but realistic TF1 image modules, against the genuine library: partitioned variables, control flow v1,
quantization-aware training whose forward pass reads what its updates assign, batch renormalization, two modules
whose while-loop functions share names, a train variant with variables the inference variant lacks, and signature
inputs named like the converted functions' own arguments.

The modules are exported by the genuine library (tests/oracle/real_modules.py: partitioned_bn, cf_v1_net, qat_net,
renorm_net, while_v2_net, while_v2b_net, zero_debias_net, keyword_inputs_net, variant_defaults_net). Every question to the genuine library is asked in one
process (the `genuine_answers` fixture), after the conversions whose output it must also run.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from tests.bridge.real_modules import assert_close_to_genuine, for_key, genuine_runs, images, real_module
from tests.tolerances import GENUINE_TRAINING, assert_close

pytestmark = pytest.mark.numerics

X = images(4)
# Fixed weights of the loss whose gradients are compared: reduce_sum(default output * LOSS_WEIGHTS[module]).
LOSS_WEIGHTS = {"cf_v1_net": np.random.default_rng(1).normal(size=(4, 4)).astype(np.float32)}
PARTITIONED_WEIGHTS = np.random.default_rng(2).normal(size=(4, 8)).astype(np.float32)  # partitioned_bn: 8 features
TF1_TO_TF2 = ("partitioned_bn", "cf_v1_net", "qat_net", "keyword_inputs_net", "variant_defaults_net")
ROUND_TRIPS = ("renorm_net", "while_v2_net", "partitioned_bn")  # TF1 -> TF2 -> TF1


def _quiet(message):
    pass


def _attempt(fn, *args, **kwargs):
    """The result of fn, or the exception it raised (re-raised by the tests that need the result)."""
    try:
        return fn(*args, **kwargs)
    except Exception as e:  # noqa: BLE001  -- kept for the tests to raise, each failing with the real error
        return e


def _result(value):
    if isinstance(value, Exception):
        raise value
    return value


@pytest.fixture(scope="module")
def conversions(tmp_path_factory, oracle) -> dict:
    """{name: ConversionResult or the exception}: TF1 -> TF2 of TF1_TO_TF2, and for ROUND_TRIPS
    {name: ...} TF1 -> TF2 and {name + "/tf1": ...} back to TF1, each verified by `bridge convert`."""
    from bridge.conversion.converter import convert

    root = tmp_path_factory.mktemp("module_shapes")
    results = {}
    for name in dict.fromkeys(TF1_TO_TF2 + ROUND_TRIPS):
        results[name] = _attempt(convert, real_module(name), str(root / f"{name}_tf2"), progress=_quiet)
    for name in ROUND_TRIPS:
        if not isinstance(results[name], Exception):
            results[name + "/tf1"] = _attempt(convert, results[name].destination, str(root / f"{name}_tf1"),
                                              progress=_quiet)
        else:
            results[name + "/tf1"] = results[name]
    return results


@pytest.fixture(scope="module")
def genuine_answers(tmp_path_factory, conversions) -> dict:
    """Every answer of the genuine library these tests compare with, from one process."""
    runs = {
        "partitioned_bn/infer": (real_module("partitioned_bn"), X, "", {}),
        "partitioned_bn/train": (real_module("partitioned_bn"), X, "train", {}),
        "cf_v1_net/infer": (real_module("cf_v1_net"), X, "", {}),
        "cf_v1_net/train": (real_module("cf_v1_net"), X, "train", {}),
        "qat_net/train": (real_module("qat_net"), X, "train", {}),
        "renorm_net/train": (real_module("renorm_net"), X, "train", {}),
        "while_v2_net/infer": (real_module("while_v2_net"), X, "", {}),
        "while_v2b_net/infer": (real_module("while_v2b_net"), X, "", {}),
        "zero_debias_net/infer": (real_module("zero_debias_net"), X, "", {}),
        "keyword_inputs_net/infer": (real_module("keyword_inputs_net"), X, "", {"name": 3.0, "training": False}),
        # hub.Module feeds every signature input (a default is never used through it): each variant's default
        # as the builder set it (1.0 for inference, 0.5 for training), and another value.
        "partitioned_bn/gradients": (real_module("partitioned_bn"), X, "", {}),
        "variant_defaults_net/infer": (real_module("variant_defaults_net"), X, "", {"scale": 1.0}),
        "variant_defaults_net/train": (real_module("variant_defaults_net"), X, "train", {"scale": 0.5}),
        "variant_defaults_net/train_fed": (real_module("variant_defaults_net"), X, "train", {"scale": 2.0}),
    }
    for name in ROUND_TRIPS:  # the modules written back, run by the genuine library
        written = conversions[name + "/tf1"]
        if not isinstance(written, Exception):
            runs[f"{name}/tf1/train"] = (written.destination, X, "train", {})
            runs[f"{name}/tf1/infer"] = (written.destination, X, "", {})
    if not isinstance(conversions["partitioned_bn/tf1"], Exception):
        runs["partitioned_bn/tf1/gradients"] = (conversions["partitioned_bn/tf1"].destination, X, "", {})
    weights = {"cf_v1_net/infer": {"default": LOSS_WEIGHTS["cf_v1_net"]},
               "cf_v1_net/train": {"default": LOSS_WEIGHTS["cf_v1_net"]},
               # gradients by variable_map name: a partitioned variable's parts joined under its full name
               "partitioned_bn/gradients": {"default": PARTITIONED_WEIGHTS},
               "partitioned_bn/tf1/gradients": {"default": PARTITIONED_WEIGHTS}}
    # qat_net's forward pass reads the ranges its updates assign: one genuine session run of both races, so the
    # genuine library answers with every read seeing the state before the call (see real_modules.py run --apart).
    results, _ = genuine_runs(runs, tmp_path_factory.mktemp("module_shapes_genuine"), loss_weights=weights,
                              apart=("qat_net/train",))
    return results


# -- helpers -----------------------------------------------------------------------------------------------------

def _name(var) -> str:
    return var.name.split(":")[0]


def _snapshot(obj) -> dict:
    return {_name(v): v.numpy() for v in obj.variables}


def _restore(obj, values: dict) -> None:
    for var in obj.variables:
        var.assign(values[_name(var)])


def _signatures(genuine_run: dict) -> list:
    return sorted({key.split("/")[0] for key in genuine_run if not key.startswith(("updates/", "gradients/"))})


def _inference(obj, signatures) -> dict:
    return {f"{sig}/{key}": value.numpy() for sig in signatures
            for key, value in getattr(obj, sig)(tf.constant(X), training=False).items()}


def _first_training_calls(obj, signatures) -> dict:
    """Each signature's first training-mode call from the loaded state, as the genuine library runs each signature
    in a fresh session: its outputs, and how far each non-trainable variable moved."""
    initial = _snapshot(obj)
    trainable = {_name(v) for v in obj.trainable_variables}
    result = {}
    for sig in signatures:
        _restore(obj, initial)
        result.update({f"{sig}/{key}": value.numpy()
                       for key, value in getattr(obj, sig)(tf.constant(X), training=True).items()})
        after = _snapshot(obj)
        result.update({f"updates/{sig}/{name}": after[name] - initial[name]
                       for name in initial if name not in trainable})
    _restore(obj, initial)
    return result


def _assert_matches_genuine(actual: dict, expected: dict, what: str) -> None:
    """Every output and update the genuine library reported, and nothing missing."""
    missing = sorted(set(expected) - set(actual))
    assert not missing, f"{what}: no value for {missing} (has {sorted(actual)})"
    for key, value in sorted(expected.items()):
        assert_close_to_genuine(actual[key], value, f"{what} {key}", for_key(key))


def _model(conversions, name: str, kind: str):
    """The in-memory adapter ("adapter") or the converted SavedModel ("saved_model", its conversion must have
    passed) of one module."""
    if kind == "adapter":
        import bridge

        return bridge.adapt(real_module(name))
    return tf.saved_model.load(_result(conversions[name]).destination)


def _gradients_by_name(grads, variables) -> dict:
    return {_name(v): None if g is None else g.numpy() for v, g in zip(variables, grads)}


def _assert_gradients(actual: dict, genuine_run: dict, signature: str, what: str) -> None:
    prefix = f"gradients/{signature}/"
    expected = {k[len(prefix):]: v for k, v in genuine_run.items() if k.startswith(prefix)}
    assert expected, f"the genuine library reported no gradients for {signature}"
    assert sorted(actual) == sorted(expected), f"{what}: gradients for {sorted(actual)} != {sorted(expected)}"
    for name, value in sorted(expected.items()):
        assert actual[name] is not None, f"{what}: no gradient for {name}"
        assert_close(actual[name], value, GENUINE_TRAINING, f"{what} d loss / d {name}")


# -- F1: a partitioned conv kernel, then batch norm -------------------------------------------------------------

def test_partitioned_module_converts_and_verifies(conversions):
    report = _result(conversions["partitioned_bn"]).verification
    assert report.passed, report.table()


@pytest.mark.parametrize("kind", ("adapter", "saved_model"))
def test_partitioned_module_matches_the_genuine_library(conversions, genuine_answers, kind):
    obj = _model(conversions, "partitioned_bn", kind)
    names = sorted(_name(v) for v in obj.variables)
    assert {"conv1/kernel/part_0", "conv1/kernel/part_1"} <= set(names) and "conv1/kernel" not in names, names
    parts = {_name(v): v.shape for v in obj.variables if _name(v).startswith("conv1/kernel/part_")}
    assert sum(s[0] for s in parts.values()) == 3 and all(tuple(s[1:]) == (3, 3, 8) for s in parts.values()), parts
    infer, train = genuine_answers["partitioned_bn/infer"], genuine_answers["partitioned_bn/train"]
    assert any(k.startswith("updates/") and k.endswith("bn1/moving_variance") for k in train)
    _assert_matches_genuine(_inference(obj, _signatures(infer)), infer, f"{kind} inference")
    _assert_matches_genuine(_first_training_calls(obj, _signatures(train)), train, f"{kind} training")


# -- F2: control flow v1 between trainable layers: gradients ----------------------------------------------------

def test_cf_v1_module_is_built_with_control_flow_v1(oracle):
    """What the gradient tests rely on (the builder switches control flow v2 off for this module only)."""
    from legacy.format.reader import read_module

    for name, expected in (("cf_v1_net", {"Enter", "Exit", "NextIteration"}), ("while_v2_net", {"While"})):
        for tags in (set(), {"train"}):
            ops = {n.op for n in read_module(real_module(name)).variant(tags).meta_graph.graph_def.node}
            assert expected <= ops and not ({"While", "Enter"} - expected) & ops, (name, tags)


@pytest.mark.parametrize("kind", ("adapter", "saved_model"))
@pytest.mark.parametrize("training", (False, True))
def test_cf_v1_outputs_match_the_genuine_library(conversions, genuine_answers, kind, training):
    obj = _model(conversions, "cf_v1_net", kind)
    genuine_run = genuine_answers["cf_v1_net/train" if training else "cf_v1_net/infer"]
    assert_close_to_genuine(obj(tf.constant(X), training=training).numpy(), genuine_run["default/default"], kind)


def test_cf_v1_converts_and_verifies(conversions):
    report = _result(conversions["cf_v1_net"]).verification
    assert report.passed, report.table()


def test_cf_v1_gradients_outside_graph_mode_are_refused_in_one_line(conversions, tmp_path, capsys):
    """TensorFlow cannot differentiate a TF1 while loop inside a TF2 function (its TF1 loop gradient code fails
    there): parity and verification with gradients say so in one line, and a conversion notes it."""
    from bridge.cli import main
    from bridge.conversion.converter import convert

    converted = _result(conversions["cf_v1_net"]).destination
    assert main(["parity", real_module("cf_v1_net"), converted, "--random", "2", "--gradients"]) == 2
    err = capsys.readouterr().err.strip().splitlines()  # the progress line, then the error
    assert err[-1].startswith("bridge parity: error: A (") and "--gradients" not in err[0], err
    assert "holds a TF1 while loop (tf.compat.v1.while_loop)" in err[-1], err
    assert "compare without --gradients" in err[-1], err
    notes = []
    convert(real_module("cf_v1_net"), str(tmp_path / "out"), verify=False, progress=notes.append)
    assert any(n.startswith("note: the module holds a TF1 while loop") for n in notes), notes


def test_inspect_names_the_tf1_loop(capsys, oracle):
    from bridge.cli import main

    assert main(["inspect", real_module("cf_v1_net")]) == 0
    out = capsys.readouterr().out
    assert out.count("TF1 while loop: gradients through it in a tf.compat.v1 graph only") == 2, out  # both variants
    assert max(len(line) for line in out.splitlines()) <= 120, out
    assert main(["inspect", real_module("while_v2_net")]) == 0
    assert "TF1 while loop" not in capsys.readouterr().out  # a control-flow-v2 loop differentiates anywhere


def test_cf_v1_outputs_in_the_eager_shim(genuine_answers):
    from legacy import hub

    module = hub.Module(real_module("cf_v1_net"), trainable=True)
    assert_close_to_genuine(module(tf.constant(X)).numpy(), genuine_answers["cf_v1_net/infer"]["default/default"],
                            "eager shim")


def test_cf_v1_gradients_in_the_graph_mode_shim(genuine_answers):
    from legacy import hub

    graph = tf.Graph()
    with graph.as_default():
        module = hub.Module(real_module("cf_v1_net"), trainable=True)
        images_in = tf.compat.v1.placeholder(tf.float32, [None, 16, 16, 3])
        loss = tf.reduce_sum(module(images_in) * LOSS_WEIGHTS["cf_v1_net"])
        variables = {n: v for n, v in module.variable_map.items() if v in tf.compat.v1.trainable_variables()}
        # As the genuine library reports them: the variables the loss reaches (not the unused logits layer).
        grads = {n: g for n, g in zip(variables, tf.gradients(loss, list(variables.values()))) if g is not None}
        with tf.compat.v1.Session(graph=graph) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            actual = sess.run(grads, {images_in: X})
    _assert_gradients(actual, genuine_answers["cf_v1_net/infer"], "default", "graph-mode shim")


# -- F3: quantization-aware training: the forward pass reads what the updates assign -----------------------------

# The race this guards against (reads of the ranges against their assignments) is not hit on every call: 2 to 4
# different outputs in 30 calls when it was found, none in some runs of 30 calls; 100 calls take about 0.3 s.
REPEATS = 100


def _repeated_training_outputs(obj, call) -> list:
    initial = _snapshot(obj)
    outputs = []
    for _ in range(REPEATS):
        _restore(obj, initial)
        outputs.append(call())
    _restore(obj, initial)
    return outputs


def _assert_all_equal(outputs: list, what: str) -> None:
    distinct = len({o.tobytes() for o in outputs})
    assert distinct == 1, f"{what}: {distinct} different outputs over {len(outputs)} calls from the same state"


@pytest.mark.parametrize("kind", ("adapter", "saved_model", "shim"))
def test_qat_training_calls_from_the_same_state_agree(conversions, kind):
    if kind == "shim":
        from legacy import hub

        obj = hub.Module(real_module("qat_net"), tags={"train"}, trainable=True)
        call = lambda: obj(tf.constant(X), signature="image_classification").numpy()  # noqa: E731
    else:
        obj = _model(conversions, "qat_net", kind)
        call = lambda: obj.image_classification(tf.constant(X), training=True)["default"].numpy()  # noqa: E731
    _assert_all_equal(_repeated_training_outputs(obj, call), kind)


@pytest.mark.parametrize("kind", ("adapter", "saved_model"))
def test_qat_first_training_call_matches_the_genuine_library(conversions, genuine_answers, kind):
    obj = _model(conversions, "qat_net", kind)
    train = genuine_answers["qat_net/train"]
    assert any(k.startswith("updates/") and k.endswith("act_quant/max") for k in train)
    _assert_matches_genuine(_first_training_calls(obj, _signatures(train)), train, f"{kind} training")


def test_qat_converts_and_verifies(conversions):
    report = _result(conversions["qat_net"]).verification
    assert report.passed, report.table()


# -- F4: batch renormalization, TF1 -> TF2 -> TF1, the written module trained by the genuine library --------------

def test_renorm_round_trip_verifies_both_ways(conversions):
    for key in ("renorm_net", "renorm_net/tf1"):
        report = _result(conversions[key]).verification
        assert report.passed, f"{key}: {report.table()}"


def test_renorm_written_back_updates_as_the_original_in_the_genuine_library(conversions, genuine_answers):
    _result(conversions["renorm_net/tf1"])
    original, written = genuine_answers["renorm_net/train"], genuine_answers["renorm_net/tf1/train"]
    for stat in ("moving_mean", "moving_variance"):
        assert f"updates/default/bn1/{stat}" in original, sorted(original)
    _assert_matches_genuine(written, original, "written-back module (genuine library)")


# -- F5: two modules whose while-loop functions have the same names --------------------------------------------

def _loop_functions(name: str) -> set:
    from legacy.format.reader import read_module

    library = read_module(real_module(name)).variant(set()).meta_graph.graph_def.library
    return {f.signature.name for f in library.function}


def test_the_two_while_modules_share_function_names(oracle):
    """What the tests below are about (the builder makes it so)."""
    assert _loop_functions("while_v2_net") == _loop_functions("while_v2b_net") != set()


def test_cli_parity_of_two_while_modules_reports(capsys, oracle):
    from bridge.cli import main

    code = main(["parity", real_module("while_v2_net"), real_module("while_v2b_net"), "--random", "2"])
    out, err = capsys.readouterr()
    assert code in (0, 1), err
    assert "Traceback" not in err and "default/default" in out, (out, err)


def test_while_v2_round_trip_verifies_and_runs_in_the_genuine_library(conversions, genuine_answers):
    for key in ("while_v2_net", "while_v2_net/tf1"):
        report = _result(conversions[key]).verification
        assert report.passed, f"{key}: {report.table()}"
    _assert_matches_genuine(genuine_answers["while_v2_net/tf1/infer"], genuine_answers["while_v2_net/infer"],
                            "written-back module")


def test_the_shim_loads_both_while_modules_in_one_process(genuine_answers):
    from legacy import hub

    names = ("while_v2_net", "while_v2b_net")
    expected = {n: genuine_answers[f"{n}/infer"]["default/default"] for n in names}
    assert not np.allclose(expected[names[0]], expected[names[1]])
    eager = {n: hub.Module(real_module(n)) for n in names}
    for n in names:
        assert_close_to_genuine(eager[n](tf.constant(X)).numpy(), expected[n], f"eager shim {n}")
    graph = tf.Graph()
    with graph.as_default():
        images_in = tf.compat.v1.placeholder(tf.float32, [None, 16, 16, 3])
        outputs = {n: hub.Module(real_module(n), name=n)(images_in) for n in names}
        with tf.compat.v1.Session(graph=graph) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            values = sess.run(outputs, {images_in: X})
    for n in names:
        assert_close_to_genuine(values[n], expected[n], f"graph-mode shim {n}")


# -- F6: a train variant with variables the inference variant lacks ----------------------------------------------

def test_eager_shim_runs_the_inference_variant_of_zero_debias(genuine_answers):
    from legacy import hub

    module = hub.Module(real_module("zero_debias_net"))
    infer = genuine_answers["zero_debias_net/infer"]
    actual = {f"{sig}/default": module(tf.constant(X), signature=sig).numpy() for sig in _signatures(infer)}
    _assert_matches_genuine(actual, infer, "eager shim")


# -- F7: signature inputs named `training` (the converted functions' own argument) and `name` ----------------------

def test_input_named_training_is_not_kept_and_named(conversions):
    """A signature input called `training` cannot become a keyword argument beside the variant switch: the
    conversion keeps the other signatures, verifies, and names the one it leaves out with the reason."""
    import bridge

    result = _result(conversions["keyword_inputs_net"])
    assert result.verification.passed, result.verification.table()
    reason = bridge.adapt(real_module("keyword_inputs_net")).not_kept
    assert list(reason) == ["image_feature_vector_with_training"], reason
    assert "'training'" in reason["image_feature_vector_with_training"], reason
    obj = tf.saved_model.load(result.destination)
    assert not hasattr(obj, "image_feature_vector_with_training")


@pytest.mark.parametrize("kind", ("adapter", "saved_model"))
def test_input_named_name_is_fed(conversions, genuine_answers, kind):
    """An input called `name` (what a signature function names its signature by) reaches the module's graph."""
    obj = _model(conversions, "keyword_inputs_net", kind)
    expected = genuine_answers["keyword_inputs_net/infer"]
    assert "scaled/default" in expected and "image_feature_vector_with_training/default" in expected, sorted(expected)
    assert_close_to_genuine(obj.scaled(tf.constant(X), training=False, name=3.0)["default"].numpy(),
                            expected["scaled/default"], f"{kind} scaled(name=3.0)")
    assert_close_to_genuine(obj.scaled(tf.constant(X), training=False)["default"].numpy(),
                            2.0 / 3.0 * expected["scaled/default"], f"{kind} scaled() at the default 2.0")


# -- an input whose default differs between the graph variants ----------------------------------------------------

def test_per_variant_default_converts_and_verifies(conversions):
    report = _result(conversions["variant_defaults_net"]).verification
    assert report.passed, report.table()


@pytest.mark.parametrize("kind", ("adapter", "saved_model"))
def test_each_variant_feeds_its_own_default(conversions, genuine_answers, kind):
    """`scale` defaults to 1.0 for inference and 0.5 for training: left out, each mode computes with its variant's
    default (what each genuine variant computes with that value fed); given, both modes compute with it."""
    from legacy.engine.functions import input_defaults
    from legacy.format.reader import read_module

    module = read_module(real_module("variant_defaults_net"))
    assert [float(input_defaults(module, "image_feature_vector_scaled", tags)["scale"])
            for tags in (set(), {"train"})] == [1.0, 0.5]
    obj = _model(conversions, "variant_defaults_net", kind)
    infer, train, fed = (genuine_answers[f"variant_defaults_net/{run}"] for run in ("infer", "train", "train_fed"))
    key = "image_feature_vector_scaled/default"
    assert_close_to_genuine(obj.image_feature_vector_scaled(tf.constant(X), training=False)["default"].numpy(),
                            infer[key], f"{kind} inference at the inference default")
    initial = _snapshot(obj)
    for given, expected, what in (({}, train, "the train default"), ({"scale": 2.0}, fed, "scale=2.0")):
        _restore(obj, initial)
        out = obj.image_feature_vector_scaled(tf.constant(X), training=True, **given)["default"].numpy()
        assert_close_to_genuine(out, expected[key], f"{kind} training at {what}")
    _restore(obj, initial)


# -- a partitioned variable, TF1 -> TF2 -> TF1 ---------------------------------------------------------------------

def test_partitioned_round_trip_keeps_one_partitioned_variable(conversions, genuine_answers):
    """Written back, the parts are one partitioned variable again (each part's save_slice_info names the whole,
    the checkpoint holds the whole once): the genuine variable_map has `conv1/kernel` (its parts joined), not
    `conv1/kernel/part_N`, and the written-back module computes what the original does."""
    import tensorflow as tf

    from legacy.format.reader import read_module

    written = _result(conversions["partitioned_bn/tf1"]).destination
    parts = [(v.name, v.full_name, v.offset) for v in read_module(written).variables() if v.is_part]
    assert parts == [("conv1/kernel/part_0", "conv1/kernel", (0, 0, 0, 0)),
                     ("conv1/kernel/part_1", "conv1/kernel", (2, 0, 0, 0))], parts
    assert dict(tf.train.list_variables(written + "/variables/variables"))["conv1/kernel"] == [3, 3, 3, 8]
    original, back = genuine_answers["partitioned_bn/gradients"], genuine_answers["partitioned_bn/tf1/gradients"]
    grads = {k: v for k, v in back.items() if k.startswith("gradients/default/")}
    assert sorted(grads) == sorted(k for k in original if k.startswith("gradients/default/"))
    assert "gradients/default/conv1/kernel" in grads, sorted(grads)
    for key, value in original.items():
        assert_close_to_genuine(back[key], value, f"written back: {key}", for_key(key))
    for key, value in genuine_answers["partitioned_bn/train"].items():
        assert_close_to_genuine(genuine_answers["partitioned_bn/tf1/train"][key], value,
                                f"written back, train: {key}", for_key(key))
