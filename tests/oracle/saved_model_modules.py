"""The TF1 SavedModels of tests/oracle/saved_model_oracle.py, and what the genuine library does with them.

One oracle process builds them and answers once per machine (kept in the oracle cache, tests/oracle/cache.py);
`start_run` runs the genuine `hub.Module` live on modules the shim exported.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import tempfile

import numpy as np

from tests.corpus import ROOT
from tests.oracle import cache, runner
from tests.oracle.runner import check_versions, ensure_legacy_env

SAVED_MODEL_ORACLE = os.path.join(ROOT, "tests", "oracle", "saved_model_oracle.py")


def _read(prefix: str) -> tuple:
    with open(prefix + ".json") as f:
        info = json.load(f)
    check_versions(info["versions"])
    with np.load(prefix + ".npz", allow_pickle=False) as data:
        return info, {k: data[k] for k in data.files}


def saved_model_oracle() -> tuple:
    """(directory holding `saved_model/`, `serve_only/`, `exported_module/`, `exported_spec/`, answers, arrays).
    Only for tests marked `oracle`, also when cached."""
    runner.check_permitted("saved_model_oracle.py")
    return _saved_model_oracle()


@functools.lru_cache(maxsize=None)
def _saved_model_oracle() -> tuple:
    out = cache.script_output(SAVED_MODEL_ORACLE, ensure_legacy_env())
    answers, arrays = _read(os.path.join(out, "answers"))
    return out, answers, arrays


def start_run(module_dirs: list):
    """Start the genuine hub.Module on `module_dirs` (one process, in the background); the returned function waits
    and returns one (info, arrays) per module: its tags, signatures, files, variables and outputs."""
    work = tempfile.mkdtemp(prefix="saved_model_run_")
    prefixes = [os.path.join(work, str(i)) for i in range(len(module_dirs))]
    args = [arg for pair in zip(module_dirs, prefixes) for arg in pair]
    process = runner.start(SAVED_MODEL_ORACLE, "--run", *args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           text=True)

    def result() -> list:
        process.wait(timeout=600)
        return [_read(prefix) for prefix in prefixes]

    return result
