"""The per-machine cache of the genuine library's answers (tests/oracle/cache.py) and the oracle's version check:
answers are reused only under the same CPU, kernel settings, libraries and inputs, and only from the genuine stack."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from tests.corpus import module_path
from tests.oracle import cache, runner

IMAGES = np.zeros((2, 4, 4, 3), np.float32)
WEIGHTS = np.ones((2, 3), np.float32)


def _key(monkeypatch, **env) -> dict:
    for name in cache.KERNEL_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return cache.machine_key(runner.LEGACY_PYTHON, runner.ORACLE)


def test_every_kernel_setting_is_its_own_entry(monkeypatch):
    names = {cache.entry_name(_key(monkeypatch, **env), module_path("convnet_bn"), IMAGES, WEIGHTS)
             for env in ({}, {"ONEDNN_MAX_CPU_ISA": "AVX2"}, {"ONEDNN_MAX_CPU_ISA": "SSE41"},
                         {"TF_ENABLE_ONEDNN_OPTS": "0"}, {"TF_NUM_INTRAOP_THREADS": "1"})}
    assert len(names) == 5


def test_the_key_holds_the_cpu_and_the_legacy_packages(monkeypatch):
    key = _key(monkeypatch)
    assert key["cpu"]["cores"] >= 1 and key["cpu"]["machine"]
    assert any(p.startswith("tensorflow_hub-0.15.0") for p in key["legacy_packages"]), key["legacy_packages"]


def test_other_inputs_or_modules_are_other_entries(monkeypatch):
    key = _key(monkeypatch)
    base = cache.entry_name(key, module_path("convnet_bn"), IMAGES, WEIGHTS)
    moved = IMAGES.copy()
    moved[0, 0, 0, 0] = np.nextafter(np.float32(0), np.float32(1))
    assert cache.entry_name(key, module_path("convnet_bn"), moved, WEIGHTS) != base
    assert cache.entry_name(key, module_path("convnet_refvars"), IMAGES, WEIGHTS) != base
    assert cache.entry_name(key, module_path("convnet_bn"), IMAGES, WEIGHTS) == base


def test_store_then_load_and_off_disables(monkeypatch, tmp_path):
    monkeypatch.setenv("BRIDGE_ORACLE_CACHE", str(tmp_path / "cache"))
    assert cache.load("entry") is None
    cache.store("entry", {"cpu": "x"}, {"tf_version": "2.15.1"}, {"outputs/infer/default/default": WEIGHTS})
    info, arrays = cache.load("entry")
    assert info == {"tf_version": "2.15.1"}
    np.testing.assert_array_equal(arrays["outputs/infer/default/default"], WEIGHTS)
    monkeypatch.setenv("BRIDGE_ORACLE_CACHE", "off")
    assert cache.load("entry") is None


def test_answers_from_another_stack_are_refused():
    runner.check_versions({"tensorflow": "2.15.1", "tensorflow_hub": "0.15.0", "answered": 1})
    for wrong in ({"tensorflow": "2.16.1", "tensorflow_hub": "0.15.0"}, {"tensorflow": "2.15.1",
                                                                          "tensorflow_hub": "0.16.1"}):
        with pytest.raises(AssertionError, match="make legacy-env"):
            runner.check_versions(wrong)


def test_a_script_answers_change_with_the_modules_beside_it_that_it_imports(tmp_path, monkeypatch):
    """spec_oracle.py builds its modules from spec_module_fns.py: a change there is a new cache entry."""
    monkeypatch.setenv("BRIDGE_ORACLE_CACHE", str(tmp_path / "cache"))
    (tmp_path / "fns.py").write_text("X = 1\n")
    (tmp_path / "unrelated.py").write_text("Y = 1\n")
    script = tmp_path / "script.py"
    script.write_text("import json\nfrom fns import X\n")
    assert cache.sibling_imports(str(script)) == [str(tmp_path / "fns.py")]
    before = cache.script_entry(str(script), sys.executable)
    (tmp_path / "unrelated.py").write_text("Y = 2\n")
    assert cache.script_entry(str(script), sys.executable) == before
    (tmp_path / "fns.py").write_text("X = 2\n")
    assert cache.script_entry(str(script), sys.executable) != before
