"""The text modules of tests/oracle/text_oracle.py, exported by the genuine legacy library, with its answers.

One oracle process per test session builds them and answers every question (see `text_oracle.py`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import subprocess
import tempfile

import numpy as np

from tests.corpus import ROOT
from tests.oracle.runner import ensure_legacy_env

TEXT_ORACLE = os.path.join(ROOT, "tests", "oracle", "text_oracle.py")
TOKENS_ORACLE = os.path.join(ROOT, "tests", "oracle", "tokens_oracle.py")


@functools.lru_cache(maxsize=None)
def text_oracle() -> tuple:
    """(directory holding `text/`, `text_train/` and `refvar/`, answers dict, arrays dict).

    Computed live by the genuine library once per machine and kept in the oracle cache (tests/oracle/cache.py:
    keyed by the CPU, kernel settings, the legacy packages and this oracle's source); BRIDGE_ORACLE_CACHE=off
    computes it in every session."""
    return oracle_answers(TEXT_ORACLE)


@functools.lru_cache(maxsize=None)
def tokens_oracle() -> tuple:
    """(directory holding `tokens/`, a BERT-style module of int32 token-id inputs, answers dict, arrays dict),
    from tests/oracle/tokens_oracle.py, cached as `text_oracle`."""
    return oracle_answers(TOKENS_ORACLE)


def oracle_answers(script: str) -> tuple:
    """(output directory, answers.json, answers.npz) of an oracle script run as `script OUT_DIR` in the legacy
    environment, once per machine (see `text_oracle`)."""
    from tests.oracle import cache

    name = os.path.splitext(os.path.basename(script))[0]
    root = cache.cache_dir()
    machine = cache.machine_key(ensure_legacy_env(), script)
    entry = None
    if root is not None:
        os.makedirs(root, exist_ok=True)
        digest = hashlib.sha256(json.dumps(machine, sort_keys=True).encode()).hexdigest()[:20]
        entry = os.path.join(root, f"{name}-{digest}")
    if entry is None or not os.path.exists(os.path.join(entry, "answers.npz")):
        out = tempfile.mkdtemp(prefix=f".{name}.partial-", dir=root) if entry else tempfile.mkdtemp(
            prefix=f"{name}_")
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH="")
        proc = subprocess.run([ensure_legacy_env(), script, out], capture_output=True, text=True, timeout=600,
                              env=env)
        if proc.returncode != 0:
            raise AssertionError(f"{name} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
        if entry is None:
            entry = out
        else:
            try:
                os.rename(out, entry)  # complete or absent: concurrent sessions may race, the first one wins
            except OSError:
                shutil.rmtree(out, ignore_errors=True)
    with open(os.path.join(entry, "answers.json")) as f:
        answers = json.load(f)
    with np.load(os.path.join(entry, "answers.npz"), allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    return entry, answers, arrays


def assert_close(actual, expected, what: str, rtol: float, atol_scale: float) -> None:
    """|A-B| <= atol + rtol*|B| elementwise, atol = atol_scale * max|B| (the parity harness's semantics)."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    atol = atol_scale * float(np.max(np.abs(expected))) if expected.size else 0.0
    err = np.abs(actual - expected)
    bad = err > atol + rtol * np.abs(expected)
    assert not bad.any(), f"{what}: max abs diff {err.max():.3g} (atol {atol:.3g}, rtol {rtol})"


def start_text_module(module_dir: str, script: str = TEXT_ORACLE):
    """Start the genuine hub.Module on another text module with the text module's signatures (text_oracle.py
    --run, or `script`'s) in the background; the returned function waits for it and returns its outputs. Tests
    start it as soon as the module exists and collect it last, so TensorFlow 2.15's start overlaps the other
    tests."""
    out = os.path.join(tempfile.mkdtemp(prefix="text_run_"), "outputs.npz")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH="")
    proc = subprocess.Popen([ensure_legacy_env(), script, "--run", module_dir, out], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=env)

    def result() -> dict:
        _, stderr = proc.communicate(timeout=600)
        if proc.returncode != 0:
            raise AssertionError(f"text oracle --run failed ({proc.returncode}):\n{stderr[-4000:]}")
        with np.load(out, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}

    return result


def run_text_module(module_dir: str) -> dict:
    """Genuine hub.Module's outputs on another text module with the text module's signatures (text_oracle.py --run)."""
    return start_text_module(module_dir)()
