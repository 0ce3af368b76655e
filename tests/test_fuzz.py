"""A bounded mutation-fuzzing run in the suite (the long campaign is `make fuzz N=100000`, scripts/fuzz.py).

Hypothesis draws the cases (tests/fuzzing.py: byte-level and structure-aware damage to saved_model.pb,
tfhub_module.pb, variables.index, the bridge metadata, .tar.gz archives, images, arrays and named tensors) with a fixed seed, and
each runs in a worker process with a time limit through `bridge inspect`, `bridge convert --no-verify`,
`bridge parity`, `bridge.adapt` and the shim's `load_module_spec` / `hub.Module`. Every case must end in success or
the project's one-line error, with nothing written and the source unchanged.
"""

from __future__ import annotations

import os
import shutil

import pytest
from hypothesis import HealthCheck, Phase, given, settings

from tests import fuzzing

BOUNDED_CASES = 200  # with the worker start, under a minute on 2 shared cores (60-200 ms a case when warm)


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    pool = fuzzing.WorkerPool(str(tmp_path_factory.mktemp("fuzz")), processes=1)
    yield pool
    pool.close()


ALL_TARGETS = tuple(dict.fromkeys(fuzzing.TF1_TARGETS + fuzzing.TF2_TARGETS + fuzzing.ARCHIVE_TARGETS
                                   + fuzzing.INPUT_TARGETS + fuzzing.TENSOR_TARGETS))


def test_bounded_fuzz_run_ends_in_success_or_the_projects_error(pool):
    """BOUNDED_CASES cases shared out over every entry point (drawn per entry point, so that each is reached
    however hypothesis spreads its draws: its generation adapts to how the cases run, e.g. on a loaded machine)."""
    outcomes = []
    for target in ALL_TARGETS:
        @settings(max_examples=BOUNDED_CASES // len(ALL_TARGETS), database=None, deadline=None, derandomize=True,
                  phases=[Phase.generate, Phase.shrink], suppress_health_check=list(HealthCheck))
        @given(case=fuzzing.case_strategy((target,)))
        def case_ends_cleanly(case):
            result = pool.run(case)
            outcomes.append((case.target, result["outcome"]))
            assert result["outcome"] in fuzzing.OK_OUTCOMES, f"{case.describe()}\n{result['detail']}"

        case_ends_cleanly()
    targets = {target for target, _ in outcomes}
    kinds = {outcome for _, outcome in outcomes}
    # Every entry point ran cases, and both kinds of ending were seen (a fuzzer whose cases all fail early tests
    # nothing but the first parser).
    assert targets == set(ALL_TARGETS), targets
    assert {"ok", "error"} <= kinds, kinds


def test_the_pool_reports_a_hang_and_a_crash_and_goes_on(pool, monkeypatch):
    """The guards themselves: a case over its time limit is a hang, a dying worker a crash; the next case runs."""
    monkeypatch.setitem(fuzzing.TIME_LIMITS, "_hang", 3)
    noop = (("bit_flip", (("at", 0),)), ("bit_flip", (("at", 0),)))
    hang = pool.run(fuzzing.Case("classifier_assets", "dir", "tfhub_module.pb", noop, "_hang"))
    assert hang["outcome"] == "hang", hang
    crash = pool.run(fuzzing.Case("classifier_assets", "dir", "tfhub_module.pb", noop, "_crash"))
    assert crash["outcome"] == "crash", crash
    after = pool.run(fuzzing.Case("classifier_assets", "dir", "tfhub_module.pb", noop, "inspect"))
    assert after["outcome"] == "ok", after
    # A worker whose memory passes the limit is retired after its case (workers otherwise live for many cases).
    monkeypatch.setattr(pool, "memory_limit_mb", 1)
    assert pool.run(fuzzing.Case("classifier_assets", "dir", "tfhub_module.pb", noop, "inspect"))["outcome"] == "ok"
    assert pool._slots[0] is None


def test_a_changed_source_or_a_leftover_is_a_failure(tmp_path, monkeypatch):
    """The checks after each case fail when a target writes where it must not."""
    seeds = {"classifier_assets": os.path.join(fuzzing.MODULES_DIR, "classifier_assets")}
    noop = (("bit_flip", (("at", 0),)), ("bit_flip", (("at", 0),)))
    case = fuzzing.Case("classifier_assets", "dir", "tfhub_module.pb", noop, "inspect")

    def writes_into_source(case, path, seeds, out):
        with open(os.path.join(path, "extra.txt"), "w") as f:
            f.write("x")
        return "error", "refused"

    monkeypatch.setattr(fuzzing, "_run_target", writes_into_source)
    assert fuzzing.run_case(case, seeds, str(tmp_path / "a"))["outcome"] == "source_changed"

    def leaves_a_destination(case, path, seeds, out):
        os.makedirs(os.path.join(out, "converted"))
        return "error", "refused"

    monkeypatch.setattr(fuzzing, "_run_target", leaves_a_destination)
    assert fuzzing.run_case(case, seeds, str(tmp_path / "b"))["outcome"] == "write"


def test_a_changed_seed_is_a_failure_in_every_later_case(tmp_path, monkeypatch):
    """Parity also reads the undamaged seed: a target that changes it fails, and so does each case after it."""
    seed = str(tmp_path / "seed")
    shutil.copytree(os.path.join(fuzzing.MODULES_DIR, "classifier_assets"), seed)
    seeds = {"classifier_assets": seed}
    noop = (("bit_flip", (("at", 0),)), ("bit_flip", (("at", 0),)))
    case = fuzzing.Case("classifier_assets", "dir", "tfhub_module.pb", noop, "inspect")

    def writes_into_the_seed(case, path, seeds, out):
        with open(os.path.join(seeds["classifier_assets"], "extra.txt"), "w") as f:
            f.write("x")
        return "ok", ""

    monkeypatch.setattr(fuzzing, "_run_target", writes_into_the_seed)
    assert fuzzing.run_case(case, seeds, str(tmp_path / "a"))["outcome"] == "source_changed"
    monkeypatch.setattr(fuzzing, "_run_target", lambda case, path, seeds, out: ("ok", ""))
    assert fuzzing.run_case(case, seeds, str(tmp_path / "b"))["outcome"] == "source_changed"


def test_two_workers_starting_together_share_one_set_of_seeds(tmp_path):
    """`make fuzz JOBS=2` starts both workers at once; the seeds are built once, and each case has its own folder."""
    from concurrent.futures import ThreadPoolExecutor

    pool = fuzzing.WorkerPool(str(tmp_path), processes=2)
    noop = (("bit_flip", (("at", 0),)), ("bit_flip", (("at", 0),)))
    case = fuzzing.Case("classifier_assets", "dir", "tfhub_module.pb", noop, "inspect")
    try:
        with ThreadPoolExecutor(max_workers=2) as executor:
            results = list(executor.map(lambda slot: pool.run(case, slot), [0, 1]))
    finally:
        pool.close()
    assert [r["outcome"] for r in results] == ["ok", "ok"], results


@pytest.mark.parametrize("argv", [["-n", "0"], ["--jobs", "0"], ["--report-every", "-1"]])
def test_the_campaign_refuses_counts_below_one_before_any_work(argv, tmp_path):
    import subprocess
    import sys

    from tests.corpus import ROOT

    proc = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "fuzz.py"), *argv], capture_output=True,
                          text=True, cwd=ROOT, env=dict(os.environ, TMPDIR=str(tmp_path)))
    assert proc.returncode == 2 and "must be at least 1" in proc.stderr.strip().splitlines()[-1]
    assert os.listdir(tmp_path) == []  # no work directory left behind


def _progress_then_error(argv):
    import sys
    print("bridge: reading the module", file=sys.stderr)
    print("bridge inspect: error: damaged", file=sys.stderr)
    return 2


def _foreign_line_then_error(argv):
    import sys
    print("bridge: reading the module", file=sys.stderr)
    print("W0000 something TensorFlow printed", file=sys.stderr)
    print("bridge inspect: error: damaged", file=sys.stderr)
    return 2


def test_an_error_line_after_anything_but_progress_is_an_escape(monkeypatch):
    """The CLI's error counts as the project's error only when it is the one line after its own progress lines."""
    import bridge.cli

    monkeypatch.setattr(bridge.cli, "main", _foreign_line_then_error)
    assert fuzzing._cli(["inspect", "x"])[0] == "escape"
    monkeypatch.setattr(bridge.cli, "main", _progress_then_error)
    assert fuzzing._cli(["inspect", "x"]) == ("error", "damaged")
