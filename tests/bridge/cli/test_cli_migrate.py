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


def test_ctrl_c_stops_queued_and_running_conversions(tmp_path):
    """SIGINT to `bridge migrate --jobs 2` (the process alone, as `kill -INT` does; a terminal's Ctrl-C also
    reaches the children) once a model is done: exit 130 within seconds, the queued models never start, the
    running ones stop and leave nothing behind, every finished model keeps its record."""
    src, out = tmp_path / "src", tmp_path / "out"
    names = [f"m{i}" for i in range(1, 7)]
    for name in names:
        shutil.copytree(module_path("convnet_bn"), src / name)
    proc = subprocess.Popen([*BRIDGE, "migrate", str(src), "--out", str(out), "--jobs", "2", "--no-verify",
                             "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    state = out / ".bridge-migrate"

    def records() -> dict:
        found = {}
        for path in state.glob("*.json") if state.exists() else []:
            try:
                found[path.stem] = json.loads(path.read_text())["status"]
            except ValueError:
                pass
        return found

    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and "ok" not in records().values():
        time.sleep(0.1)
    assert "ok" in records().values(), "no model finished in time"
    interrupted = time.monotonic()
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert time.monotonic() - interrupted < 15, "the queued models went on converting"
    assert json.loads(stdout) == {"status": "error", "reason": "interrupted", "command": "bridge migrate"}
    assert stderr.splitlines()[-1] == "bridge migrate: error: interrupted"
    done = records()
    time.sleep(2)  # nothing goes on in the background
    assert records() == done
    converted = sorted(set(os.listdir(out)) - {".bridge-migrate"})
    assert converted == sorted(name for name, status in done.items() if status == "ok"), (converted, done)
    assert len(converted) < len(names) and set(done.values()) <= {"ok", "running"}
    for name in converted:
        assert os.path.isfile(out / name / "saved_model.pb")
