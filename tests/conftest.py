"""Session-wide fixtures shared by every test file, and the two markers.

- `oracle`: the genuine legacy library (tests/oracle/). A test that depends on this fixture, directly or through
  another fixture, is marked `oracle`; any unmarked test that asks the oracle (runner.ask) fails.
- `genuine`: the genuine library's answers on every corpus module, computed on this machine (cached per machine).
- `converted`: every corpus module converted to a TF2 SavedModel once, by `bridge convert` (which verifies it).
- `tf2_model`: the TF2 models of tests/bridge/tf2_models.py, each built and saved once.

Marker `numerics`: the tests that compare numbers with the genuine library or with recorded arrays, whose results
depend on the CPU's kernels: every `oracle` test and those marked by hand. .ci/run runs them a second time under
another kernel setting.
"""

from __future__ import annotations

import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Reports are laid out for the terminal's width ($COLUMNS, else the terminal of stdout): the tests read them at one
# width whatever terminal runs them (an 80-column one, a pytest-xdist worker); tests of other widths set their own.
os.environ["COLUMNS"] = "120"

import pytest  # noqa: E402

from tests import corpus, tolerances  # noqa: E402
from tests.oracle import cache, runner  # noqa: E402

ORACLE_FIXTURE = "oracle"


def pytest_configure(config):
    config.addinivalue_line("markers", "oracle: runs the genuine legacy library (tensorflow-hub 0.15 on TF 2.15) in "
                                       "its own environment; set automatically on the tests using the oracle fixture")
    config.addinivalue_line("markers", "numerics: compares numbers with the genuine library or recorded arrays (CPU "
                                       "kernel dependent); .ci/run runs these again under a second kernel setting")
    runner.permitted = False


# The longest files, measured (--durations), run first: `make test` spreads whole files over two processes
# (pytest-xdist --dist loadfile), and a long file started last would leave one process working alone at the end.
LONGEST_FIRST = ("tests/zoo/", "tests/bridge/conversion/test_tf2_to_tf1.py", "tests/bridge/cli/test_migrate_beam.py",
                 "tests/test_fuzz.py", "tests/bridge/cli/test_cli_migrate.py", "tests/legacy/hub/test_shim.py",
                 "tests/bridge/conversion/test_extra_inputs_tf1.py")


def _rank(item) -> int:
    path = os.path.relpath(str(item.path), corpus.ROOT).replace(os.sep, "/")
    return next((i for i, prefix in enumerate(LONGEST_FIRST) if path.startswith(prefix)), len(LONGEST_FIRST))


def pytest_collection_modifyitems(config, items):
    items.sort(key=_rank)  # stable: the order inside each file, and of the other files, is kept
    for item in items:
        if ORACLE_FIXTURE in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.oracle)
        if item.get_closest_marker("oracle") is not None:  # also files that run their own legacy scripts
            item.add_marker(pytest.mark.numerics)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    runner.permitted = item.get_closest_marker("oracle") is not None


def pytest_runtest_teardown(item, nextitem):
    runner.permitted = False


def pytest_sessionfinish(session, exitstatus):
    path = os.environ.get("BRIDGE_TOLERANCE_REPORT")
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if path and worker:  # under pytest-xdist each worker saw only its own tests: one file per worker
        path = f"{path}.{worker}"
    if path:
        setting = {k: os.environ[k] for k in cache.KERNEL_VARIABLES if k in os.environ}
        with open(path, "w") as f:
            json.dump({"setting": setting, "observed": tolerances.observed}, f, indent=1, sort_keys=True)


@pytest.fixture(scope="session")
def oracle():
    """The genuine legacy library (tests/oracle/runner.py), its environment built if missing."""
    runner.ensure_legacy_env()
    return runner


@pytest.fixture(scope="session")
def genuine(oracle) -> dict:
    """{corpus module: corpus.Answers} of the genuine library on the golden inputs, computed on this machine."""
    machine = cache.machine_key(runner.LEGACY_PYTHON, runner.ORACLE)
    with cache.locked():  # parallel workers (pytest-xdist) ask the genuine library once, not once each
        return _genuine_answers(oracle, machine)


def _genuine_answers(oracle, machine: dict) -> dict:
    found, missing = {}, []
    for name in corpus.MODULES:
        arrays = corpus.golden_arrays(name)
        entry = cache.entry_name(machine, corpus.module_path(name), arrays["inputs/images"],
                                 arrays["inputs/loss_weights"])
        hit = cache.load(entry)
        if hit is None:
            missing.append((name, entry))
        else:
            found[name] = corpus.Answers(*hit)
    questions = [runner.answers_question(corpus.module_path(name), corpus.golden_arrays(name)["inputs/images"],
                                         corpus.golden_arrays(name)["inputs/loss_weights"]) for name, _ in missing]
    for (name, entry), (info, arrays) in zip(missing, oracle.ask(questions) if questions else []):
        runner.check_versions({"tensorflow": info["tf_version"], "tensorflow_hub": info["hub_version"]})
        cache.store(entry, machine, info, arrays)
        found[name] = corpus.Answers(info, arrays)
    return found


@pytest.fixture(scope="session")
def converted(tmp_path_factory) -> dict:
    """{corpus module: path of its TF2 SavedModel}, converted (and verified) by bridge.conversion.converter.convert.

    Shared by every test file: tests load these models but never write into them.
    """
    from bridge.conversion.converter import convert

    root = tmp_path_factory.mktemp("converted")
    return {name: convert(corpus.module_path(name), str(root / name), progress=lambda m: None).destination
            for name in corpus.MODULES}


@pytest.fixture(scope="session")
def tf2_model(tmp_path_factory):
    """tf2_model(builder_name) -> path of that tests/bridge/tf2_models.py model, built once per session."""
    from tests.bridge import tf2_models

    root = tmp_path_factory.mktemp("tf2_models")
    built: dict = {}

    def get(name: str) -> str:
        if name not in built:
            built[name] = getattr(tf2_models, name)(str(root / name))
        return built[name]

    return get


@pytest.fixture(scope="session")
def text_converted(tmp_path_factory, oracle):
    """text_converted(name) -> path of the TF2 SavedModel `bridge convert` made (and verified) from text module
    `name` of tests/oracle/text_oracle.py (`text`, `text_train`), converted once per session."""
    from bridge.conversion.converter import convert
    from tests.oracle.text_modules import text_oracle

    root = tmp_path_factory.mktemp("text_converted")
    made: dict = {}

    def get(name: str) -> str:
        if name not in made:
            written = convert(os.path.join(text_oracle()[0], name), str(root / name), progress=lambda m: None)
            assert written.verification.passed
            made[name] = written.destination
        return made[name]

    return get
