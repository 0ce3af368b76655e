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
from tests.oracle import runner
from tests.oracle.runner import ensure_legacy_env

TEXT_ORACLE = os.path.join(ROOT, "tests", "oracle", "text_oracle.py")
TOKENS_ORACLE = os.path.join(ROOT, "tests", "oracle", "tokens_oracle.py")


def text_oracle() -> tuple:
    """(directory holding `text/`, `text_train/` and `refvar/`, answers dict, arrays dict).

    Computed live by the genuine library once per machine and kept in the oracle cache (tests/oracle/cache.py:
    keyed by the CPU, kernel settings, the legacy packages and this oracle's source); BRIDGE_ORACLE_CACHE=off
    computes it in every session. Only for tests marked `oracle`, also when cached."""
    runner.check_permitted("text_oracle.py")
    return _answers(TEXT_ORACLE)


def tokens_oracle() -> tuple:
    """(directory holding `tokens/`, a BERT-style module of int32 token-id inputs, answers dict, arrays dict),
    from tests/oracle/tokens_oracle.py, cached as `text_oracle`."""
    runner.check_permitted("tokens_oracle.py")
    return _answers(TOKENS_ORACLE)


@functools.lru_cache(maxsize=None)
def _answers(script: str) -> tuple:
    return oracle_answers(script)


def oracle_answers(script: str) -> tuple:
    """(output directory, answers.json, answers.npz) of an oracle script run as `script OUT_DIR` in the legacy
    environment, once per machine (`tests.oracle.cache.script_output`)."""
    from tests.oracle import cache

    entry = cache.script_output(script, ensure_legacy_env())
    with open(os.path.join(entry, "answers.json")) as f:
        answers = json.load(f)
    with np.load(os.path.join(entry, "answers.npz"), allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    return entry, answers, arrays


def start_text_module(module_dir: str, script: str = TEXT_ORACLE):
    """Start the genuine hub.Module on another text module with the text module's signatures (text_oracle.py
    --run, or `script`'s) in the background; the returned function waits for it and returns its outputs. Tests
    start it as soon as the module exists and collect it last, so TensorFlow 2.15's start overlaps the other
    tests."""
    out = os.path.join(tempfile.mkdtemp(prefix="text_run_"), "outputs.npz")
    process = runner.start(script, "--run", module_dir, out, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           text=True)

    def result() -> dict:
        process.wait(timeout=600)
        with np.load(out, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}

    return result


def run_text_module(module_dir: str) -> dict:
    """Genuine hub.Module's outputs on another text module with the text module's signatures (text_oracle.py --run)."""
    return start_text_module(module_dir)()
