"""The shared conventions of legacy.format.conventions, on their own: the image-size rule, the model-file tests and
variable naming (the format, hub, engine and parity code all go through these)."""

from __future__ import annotations

import types

import pytest

from legacy.format import protos
from legacy.format.conventions import (MODEL_FILENAMES, attached_image_size, expected_image_size, holds_model,
                                       holds_saved_model, is_model_directory, is_tf1_hub_module, is_tf2_saved_model,
                                       static_image_size, static_num_channels, unique_variable_names, variable_name)


def _info(height: int, width: int):
    return protos.ImageModuleInfo(default_image_size=dict(height=height, width=width))


def test_the_recorded_size_wins_and_the_input_is_not_looked_up():
    def no_lookup():
        raise AssertionError("the input shape was looked up although a size is recorded")

    assert expected_image_size(attached_image_size(_info(32, 24)), no_lookup) == (32, 24)
    assert expected_image_size([160, 128], no_lookup) == (160, 128)  # a converted model's bridge metadata


@pytest.mark.parametrize("info", [None, _info(0, 0), _info(32, 0), _info(0, 24)])
def test_an_attachment_without_both_sizes_falls_back_to_the_input_shape(info):
    assert attached_image_size(info) is None
    assert expected_image_size(attached_image_size(info), lambda: [None, 7, 5, 3]) == (7, 5)


@pytest.mark.parametrize("shape", [None, [None, None, None, 3], [None, 7, None, 3], [7, 5, 3], [1, 0, 5, 3]])
def test_no_size_when_the_input_shape_does_not_give_both(shape):
    assert static_image_size(shape) is None
    assert expected_image_size(None, lambda: shape) is None


def test_channels_come_from_the_static_shape_only():
    assert static_num_channels([None, None, None, 3]) == 3
    assert static_num_channels([None, 7, 5, None]) is None
    assert static_num_channels(None) is None


def test_model_file_tests(tmp_path):
    tf1, tf2, text, empty = (tmp_path / n for n in ("tf1", "tf2", "text", "empty"))
    for d in (tf1, tf2, text, empty):
        d.mkdir()
    for name in MODEL_FILENAMES:
        (tf1 / name).write_bytes(b"")
    (tf2 / "saved_model.pb").write_bytes(b"")
    (text / "saved_model.pbtxt").write_text("")
    assert [is_tf1_hub_module(str(d)) for d in (tf1, tf2, text, empty)] == [True, False, False, False]
    assert [is_tf2_saved_model(str(d)) for d in (tf1, tf2, text, empty)] == [False, True, False, False]
    assert [holds_saved_model(str(d)) for d in (tf1, tf2, text, empty)] == [True, True, False, False]
    assert [holds_model(str(d)) for d in (tf1, tf2, text, empty)] == [True, True, False, False]
    assert [is_model_directory(str(d)) for d in (tf1, tf2, text, empty)] == [True, True, True, False]


def test_variable_names():
    var = types.SimpleNamespace
    assert variable_name(var(name="conv/kernel:0")) == "conv/kernel"
    assert variable_name(var(name="kernel")) == "kernel"  # Keras 3 names carry no output suffix
    assert unique_variable_names(["kernel", "kernel", "", "kernel_1", "kernel"]) == [
        "kernel", "kernel_1", "variable", "kernel_1_1", "kernel_2"]
