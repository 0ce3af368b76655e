"""Shared by the shim tests: running a script in a fresh interpreter (graph mode is process-wide)."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.corpus import ROOT

SCRIPTS = os.path.dirname(os.path.abspath(__file__))


def run_script(name: str, *args: str, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run shim_scripts/NAME with the test interpreter in a fresh process (graph mode is process-wide)."""
    full_env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT)
    for key, value in (env or {}).items():  # None removes a variable
        if value is None:
            full_env.pop(key, None)
        else:
            full_env[key] = value
    proc = subprocess.run([sys.executable, os.path.join(SCRIPTS, name), *args], capture_output=True, text=True,
                          env=full_env, cwd=ROOT, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"{name} exited with {proc.returncode}:\n{proc.stderr[-4000:]}")
    return proc
