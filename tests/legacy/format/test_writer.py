"""Modules written by `legacy.format.writer` load in the genuine tensorflow_hub 0.15 and give the original's outputs."""

from __future__ import annotations

import os

import numpy as np
import pytest

from legacy.errors import DestinationExistsError, ModuleFormatError
from legacy.format.reader import read_module
from legacy.format.writer import rewrite_module, write_module
from tests.corpus import MODULES, checkpoint, golden_arrays, golden_json, module_path
from tests.tolerances import assert_close, recorded


@pytest.fixture(scope="module")
def rewritten(oracle, tmp_path_factory) -> dict:
    """{module: (description, {variant label: (outputs of the rewrite, outputs of the original)})}: every corpus
    module rewritten by legacy.format.writer, and the genuine library's answers on both, from one oracle process."""
    root = tmp_path_factory.mktemp("written")
    questions, plan = [], {}
    for name in MODULES:
        dst = rewrite_module(read_module(module_path(name)), str(root / name))
        assert sorted(os.listdir(dst)) == ["assets", "saved_model.pb", "tfhub_module.pb", "variables"]
        images = golden_arrays(name)["inputs/images"]
        plan[name] = len(questions), golden_json(name)["tags"]
        questions.append(oracle.describe_question(dst))
        for tags in golden_json(name)["tags"]:
            questions += [oracle.run_question(dst, images, tags), oracle.run_question(module_path(name), images, tags)]
    answers = oracle.ask(questions)
    result = {}
    for name, (start, tag_sets) in plan.items():
        outputs = {}
        for i, tags in enumerate(tag_sets):
            outputs["train" if tags else "infer"] = answers[start + 1 + 2 * i], answers[start + 2 + 2 * i]
        result[name] = answers[start], outputs
    return result


@pytest.mark.numerics
@pytest.mark.parametrize("name", MODULES)
def test_read_write_round_trip_loads_in_genuine_hub(rewritten, name):
    golden = golden_json(name)
    described, outputs = rewritten[name]
    for key in ("tags", "signatures", "inputs", "outputs", "expected_image_size", "num_image_channels",
                "image_module_info", "variables", "variable_op_types", "update_op_count",
                "regularization_loss_count", "assets"):
        assert described[key] == golden[key], key
    assert sorted(outputs) == sorted("train" if tags else "infer" for tags in golden["tags"])
    for label, (written, original) in outputs.items():
        # The same genuine computation in one process on the original and on the written module: bit-identical.
        assert original and sorted(written) == sorted(original)
        for key, value in original.items():
            np.testing.assert_array_equal(written[key], value, err_msg=key)
        # And the answers recorded on another machine, within what CPUs differ by.
        expected = {k: v for k, v in golden_arrays(name).items() if k.startswith(f"outputs/{label}/")}
        assert sorted(written) == sorted(expected)
        for key, value in expected.items():
            assert_close(written[key], value, recorded(key), key)


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
    with pytest.raises(DestinationExistsError, match="pass force=True"):
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
    values = checkpoint("convnet_bn")
    dst = write_module(str(tmp_path / "out"), [module.variants[t].meta_graph for t in module.tags], variables=values)
    import tensorflow as tf

    reader = tf.train.load_checkpoint(os.path.join(dst, "variables", "variables"))
    for name, value in values.items():
        np.testing.assert_array_equal(reader.get_tensor(name), value)
