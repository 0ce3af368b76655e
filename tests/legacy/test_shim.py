"""Legacy TF1 code, verbatim, on the shim: the TF Hub image-signature snippets and the classic fine-tuning loop.

Every testdata module and its TF2 conversion (`bridge convert`), in graph mode (a subprocess running
shim_scripts/graph_mode.py, since graph mode is process-wide) and in eager mode, with `from legacy import hub`
and with `legacy.install()` + `import tensorflow_hub as hub`. These small models run deterministically and the shim
computes what the genuine library computes, so every output, gradient, batch-norm update and fine-tuned weight
must have the bits of the golden answers (recorded by the genuine library with `make testdata`).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf

from tests.corpus import MODULES, golden_arrays, golden_json, golden_prefix, module_path
from tests.legacy.shim_scripts.support import run_script

KINDS = ("tf1", "tf2")  # the module itself, or its TF2 SavedModel conversion
CASES = [(name, kind) for name in MODULES for kind in KINDS]


def _ids(case) -> str:
    return "-".join(case)


@pytest.fixture(scope="module")
def tf2_dirs(tmp_path_factory) -> dict:
    """Each testdata module converted by `bridge convert` into a TF2 SavedModel carrying the bridge metadata."""
    from bridge.conversion.converter import convert

    root = tmp_path_factory.mktemp("shim_tf2")
    return {name: convert(module_path(name), str(root / name), progress=lambda m: None).destination
            for name in MODULES}


def _path(name: str, kind: str, tf2_dirs: dict) -> str:
    return module_path(name) if kind == "tf1" else tf2_dirs[name]


def _label(name: str, kind: str) -> str:
    return f"{kind}_{name}"


@pytest.fixture(scope="module", params=["legacy", "install"])
def graph_run(request, tf2_dirs, tmp_path_factory) -> tuple:
    """(style, facts, arrays) of the graph-mode script over every case, with one way of importing `hub`."""
    root = tmp_path_factory.mktemp(f"graph_{request.param}")
    cases = []
    for name, kind in CASES:
        golden = golden_arrays(name)
        inputs = str(root / f"{name}_inputs.npz")
        np.savez(inputs, images=golden["inputs/images"], loss_weights=golden["inputs/loss_weights"])
        # The TF1 fine-tuning loop evaluates the loss, then trains: it gives the golden result only where the
        # batch-norm updates stay out of the forward pass (UPDATE_OPS), as the shim keeps them for TF2 models too.
        cases.append({"label": _label(name, kind), "path": _path(name, kind, tf2_dirs), "inputs": inputs,
                      "finetune": golden_json(name)["finetune"]})
    plan = root / "plan.json"
    plan.write_text(json.dumps({"hub": request.param, "cases": cases}))
    run_script("graph_mode.py", str(plan), str(root / "result"))
    facts = json.loads((root / "result.json").read_text())
    with np.load(root / "result.npz") as data:
        arrays = {k: data[k] for k in data.files}
    return request.param, facts, arrays


def _results(arrays: dict, label: str, prefix: str) -> dict:
    start = f"{label}/{prefix}/"
    return {k[len(start):]: v for k, v in arrays.items() if k.startswith(start)}


# -- graph mode -------------------------------------------------------------------------------------------------


def test_graph_script_really_runs_in_graph_mode(graph_run):
    style, facts, _ = graph_run
    assert facts["executing_eagerly"] is False
    assert facts["hub_module"] == ("legacy.hub" if style == "legacy" else "tensorflow_hub")
    assert facts["Module"] == "legacy.hub.module.Module"
    for name, kind in CASES:
        case = facts[_label(name, kind)]
        assert case["features_in_graph"] and case["features_type"] != "EagerTensor"
        assert "mode=graph" in case["repr"]


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_graph_snippets_give_the_golden_outputs(graph_run, case):
    name, kind = case
    _, facts, arrays = graph_run
    golden = golden_arrays(name)
    label = _label(name, kind)
    np.testing.assert_equal(facts[label]["expected_image_size"], golden_json(name)["expected_image_size"])
    np.testing.assert_array_equal(arrays[f"{label}/snippet/features"], golden["outputs/infer/default/default"],
                                  err_msg="features = module(images)")
    if "image_feature_vector" in golden_json(name)["signatures"]["infer"]:
        np.testing.assert_array_equal(arrays[f"{label}/snippet/feature_vector"],
                                      golden["outputs/infer/image_feature_vector/default"],
                                      err_msg='outputs["default"] of image_feature_vector')
    expected = golden_prefix(name, "outputs")
    produced = _results(arrays, label, "outputs")
    infer = sorted(k for k in expected if k.startswith("infer/"))
    assert sorted(k for k in produced if k.startswith("infer/")) == infer
    assert {k for k in expected if k.startswith("train/")} <= set(produced)
    for key, value in expected.items():
        np.testing.assert_array_equal(produced[key], value, err_msg=key)


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_graph_module_state_is_legacy(graph_run, case):
    """Scopes module/ and module_1/, every checkpoint name, nothing in the training collections when frozen."""
    name, kind = case
    _, facts, _ = graph_run
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


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_graph_finetuning_loop_ends_with_the_genuine_weights(graph_run, case):
    """hub.Module(spec, trainable=True, tags={"train"}), loss + regularization, minimize under UPDATE_OPS."""
    _, facts, arrays = graph_run
    name, kind = case
    golden = golden_json(name)
    label = _label(name, kind)
    assert facts[label]["trainable"] == {"trainable_variables": golden["notes"]["trainable_variable_count"],
                                         "regularization_losses": golden["regularization_loss_count"],
                                         "update_ops": golden["update_op_count"]}
    if golden["regularization_loss_sum"] is None:
        assert facts[label]["regularization_loss_sum"] is None
    else:
        np.testing.assert_allclose(facts[label]["regularization_loss_sum"], golden["regularization_loss_sum"],
                                   rtol=1e-6)
    for key, value in golden_prefix(name, "initial").items():  # straight from the checkpoint
        np.testing.assert_array_equal(arrays[f"{label}/initial/{key}"], value, err_msg=key)
    expected = golden_prefix(name, "finetune")
    assert sorted(_results(arrays, label, "finetune")) == sorted(expected)
    for key, value in expected.items():
        np.testing.assert_array_equal(arrays[f"{label}/finetune/{key}"], value, err_msg=f"finetune/{key}")
    np.testing.assert_array_equal(arrays[f"{label}/finetune_loss"], golden_arrays(name)["finetune_loss"],
                                  err_msg="finetune_loss")
    expected = golden_prefix(name, "updated")
    assert sorted(_results(arrays, label, "updated")) == sorted(expected)
    for key, value in expected.items():
        np.testing.assert_array_equal(arrays[f"{label}/updated/{key}"], value, err_msg=f"updated/{key}")
    expected = golden_prefix(name, "gradients")
    assert sorted(_results(arrays, label, "gradients")) == sorted(expected)
    for key, value in expected.items():
        np.testing.assert_array_equal(arrays[f"{label}/gradients/{key}"], value, err_msg=f"gradients/{key}")


# -- eager mode -------------------------------------------------------------------------------------------------


@pytest.fixture(params=["legacy", "install"])
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


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_eager_snippets_give_the_golden_outputs(hub, tf2_dirs, case):
    name, kind = case
    golden = golden_arrays(name)
    images = tf.constant(golden["inputs/images"])
    assert tf.executing_eagerly()

    module_spec = hub.load_module_spec(_path(name, kind, tf2_dirs))
    height, width = hub.get_expected_image_size(module_spec)
    module = hub.Module(module_spec)
    features = module(images)

    assert [height, width] == golden_json(name)["expected_image_size"]
    assert isinstance(features, tf.Tensor) and hasattr(features, "numpy")
    np.testing.assert_array_equal(features.numpy(), golden["outputs/infer/default/default"],
                                  err_msg="module(images)")
    if "image_feature_vector" in module.get_signature_names():
        outputs = module(dict(images=images), signature="image_feature_vector", as_dict=True)
        features = outputs["default"]
        np.testing.assert_array_equal(features.numpy(), golden["outputs/infer/image_feature_vector/default"],
                                      err_msg="image_feature_vector")
    trained = hub.Module(module_spec, trainable=True, tags={"train"}) if golden_json(name)["has_train_variant"] \
        else None
    for key, value in golden_prefix(name, "outputs").items():
        variant, signature, output = key.split("/")
        applied = module if variant == "infer" else trained
        result = applied(dict(images=images), signature=signature, as_dict=True)[output]
        np.testing.assert_array_equal(result.numpy(), value, err_msg=key)


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_eager_variables_hold_the_module_weights(tf2_dirs, case):
    from legacy import hub

    name, kind = case
    golden = golden_json(name)
    frozen = hub.Module(_path(name, kind, tf2_dirs))
    for key, value in golden_prefix(name, "initial").items():
        np.testing.assert_array_equal(frozen.variable_map[key].numpy(), value, err_msg=key)
    assert sorted(frozen.variable_map) == sorted(golden["variables"])
    assert frozen.trainable_variables == [] and frozen.regularization_losses == []
    tags = {"train"} if golden["has_train_variant"] else None
    trainable = hub.Module(_path(name, kind, tf2_dirs), trainable=True, tags=tags)
    assert sorted(n for n, v in trainable.variable_map.items() if v.trainable) == sorted(
        n for n, v in golden["variables"].items() if v["trainable"])
    assert len(trainable.regularization_losses) == golden["regularization_loss_count"]
    if golden["regularization_loss_sum"] is not None:
        np.testing.assert_allclose(float(tf.add_n([loss() for loss in trainable.regularization_losses])),
                                   golden["regularization_loss_sum"], rtol=1e-6)


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_eager_finetuning_with_a_gradient_tape_ends_with_the_genuine_weights(hub, tf2_dirs, case):
    """The golden loop in TF2 style: in eager code a trainable module applies its update ops on each call."""
    name, kind = case
    golden = golden_json(name)
    arrays = golden_arrays(name)
    images, loss_weights = arrays["inputs/images"], arrays["inputs/loss_weights"]
    module = hub.Module(_path(name, kind, tf2_dirs), trainable=True,
                        tags={"train"} if golden["has_train_variant"] else None)
    optimizer = tf.compat.v1.train.GradientDescentOptimizer(golden["finetune"]["lr"])
    losses = []
    for _ in range(golden["finetune"]["steps"]):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(module(images) * loss_weights)
            loss += tf.add_n([f() for f in module.regularization_losses]) if module.regularization_losses else 0.0
        gradients = tape.gradient(loss, module.trainable_variables)
        optimizer.apply_gradients([(g, v) for g, v in zip(gradients, module.trainable_variables) if g is not None])
        losses.append(float(loss))
    np.testing.assert_array_equal(np.asarray(losses, np.float32), arrays["finetune_loss"],
                                  err_msg="finetune_loss")
    expected = golden_prefix(name, "finetune")
    assert sorted(module.variable_map) == sorted(expected)
    for key, value in expected.items():
        np.testing.assert_array_equal(module.variable_map[key].numpy(), value, err_msg=f"finetune/{key}")
