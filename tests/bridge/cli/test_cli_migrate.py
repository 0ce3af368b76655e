"""`bridge migrate`: the bundled zoo plus a corrupt and an unsafe model (each reported, the rest converted and
verified), `--jobs 2`, the JSON report, and a run resumed after SIGKILL."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from tests.bridge.tf2_models import reads_a_file
from tests.corpus import MODULES, ROOT, module_path

BRIDGE = [sys.executable, "-m", "bridge.cli"]
ENV = {**os.environ, "PYTHONPATH": ROOT}


@pytest.fixture(scope="module")
def zoo(tmp_path_factory) -> str:
    """testdata/modules, plus a module with a corrupt saved_model.pb and an unsafe SavedModel, in one folder."""
    root = tmp_path_factory.mktemp("zoo") / "zoo"
    shutil.copytree(os.path.join(ROOT, "testdata", "modules"), root)
    corrupt = root / "corrupt"
    shutil.copytree(module_path("convnet_bn"), corrupt)
    (corrupt / "saved_model.pb").write_bytes(b"\x08\x03not a saved model")
    reads_a_file(str(root / "nested" / "unsafe"))
    return str(root)


def test_migrate_a_zoo_in_parallel(zoo, tmp_path):
    out, report = tmp_path / "out", tmp_path / "migrate.json"
    proc = subprocess.run([*BRIDGE, "migrate", zoo, "--out", str(out), "--jobs", "2", "--json-file", str(report)],
                          capture_output=True, text=True, env=ENV, timeout=600)
    assert proc.returncode == 1, proc.stderr  # two models failed, the others converted
    with open(report) as f:
        data = json.load(f)
    models = {m["name"]: m for m in data["models"]}
    assert sorted(models) == sorted(MODULES + ["corrupt", "unsafe"])
    for name in MODULES:
        assert models[name]["status"] == "ok" and models[name]["verified"] and models[name]["direction"] == "tf1->tf2"
        assert os.path.isfile(out / name / "saved_model.pb")
    assert models["corrupt"]["status"] == "error" and "corrupt" in models["corrupt"]["reason"].lower()
    assert models["unsafe"]["status"] == "error" and "ReadFile" in models["unsafe"]["reason"]
    assert not (out / "corrupt").exists() and not (out / "unsafe").exists()
    assert data["status"] == "error" and data["counts"] == {"ok": 3, "skipped": 0, "verification_failed": 0,
                                                           "error": 2}
    lines = proc.stdout.splitlines()  # the summary table, one row per model, then the reasons
    assert lines[0].split() == ["model", "direction", "verdict", "worst", "output", "size", "seconds"]
    assert any(line.startswith("convnet_bn ") and " PASS " in line for line in lines)
    assert any(line.startswith("unsafe: ") for line in lines)


def test_migrate_resumes_after_sigkill(tmp_path):
    out = tmp_path / "out"
    argv = [*BRIDGE, "migrate", os.path.join(ROOT, "testdata", "modules"), "--out", str(out), "--no-verify"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV,
                            start_new_session=True)
    state = out / ".bridge-migrate"
    deadline = time.monotonic() + 300
    done = []
    while time.monotonic() < deadline and not done:
        time.sleep(0.2)
        for record in state.glob("*.json") if state.exists() else []:
            try:
                if json.loads(record.read_text()).get("status") == "ok":
                    done.append(record.stem)
            except ValueError:
                pass
    assert done, "no model finished in time"
    os.killpg(proc.pid, signal.SIGKILL)  # migrate and the conversion it was running
    proc.wait()
    resumed = subprocess.run([*argv, "--json"], capture_output=True, text=True, env=ENV, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    data = json.loads(resumed.stdout)
    statuses = {m["name"]: m["status"] for m in data["models"]}
    assert statuses[done[0]] == "skipped" and set(statuses) == set(MODULES)
    assert all(s in ("ok", "skipped") for s in statuses.values())
    assert sorted(os.listdir(out)) == sorted(MODULES + [".bridge-migrate"])  # no half-written leftovers
    for name in MODULES:
        assert os.path.isfile(out / name / "saved_model.pb")


def test_migrate_bad_usage_exits_2(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = subprocess.run([*BRIDGE, "migrate", str(empty), "--out", str(tmp_path / "out"), "--json"],
                          capture_output=True, text=True, env=ENV, timeout=120)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert json.loads(proc.stdout)["status"] == "error" and "holds no TF1 Hub module" in proc.stderr
    assert not (tmp_path / "out").exists()
