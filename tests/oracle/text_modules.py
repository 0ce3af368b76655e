"""The text modules of tests/oracle/text_oracle.py, exported by the genuine legacy library, with its answers.

One oracle process per test session builds them and answers every question (see `text_oracle.py`).
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import tempfile

import numpy as np

from tests.corpus import ROOT
from tests.oracle.runner import ensure_legacy_env

TEXT_ORACLE = os.path.join(ROOT, "tests", "oracle", "text_oracle.py")


@functools.lru_cache(maxsize=None)
def text_oracle() -> tuple:
    """(directory holding `text/` and `refvar/`, answers dict, arrays dict)."""
    out = tempfile.mkdtemp(prefix="text_oracle_")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH="")
    proc = subprocess.run([ensure_legacy_env(), TEXT_ORACLE, out], capture_output=True, text=True, timeout=600,
                          env=env)
    if proc.returncode != 0:
        raise AssertionError(f"text oracle failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    with open(os.path.join(out, "answers.json")) as f:
        answers = json.load(f)
    with np.load(os.path.join(out, "answers.npz"), allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    return out, answers, arrays


def assert_close(actual, expected, what: str, rtol: float, atol_scale: float) -> None:
    """|A-B| <= atol + rtol*|B| elementwise, atol = atol_scale * max|B| (the parity harness's semantics)."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    atol = atol_scale * float(np.max(np.abs(expected))) if expected.size else 0.0
    err = np.abs(actual - expected)
    bad = err > atol + rtol * np.abs(expected)
    assert not bad.any(), f"{what}: max abs diff {err.max():.3g} (atol {atol:.3g}, rtol {rtol})"


def run_text_module(module_dir: str) -> dict:
    """Genuine hub.Module's outputs on another text module with the text module's signatures (text_oracle.py --run)."""
    out = os.path.join(tempfile.mkdtemp(prefix="text_run_"), "outputs.npz")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH="")
    proc = subprocess.run([ensure_legacy_env(), TEXT_ORACLE, "--run", module_dir, out], capture_output=True, text=True,
                          timeout=600, env=env)
    if proc.returncode != 0:
        raise AssertionError(f"text oracle --run failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    with np.load(out, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}
