"""Legacy TF1 code, verbatim, on the shim: the TF Hub image-signature snippets and the classic fine-tuning loop.

Every testdata module and its TF2 conversion (`bridge convert`), in graph mode (a subprocess running
shim_scripts/graph_mode.py, since graph mode is process-wide) and in eager mode, with `from legacy import hub`
and with `legacy.install()` + `import tensorflow_hub as hub`. Every output, gradient, batch-norm update and
fine-tuned weight is compared with what the genuine library computes on this machine (tests/tolerances.py:
GENUINE_OUTPUTS, GENUINE_TRAINING);
and results that run the same kernels in this run are compared bit for bit: a module and its TF2 conversion, the
two ways of importing `hub`, the eager snippets and the eager results computed once per module.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf

from tests.corpus import MODULES, golden_arrays, golden_json, module_path
from tests.legacy.hub.shim_scripts.support import run_script
from tests.tolerances import GENUINE_OUTPUTS, GENUINE_TRAINING, assert_close

pytestmark = pytest.mark.numerics  # compares computed numbers: .ci/run repeats it under other kernels

KINDS = ("tf1", "tf2")  # the module itself, or its TF2 SavedModel conversion
CASES = [(name, kind) for name in MODULES for kind in KINDS]
STYLES = ("legacy", "install")


def _ids(case) -> str:
    return "-".join(case)


def _path(name: str, kind: str, converted: dict) -> str:
    return module_path(name) if kind == "tf1" else converted[name]


def _label(name: str, kind: str) -> str:
    return f"{kind}_{name}"


def _run_graph_script(style: str, converted: dict, root) -> tuple:
    """(facts, arrays) of the graph-mode script over every case, with one way of importing `hub`."""
    cases = []
    for name, kind in CASES:
        golden = golden_arrays(name)
        inputs = str(root / f"{name}_inputs.npz")
        np.savez(inputs, images=golden["inputs/images"], loss_weights=golden["inputs/loss_weights"])
        # The TF1 fine-tuning loop evaluates the loss, then trains: it gives the genuine result only where the
        # batch-norm updates stay out of the forward pass (UPDATE_OPS), as the shim keeps them for TF2 models too.
        cases.append({"label": _label(name, kind), "path": _path(name, kind, converted), "inputs": inputs,
                      "finetune": golden_json(name)["finetune"]})
    plan = root / "plan.json"
    plan.write_text(json.dumps({"hub": style, "cases": cases}))
    run_script("graph_mode.py", str(plan), str(root / "result"))
    facts = json.loads((root / "result.json").read_text())
    with np.load(root / "result.npz") as data:
        return facts, {k: data[k] for k in data.files}


@pytest.fixture(scope="module")
def graph_runs(converted, tmp_path_factory) -> dict:
    """{style: (facts, arrays)}: the graph-mode script run once per way of importing `hub`."""
    return {style: _run_graph_script(style, converted, tmp_path_factory.mktemp(f"graph_{style}"))
            for style in STYLES}


def _results(arrays: dict, label: str, prefix: str) -> dict:
    start = f"{label}/{prefix}/"
    return {k[len(start):]: v for k, v in arrays.items() if k.startswith(start)}


def _assert_genuine(produced: dict, expected: dict, tolerance, what: str) -> None:
    """Same keys as the genuine library's, every value within `tolerance` of it."""
    assert expected, f"{what}: nothing to compare"
    assert sorted(produced) == sorted(expected), what
    for key, value in expected.items():
        assert_close(produced[key], value, tolerance, f"{what}/{key}")


# -- graph mode -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("style", STYLES)
def test_graph_script_really_runs_in_graph_mode(graph_runs, style):
    facts, _ = graph_runs[style]
    assert facts["executing_eagerly"] is False
    assert facts["hub_module"] == ("legacy.hub" if style == "legacy" else "tensorflow_hub")
    assert facts["Module"] == "legacy.hub.module.Module"
    for name, kind in CASES:
        case = facts[_label(name, kind)]
        assert case["features_in_graph"] and case["features_type"] != "EagerTensor"
        assert "mode=graph" in case["repr"]


def test_graph_results_are_the_same_bits_for_a_module_its_conversion_and_both_imports(graph_runs):
    """One module's TF1 form and its TF2 conversion serve the same graphs; both imports are the same shim."""
    reference = graph_runs["legacy"][1]
    for style in STYLES:
        arrays = graph_runs[style][1]
        assert sorted(arrays) == sorted(reference)
        for name in MODULES:
            tf1, tf2 = ({k[len(_label(name, kind)) + 1:]: v for k, v in arrays.items()
                         if k.startswith(_label(name, kind) + "/")} for kind in KINDS)
            assert tf1 and sorted(tf1) == sorted(tf2), name
            for key, value in tf1.items():
                np.testing.assert_array_equal(tf2[key], value, err_msg=f"{style} {name} tf2 vs tf1: {key}")
        for key, value in reference.items():
            np.testing.assert_array_equal(arrays[key], value, err_msg=f"{style} vs legacy: {key}")


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_graph_snippets_give_the_genuine_outputs(graph_runs, style, case, genuine):
    name, kind = case
    facts, arrays = graph_runs[style]
    expected = genuine[name]
    label = _label(name, kind)
    assert facts[label]["expected_image_size"] == golden_json(name)["expected_image_size"]
    assert_close(arrays[f"{label}/snippet/features"], expected.arrays["outputs/infer/default/default"], GENUINE_OUTPUTS,
                 "features = module(images)")
    if "image_feature_vector" in golden_json(name)["signatures"]["infer"]:
        assert_close(arrays[f"{label}/snippet/feature_vector"],
                     expected.arrays["outputs/infer/image_feature_vector/default"], GENUINE_OUTPUTS,
                     'outputs["default"] of image_feature_vector')
    _assert_genuine(_results(arrays, label, "outputs"), expected.group("outputs"), GENUINE_OUTPUTS, f"{label}/outputs")


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_graph_module_state_is_legacy(graph_runs, style, case):
    """Scopes module/ and module_1/, every checkpoint name, nothing in the training collections when frozen."""
    name, kind = case
    facts, _ = graph_runs[style]
    golden = golden_json(name)
    got = facts[_label(name, kind)]
    assert got["num_image_channels"] == golden["num_image_channels"]
    assert got["signatures"] == golden["signatures"]["infer"]
    assert got["tags"] == golden["tags"]
    assert got["variable_map_keys"] == sorted(golden["variables"])
    assert got["variable_names"] == sorted("module/" + n for n in golden["variables"])
    assert got["second_variable_names"] == sorted("module_1/" + n for n in golden["variables"])
    assert got["global_variables"] == 2 * len(golden["variables"])
    assert got["frozen"] == {"trainable_variables": 0, "regularization_losses": 0, "update_ops": 0}
    assert got["initial_matches_second"]


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_graph_finetuning_loop_ends_with_the_genuine_weights(graph_runs, style, case, genuine):
    """hub.Module(spec, trainable=True, tags={"train"}), loss + regularization, minimize under UPDATE_OPS."""
    facts, arrays = graph_runs[style]
    name, kind = case
    expected = genuine[name]
    info = expected.info
    label = _label(name, kind)
    assert facts[label]["trainable"] == {"trainable_variables": info["notes"]["trainable_variable_count"],
                                         "regularization_losses": info["regularization_loss_count"],
                                         "update_ops": info["update_op_count"]}
    if info["regularization_loss_sum"] is None:
        assert facts[label]["regularization_loss_sum"] is None
    else:
        assert_close(np.float32(facts[label]["regularization_loss_sum"]), np.float32(info["regularization_loss_sum"]),
                     GENUINE_TRAINING, "regularization loss sum")
    initial = expected.group("initial")  # straight from the checkpoint: exact
    assert sorted(_results(arrays, label, "initial")) == sorted(initial)
    for key, value in initial.items():
        np.testing.assert_array_equal(arrays[f"{label}/initial/{key}"], value, err_msg=key)
    _assert_genuine(_results(arrays, label, "finetune"), expected.group("finetune"),
        GENUINE_TRAINING, f"{label}/finetune")
    assert_close(arrays[f"{label}/finetune_loss"], expected.arrays["finetune_loss"], GENUINE_TRAINING, "finetune_loss")
    if info["has_train_variant"]:
        _assert_genuine(_results(arrays, label, "updated"), expected.group("updated"),
            GENUINE_TRAINING, f"{label}/updated")
    else:
        assert not _results(arrays, label, "updated")
    _assert_genuine(_results(arrays, label, "gradients"), expected.group("gradients"),
        GENUINE_TRAINING, f"{label}/gradients")


# -- eager mode -------------------------------------------------------------------------------------------------


@pytest.fixture(params=STYLES)
def hub(request):
    """The `hub` a legacy program sees: `from legacy import hub`, or legacy.install() + import tensorflow_hub."""
    if request.param == "legacy":
        from legacy import hub as legacy_hub

        yield legacy_hub
        return
    import legacy
    from legacy.hub import installer

    legacy.install()
    import tensorflow_hub

    yield tensorflow_hub
    installer.uninstall()


@pytest.fixture(scope="module")
def specs(converted) -> dict:
    """{case: ModuleSpec}, each loaded once (a TF2 model is turned into TF1 graph variants when loaded)."""
    from legacy import hub

    return {case: hub.load_module_spec(_path(*case, converted)) for case in CASES}


def _eager_finetune(module, images, loss_weights, steps: int, lr: float) -> tuple:
    """The golden loop in TF2 style: in eager code a trainable module applies its update ops on each call."""
    optimizer = tf.compat.v1.train.GradientDescentOptimizer(lr)
    losses = []
    for _ in range(steps):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(module(images) * loss_weights)
            loss += tf.add_n([f() for f in module.regularization_losses]) if module.regularization_losses else 0.0
        gradients = tape.gradient(loss, module.trainable_variables)
        optimizer.apply_gradients([(g, v) for g, v in zip(gradients, module.trainable_variables) if g is not None])
        losses.append(float(loss))
    return np.asarray(losses, np.float32), {k: v.numpy() for k, v in module.variable_map.items()}


@pytest.fixture(scope="module")
def eager(specs) -> dict:
    """{case: results} of the shim in eager mode: every output of every variant, and the fine-tuning loop."""
    from legacy import hub

    results = {}
    for case in CASES:
        name, _ = case
        spec, info, arrays = specs[case], golden_json(name), golden_arrays(name)
        images = tf.constant(arrays["inputs/images"])
        applied = {"infer": hub.Module(spec)}
        if info["has_train_variant"]:
            applied["train"] = hub.Module(spec, trainable=True, tags={"train"})
        outputs = {}
        for variant, module in applied.items():
            for signature in module.get_signature_names():
                for key, value in module(dict(images=images), signature=signature, as_dict=True).items():
                    outputs[f"{variant}/{signature}/{key}"] = value.numpy()
        trainable = hub.Module(spec, trainable=True, tags={"train"} if info["has_train_variant"] else None)
        losses, weights = _eager_finetune(trainable, images, arrays["inputs/loss_weights"],
                                          info["finetune"]["steps"], info["finetune"]["lr"])
        results[case] = {"outputs": outputs, "finetune_loss": losses, "finetune": weights}
    return results


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_eager_snippets_run_verbatim(hub, specs, case, eager):
    """The TF Hub image guide, line for line, in TF2 code: the same bits as the eager results of the module."""
    name, kind = case
    images = tf.constant(golden_arrays(name)["inputs/images"])
    assert tf.executing_eagerly()
    from legacy import hub as shim

    assert hub.load_module_spec is shim.load_module_spec  # with both imports: the shim's loader

    module_spec = specs[case]  # = hub.load_module_spec(path), loaded once for the module's tests
    height, width = hub.get_expected_image_size(module_spec)
    module = hub.Module(module_spec)
    features = module(images)

    assert [height, width] == golden_json(name)["expected_image_size"]
    assert isinstance(features, tf.Tensor) and hasattr(features, "numpy")
    np.testing.assert_array_equal(features.numpy(), eager[case]["outputs"]["infer/default/default"],
                                  err_msg="module(images)")
    if "image_feature_vector" in module.get_signature_names():
        outputs = module(dict(images=images), signature="image_feature_vector", as_dict=True)
        features = outputs["default"]
        np.testing.assert_array_equal(features.numpy(), eager[case]["outputs"]["infer/image_feature_vector/default"],
                                      err_msg="image_feature_vector")


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_eager_outputs_are_the_genuine_ones(eager, case, genuine):
    name, _ = case
    _assert_genuine(eager[case]["outputs"], genuine[name].group("outputs"),
        GENUINE_OUTPUTS, f"{_label(*case)} eager outputs")


@pytest.mark.parametrize("name", MODULES)
def test_eager_module_and_its_conversion_compute_the_same_bits(eager, name):
    tf1, tf2 = eager[(name, "tf1")], eager[(name, "tf2")]
    np.testing.assert_array_equal(tf2["finetune_loss"], tf1["finetune_loss"])
    for field in ("outputs", "finetune"):
        assert tf1[field] and sorted(tf1[field]) == sorted(tf2[field]), field
        for key, value in tf1[field].items():
            np.testing.assert_array_equal(tf2[field][key], value, err_msg=f"{field}/{key}")


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_eager_variables_hold_the_module_weights(specs, case, genuine):
    from legacy import hub

    name, _ = case
    golden = golden_json(name)
    frozen = hub.Module(specs[case])
    initial = genuine[name].group("initial")
    assert initial and sorted(frozen.variable_map) == sorted(initial) == sorted(golden["variables"])
    for key, value in initial.items():  # straight from the checkpoint: exact
        np.testing.assert_array_equal(frozen.variable_map[key].numpy(), value, err_msg=key)
    assert frozen.trainable_variables == [] and frozen.regularization_losses == []
    tags = {"train"} if golden["has_train_variant"] else None
    trainable = hub.Module(specs[case], trainable=True, tags=tags)
    assert sorted(n for n, v in trainable.variable_map.items() if v.trainable) == sorted(
        n for n, v in golden["variables"].items() if v["trainable"])
    assert len(trainable.regularization_losses) == golden["regularization_loss_count"]
    if golden["regularization_loss_sum"] is not None:
        assert_close(np.float32(tf.add_n([loss() for loss in trainable.regularization_losses])),
                     np.float32(genuine[name].info["regularization_loss_sum"]), GENUINE_TRAINING,
                     "regularization loss sum")


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_eager_finetuning_with_a_gradient_tape_ends_with_the_genuine_weights(eager, case, genuine):
    name, _ = case
    assert_close(eager[case]["finetune_loss"], genuine[name].arrays["finetune_loss"], GENUINE_TRAINING, "finetune_loss")
    _assert_genuine(eager[case]["finetune"], genuine[name].group("finetune"),
        GENUINE_TRAINING, f"{_label(*case)} finetune")
