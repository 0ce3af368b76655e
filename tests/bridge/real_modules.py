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

from tests.oracle import runner

SCRIPT = os.path.join(os.path.dirname(runner.ORACLE), "real_modules.py")
NAMES = ("cf_v1_net", "dropout_net", "dropout_unseeded", "fakequant_net", "fixed_batch_net", "fixed_batch3_net",
         "hparams_net", "keyword_inputs_net", "partitioned_bn", "qat_net", "renorm_net", "variant_defaults_net",
         "while_v2_net", "while_v2b_net", "zero_debias_net")
# Against the genuine library (TF 2.15, another process): max |a - b| <= ORACLE_RTOL * max |genuine| per output.
# design.md measured up to 8e-7 of the output's scale between runs and versions on ResNet V2 50; these tiny nets
# agree bit for bit on this machine, and 1e-5 leaves room for other CPUs.
ORACLE_RTOL = 1e-5


@functools.lru_cache(maxsize=None)
def _root() -> str:
    root = tempfile.mkdtemp(prefix="bridge-real-modules-")
    atexit.register(shutil.rmtree, root, True)
    _run("build", root, *NAMES)
    return root


def _run(*args: str) -> None:
    import subprocess

    python = runner.ensure_legacy_env()
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH="")
    proc = subprocess.run([python, SCRIPT, *args], capture_output=True, text=True, timeout=600, env=env)
    if proc.returncode != 0:
        raise AssertionError(f"real_modules.py {args[0]} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")


def real_module(name: str) -> str:
    return os.path.join(_root(), name)


def genuine_outputs(module_dir: str, images: np.ndarray, tmp_path, tags: str = "", **inputs) -> dict:
    """{"<signature>/<key>": array}: genuine hub.Module, each signature in a fresh graph and session."""
    feeds, out = str(tmp_path / "real_inputs.npz"), str(tmp_path / "real_outputs.npz")
    np.savez(feeds, images=images, **{f"input/{k}": np.asarray(v) for k, v in inputs.items()})
    _run("run", module_dir, feeds, out, "--tags", tags)
    with np.load(out) as data:
        return {k[len("outputs/"):]: data[k] for k in data.files}


def assert_close_to_genuine(actual, genuine, what: str) -> None:
    actual, genuine = np.asarray(actual), np.asarray(genuine)
    assert actual.shape == genuine.shape, f"{what}: shape {actual.shape} != genuine {genuine.shape}"
    scale = float(np.max(np.abs(genuine))) if genuine.size else 0.0
    err = float(np.max(np.abs(actual - genuine))) if genuine.size else 0.0
    assert err <= ORACLE_RTOL * scale, f"{what}: max |diff| {err:.3g} > {ORACLE_RTOL} * scale {scale:.3g}"


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
