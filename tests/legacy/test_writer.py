"""Modules written by `legacy.format.writer` load in the genuine tensorflow_hub 0.15 and give the original's outputs."""

from __future__ import annotations

import os

import numpy as np
import pytest

from legacy.errors import DestinationExistsError, ModuleFormatError
from legacy.format.reader import read_module
from legacy.format.writer import rewrite_module, write_module
from tests.corpus import MODULES, golden_arrays, golden_json, module_path
from tests.oracle import runner


@pytest.mark.oracle
@pytest.mark.parametrize("name", MODULES)
def test_read_write_round_trip_loads_in_genuine_hub(name, tmp_path):
    dst = rewrite_module(read_module(module_path(name)), str(tmp_path / "written"))
    assert sorted(os.listdir(dst)) == ["assets", "saved_model.pb", "tfhub_module.pb", "variables"]
    golden = golden_json(name)
    described = runner.describe(dst)
    for key in ("tags", "signatures", "inputs", "outputs", "expected_image_size", "num_image_channels",
                "image_module_info", "variables", "variable_op_types", "update_op_count",
                "regularization_loss_count", "assets"):
        assert described[key] == golden[key], key
    images = golden_arrays(name)["inputs/images"]
    for tags in golden["tags"]:
        tag_arg = ",".join(tags) or None
        # The same genuine computation on the original and on the written module: bit-identical.
        outputs = runner.run_outputs(dst, images, tmp_path, tags=tag_arg)
        original = runner.run_outputs(module_path(name), images, tmp_path, tags=tag_arg)
        assert sorted(outputs) == sorted(original)
        for key, value in original.items():
            np.testing.assert_array_equal(outputs[key], value, err_msg=key)
        # And within the legacy library's own run-to-run variation of the recorded answers (the generator's
        # graph differs from a plain `run`, which moves the last bits of some outputs).
        expected = {k: v for k, v in golden_arrays(name).items()
                    if k.startswith(f"outputs/{'train' if tags else 'infer'}/")}
        assert sorted(outputs) == sorted(expected)
        for key, value in expected.items():
            scale = float(np.abs(value).max())
            assert float(np.abs(outputs[key] - value).max()) <= 4e-6 * scale, key


def test_existing_destination_is_never_overwritten_without_force(tmp_path):
    module = read_module(module_path("classifier_assets"))
    dst = tmp_path / "out"
    dst.mkdir()
    (dst / "keep.txt").write_text("precious")
    for force in (False, True):  # a folder that is not a model is never replaced, not even with force
        with pytest.raises(DestinationExistsError, match="not a model"):
            rewrite_module(module, str(dst), force=force)
        assert os.listdir(dst) == ["keep.txt"]
    (dst / "keep.txt").unlink()
    rewrite_module(module, str(dst))  # an empty directory is filled
    with pytest.raises(DestinationExistsError, match="--force"):
        rewrite_module(module, str(dst))
    rewrite_module(module, str(dst), force=True)  # a model is replaced with force
    assert (dst / "tfhub_module.pb").exists()
    assert [p for p in os.listdir(tmp_path) if p != "out"] == []  # no temporary leftovers


def test_failed_write_leaves_nothing(tmp_path):
    module = read_module(module_path("convnet_bn"))
    with pytest.raises(ModuleFormatError, match="inference graph variant"):
        write_module(str(tmp_path / "out"), [module.variant({"train"}).meta_graph])
    assert os.listdir(tmp_path) == []


def test_written_variables_checkpoint_from_arrays(tmp_path):
    module = read_module(module_path("convnet_bn"))
    values = {k[len("initial/"):]: v for k, v in golden_arrays("convnet_bn").items() if k.startswith("initial/")}
    dst = write_module(str(tmp_path / "out"), [module.variants[t].meta_graph for t in module.tags], variables=values)
    import tensorflow as tf

    reader = tf.train.load_checkpoint(os.path.join(dst, "variables", "variables"))
    for name, value in values.items():
        np.testing.assert_array_equal(reader.get_tensor(name), value)
