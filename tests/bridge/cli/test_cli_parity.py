"""`bridge parity`: exit status, the table, the JSON report and its schema, bad usage; in-process and as a program."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from bridge.cli import main
from legacy.format.writer import write_checkpoint
from tests.bridge.tf2_models import reads_a_file
from tests.corpus import IMAGES_DIR, ROOT, golden_json, module_path

NAME = "convnet_bn"
MODULE = module_path(NAME)
BRIDGE = os.path.join(ROOT, ".venv", "bin", "bridge")


@pytest.fixture(scope="module")
def moved(tmp_path_factory) -> str:
    """A copy of the module whose logits/biases[0] is 0.05 higher: only image_classification/default differs."""
    path = str(tmp_path_factory.mktemp("cli") / "moved")
    shutil.copytree(MODULE, path)
    prefix = os.path.join(path, "variables", "variables")
    reader = tf.train.load_checkpoint(prefix)
    values = {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}
    values["logits/biases"] = values["logits/biases"] + np.eye(1, 10, dtype=np.float32)[0] * 0.05
    for name in os.listdir(os.path.dirname(prefix)):
        os.remove(os.path.join(os.path.dirname(prefix), name))
    write_checkpoint(prefix, values)
    return path


def _run(capsys, *argv) -> tuple:
    code = main(["parity", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_exit_0_and_a_table_when_everything_matches(capsys):
    code, out, err = _run(capsys, MODULE, MODULE, "--images", IMAGES_DIR, "--training")
    assert code == 0
    assert out.splitlines()[-2] == "PASS: all 12 outputs within tolerance (all identical)"
    assert "inference (training=False):" in out and "  image_feature_vector/conv1" in out
    assert "4 image files" in out and "tf.image.resize(method='bilinear', antialias=False)" in out
    assert "batch 1/1: 4/4 images" in err  # progress on stderr


def test_exit_1_naming_the_output_that_differs(capsys, moved):
    code, out, _ = _run(capsys, MODULE, moved, "--random", "3", "--quiet")
    assert code == 1
    assert out.splitlines()[-2] == "FAIL: 1 of 4 outputs do not match (3 pass): image_classification/default"
    assert out.splitlines()[-1].startswith("smallest passing tolerance: atol 0.05")


def test_per_output_tolerance_on_the_command_line(capsys, moved):
    code, out, _ = _run(capsys, MODULE, moved, "--random", "3", "--quiet", "--atol", "1e-6",
                        "--atol", "image_classification/default:0.06")
    assert code == 0, out
    code, _, _ = _run(capsys, MODULE, moved, "--random", "3", "--quiet", "--atol", "default:0.04")
    assert code == 1


# JSON report schema: every key a consumer may rely on, with its type.
TOP_LEVEL = {"schema_version": int, "status": str, "passed": bool, "identical": bool, "a": dict, "b": dict,
             "inputs": dict, "settings": dict, "summary": dict, "outputs": list, "notes": list}
MODEL = {"label": str, "format": str, "signatures": list, "expected_image_size": list, "training_mode": bool}
SUMMARY = {"outputs": int, "passed": int, "failed": int, "missing": int, "identical": int, "message": str}
NUMBER = (int, float)
OUTPUT = {"name": str, "signature": (str, type(None)), "key": str, "mode": str, "status": str, "reason": str,
          "shape": list, "batches": int, "elements": int, "atol": NUMBER, "rtol": NUMBER, "atol_source": str,
          "rtol_source": str, "scale": NUMBER, "identical": bool, "max_abs": NUMBER, "mean_abs": NUMBER,
          "median_abs": NUMBER, "p99_abs": NUMBER, "max_rel": NUMBER, "mean_rel": NUMBER, "median_rel": NUMBER,
          "p99_rel": NUMBER, "cosine": NUMBER, "top1": (float, type(None)), "top5": (float, type(None)),
          "failing": int, "min_atol": NUMBER, "min_rtol": NUMBER, "exact_quantiles": bool, "worst": (dict, type(None))}


def _check_types(data: dict, schema: dict, where: str) -> None:
    assert set(schema) <= set(data), f"{where}: missing {sorted(set(schema) - set(data))}"
    for key, kind in schema.items():
        assert isinstance(data[key], kind), f"{where}.{key} = {data[key]!r}"


def _strict_json(text: str):
    def refuse(token):
        raise AssertionError(f"non-standard JSON token {token}")

    return json.loads(text, parse_constant=refuse)


def test_json_on_stdout_is_the_only_output_and_follows_the_schema(capsys, moved):
    code, out, err = _run(capsys, MODULE, moved, "--images", IMAGES_DIR, "--random", "2", "--training",
                          "--gradients", "--json", "-")
    assert code == 1
    report = _strict_json(out)  # stdout holds exactly one JSON document
    assert "batch 1/1" in err and "FAIL: " in err  # progress and the summary line went to stderr
    _check_types(report, TOP_LEVEL, "report")
    _check_types(report["a"], MODEL, "a")
    _check_types(report["summary"], SUMMARY, "summary")
    assert report["status"] == "verification_failed" and report["passed"] is False
    for output in report["outputs"]:
        _check_types(output, OUTPUT, output["name"])
        assert output["status"] in ("pass", "fail", "missing") and output["reason"]
    statuses = [o["status"] for o in report["outputs"]]
    assert report["summary"]["outputs"] == len(statuses)
    assert report["summary"]["failed"] == statuses.count("fail")
    failed = {(o["mode"], o["name"]) for o in report["outputs"] if o["status"] == "fail"}
    # The loss is linear in the logits, so a moved bias changes no gradient.
    assert failed == {("inference", "image_classification/default"), ("training", "image_classification/default")}
    variables = golden_json(NAME)["variables"]
    assert {o["name"] for o in report["outputs"] if o["mode"] == "gradients"} == {
        f"gradients/{v}" for v, d in variables.items() if d["trainable"]}
    assert report["inputs"]["image_files"] == 4 and report["inputs"]["random"] == [
        {"count": 2, "seed": 0, "val_range": [0.0, 1.0]}]
    assert report["settings"]["tolerance"]["default_rtol"] == 1e-5


def test_json_file_and_saved_arrays(tmp_path, capsys):
    report_file, inputs_file = str(tmp_path / "report.json"), str(tmp_path / "inputs.npz")
    code, out, _ = _run(capsys, MODULE, MODULE, "--random", "5", "--batch-size", "2", "--json-file", report_file,
                        "--save-inputs", inputs_file, "--save-outputs", str(tmp_path / "outputs.npz"), "--quiet")
    assert code == 0 and out.splitlines()[-2].startswith("PASS")  # the table still goes to stdout
    with open(report_file) as f:
        assert _strict_json(f.read())["status"] == "ok"
    with np.load(inputs_file) as saved:
        assert sorted(saved.files) == ["batch_00000", "batch_00001", "batch_00002"]
        expected = np.random.default_rng(0).uniform(0, 1, (5, 32, 32, 3)).astype(np.float32)
        np.testing.assert_array_equal(np.concatenate([saved[k] for k in sorted(saved.files)]), expected)
    with np.load(str(tmp_path / "outputs.npz")) as saved:
        assert "A/inference/image_feature_vector/conv1/00002" in saved.files
        assert saved["B/inference/default/default/00002"].shape == (1, 16)


@pytest.mark.parametrize("argv,message", [
    (["/no/such/model", MODULE], "no such file or directory"),
    ([MODULE, MODULE, "--atol", "small"], "--atol 'small' is not a number"),
    ([MODULE, MODULE, "--rtol", "-1"], "--rtol must be a finite number >= 0"),
    ([MODULE, MODULE, "--images", os.path.join(IMAGES_DIR, "SOURCES.md")], "not a JPEG, PNG, GIF or BMP"),
    ([MODULE, MODULE, "--image-size", "32"], "pass e.g. --image-size 224x224"),
    ([MODULE, MODULE, "--val-range", "1"], "pass e.g. --val-range 0,1"),
    ([MODULE, MODULE, "--batch-size", "0"], "--batch-size must be at least 1"),
    ([MODULE, MODULE, "--random", "0"], "no input images"),
    ([MODULE, MODULE, "--signature", "logits"], "'logits' is not in A"),
    ([MODULE, MODULE, "--random", "1", "--atol", "defualt:1"], "'defualt' matches no output"),
    ([MODULE, MODULE, "--random", "1", "--logits", "nope"], "--logits 'nope' matches no output"),
    ([MODULE, MODULE, "--save-outputs", "outputs.txt"], "ending in .npz"),
    ([MODULE, MODULE, "--json-file", "/no/such/dir/report.json"], "/no/such/dir does not exist"),
    ([MODULE, module_path("convnet_refvars")], "pass --image-size HxW"),
])
def test_bad_input_exits_2_with_one_line_naming_the_fix(capsys, argv, message):
    code, out, err = _run(capsys, *argv, "--quiet")
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith("bridge parity: error: ") and message in err


def test_unsafe_models_are_refused_before_they_run(tmp_path, capsys):
    unsafe = reads_a_file(str(tmp_path / "unsafe"))
    code, _, err = _run(capsys, unsafe, unsafe, "--random", "1", "--quiet")
    assert code == 2 and "(ReadFile, reads or writes files)" in err and "--allow-unsafe-ops" in err
    code, out, _ = _run(capsys, unsafe, unsafe, "--random", "1", "--quiet", "--allow-unsafe-ops")
    assert code == 0 and "PASS" in out


def test_archives_are_compared_like_directories(tmp_path, capsys):
    import tarfile

    archive = str(tmp_path / "module.tar.gz")
    with tarfile.open(archive, "w:gz") as tar:
        for name in os.listdir(MODULE):
            tar.add(os.path.join(MODULE, name), arcname=name)
    code, out, _ = _run(capsys, archive, MODULE, "--random", "2", "--quiet")
    assert code == 0 and f"A (reference): {archive} [tf1_hub]" in out
    assert out.splitlines()[-2] == "PASS: all 4 outputs within tolerance (all identical)"


def test_bad_usage_exits_2(capsys):
    with pytest.raises(SystemExit) as e:
        main(["parity", MODULE])
    assert e.value.code == 2 and "the following arguments are required: B" in capsys.readouterr().err


def test_the_installed_program(moved):
    result = subprocess.run([BRIDGE, "parity", MODULE, moved, "--random", "2", "--json", "-"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stderr
    report = _strict_json(result.stdout)
    assert [o["name"] for o in report["outputs"] if o["status"] == "fail"] == ["image_classification/default"]
    assert "bridge parity: batch 1/1" in result.stderr


def test_help_does_not_import_tensorflow():
    code = ("import sys, bridge.cli as cli\n"
            "try:\n    cli.main(['parity', '--help'])\nexcept SystemExit:\n    pass\n"
            "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert "an element fails only when |A-B| > atol AND |A-B| > rtol*|A|" in result.stdout
