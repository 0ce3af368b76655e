"""Corrupt and unsupported modules: one clear error each, naming the problem and the fix."""

from __future__ import annotations

import os
import shutil

import pytest

from legacy.errors import ModuleFormatError, NotAModuleError
from legacy.engine.functions import load_variables
from legacy.format.reader import read_module
from tests.corpus import module_path


@pytest.fixture
def module_copy(tmp_path):
    dst = tmp_path / "module"
    shutil.copytree(module_path("convnet_bn"), dst)
    return dst


def _truncate(path, keep):
    data = path.read_bytes()
    path.write_bytes(data[:keep(len(data))])


@pytest.mark.parametrize("damage, message", [
    (lambda d: _truncate(d / "saved_model.pb", lambda n: n // 2), "corrupt or truncated"),
    (lambda d: (d / "saved_model.pb").write_bytes(b"\xff" * 100), "corrupt or truncated"),
    (lambda d: (d / "saved_model.pb").write_bytes(b""), "holds no graphs"),
    (lambda d: os.remove(d / "saved_model.pb"), "saved_model.pb is missing"),
    (lambda d: (d / "tfhub_module.pb").write_bytes(b"\x08\x04"), "declares format 4"),
    (lambda d: (d / "tfhub_module.pb").write_bytes(b"\x08\x03\x12\x03foo"), "unknown features \\['foo'\\]"),
    (lambda d: (d / "tfhub_module.pb").write_bytes(b"\x08"), "tfhub_module.pb is corrupt"),
    (lambda d: os.remove(d / "variables" / "variables.index"), "variables.index is missing"),
])
def test_corrupt_module_gives_one_clear_error(module_copy, damage, message):
    damage(module_copy)
    with pytest.raises(ModuleFormatError, match=message) as info:
        load_variables(read_module(str(module_copy)))
    assert "\n" not in str(info.value)
    assert any(fix in str(info.value) for fix in ("re-export", "re-download", "newer"))


@pytest.mark.parametrize("damage, message", [
    (lambda d: _truncate(d / "variables" / "variables.data-00000-of-00001", lambda n: n // 3), "corrupt"),
    (lambda d: _truncate(d / "variables" / "variables.index", lambda n: n - 20), "cannot be read"),
])
def test_damaged_checkpoint_gives_one_clear_error(module_copy, damage, message):
    damage(module_copy)
    with pytest.raises(ModuleFormatError, match=message):
        load_variables(read_module(str(module_copy)))


def test_checkpoint_missing_a_variable(module_copy, tmp_path):
    import tensorflow as tf

    from legacy.format.writer import write_checkpoint

    reader = tf.train.load_checkpoint(str(module_copy / "variables" / "variables"))
    values = {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map() if k != "conv2/weights"}
    shutil.rmtree(module_copy / "variables")
    os.makedirs(module_copy / "variables")
    write_checkpoint(str(module_copy / "variables" / "variables"), values)
    with pytest.raises(ModuleFormatError, match="no value for variable 'conv2/weights'"):
        load_variables(read_module(str(module_copy)))


@pytest.mark.parametrize("make, message", [
    (lambda p: p, "no such file or directory"),
    (lambda p: (p.write_text("x"), p)[1], "is a file"),
    (lambda p: (p.mkdir(), p)[1], "not a TF1 Hub module"),
])
def test_not_a_module(tmp_path, make, message):
    with pytest.raises(NotAModuleError, match=message):
        read_module(str(make(tmp_path / "thing")))
