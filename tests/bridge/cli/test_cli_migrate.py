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


# Loaded by every process of the run below (on PYTHONPATH as sitecustomize): in a `bridge convert` process whose
# destination names MOVE_A_WEIGHT_IN, logits/biases[0] moves by 0.05 just before the converted SavedModel is
# written, as tests/bridge/conversion/test_convert_verify.py's broken_tf1_to_tf2 does in-process. The verification
# that follows is the real one.
MOVE_A_WEIGHT = '''
import os, sys
if os.environ.get("MOVE_A_WEIGHT_IN") and "convert" in sys.argv:
    import tensorflow as tf

    _real_save = tf.saved_model.save

    def _save(obj, path, *args, **kwargs):
        if os.environ["MOVE_A_WEIGHT_IN"] in os.fspath(path):
            var = next(v for v in obj.variables if v.name.startswith("logits/biases"))
            var.assign_add(tf.one_hot(0, var.shape[0]) * 0.05)
        return _real_save(obj, path, *args, **kwargs)

    tf.saved_model.save = _save
'''


@pytest.fixture(scope="module")
def failed_run(tmp_path_factory) -> dict:
    """`bridge migrate` over convnet_bn and `broken` (convnet_bn again, whose conversion moves a weight), at
    COLUMNS=60: its exit status, output, JSON report and --out."""
    root = tmp_path_factory.mktemp("failing")
    hook = root / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(MOVE_A_WEIGHT)
    for name in ("convnet_bn", "broken"):
        shutil.copytree(module_path("convnet_bn"), root / "src" / name)
    out, report = root / "out", root / "migrate.json"
    env = {**ENV, "PYTHONPATH": os.pathsep.join([ROOT, str(hook)]), "MOVE_A_WEIGHT_IN": "broken", "COLUMNS": "60"}
    env.pop("BRIDGE_DEBUG", None)
    proc = subprocess.run([*BRIDGE, "migrate", str(root / "src"), "--out", str(out), "--jobs", "2", "--json-file",
                           str(report)], capture_output=True, text=True, env=env, timeout=600)
    with open(report) as f:
        return {"proc": proc, "report": json.load(f), "out": out}


def test_a_model_that_fails_verification(failed_run):
    proc, data, out = failed_run["proc"], failed_run["report"], failed_run["out"]
    assert proc.returncode == 1, proc.stderr
    models = {m["name"]: m for m in data["models"]}
    assert models["convnet_bn"]["status"] == "ok" and models["convnet_bn"]["verified"]
    broken = models["broken"]
    assert broken["status"] == "verification_failed" and "does not match its source" in broken["reason"]
    assert broken["worst_output"] == {**broken["worst_output"], "name": "image_classification/default",
                                      "status": "fail"}
    assert data["status"] == "verification_failed"
    assert data["counts"] == {"ok": 1, "skipped": 0, "verification_failed": 1, "error": 0}
    assert sorted(os.listdir(out)) == [".bridge-migrate", "convnet_bn"]  # nothing written for the failed model
    lines = proc.stdout.splitlines()
    assert any(line.startswith("broken ") and " FAIL " in line for line in lines), proc.stdout
    assert any(line.startswith("convnet_bn ") and " PASS " in line for line in lines), proc.stdout
    assert any(line.startswith("broken: ") for line in lines)  # the reason, below the table


def test_migrate_output_fits_the_terminal(failed_run):
    from bridge.cli.migrate import format_summary

    proc = failed_run["proc"]
    for stream in (proc.stdout, proc.stderr):  # the run's own, at COLUMNS=60
        assert max(len(line) for line in stream.splitlines()) <= 60, stream
    records = failed_run["report"]["models"]
    assert max(len(f"{r['name']}: {r['reason']}") for r in records) > 120
    for width in (60, 80, 120):
        text = format_summary(records, width=width)
        assert max(len(line) for line in text.splitlines()) <= width, text
        assert " ".join(text.split()).endswith("1 of 2 models converted (0 already done); 1 failed verification, "
                                               "0 failed with an error")


def test_migrate_stderr_holds_only_its_own_lines(failed_run):
    """No TensorFlow start-up lines, warnings or logs: each line is the bridge's, or the wrapped rest of one."""
    lines = failed_run["proc"].stderr.splitlines()
    assert lines[0].startswith("bridge migrate: 2 models to convert")
    assert all(line.startswith(("bridge migrate: ", "    ")) for line in lines), lines
