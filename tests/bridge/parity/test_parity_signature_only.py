"""Parity of TF2 SavedModels that have serving signatures only (Keras 3's `model.export`, `tf.saved_model.save` of
a Keras 3 model): each is compared through its `serving_default` signature, whatever it names its image input, and
a serving endpoint kept as an attribute function is not taken for a function with a training mode."""

from __future__ import annotations

import pytest

import bridge
from bridge.parity.runners import open_runner
from tests.bridge import tf2_models


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    return tf2_models.keras3_exports(str(tmp_path_factory.mktemp("keras3")))


def test_an_export_runs_its_serving_signature_in_inference_mode_only(exports):
    exported, _ = exports
    runner = open_runner(exported)
    assert runner.signature_names == ["default"]  # serving_default, not the `serve` endpoint
    assert not runner.supports_training
    assert runner.signature_inputs("default") == {}  # `keras_tensor` is the image input, not one to feed


@pytest.mark.parametrize("order", ["exported-saved", "saved-exported"])
def test_two_exports_of_one_model_compare_on_their_serving_signature(exports, order):
    exported, saved = exports
    a, b = (exported, saved) if order == "exported-saved" else (saved, exported)
    report = bridge.compare(a, b, random=4, batch_size=4)
    assert report.passed, report.to_json()
    rows = report.to_json()["outputs"]
    assert [(r["mode"], r["name"]) for r in rows] == [("inference", "default/default")]  # its one output
