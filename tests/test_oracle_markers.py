"""The `oracle` marker is on exactly the tests that use the genuine library, whichever way they reach it.

tests/conftest.py marks a test `oracle` when it depends on the `oracle` fixture, directly or through other
fixtures, and every entry point to the legacy environment (tests/oracle/runner.py `check_permitted`) refuses to
run for any other test, also when the answers are cached: a test that reaches the genuine library without the
marker fails instead of slipping out of `-m oracle` / `-m numerics`. Every process it starts runs under
tests/oracle/launch.py and its versions are checked before any answer is read.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from tests.oracle import cache, runner

IMAGES = np.zeros((1, 4, 4, 3), np.float32)


@pytest.fixture
def uses_the_oracle(oracle):
    """A fixture between the test and the oracle: the marker must still reach the test."""
    return oracle


def test_a_test_reaching_the_oracle_through_a_fixture_is_marked(request, uses_the_oracle):
    assert request.node.get_closest_marker("oracle") is not None
    assert request.node.get_closest_marker("numerics") is not None  # every oracle test compares numbers with it
    assert runner.permitted


def test_a_test_without_the_fixture_is_not_marked_and_may_not_ask(request):
    assert request.node.get_closest_marker("oracle") is None
    assert not runner.permitted


def _entry_points(tmp_path):
    from tests.bridge import real_modules
    from tests.oracle import saved_model_modules, text_modules
    from tests.zoo.conftest import Oracle

    return {
        "runner.ask": lambda: runner.ask([runner.describe_question(str(tmp_path))]),
        "runner.start": lambda: runner.start(runner.ORACLE, "describe", str(tmp_path)),
        "real_modules.real_module": lambda: real_modules.real_module("dropout_net"),
        "real_modules.genuine_outputs": lambda: real_modules.genuine_outputs(str(tmp_path), IMAGES, tmp_path),
        "cache.script_output": lambda: cache.script_output(text_modules.TEXT_ORACLE, runner.LEGACY_PYTHON),
        "text_modules.text_oracle": text_modules.text_oracle,
        "text_modules.tokens_oracle": text_modules.tokens_oracle,
        "text_modules.start_text_module": lambda: text_modules.start_text_module(str(tmp_path)),
        "saved_model_modules.saved_model_oracle": saved_model_modules.saved_model_oracle,
        "saved_model_modules.start_run": lambda: saved_model_modules.start_run([str(tmp_path)]),
        "zoo Oracle": lambda: Oracle(str(tmp_path)),
    }


@pytest.mark.parametrize("name", sorted(_entry_points("/nonexistent")))
def test_every_entry_point_refuses_an_unmarked_test(name, tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "permitted", False)
    started = []
    monkeypatch.setattr(runner.subprocess, "Popen", lambda *a, **k: started.append(a))
    monkeypatch.setattr(runner.subprocess, "run", lambda *a, **k: started.append(a))
    with pytest.raises(AssertionError, match="request the fixture"):
        _entry_points(tmp_path)[name]()
    assert not started


def test_a_process_that_does_not_say_its_versions_is_refused(tmp_path):
    process = runner.LegacyProcess(proc=None, script="x.py", versions=str(tmp_path / "missing.json"))
    with pytest.raises(AssertionError, match="did not say which library versions"):
        process.check()
    (tmp_path / "other.json").write_text(json.dumps({"tensorflow": "2.21.0", "tensorflow_hub": "0.16.1"}))
    with pytest.raises(AssertionError, match="make legacy-env"):
        runner.LegacyProcess(proc=None, script="x.py", versions=str(tmp_path / "other.json")).check()
    (tmp_path / "genuine.json").write_text(json.dumps(runner.EXPECTED_VERSIONS))
    assert runner.LegacyProcess(None, "x.py", str(tmp_path / "genuine.json")).check() == runner.EXPECTED_VERSIONS


def _write(path: str, versions: dict) -> None:
    with open(path, "w") as f:
        json.dump(versions, f)


def test_cached_script_answers_without_their_versions_are_refused(tmp_path, monkeypatch):
    """An entry of the oracle cache is used only with the versions that computed it, checked on every use."""
    from tests.oracle.text_modules import TEXT_ORACLE

    monkeypatch.setattr(runner, "permitted", True)  # as in a test marked `oracle`; no process may start here
    monkeypatch.setattr(runner, "start", lambda *a, **k: pytest.fail("the entry was computed again"))
    monkeypatch.setenv("BRIDGE_ORACLE_CACHE", str(tmp_path))
    entry = cache.script_entry(TEXT_ORACLE, runner.LEGACY_PYTHON)
    assert entry.startswith(str(tmp_path))
    os.mkdir(entry)
    with pytest.raises(AssertionError, match="did not say which library versions"):
        cache.script_output(TEXT_ORACLE, runner.LEGACY_PYTHON)
    _write(os.path.join(entry, runner.VERSIONS_FILE), {"tensorflow": "2.16.1", "tensorflow_hub": "0.15.0"})
    with pytest.raises(AssertionError, match="make legacy-env"):
        cache.script_output(TEXT_ORACLE, runner.LEGACY_PYTHON)
    _write(os.path.join(entry, runner.VERSIONS_FILE), runner.EXPECTED_VERSIONS)
    assert cache.script_output(TEXT_ORACLE, runner.LEGACY_PYTHON) == entry
