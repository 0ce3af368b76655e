"""Quantization-aware graphs (fake-quant ops, inference variant only): convert, verify, run in the shim."""

from __future__ import annotations

import tensorflow as tf

from tests.bridge.real_modules import assert_close_to_genuine, genuine_outputs, images, real_module


def test_fake_quant_module_converts_verifies_and_matches_the_genuine_library(tmp_path, oracle):
    from bridge.conversion.converter import convert
    from legacy import hub
    from legacy.format.reader import read_module

    path = real_module("fakequant_net")
    ops = {n.op for n in read_module(path).variant(set()).meta_graph.graph_def.node}
    assert {"FakeQuantWithMinMaxVars", "FakeQuantWithMinMaxVarsPerChannel"} <= ops
    result = convert(path, str(tmp_path / "tf2"), progress=lambda m: None)
    assert result.verification.passed and result.verification.identical, result.verification.table()
    x = images(4)
    genuine = genuine_outputs(path, x, tmp_path)
    obj = tf.saved_model.load(str(tmp_path / "tf2"))
    for signature in ("default", "image_classification", "image_feature_vector"):
        converted = obj.signatures[signature](images=tf.constant(x))["default"].numpy()
        assert_close_to_genuine(converted, genuine[f"{signature}/default"], f"converted {signature}")
        shim = hub.Module(path)(x, signature=signature).numpy()
        assert_close_to_genuine(shim, genuine[f"{signature}/default"], f"shim {signature}")
