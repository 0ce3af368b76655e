"""Any input size: a module taking [?, ?, ?, 3] converts to a model taking any size, verified at two sizes."""

from __future__ import annotations

import tensorflow as tf

from tests.bridge.real_modules import assert_close_to_genuine, genuine_outputs, images, real_module


def test_any_size_module_converts_and_verifies_at_the_default_and_another_size(tmp_path, capsys):
    from bridge.cli import main
    from bridge.conversion.converter import convert
    from legacy.format.metadata import read_metadata

    path = real_module("hparams_net")
    result = convert(path, str(tmp_path / "tf2"), progress=lambda m: None)
    report = result.verification
    assert report.passed, report.table()
    assert report.inputs["image_size"] == [20, 20]  # image_module_info's default size
    other = report.settings["other_image_size"]
    assert other["status"] == "pass" and other["size"] != [20, 20]
    [at_other] = report.other_sizes
    assert at_other.inputs["image_size"] == other["size"]
    assert {r.mode for r in at_other.results} >= {"inference", "training", "updates"}
    assert at_other.passed and {r.name for r in at_other.results} == {r.name for r in report.results}
    assert read_metadata(str(tmp_path / "tf2")).image_size == (20, 20)
    assert main(["inspect", str(tmp_path / "tf2")]) == 0
    assert "expected image size: 20x20" in capsys.readouterr().out

    obj = tf.saved_model.load(str(tmp_path / "tf2"))
    for size in ((20, 20), (13, 37)):
        x = images(3, size)
        genuine = genuine_outputs(path, x, tmp_path, batch_norm_momentum=0.99)
        for signature in ("default", "image_classification", "image_feature_vector"):
            out = obj.signatures[signature](images=tf.constant(x))["default"].numpy()
            assert_close_to_genuine(out, genuine[f"{signature}/default"], f"{signature} at {size}")
        assert_close_to_genuine(obj(tf.constant(x)).numpy(), genuine["default/default"], f"__call__ at {size}")
