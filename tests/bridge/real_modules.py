"""Tiny modules shaped like published TF1 image modules, exported once per test session by the genuine library.

`real_module("dropout_net")` returns the directory of a module built by tests/oracle/real_modules.py in the legacy
environment (see that file for what each module holds); `genuine_outputs(...)` runs genuine `hub.Module` on it.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import tempfile

import numpy as np

from tests import tolerances
from tests.oracle import runner

SCRIPT = os.path.join(os.path.dirname(runner.ORACLE), "real_modules.py")
NAMES = ("cf_v1_net", "dropout_net", "dropout_unseeded", "fakequant_net", "fixed_batch_net", "fixed_batch3_net",
         "hparams_net", "keyword_inputs_net", "partitioned_bn", "qat_net", "renorm_net", "variant_defaults_net",
         "while_v2_net", "while_v2b_net", "zero_debias_net")


@functools.lru_cache(maxsize=None)
def _root() -> str:
    root = tempfile.mkdtemp(prefix="bridge-real-modules-")
    atexit.register(shutil.rmtree, root, True)
    _run("build", root, *NAMES)
    return root


def _run(*args: str) -> None:
    runner.run_script(SCRIPT, *args, timeout=600)


def real_module(name: str) -> str:
    """The module `name`, exported by the genuine library (once per process): only for tests marked `oracle`."""
    runner.check_permitted(f"real_modules.py {name}")
    return os.path.join(_root(), name)


def genuine_outputs(module_dir: str, images: np.ndarray, tmp_path, tags: str = "", **inputs) -> dict:
    """{"<signature>/<key>": array}: genuine hub.Module, each signature in a fresh graph and session."""
    feeds, out = str(tmp_path / "real_inputs.npz"), str(tmp_path / "real_outputs.npz")
    np.savez(feeds, images=images, **{f"input/{k}": np.asarray(v) for k, v in inputs.items()})
    _run("run", module_dir, feeds, out, "--tags", tags)
    with np.load(out) as data:
        return {k[len("outputs/"):]: data[k] for k in data.files}


def for_key(key: str) -> tolerances.Tolerance:
    """The tolerance against the genuine library for a key of `genuine_outputs`/`genuine_runs`: training results
    (`updates/...`, `gradients/...`) or outputs."""
    return tolerances.GENUINE_TRAINING if key.startswith(("updates/", "gradients/")) else tolerances.GENUINE_OUTPUTS


def assert_close_to_genuine(actual, genuine, what: str,
                            tolerance: tolerances.Tolerance = tolerances.GENUINE_OUTPUTS) -> None:
    """This project (TF 2.21) against the genuine library (TF 2.15, another process), with the project's tolerance
    for that comparison (tests/tolerances.py): outputs by default, `for_key(key)` for keys that may be updates."""
    __tracebackhide__ = True
    tolerances.assert_close(actual, genuine, tolerance, what)


def images(n: int = 4, size=(16, 16), seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 1, (n, *size, 3)).astype(np.float32)


def genuine_runs(runs: dict, tmp_path, describe=(), loss_weights=None, apart=(), calls=None) -> tuple:
    """Several questions to the genuine library in one process: `runs` {name: (module_dir, images, tags, inputs)}
    -> ({name: {"<signature>/<key>" or "updates/<signature>/<variable>": array}}, {module_dir: signatures as
    `real_modules.py describe` gives them}). Training runs (tags "train") also report the batch-norm updates.
    `loss_weights` {name: {signature: weights}}: that run also reports "gradients/<signature>/<variable>",
    d reduce_sum(signature's default output * weights) / d each trainable variable, by tf.gradients. Training runs
    named in `apart` run each update op alone from the state before the call (`real_modules.py run --apart`): for
    modules whose forward pass reads what the updates assign, where one session run of both races.
    `calls` {name: (module_dir, batch)}: whether hub.Module accepts images of that static batch
    (`real_modules.py call`), answered as results[name] = {"accepted", "error_type", "error"}."""
    import json

    loss_weights = loss_weights or {}
    jobs, outs, described = [], {}, {}
    for name, (module_dir, batch, tags, inputs) in runs.items():
        stem = name.replace("/", "_")
        feeds, outs[name] = str(tmp_path / f"{stem}_in.npz"), str(tmp_path / f"{stem}_out.npz")
        weights = {f"loss_weights/{sig}": np.asarray(w, np.float32) for sig, w in loss_weights.get(name, {}).items()}
        np.savez(feeds, images=batch, **{f"input/{k}": np.asarray(v) for k, v in inputs.items()}, **weights)
        jobs.append(["run", module_dir, feeds, outs[name], "--tags", tags] + (["--updates"] if tags else [])
                    + (["--gradients"] if weights else []) + (["--apart"] if name in apart else []))
    called = {}
    for name, (module_dir, batch) in (calls or {}).items():
        called[name] = str(tmp_path / f"call_{name.replace('/', '_')}.json")
        jobs.append(["call", module_dir, called[name], "--batch", str(batch)])
    for i, module_dir in enumerate(describe):
        described[module_dir] = str(tmp_path / f"describe_{i}.json")
        jobs.append(["describe", module_dir, described[module_dir]])
    with open(tmp_path / "jobs.json", "w") as f:
        json.dump(jobs, f)
    _run("batch", str(tmp_path / "jobs.json"))
    results = {}
    for name, path in outs.items():
        with np.load(path) as data:
            results[name] = {k[len("outputs/"):] if k.startswith("outputs/") else k: data[k] for k in data.files}
    for name, path in called.items():
        with open(path) as f:
            results[name] = json.load(f)
    descriptions = {}
    for module_dir, path in described.items():
        with open(path) as f:
            descriptions[module_dir] = json.load(f)
    return results, descriptions
