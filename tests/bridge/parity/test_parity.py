"""`bridge.parity.compare` on the corpus: what passes, what fails and where, and what the tolerances mean.

Expectations come from the genuine library (which signatures, outputs and variables a module has, its outputs and
batch-norm updates on the golden inputs, computed on this machine) or from the models run directly with numpy doing
the arithmetic; a perturbed weight stands in for a broken conversion.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import tensorflow as tf

from bridge.conversion.tf1_to_tf2 import adapt
from bridge.parity import compare
from bridge.parity.images import collect_inputs
from bridge.testing import assert_parity
from legacy.errors import InvalidInputError, UnknownSignatureError
from tests.corpus import IMAGES_DIR, MODULES, checkpoint, golden_arrays, golden_json, module_path
from tests.tolerances import RECORDED_OUTPUTS, assert_close, genuine as genuine_tolerance

NAME = "convnet_bn"  # two variants, three signatures, batch norm: every mode has something to compare
GOLDEN_PHOTOS = [os.path.join(IMAGES_DIR, f) for f in ("astronaut.png", "chelsea.png", "camera.png", "horse.png")]


def _var_name(var) -> str:
    return var.name.split(":")[0]


def _perturbed(variable: str, delta: float = 0.05, index: int = 0, name: str = NAME):
    """A fresh adapter of the module with one element of one weight moved by `delta`."""
    obj = adapt(module_path(name))
    var = next(v for v in obj.variables if _var_name(v) == variable)
    value = var.numpy()
    value.flat[index] += delta
    var.assign(value)
    return obj


@pytest.fixture(scope="module")
def reference():
    return adapt(module_path(NAME))


@pytest.fixture(scope="module")
def converted_model(converted):
    """The converted SavedModel of NAME, from the session's corpus (loaded, never written)."""
    return converted[NAME]


def _expected_names(name: str) -> dict:
    """mode -> the result names the golden description implies."""
    info = golden_json(name)
    variables = info["variables"]
    return {
        "inference": {f"{sig}/{key}" for sig, outs in info["outputs"]["infer"].items() for key in outs},
        "gradients": {f"gradients/{v}" for v, d in variables.items() if d["trainable"]},
        "updates": {f"updates/{v}" for v, d in variables.items() if not d["trainable"]},
    }


@pytest.mark.parametrize("name", MODULES)
def test_a_model_compared_with_itself_passes_in_every_mode(name):
    path = module_path(name)
    report = compare(path, path, images=IMAGES_DIR, random=2, training=True, gradients=True, batch_size=4)
    assert report.passed and report.identical, report.table()
    names = {mode: {r.name for r in report.results if r.mode == mode}
             for mode in ("inference", "training", "gradients", "updates")}
    expected = _expected_names(name)
    assert names["inference"] == names["training"] == expected["inference"]
    assert names["gradients"] == expected["gradients"]
    assert names["updates"] == expected["updates"]
    assert report.inputs["image_files"] == 4 and report.inputs["random_images"] == 2
    assert report.table().splitlines()[-2].startswith("PASS")


def test_one_perturbed_weight_fails_the_output_it_reaches_and_only_that(reference):
    report = compare(reference, _perturbed("logits/biases"), images=IMAGES_DIR)
    assert not report.passed
    assert [r.name for r in report.failures] == ["image_classification/default"]
    passed = [r for r in report.results if r.passed]
    assert len(passed) == 3 and all(r.identical for r in passed)
    assert "image_classification/default" in report.table().splitlines()[-2]
    failed = report.failures[0]
    assert failed.status == "fail" and "elements exceed atol" in failed.reason
    assert failed.worst["image_name"].endswith(".png") and failed.worst["index"] == [0]  # the moved bias: class 0


def test_top_k_agreement_of_logits(reference):
    # Classification logits get top-1/top-5 agreement (10 classes); other outputs only when asked (--logits).
    report = compare(reference, _perturbed("logits/biases", delta=100.0), random=4, logits=["default/default"])
    (batch,) = list(collect_inputs(random=4, image_size=(32, 32)).batches())
    top_a = reference.call_signature("image_classification", batch.images)["default"].numpy().argmax(1)
    logits = report.result("image_classification/default")
    # +100 on class 0 makes it B's top class everywhere; A's own top class stays within B's five highest.
    assert logits.top1 == np.mean(top_a == 0) and logits.top5 == 1.0
    assert report.result("default/default").top1 == 1.0
    assert report.result("image_feature_vector/default").top1 is None


def test_the_failing_count_and_errors_are_the_element_wise_truth(reference):
    perturbed = _perturbed("conv2/BatchNorm/beta")
    report = compare(reference, perturbed, images=IMAGES_DIR)
    (batch,) = list(collect_inputs(IMAGES_DIR, image_size=(32, 32)).batches())
    for result in report.results:
        sig, key = result.name.split("/")
        a = reference.call_signature(sig, batch.images)[key].numpy().astype(np.float64)
        b = perturbed.call_signature(sig, batch.images)[key].numpy().astype(np.float64)
        d = np.abs(a - b)
        assert result.scale == np.abs(a).max()
        assert result.atol == pytest.approx(1e-5 * np.abs(a).max())  # the documented default
        fails = (d > result.atol) & (d > result.rtol * np.abs(a))
        assert result.failing == int(fails.sum()), result.name
        assert result.passed == (not fails.any())
        assert result.max_abs == d.max() and result.median_abs == pytest.approx(np.median(d))
        assert result.min_atol == (d[d > result.rtol * np.abs(a)].max() if (d > result.rtol * np.abs(a)).any()
                                   else 0.0)
    assert {r.name for r in report.failures} == {"default/default", "image_feature_vector/default",
                                                 "image_classification/default"}  # not conv1: before conv2


@pytest.fixture(scope="module")
def beta_moved():
    return _perturbed("conv2/BatchNorm/beta")


def _statuses(report) -> dict:
    return {r.name: r.status for r in report.results}


def test_atol_and_rtol_per_output_and_their_precedence(reference, beta_moved):
    run = lambda **tol: compare(reference, beta_moved, random=4, **tol)  # noqa: E731
    assert _statuses(run()) == {"default/default": "fail", "image_classification/default": "fail",
                                "image_feature_vector/default": "fail", "image_feature_vector/conv1": "pass"}
    one = run(atol=["image_classification/default:1"])
    assert _statuses(one)["image_classification/default"] == "pass"
    assert _statuses(one)["default/default"] == "fail"
    assert one.result("image_classification/default").atol_source == "image_classification/default"
    by_key = run(atol={"default": 1})  # the output key: every signature's `default` output
    assert by_key.passed and by_key.result("default/default").atol_source == "default"
    precedence = run(atol={"default": 1, "image_classification/default": 0}, rtol=0)
    assert [r.name for r in precedence.failures] == ["image_classification/default"]
    assert run(atol={"inference": 1}).passed
    assert run(atol=1).passed and run(atol=0, rtol=1).passed  # exceeding one of the two is not failing
    assert not run(atol=0, rtol=0).result("default/default").passed


def test_the_smallest_passing_tolerances_pass_and_anything_smaller_fails(reference, beta_moved):
    report = compare(reference, beta_moved, random=4, rtol=1e-3)
    failed = report.failures
    assert failed
    just = compare(reference, beta_moved, random=4, rtol=1e-3, atol={r.name: r.min_atol for r in failed})
    assert just.passed
    below = compare(reference, beta_moved, random=4, rtol=1e-3,
                    atol={r.name: float(np.nextafter(r.min_atol, 0)) for r in failed})
    assert {r.name for r in below.failures} == {r.name for r in failed}
    at_rtol = compare(reference, beta_moved, random=4, atol={r.name: r.atol for r in failed},
                      rtol={r.name: r.min_rtol for r in failed})
    assert at_rtol.passed
    assert report.to_json()["summary"]["min_passing_atol"] == max(r.min_atol for r in report.results)


def test_an_override_that_names_no_output_is_refused(reference):
    with pytest.raises(InvalidInputError, match="'defualt' matches no output.*image_classification/default"):
        compare(reference, reference, random=2, atol=["defualt:1e-3"])


def test_training_mode_and_batch_norm_updates(reference):
    # A moved moving mean changes inference (normalized by the moving statistics) but not training-mode outputs
    # (normalized by the batch's statistics), and the update blends it in: the updated mean differs too.
    # Channel 1: channel 0 of conv1 is all zero after the relu on these images, so moving it would change nothing.
    moved = _perturbed("conv1/BatchNorm/moving_mean", index=1)
    report = compare(reference, moved, images=IMAGES_DIR, training=True)
    by_mode = {(r.mode, r.name): r for r in report.results}
    inference = [r for (mode, _), r in by_mode.items() if mode == "inference"]
    training = [r for (mode, _), r in by_mode.items() if mode == "training"]
    assert len(inference) == len(training) == 4
    assert all(not r.passed for r in inference) and all(r.identical for r in training)
    assert [name for (mode, name), r in by_mode.items() if mode == "updates" and not r.passed] == [
        "updates/conv1/BatchNorm/moving_mean"]
    # The reference was restored: its variables are the module's weights again.
    assert sorted(_var_name(v) for v in reference.variables) == sorted(checkpoint(NAME))
    for var in reference.variables:
        np.testing.assert_array_equal(var.numpy(), checkpoint(NAME)[_var_name(var)])


def test_gradients_are_matched_by_variable_name(reference):
    same = compare(reference, adapt(module_path(NAME)), random=3, signatures=["default"], gradients=True)
    assert same.passed and same.settings["gradient_training_mode"] is True
    unreached = {r.name[len("gradients/"):] for r in same.results if r.mode == "gradients" and not r.elements}
    assert unreached == set(golden_json(NAME)["notes"]["gradients_none"])  # what the genuine library found
    moved = compare(reference, _perturbed("conv2/BatchNorm/gamma"), random=3, signatures=["default"],
                    gradients=True)
    assert moved.result("gradients/conv1/weights", "gradients").status == "fail"


def test_a_module_and_its_conversion_match_on_disk_and_in_memory(reference, converted_model):
    report = compare(module_path(NAME), converted_model, images=IMAGES_DIR, training=True, gradients=True)
    assert report.passed and report.identical, report.table()
    assert (report.a["format"], report.b["format"]) == ("tf1_hub", "tf2_saved_model")
    loaded = tf.saved_model.load(converted_model)  # no metadata file: the signatures are found on the object
    in_memory = compare(reference, loaded, random=2, training=True)
    assert in_memory.passed and in_memory.identical
    assert sorted(in_memory.settings["signatures"]) == golden_json(NAME)["signatures"]["infer"]


def test_results_do_not_depend_on_the_batch_size(reference, beta_moved):
    # The models' own rounding may change with the batch size (other conv kernels): values agree to 1e-5.
    one, four = (compare(reference, beta_moved, images=IMAGES_DIR, random=3, batch_size=size) for size in (1, 4))
    assert [(r.name, r.status, r.failing, r.elements) for r in one.results] == [
        (r.name, r.status, r.failing, r.elements) for r in four.results]
    for r1, r4 in zip(one.results, four.results):
        for field in ("max_abs", "mean_abs", "min_atol", "scale", "cosine"):
            assert getattr(r1, field) == pytest.approx(getattr(r4, field), rel=1e-5), (r1.name, field)
    assert (one.inputs["batches"], four.inputs["batches"]) == (7, 2)


def test_saved_inputs_and_outputs_are_the_genuine_ones(tmp_path, converted_model, genuine):
    golden = golden_arrays(NAME)
    expected = genuine[NAME].arrays
    inputs_file, outputs_file = str(tmp_path / "inputs.npz"), str(tmp_path / "outputs.npz")
    report = compare(module_path(NAME), converted_model, images=GOLDEN_PHOTOS, random=2, seed=0, batch_size=6,
                     training=True, save_inputs=inputs_file, save_outputs=outputs_file)
    assert report.passed and report.identical
    with np.load(inputs_file) as saved:
        assert_close(saved["batch_00000"], golden["inputs/images"], RECORDED_OUTPUTS, "photographs as fed")
    compared = 0
    with np.load(outputs_file) as saved:
        for sig, outs in golden_json(NAME)["outputs"]["infer"].items():
            for key in outs:
                for mode, label in (("inference", "infer"), ("training", "train")):
                    name = f"{mode}/{sig}/{key}/00000"
                    np.testing.assert_array_equal(saved["A/" + name], saved["B/" + name])
                    key_ = f"outputs/{label}/{sig}/{key}"
                    assert_close(saved["A/" + name], expected[key_], genuine_tolerance(key_), name)
                    compared += 1
        for var, info in golden_json(NAME)["variables"].items():
            if not info["trainable"]:  # one training call = one run of the genuine UPDATE_OPS
                name = f"updates/default/{var}/00000"
                np.testing.assert_array_equal(saved["A/" + name], saved["B/" + name])
                assert_close(saved["A/" + name], expected[f"updated/{var}"], genuine_tolerance("updated/"), name)
                compared += 1
    assert compared == 2 * 4 + 4  # 4 outputs in 2 modes, 4 moving statistics
    again = compare(module_path(NAME), converted_model, images=inputs_file, training=True)
    assert [(r.name, r.scale) for r in again.results] == [(r.name, r.scale) for r in report.results]
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".partial")]


def test_assert_parity_shows_the_table_when_it_fails(reference):
    assert assert_parity(reference, adapt(module_path(NAME)), random=2).identical
    with pytest.raises(AssertionError) as e:
        assert_parity(reference, _perturbed("logits/biases"), random=2)
    message = str(e.value)
    assert "models differ" in message and "FAIL: 1 of 4 outputs do not match" in message
    assert "  image_classification/default" in message and "min atol" in message


def test_bad_requests_name_the_fix(reference):
    with pytest.raises(UnknownSignatureError, match="'nope' is not in A.*image_feature_vector"):
        compare(reference, reference, random=1, signatures=["nope"])
    with pytest.raises(InvalidInputError, match="--image-size"):
        compare(module_path(NAME), module_path("convnet_refvars"), random=1)  # 32x32 against 24x40
    with pytest.raises(InvalidInputError, match="arrays are never resized"):
        compare(reference, reference, images=np.zeros((1, 8, 8, 3), np.float32))


def test_memory_stays_flat_in_the_number_of_images(reference):
    # Streaming: 16 times the images must not need more memory (numpy's allocations are traced). Held whole, the
    # 256 inputs alone would take 3 MB, and the conv1 outputs of both models 16 MB.
    import tracemalloc

    compare(reference, reference, random=8)  # trace the functions first
    peaks = []
    for count in (16, 256):
        tracemalloc.start()
        try:
            compare(reference, reference, random=count, batch_size=8)
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
    assert peaks[1] < 1.2 * peaks[0], peaks
