"""Any input size: a module taking [?, ?, ?, 3] converts to a model taking any size, verified at two sizes."""

from __future__ import annotations

import pytest
import tensorflow as tf

from tests.bridge.real_modules import assert_close_to_genuine, genuine_outputs, images, real_module


def test_any_size_module_converts_and_verifies_at_the_default_and_another_size(tmp_path, capsys, oracle):
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


def _any_size_unrecorded(path: str) -> str:
    """A TF1 image module taking [?, ?, ?, 3] with no image_module_info: nothing says what size to verify at."""
    import numpy as np

    from legacy.format.writer import write_module
    from tests.legacy.format.test_safety import add_signature

    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, None, None, 3], name="images")
        kernel = tf.compat.v1.get_variable("conv/kernel", shape=[3, 3, 3, 4], use_resource=True)
        features = tf.reduce_mean(tf.nn.relu(tf.nn.conv2d(x, kernel, 2, "SAME")), [1, 2])
        meta_graph = tf.compat.v1.train.export_meta_graph(graph=graph, collection_list=["variables",
                                                                                        "trainable_variables"])
        add_signature(meta_graph, "default", {"images": x}, {"default": features})
        add_signature(meta_graph, "image_feature_vector", {"images": x}, {"default": features})
    kernel = np.random.default_rng(0).standard_normal([3, 3, 3, 4]).astype(np.float32)
    return write_module(path, [meta_graph], variables={"conv/kernel": kernel})


def test_a_module_recording_no_size_verifies_at_the_size_given(tmp_path):
    """--image-size of a TF1 source is the size to verify at when the module records none; the converted model
    keeps taking any size, and records none either."""
    from bridge.conversion.converter import convert
    from legacy.errors import ConversionError
    from legacy.format.metadata import read_metadata

    src = _any_size_unrecorded(str(tmp_path / "module"))
    with pytest.raises(ConversionError, match=r"records no expected size .* pass image_size=\(height, width\)"):
        convert(src, str(tmp_path / "refused"), progress=lambda m: None)
    assert not (tmp_path / "refused").exists()
    report = convert(src, str(tmp_path / "tf2"), image_size="12x20", progress=lambda m: None).verification
    assert report.passed and report.identical, report.table()
    assert report.inputs["image_size"] == [12, 20]
    assert report.settings["other_image_size"]["status"] == "pass"  # and again at a second size
    assert read_metadata(str(tmp_path / "tf2")).image_size is None
    obj = tf.saved_model.load(str(tmp_path / "tf2"))
    assert obj(tf.zeros([2, 9, 31, 3])).shape == (2, 4)
