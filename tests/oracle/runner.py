"""Run the genuine legacy library (tensorflow-hub 0.15 on TF 2.15) as a subprocess in its own environment.

The environment is `.venv-legacy`, created by `make legacy-env` from constraints/legacy.txt. When it is missing,
the first test that needs it builds it (it never skips): the oracle is part of the test suite.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import numpy as np

from tests.corpus import ROOT

LEGACY_PYTHON = os.environ.get("BRIDGE_LEGACY_PYTHON", os.path.join(ROOT, ".venv-legacy", "bin", "python"))
ORACLE = os.path.join(ROOT, "tests", "oracle", "legacy_oracle.py")
_lock = threading.Lock()


def ensure_legacy_env() -> str:
    with _lock:
        stamp = os.path.join(os.path.dirname(os.path.dirname(LEGACY_PYTHON)), ".installed")
        if not (os.path.exists(LEGACY_PYTHON) and os.path.exists(stamp)):
            print("building the legacy oracle environment (make legacy-env) ...", file=sys.stderr)
            subprocess.run(["make", "-C", ROOT, "legacy-env"], check=True)
    return LEGACY_PYTHON


def run_oracle(*args: str, timeout: float = 600) -> str:
    """Run `legacy_oracle.py ARGS...` in the legacy environment and return its stdout."""
    python = ensure_legacy_env()
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH="")
    proc = subprocess.run([python, ORACLE, *args], capture_output=True, text=True, timeout=timeout, env=env)
    if proc.returncode != 0:
        raise AssertionError(f"legacy oracle {args[0]} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return proc.stdout


def describe(module_dir: str) -> dict:
    return json.loads(run_oracle("describe", module_dir))


def run_outputs(module_dir: str, images: np.ndarray, tmp_path, tags: str | None = None) -> dict:
    """Outputs of every signature and key of one variant, computed by genuine `hub.Module`."""
    inputs, out = str(tmp_path / "oracle_inputs.npz"), str(tmp_path / "oracle_outputs.npz")
    np.savez(inputs, images=images)
    run_oracle("run", module_dir, inputs, out, *(["--tags", tags] if tags else []))
    with np.load(out) as data:
        return {k: data[k] for k in data.files}


def answers(module_dir: str, images: np.ndarray, loss_weights: np.ndarray, tmp_path) -> tuple:
    """The full set of golden answers (json, arrays) for any module, as the generator records them."""
    inputs, prefix = str(tmp_path / "oracle_inputs.npz"), str(tmp_path / "oracle_answers")
    np.savez(inputs, images=images, loss_weights=loss_weights)
    run_oracle("answers", module_dir, inputs, prefix)
    with open(prefix + ".json") as f:
        info = json.load(f)
    with np.load(prefix + ".npz") as data:
        return info, {k: data[k] for k in data.files}
