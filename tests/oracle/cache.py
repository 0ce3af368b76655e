"""This machine's answers of the genuine library on the corpus, computed live once and kept under .cache/oracle/.

CPU kernels differ between machines in the last bits, so the answers recorded in testdata/golden on another
machine are no reference to compare bit for bit; the genuine library run here is. Its answers are kept per
machine and kernel setting: the key holds the CPU model and features, the core and thread counts, the kernel
environment variables, the legacy environment's installed packages, the oracle's source, the module's files and
the inputs. Anything different computes them again. BRIDGE_ORACLE_CACHE=DIR moves the cache; =off disables it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile

import numpy as np

from tests.corpus import ROOT
from tests.oracle import runner

KERNEL_VARIABLES = ("ONEDNN_MAX_CPU_ISA", "TF_ENABLE_ONEDNN_OPTS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS",
                    "OMP_NUM_THREADS", "TF_DETERMINISTIC_OPS", "DNNL_MAX_CPU_ISA")


def cache_dir() -> str | None:
    setting = os.environ.get("BRIDGE_ORACLE_CACHE", os.path.join(ROOT, ".cache", "oracle"))
    return None if setting.lower() in ("", "0", "off", "no") else setting


def _cpu() -> dict:
    model, flags = platform.processor(), ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and not model:
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = " ".join(sorted(value.split()))
                    break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"model": model, "flags": flags, "machine": platform.machine(), "cores": cores}


def _legacy_packages(legacy_python: str) -> list:
    venv = os.path.dirname(os.path.dirname(legacy_python))
    found = []
    for root, dirs, _ in os.walk(os.path.join(venv, "lib")):
        found += [d[:-len(".dist-info")] for d in dirs if d.endswith(".dist-info")]
        if root.endswith("site-packages"):
            dirs[:] = []
    return sorted(found)


def _digest_files(paths: list) -> str:
    digest = hashlib.sha256()
    for path in paths:
        for root, dirs, files in os.walk(path) if os.path.isdir(path) else [(os.path.dirname(path), [],
                                                                             [os.path.basename(path)])]:
            dirs.sort()
            for name in sorted(files):
                full = os.path.join(root, name)
                digest.update(os.path.relpath(full, path).encode() + b"\0")
                with open(full, "rb") as f:
                    digest.update(f.read())
    return digest.hexdigest()


def machine_key(legacy_python: str, oracle_source: str) -> dict:
    """Everything the genuine library's bits may depend on, apart from the question itself."""
    return {"cpu": _cpu(), "kernel_env": {k: os.environ.get(k) for k in KERNEL_VARIABLES},
            "legacy_packages": _legacy_packages(legacy_python), "oracle": _digest_files([oracle_source]),
            "python": sys.version.split()[0]}


def entry_name(machine: dict, module_dir: str, images: np.ndarray, loss_weights: np.ndarray) -> str:
    digest = hashlib.sha256(json.dumps(machine, sort_keys=True).encode())
    digest.update(_digest_files([module_dir]).encode())
    for array in (images, loss_weights):
        digest.update(str((array.dtype, array.shape)).encode() + np.ascontiguousarray(array).tobytes())
    return f"{os.path.basename(module_dir)}-{digest.hexdigest()[:20]}"


@contextlib.contextmanager
def locked():
    """Hold the cache's lock file: concurrent test processes compute a missing entry once, the others then read it."""
    root = cache_dir()
    if root is None:
        yield
        return
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, ".lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def load(name: str):
    """(info, arrays) cached under `name`, or None."""
    root = cache_dir()
    if root is None or not os.path.exists(os.path.join(root, name, "arrays.npz")):
        return None
    with open(os.path.join(root, name, "info.json")) as f:
        info = json.load(f)
    with np.load(os.path.join(root, name, "arrays.npz")) as data:
        return info, {k: data[k] for k in data.files}


def store(name: str, machine: dict, info: dict, arrays: dict) -> None:
    """Write atomically: a complete entry or none (tests may run concurrently on one checkout)."""
    root = cache_dir()
    if root is None:
        return
    os.makedirs(root, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{name}.partial-", dir=root)
    try:
        with open(os.path.join(tmp, "info.json"), "w") as f:
            json.dump(info, f, sort_keys=True)
        with open(os.path.join(tmp, "machine.json"), "w") as f:
            json.dump(machine, f, indent=1, sort_keys=True)
        np.savez(os.path.join(tmp, "arrays.npz"), **arrays)
        try:
            os.rename(tmp, os.path.join(root, name))
        except OSError:  # another run stored it first
            pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def sibling_imports(script: str) -> list:
    """The files of the modules in `script`'s own directory that it imports (run as a script, it finds them there)."""
    import ast

    folder = os.path.dirname(os.path.abspath(script))
    with open(script) as f:
        tree = ast.parse(f.read())
    names = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
             for alias in node.names}
    names |= {node.module.split(".")[0] for node in ast.walk(tree)
              if isinstance(node, ast.ImportFrom) and node.module and not node.level}
    return sorted(os.path.join(folder, n + ".py") for n in names if os.path.isfile(os.path.join(folder, n + ".py")))


def script_entry(script: str, legacy_python: str) -> str | None:
    """Where the cache keeps `script_output(script, ...)` on this machine (None when the cache is off): keyed by
    `machine_key` with the script's source and tests/oracle/launch.py."""
    root = cache_dir()
    if root is None:
        return None
    machine = machine_key(legacy_python, script)
    machine["launch"] = _digest_files([runner.LAUNCH])
    siblings = sibling_imports(script)
    if siblings:  # the modules beside it that it imports (spec_oracle.py's module_fns): their changes count too
        machine["imports"] = _digest_files(siblings)
    digest = hashlib.sha256(json.dumps(machine, sort_keys=True).encode()).hexdigest()[:20]
    return os.path.join(root, f"{os.path.splitext(os.path.basename(script))[0]}-{digest}")


def script_output(script: str, legacy_python: str, timeout: float = 600) -> str:
    """The directory `legacy_python script OUT_DIR` writes, computed once per machine and kept in the cache (keyed
    by `machine_key` with the script's source; BRIDGE_ORACLE_CACHE=off computes it in every call).

    Run through tests/oracle/runner.py `start`: only tests marked `oracle` may call it (also when the answers are
    cached), and the versions that computed them are kept with them and checked on every use."""
    runner.check_permitted(os.path.basename(script))
    root = cache_dir()
    name = os.path.splitext(os.path.basename(script))[0]
    entry = script_entry(script, legacy_python)
    if entry is not None:
        os.makedirs(root, exist_ok=True)
        if os.path.isdir(entry):
            runner.read_versions(os.path.join(entry, runner.VERSIONS_FILE), f"the cached {name} answers")
            return entry
    out = tempfile.mkdtemp(prefix=f".{name}.partial-", dir=root) if entry else tempfile.mkdtemp(prefix=f"{name}_")
    try:
        process = runner.start(script, out, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        process.wait(timeout)
        with open(os.path.join(out, runner.VERSIONS_FILE), "w") as f:
            json.dump(process.checked, f)
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise
    if entry is None:
        return out
    try:
        os.rename(out, entry)  # complete or absent: concurrent sessions may race, the first one wins
    except OSError:
        shutil.rmtree(out, ignore_errors=True)
    return entry
