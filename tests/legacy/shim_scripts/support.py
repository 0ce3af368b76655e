"""Shared by the shim tests: running a script in a fresh interpreter, and comparing across TensorFlow versions."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np

from tests.corpus import ROOT

SCRIPTS = os.path.dirname(os.path.abspath(__file__))

# Comparisons with the golden answers are exact: the test models run deterministically, and the genuine library
# that recorded them (make testdata) and the shim give the same bits on the same machine. Only where the genuine library (TF 2.15) and the shim (TF 2.21) compute the same graph side by
# side is a tolerance allowed, relative to the reference's largest magnitude: the design notes measured up to 1e-6
# between those TensorFlow versions.
CROSS_VERSION_REL = 5e-6


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


def assert_matches(actual, expected, rel: float, what: str) -> None:
    """|actual - expected| <= rel * max|expected| everywhere (exact equality when expected is all zeros)."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    scale = float(np.abs(expected).max()) if expected.size else 0.0
    error = float(np.abs(actual - expected).max()) if expected.size else 0.0
    assert error <= rel * scale, f"{what}: max |difference| {error:.3g} > {rel:g} * {scale:.3g}"
