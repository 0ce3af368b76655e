"""`--input NAME=VALUE` (CLI) and `inputs=` (Python): values for signature inputs besides images in parity and
verification; bad values are refused before any model loads."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bridge.cli import main
from tests.bridge.real_modules import real_module


@pytest.mark.parametrize("argv, message", [
    (["--input", "batch_norm_momentum"], "--input 'batch_norm_momentum' is not NAME=VALUE"),
    (["--input", "batch_norm_momentum=fast"], "--input batch_norm_momentum=fast: the value is not a number"),
    (["--input", "scale=1", "--input", "scale=2"], "--input scale is given twice"),
    (["--input", "2x=1"], "'2x' is not an input name"),
])
def test_bad_input_options_fail_before_anything_loads(argv, message, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "bridge.cli", "parity", "a/", "b/", *argv],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "tensorflow" not in proc.stderr.lower()


def test_input_needs_verification(tmp_path, capsys):
    assert main(["convert", "testdata/modules/convnet_bn", str(tmp_path / "out"), "--no-verify",
                 "--input", "scale=2"]) == 2
    assert "--input has no effect with --no-verify" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_python_api_spells_inputs_its_way(tmp_path):
    from bridge import compare
    from legacy.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match=r"inputs=\{'scale': 'x'\}: the value is not a number"):
        compare("testdata/modules/convnet_bn", "testdata/modules/convnet_bn", inputs={"scale": "x"})


@pytest.fixture(scope="module")
def conversion(tmp_path_factory, oracle):
    from bridge import convert

    return convert(real_module("hparams_net"), str(tmp_path_factory.mktemp("input_option") / "tf2"),
                   inputs={"batch_norm_momentum": 0.5}, progress=None)


def test_convert_verifies_with_the_value_given(conversion):
    report = conversion.verification
    assert report.passed
    assert report.settings["inputs"]["image_feature_vector_with_bn_hparams"] == {"batch_norm_momentum": 0.5}
    assert "scaled_features" in report.settings["signatures_not_compared"]


def test_parity_feeds_the_input_and_names_what_it_cannot_compare(conversion, tmp_path, capsys):
    src, dst = real_module("hparams_net"), conversion.destination
    assert main(["parity", src, dst, "--random", "2", "--training", "--input", "scale=3", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["settings"]["inputs"]["scaled_features"] == {"scale": 3.0}
    assert "signatures_not_compared" not in report["settings"]
    assert main(["parity", src, dst, "--random", "2", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["settings"]["signatures_not_compared"]["scaled_features"].startswith(
        "its input 'scale' has no default in the model, and no value was given; pass --input scale=VALUE")
    assert any(n.startswith("signature scaled_features not compared") for n in report["notes"])
    assert main(["parity", src, dst, "--random", "2", "--input", "momentum=0.5"]) == 2
    assert "--input momentum=... names no input of the compared signatures" in capsys.readouterr().err
    assert main(["parity", src, dst, "--random", "2", "--signature", "scaled_features"]) == 2
    assert "signature 'scaled_features' cannot be compared" in capsys.readouterr().err
