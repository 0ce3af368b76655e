"""Parity of models exported with a fixed batch size: batches of exactly that size, whatever the image count.

fixed_batch_net (images [2, 16, 16, 3]) and fixed_batch3_net ([3, 16, 16, 3]) are exported by the genuine library
(tests/oracle/real_modules.py); their graphs compute for that batch only.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from bridge.cli import main
from bridge.parity.comparison import compare
from legacy.errors import InvalidInputError
from tests.bridge.real_modules import images, real_module


@pytest.fixture(scope="module")
def converted_path(tmp_path_factory, oracle) -> str:
    """fixed_batch_net as a TF2 SavedModel (its verification is tested in test_fixed_batch.py)."""
    from bridge.conversion.converter import convert

    return convert(real_module("fixed_batch_net"), str(tmp_path_factory.mktemp("fixed") / "tf2"), verify=False,
                   progress=None).destination


def test_the_default_batch_is_the_fixed_one(converted_path):
    report = compare(real_module("fixed_batch_net"), converted_path, training=True)
    assert report.passed, report.table()
    assert (report.inputs["images"], report.inputs["batches"], report.inputs["batch_size"]) == (8, 4, 2)
    assert not [n for n in report.notes if "filled the last batch" in n]


def test_the_fixed_batch_may_be_given(converted_path):
    report = compare(real_module("fixed_batch_net"), converted_path, random=4, batch_size=2)
    assert report.passed and report.inputs["batch_size"] == 2


def test_another_batch_size_is_refused_in_one_line(converted_path):
    with pytest.raises(InvalidInputError) as e:
        compare(real_module("fixed_batch_net"), converted_path, batch_size=8)
    message = str(e.value)
    assert "batch_size=8" in message and "exactly 2 images" in message and "batch_size=2" in message
    assert "\n" not in message


def test_given_images_are_all_compared_and_the_last_batch_is_filled(converted_path):
    given = images(5, seed=7)
    report = compare(real_module("fixed_batch_net"), converted_path, images=given, training=True)
    assert report.passed, report.table()
    assert (report.inputs["array_images"], report.inputs["random_images"], report.inputs["images"]) == (5, 1, 6)
    assert report.inputs["batches"] == 3
    assert any("takes batches of exactly 2 images: 1 more seeded random image (seed 0) filled the last batch, so 6 "
               "images were compared instead of 5" in note for note in report.notes), report.notes
    # every image given is in the comparison: the worst element's image index and the shapes cover all six
    shapes = {r.name: r.shape for r in report.results if r.mode == "inference"}
    assert shapes["default/default"] == [6, 8], shapes


def test_models_with_different_fixed_batches_are_refused(converted_path):
    with pytest.raises(InvalidInputError) as e:
        compare(real_module("fixed_batch3_net"), converted_path)
    message = str(e.value)
    assert "exactly 3 images" in message and "exactly 2" in message and "\n" not in message


def test_the_cli_defaults_to_the_fixed_batch_and_refuses_another(capsys, converted_path):
    code = main(["parity", real_module("fixed_batch_net"), converted_path, "--json", "--random", "3"])
    out, _ = capsys.readouterr()
    report = json.loads(out)
    assert code == 0, out
    assert report["inputs"]["batch_size"] == 2 and report["inputs"]["images"] == 4
    code = main(["parity", real_module("fixed_batch_net"), converted_path, "--batch-size", "8"])
    out, err = capsys.readouterr()
    assert code == 2
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and "--batch-size 8" in errors[0] and "--batch-size 2" in errors[0], err
    assert err.rstrip().endswith(errors[0]) and "Traceback" not in err
