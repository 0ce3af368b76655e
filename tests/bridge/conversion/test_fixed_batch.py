"""TF1 image modules exported with a static batch dimension (`images` [2, 16, 16, 3], [3, 16, 16, 3]), against the
genuine library: what it accepts, what the conversions keep, and that they verify and come back.

The modules are exported by the genuine library (tests/oracle/real_modules.py: fixed_batch_net, fixed_batch3_net;
conv + batch norm with a train variant, then a Reshape to [batch, -1], so their graphs compute for that batch only).
Every question to the genuine library is asked in one process (the `genuine_answers` fixture).
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from legacy.errors import InvalidInputError, ModuleCallError
from tests.bridge.real_modules import genuine_runs, images, real_module
from tests.tolerances import GENUINE_OUTPUTS, GENUINE_TRAINING, assert_close

pytestmark = pytest.mark.numerics

X2 = images(2, seed=3)  # one batch of the fixed size
X4 = images(4, seed=4)  # a batch of another size


def _quiet(message):
    pass


@pytest.fixture(scope="module")
def conversions(tmp_path_factory, oracle) -> dict:
    """TF1 -> TF2 -> TF1 of fixed_batch_net and TF1 -> TF2 of fixed_batch3_net, each verified by `convert`."""
    from bridge.conversion.converter import convert

    root = tmp_path_factory.mktemp("fixed_batch")
    tf2 = convert(real_module("fixed_batch_net"), str(root / "tf2"), progress=_quiet)
    said = []  # what `bridge convert` shows of the batch-3 conversion
    return {"tf2": tf2, "tf1": convert(tf2.destination, str(root / "tf1"), progress=_quiet),
            "3/tf2": convert(real_module("fixed_batch3_net"), str(root / "3_tf2"), progress=said.append),
            "3/tf2/progress": said}


@pytest.fixture(scope="module")
def genuine_answers(tmp_path_factory, conversions) -> tuple:
    """({run name: answers}, {module dir: description}) of the genuine library on the module and its round trip."""
    original, back = real_module("fixed_batch_net"), conversions["tf1"].destination
    runs = {"infer": (original, X2, "", {}), "train": (original, X2, "train", {}),
            "tf1/infer": (back, X2, "", {}), "tf1/train": (back, X2, "train", {})}
    calls = {"call/2": (original, 2), "call/4": (original, 4), "tf1/call/4": (back, 4)}
    return genuine_runs(runs, tmp_path_factory.mktemp("fixed_batch_genuine"), describe=(original, back),
                        calls=calls)


def _outputs(answers: dict) -> dict:
    return {k: v for k, v in answers.items() if isinstance(v, np.ndarray) and not k.startswith("updates/")}


# -- what the genuine library does -------------------------------------------------------------------------------

def test_the_genuine_library_takes_the_fixed_batch_only(genuine_answers):
    results, described = genuine_answers
    assert results["call/2"]["accepted"], results["call/2"]
    assert not results["call/4"]["accepted"] and results["call/4"]["error_type"] == "TypeError", results["call/4"]
    inputs = described[real_module("fixed_batch_net")][""]["default"]["inputs"]
    assert inputs == {"images": ["float32", [2, 16, 16, 3]]}


# -- TF1 -> TF2: in memory and written ---------------------------------------------------------------------------

def test_the_adapter_keeps_the_batch_and_matches_the_genuine_library(genuine_answers):
    import bridge

    obj = bridge.adapt(real_module("fixed_batch_net"))
    assert obj.fixed_batch_size == 2
    assert obj._image_spec("default").shape.as_list() == [2, 16, 16, 3]
    infer = genuine_answers[0]["infer"]
    for key, value in sorted(_outputs(infer).items()):
        signature, output = key.split("/")
        assert_close(obj.call_signature(signature, X2)[output].numpy(), value, GENUINE_OUTPUTS, f"adapter {key}")


def test_the_adapter_refuses_another_batch_in_one_line(oracle):
    import bridge

    obj = bridge.adapt(real_module("fixed_batch_net"))
    for call in (lambda: obj(X4), lambda: obj.call_signature("image_classification", X4, training=True),
                 lambda: obj.call_signatures(["default"], X4), lambda: obj(X2[:1])):
        with pytest.raises(InvalidInputError) as e:
            call()
        assert "takes batches of exactly 2 images" in str(e.value) and "\n" not in str(e.value), str(e.value)


def test_the_written_model_keeps_the_batch(conversions):
    obj = tf.saved_model.load(conversions["tf2"].destination)
    specs = [spec for cf in obj.__call__.concrete_functions for spec in tf.nest.flatten(cf.structured_input_signature)
             if isinstance(spec, tf.TensorSpec)]
    assert specs and all(spec.shape.as_list() == [2, 16, 16, 3] for spec in specs), specs
    serving = obj.signatures["serving_default"].structured_input_signature[1]["images"]
    assert serving.shape.as_list() == [2, 16, 16, 3]
    import bridge

    adapter = bridge.adapt(real_module("fixed_batch_net"))  # same kernels, same process: exact
    np.testing.assert_array_equal(obj.image_classification(tf.constant(X2))["default"].numpy(),
                                  adapter.image_classification(X2)["default"].numpy())


def test_a_runner_on_the_written_model_names_the_batch(conversions):
    from bridge.parity.runners import open_runner

    runner = open_runner(conversions["tf2"].destination)
    assert runner.fixed_batch_size == 2 and runner.describe()["fixed_batch_size"] == 2
    with pytest.raises(InvalidInputError, match="takes batches of exactly 2 images.*--batch-size 2|batch_size=2"):
        runner.run("default", X4)
    assert open_runner(real_module("hparams_net")).fixed_batch_size is None  # any batch


def test_the_conversion_verifies_in_batches_of_the_fixed_size(conversions):
    report = conversions["tf2"].verification
    assert report.passed, report.table()
    assert (report.inputs["images"], report.inputs["batches"], report.inputs["batch_size"]) == (8, 4, 2)
    assert report.a["fixed_batch_size"] == report.b["fixed_batch_size"] == 2
    assert {"training", "updates"} <= {r.mode for r in report.results}  # the train variant is compared too


def test_a_batch_that_does_not_divide_the_random_count_gets_more_images(conversions):
    report = conversions["3/tf2"].verification
    assert report.passed, report.table()
    assert (report.inputs["images"], report.inputs["batches"], report.inputs["batch_size"]) == (9, 3, 3)
    assert any("takes batches of exactly 3 images: 1 more seeded random image" in n and "9 images were compared "
               "instead of 8" in n for n in report.notes), report.notes
    said = [m for m in conversions["3/tf2/progress"] if "takes batches of exactly 3 images" in m]
    assert said and said[0].startswith("parity: ") and "9 images were compared instead of 8" in said[0]


# -- TF2 -> TF1: the batch is written back -----------------------------------------------------------------------

def test_the_round_trip_writes_the_batch_back(conversions, genuine_answers):
    results, described = genuine_answers
    back = conversions["tf1"]
    assert back.verification.passed and back.verification.inputs["batch_size"] == 2
    for tags in ("", "train"):
        for signature, info in described[back.destination][tags].items():
            assert info["inputs"] == {"images": ["float32", [2, 16, 16, 3]]}, (tags, signature, info)
    assert not results["tf1/call/4"]["accepted"] and results["tf1/call/4"]["error_type"] == "TypeError"


@pytest.mark.parametrize("mode", ("infer", "train"))
def test_the_round_trip_computes_as_the_original_in_the_genuine_library(genuine_answers, mode):
    results, _ = genuine_answers
    original, back = results[mode], results[f"tf1/{mode}"]
    assert set(original) <= set(back), sorted(set(original) - set(back))
    if mode == "train":
        assert any(k.startswith("updates/") and k.endswith("moving_variance") for k in original), sorted(original)
    for key, value in sorted(original.items()):
        tolerance = GENUINE_TRAINING if key.startswith("updates/") else GENUINE_OUTPUTS
        assert_close(back[key], value, tolerance, f"round trip {mode} {key}")


# -- the import shim ---------------------------------------------------------------------------------------------

def test_the_shim_takes_the_fixed_batch_only(genuine_answers):
    from legacy import hub

    module = hub.Module(real_module("fixed_batch_net"))
    assert_close(module(X2).numpy(), genuine_answers[0]["infer"]["default/default"], GENUINE_OUTPUTS, "shim default")
    with pytest.raises(ModuleCallError) as e:  # a TypeError, as the genuine library's
        module(X4)
    assert isinstance(e.value, TypeError)
    assert "takes batches of exactly 2" in str(e.value) and "\n" not in str(e.value), str(e.value)


# -- bridge inspect ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("which", ("module", "tf2", "tf1"))
def test_inspect_shows_the_fixed_batch(conversions, capsys, which):
    from bridge.cli import main

    path = real_module("fixed_batch_net") if which == "module" else conversions[which].destination
    assert main(["inspect", path]) == 0
    out = capsys.readouterr().out
    assert "default(images: float32[2, 16, 16, 3])" in out, out
