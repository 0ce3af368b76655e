"""`bridge inspect` (table and --json) on every corpus module matches the genuine library's recorded answers."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from bridge.cli import main
from tests.corpus import MODULES, ROOT, golden_json, module_path


def _bridge(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, "-m", "bridge.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          env=env)


@pytest.mark.parametrize("name", MODULES)
def test_inspect_json_matches_golden(name, capsys):
    assert main(["inspect", "--json", module_path(name)]) == 0
    report = json.loads(capsys.readouterr().out)
    golden = golden_json(name)
    assert report["format"] == "tf1_hub"
    assert report["tags"] == golden["tags"]
    assert report["expected_image_size"] == golden["expected_image_size"]
    assert report["num_image_channels"] == golden["num_image_channels"]
    assert report["image_module_info"] == golden["image_module_info"]
    assert report["assets"] == golden["assets"]
    assert report["variables"]["count"] == len(golden["variables"])
    assert report["variables"]["trainable"] == sum(v["trainable"] for v in golden["variables"].values())
    assert report["variables"]["kinds"] == sorted(
        {"VarHandleOp": "resource", "VariableV2": "reference"}[t] for t in golden["variable_op_types"])
    assert sorted(v["tags"] for v in report["variants"]) == golden["tags"]
    for variant in report["variants"]:
        label = "train" if variant["tags"] else "infer"
        assert sorted(variant["signatures"]) == golden["signatures"][label]
        for sig, info in variant["signatures"].items():
            assert info["inputs"] == golden["inputs"][label][sig]
            assert info["outputs"] == golden["outputs"][label][sig]
    train = [v for v in report["variants"] if v["tags"] == ["train"]] or report["variants"]
    assert train[0]["update_ops"] == golden["update_op_count"]
    assert train[0]["regularization_losses"] == golden["regularization_loss_count"]


def test_inspect_table_and_clean_json_stdout():
    proc = _bridge("inspect", "testdata/modules/convnet_refvars")
    assert proc.returncode == 0, proc.stderr
    assert "TF1 Hub module" in proc.stdout and "expected image size: 24x40" in proc.stdout
    assert "reference variables" in proc.stdout
    proc = _bridge("inspect", "--json", "testdata/modules/convnet_refvars")
    assert json.loads(proc.stdout)["expected_image_size"] == [24, 40]


def test_inspect_converted_model_reports_its_bridge_metadata(converted, capsys):
    dst = converted["classifier_assets"]
    assert main(["inspect", "--json", dst]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["format"] == "tf2_saved_model"
    assert report["expected_image_size"] == golden_json("classifier_assets")["expected_image_size"]
    assert report["reusable"] == {"__call__": True, "variables": True, "trainable_variables": True,
                                  "regularization_losses": True}
    assert report["assets"] == ["labels.txt"]
    assert "serving_default" in report["signatures"] and "image_classification" in report["signatures"]


@pytest.mark.parametrize("args, message", [
    (["inspect", "does/not/exist"], "no such file or directory"),
    (["inspect", "pyproject.toml"], "is a file"),
    (["inspect", "tests"], "neither a TF1 Hub module"),
])
def test_inspect_bad_paths_give_one_line_and_exit_2(args, message):
    proc = _bridge(*args)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr
