"""TF1 -> TF2 -> TF1 keeps extra-input signatures: the genuine hub.Module sees the *_with_bn_hparams signatures of
the module written back with the same inputs and outputs, and computes what the original computes, at the module's
default batch_norm_momentum and at another value (the training variant's moving statistics move accordingly)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.bridge.real_modules import assert_close_to_genuine, for_key, genuine_runs, images, real_module

HPARAMS = ("image_feature_vector_with_bn_hparams", "image_classification_with_bn_hparams")
SCALE = 2.0  # the value given for scaled_features' input `scale`, which has no default
MOMENTUM = 0.5  # the module's default is 0.99


@pytest.fixture(scope="module")
def round_trip(tmp_path_factory, oracle):
    from bridge.conversion.converter import convert

    root = tmp_path_factory.mktemp("hparams_round_trip")
    original = real_module("hparams_net")
    convert(original, str(root / "tf2"), inputs={"scale": SCALE}, progress=None)
    lines = []
    result = convert(str(root / "tf2"), str(root / "tf1"), inputs={"scale": SCALE}, progress=lines.append)
    x = images(4, (20, 20), seed=3)
    runs = {}
    for label, path in (("original", original), ("round_trip", result.destination)):
        runs[f"{label}/inference"] = (path, x, "", {"scale": SCALE})
        runs[f"{label}/train"] = (path, x, "train", {"scale": SCALE})
        runs[f"{label}/train_momentum"] = (path, x, "train", {"scale": SCALE, "batch_norm_momentum": MOMENTUM})
    outputs, described = genuine_runs(runs, root, describe=(original, result.destination))
    return dict(result=result, lines=lines, outputs=outputs, original=described[original],
                written=described[result.destination])


def test_the_genuine_library_sees_the_same_signatures_inputs_and_outputs(round_trip):
    original, written = round_trip["original"], round_trip["written"]
    assert sorted(written) == sorted(original) == ["", "train"]
    for tags in original:
        assert written[tags] == original[tags]
        for name in HPARAMS:
            assert written[tags][name]["inputs"] == {"batch_norm_momentum": ["float32", []],
                                                      "images": ["float32", [None, None, None, 3]]}
        assert written[tags]["scaled_features"]["inputs"]["scale"] == ["float32", []]


@pytest.mark.parametrize("run", ["inference", "train", "train_momentum"])
def test_the_genuine_library_computes_the_same_outputs_and_updates(round_trip, run):
    original, written = round_trip["outputs"][f"original/{run}"], round_trip["outputs"][f"round_trip/{run}"]
    assert sorted(written) == sorted(original)
    assert any(k.startswith("updates/") for k in original) == (run != "inference")
    for key in original:
        assert_close_to_genuine(written[key], original[key], f"{run}: {key}", for_key(key))


def test_moving_statistics_move_with_the_momentum_given(round_trip):
    """BN moving averages move by (1 - momentum) * (batch statistic - moving value): 0.5 moves them 50x as far
    as the default 0.99. The run without a momentum (image-only signatures: the genuine harness leaves out a
    signature whose input it is not given) applies the UPDATE_OPS at the written-back default."""
    default, fed = round_trip["outputs"]["round_trip/train"], round_trip["outputs"]["round_trip/train_momentum"]
    reference = [k for k in default if k.startswith("updates/image_feature_vector/") and "moving" in k]
    assert reference
    for key in reference:
        assert np.max(np.abs(default[key])) > 0
        np.testing.assert_array_equal(fed[key], default[key])  # not fed the momentum: the default again
        for name in HPARAMS:
            moved = fed[key.replace("/image_feature_vector/", f"/{name}/")]
            np.testing.assert_allclose(moved, 50 * default[key], rtol=1e-3, err_msg=f"{name}: {key}")


def test_the_tf2_to_tf1_verification_fed_the_extra_inputs(round_trip):
    report = round_trip["result"].verification
    assert report.passed, report.table()
    assert "signatures_not_compared" not in report.settings
    assert report.settings["inputs"]["scaled_features"] == {"scale": SCALE}
    for name in HPARAMS + ("scaled_features",):
        for mode in ("inference", "training"):
            assert report.result(f"{name}/default", mode=mode).identical
