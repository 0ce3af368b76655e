"""Run the genuine legacy library (tensorflow-hub 0.15 on TF 2.15) as a subprocess in its own environment.

The environment is `.venv-legacy`, created by `make legacy-env` from constraints/legacy.txt. When it is missing,
the first test that needs it builds it (it never skips): the oracle is part of the test suite.

One process answers a whole batch of questions (`ask`), so TensorFlow 2.15 starts once per batch. Every process of
the legacy environment the tests start goes through `start` (the corpus oracle here, tests/bridge/real_modules.py,
tests/oracle/text_modules.py, cache.script_output, the zoo's oracle): it runs the script under launch.py, which
writes down the tensorflow and tensorflow-hub versions that run it, and no answer is read before they are checked
to be 2.15.1 and 0.15.0. Tests reach the oracle through the `oracle` fixture (tests/conftest.py), which marks them
`oracle`; while any other test runs `permitted` is False and every entry point fails (`check_permitted`, also on
answers cached from an earlier run), so the marker is on exactly the tests that use the genuine library.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading

import numpy as np

from tests.corpus import ROOT

LEGACY_PYTHON = os.environ.get("BRIDGE_LEGACY_PYTHON", os.path.join(ROOT, ".venv-legacy", "bin", "python"))
ORACLE = os.path.join(ROOT, "tests", "oracle", "legacy_oracle.py")
LAUNCH = os.path.join(ROOT, "tests", "oracle", "launch.py")
VERSIONS_FILE = "oracle_versions.json"  # what launch.py wrote, kept beside answers cached from a script
EXPECTED_VERSIONS = {"tensorflow": "2.15.1", "tensorflow_hub": "0.15.0"}  # constraints/legacy.txt
_lock = threading.Lock()
permitted = True  # set per test by tests/conftest.py: True only for tests marked `oracle`


@dataclasses.dataclass(frozen=True)
class Question:
    """One question for the genuine library: `describe`, `run` (one variant's outputs) or `answers` (everything)."""

    ask: str
    module: str
    images: np.ndarray | None = None
    loss_weights: np.ndarray | None = None
    tags: tuple = ()
    lr: float = 0.01  # of the fine-tuning steps (answers)
    steps: int = 3


def describe_question(module_dir: str) -> Question:
    return Question("describe", module_dir)


def run_question(module_dir: str, images: np.ndarray, tags=()) -> Question:
    return Question("run", module_dir, images=images, tags=tuple(sorted(tags)))


def answers_question(module_dir: str, images: np.ndarray, loss_weights: np.ndarray, lr: float = 0.01,
                     steps: int = 3) -> Question:
    return Question("answers", module_dir, images=images, loss_weights=loss_weights, lr=lr, steps=steps)


def ensure_legacy_env() -> str:
    with _lock:
        stamp = os.path.join(os.path.dirname(os.path.dirname(LEGACY_PYTHON)), ".installed")
        if not (os.path.exists(LEGACY_PYTHON) and os.path.exists(stamp)):
            os.makedirs(os.path.join(ROOT, ".cache"), exist_ok=True)
            with open(os.path.join(ROOT, ".cache", "legacy-env.lock"), "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)  # parallel test processes (pytest-xdist) build it once
                if not os.path.exists(stamp):
                    print("building the legacy oracle environment (make legacy-env) ...", file=sys.stderr)
                    subprocess.run(["make", "-C", ROOT, "legacy-env"], check=True)
    return LEGACY_PYTHON


def check_permitted(what: str) -> None:
    """Fail unless the running test is marked `oracle` (it requested the `oracle` fixture)."""
    if not permitted:
        raise AssertionError(f"this test uses the genuine legacy library ({what}) but does not use the `oracle` "
                             "fixture (tests/conftest.py), so it is not marked `oracle`: request the fixture")


@dataclasses.dataclass
class LegacyProcess:
    """A script running in the legacy environment under launch.py; `check` reads the versions it runs."""

    proc: subprocess.Popen
    script: str
    versions: str  # the file launch.py writes
    checked: dict | None = None

    def check(self) -> dict:
        """The versions the process runs, checked against EXPECTED_VERSIONS (written before the script starts)."""
        if self.checked is None:
            self.checked = read_versions(self.versions, os.path.basename(self.script))
            shutil.rmtree(os.path.dirname(self.versions), ignore_errors=True)
        return self.checked

    def wait(self, timeout: float = 600) -> str:
        """Its stdout once it ended, after checking its exit code and versions (stdout and stderr piped)."""
        stdout, stderr = self.proc.communicate(timeout=timeout)
        if self.proc.returncode != 0:
            raise AssertionError(f"{os.path.basename(self.script)} failed ({self.proc.returncode}):\n"
                                 f"{(stderr or '')[-4000:]}")
        self.check()
        return stdout


def start(script: str, *args: str, **popen) -> LegacyProcess:
    """Start `script ARGS...` in the legacy environment, under launch.py (see the module docstring); `popen`:
    subprocess.Popen's arguments (stdin, stdout, stderr, text)."""
    check_permitted(os.path.basename(script))
    python = ensure_legacy_env()
    versions = os.path.join(tempfile.mkdtemp(prefix="oracle-versions-"), VERSIONS_FILE)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH="")
    proc = subprocess.Popen([python, LAUNCH, versions, script, *args], env=env, **popen)
    return LegacyProcess(proc, script, versions)


def run_script(script: str, *args: str, timeout: float = 900) -> str:
    """Run `script ARGS...` in the legacy environment (see `start`) and return its stdout."""
    return start(script, *args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True).wait(timeout)


def run_oracle(*args: str, timeout: float = 900) -> str:
    """Run `legacy_oracle.py ARGS...` in the legacy environment and return its stdout."""
    return run_script(ORACLE, *args, timeout=timeout)


def check_versions(versions: dict) -> None:
    """The answers must come from the genuine stack of constraints/legacy.txt, not whatever is installed."""
    found = {k: versions.get(k) for k in EXPECTED_VERSIONS}
    if found != EXPECTED_VERSIONS:
        raise AssertionError(f"the oracle environment {LEGACY_PYTHON} runs {found}, not {EXPECTED_VERSIONS}; "
                             "rebuild it: rm -rf .venv-legacy && make legacy-env")


def read_versions(path: str, what: str) -> dict:
    """The versions launch.py wrote to `path` for `what`, checked (see check_versions)."""
    try:
        with open(path) as f:
            versions = json.load(f)
    except (OSError, ValueError):
        raise AssertionError(f"{what} did not say which library versions run it ({path} missing or empty)") from None
    check_versions(versions)
    return versions


def ask(questions: list) -> list:
    """Answer `questions` in one oracle process, in order.

    describe -> the description dict; run -> {npz key: array}; answers -> (json dict, {npz key: array}).
    """
    work = tempfile.mkdtemp(prefix="oracle-")
    try:
        plan = []
        for i, q in enumerate(questions):
            entry = {"ask": q.ask, "module": q.module, "out": os.path.join(work, f"q{i}"), "tags": list(q.tags),
                     "lr": q.lr, "steps": q.steps}
            if q.images is not None:
                entry["inputs"] = os.path.join(work, f"q{i}_inputs.npz")
                arrays = {"images": q.images}
                if q.loss_weights is not None:
                    arrays["loss_weights"] = q.loss_weights
                np.savez(entry["inputs"], **arrays)
            plan.append(entry)
        with open(os.path.join(work, "plan.json"), "w") as f:
            json.dump({"questions": plan}, f)
        run_oracle("batch", os.path.join(work, "plan.json"), os.path.join(work, "versions.json"))
        with open(os.path.join(work, "versions.json")) as f:
            versions = json.load(f)
        check_versions(versions)
        assert versions["answered"] == len(questions), versions
        return [_read(q.ask, entry["out"]) for q, entry in zip(questions, plan)]
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _read(kind: str, prefix: str):
    info = arrays = None
    if kind in ("describe", "answers"):
        with open(prefix + ".json") as f:
            info = json.load(f)
    if kind in ("run", "answers"):
        with np.load(prefix + ".npz") as data:
            arrays = {k: data[k] for k in data.files}
    return {"describe": info, "run": arrays, "answers": (info, arrays)}[kind]


def describe(module_dir: str) -> dict:
    return ask([describe_question(module_dir)])[0]


def run_outputs(module_dir: str, images: np.ndarray, tags=()) -> dict:
    """Outputs of every signature and key of one variant, computed by genuine `hub.Module`."""
    return ask([run_question(module_dir, images, tags)])[0]


def answers(module_dir: str, images: np.ndarray, loss_weights: np.ndarray) -> tuple:
    """The full set of golden answers (json, arrays) for any module, as the generator records them."""
    return ask([answers_question(module_dir, images, loss_weights)])[0]
