"""Smoke test of the benchmark (`make bench`, benchmarks/): every piece runs on a tiny module and fills its table.

One repetition, the corpus module `convnet_bn` instead of ResNet V2 50, and the per-process measurements run in
this process (`--in-process`) except one, which goes through a real child process. No timing is asserted: on a
shared test machine the numbers mean nothing; what matters is that `make bench` cannot rot unnoticed.
"""

from __future__ import annotations

import json
import os

import pytest

from benchmarks import run, sections

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODULE = os.path.join(ROOT, "testdata", "modules", "convnet_bn")
ROWS = {
    "inference": ["session", "converted", "optimized", "hub_load", "shim_eager", "shim_graph"],
    "training": ["session_train", "converted_train"],
    "conversion": ["naive", "tf1_tf2_fast", "tf1_tf2", "tf2_tf1"],
    "cold_start": ["converted", "hub_load", "shim"],
    "harness": ["own", "compare"] + [f"memory_{n}" for n in run.QUICK["harness_sizes"]],
    "beam": ["local harness", "Beam DirectRunner, 1 worker", "Beam DirectRunner, 2 workers"],
}
TARGETS = ["converted_inference", "optimized_inference", "shim_eager", "shim_graph", "conversion_time", "conversion_verified",
           "conversion_back_time", "conversion_size", "conversion_size_back", "conversion_memory", "cold_start",
           "harness"]


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    """(exit status, JSON results, Markdown) of a quick in-process run on the tiny module."""
    tmp = tmp_path_factory.mktemp("bench")
    status = run.main(["--module", MODULE, "--quick", "--reps", "1", "--in-process", "--work", str(tmp / "work"),
                       "--output", str(tmp / "RESULTS.md"), "--json", str(tmp / "results.json")])
    with open(tmp / "results.json") as f:
        results = json.load(f)
    return status, results, (tmp / "RESULTS.md").read_text()


def test_every_section_runs(bench):
    status, results, _ = bench
    assert results["errors"] == []
    assert status == 0
    assert [t["key"] for t in results["tables"]] == sections.TABLE_ORDER


@pytest.mark.parametrize("table", sorted(ROWS))
def test_table_has_all_rows(bench, table):
    _, results, _ = bench
    found = next(t for t in results["tables"] if t["key"] == table)
    assert [r["key"] for r in found["rows"]] == ROWS[table]
    for row in found["rows"]:
        assert len(row["cells"]) == len(found["columns"]), row
        assert "-" != row["cells"][1], row  # the first measured cell is filled


def test_every_target_is_judged(bench):
    _, results, _ = bench
    assert [t["key"] for t in results["targets"]] == TARGETS
    assert all(t["met"] in (True, False) for t in results["targets"])


def test_markdown_holds_machine_tables_and_targets(bench):
    _, results, markdown = bench
    assert "## Machine" in markdown and "load average" in markdown
    for table in results["tables"]:
        assert f"## {table['title']}" in markdown
    assert "## Targets" in markdown


def test_child_process_reports_json(tmp_path):
    """The per-process path for real: a fresh interpreter runs one task and reports its measurements."""
    cfg = sections.Config(module=MODULE, work=str(tmp_path), image_size=(32, 32))
    result = sections.run_child(cfg, "cold", "hub_load", MODULE, "32x32")
    assert set(result) >= {"import_seconds", "load_seconds", "first_batch_seconds", "peak_rss", "wall_seconds"}
    assert result["peak_rss"] > 0


def test_conversion_notes_break_time_and_memory_down(bench):
    """A missed target says what the rest is spent on: per phase, time and peak-memory growth, and the load of the
    converted model split into its function library, checkpoint restore and objects."""
    _, results, _ = bench
    conversion = next(t for t in results["tables"] if t["key"] == "conversion")
    verified = next(n for n in conversion["notes"] if n.startswith("bridge convert TF1→TF2 (verified)"))
    assert "verify: load TF2 SavedModel" in verified and "peak RSS growth by phase: " in verified
    # The verification's runs of both models are broken down too: as exclusive phases, and (when the two ran at
    # the same time in this run, which depends on the machine's timing) each one's own time side by side.
    assert "verify: run TF1 module (inference)" in verified and "verify: run TF2 SavedModel (training)" in verified
    cold = next(t for t in results["tables"] if t["key"] == "cold_start")
    assert any("function library" in n and "checkpoint saver that TF1 loaders and TensorFlow Serving run is" in n
               for n in cold["notes"])


def test_phase_timer_keeps_side_by_side_phases_apart():
    """Phases run in worker threads at once go to `concurrent`; the main thread's waiting phase holds the wall
    time, so the exclusive totals never count the same second twice."""
    import threading
    import time

    from benchmarks.timing import PhaseTimer

    class Work:
        @staticmethod
        def side(seconds):
            time.sleep(seconds)

        @staticmethod
        def both():
            threads = [threading.Thread(target=Work.side, args=(0.2,)) for _ in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()

    timer = PhaseTimer()
    timer.wrap(Work, "side", "side")
    timer.wrap(Work, "both", "both")
    try:
        Work.both()
    finally:
        timer.restore()
    assert set(timer.totals) == {"both"} and 0.2 <= timer.totals["both"] < 0.39
    assert 0.4 <= timer.concurrent["side"] < 0.79
    assert set(timer.memory()) == {"both"}


def test_inference_notes_time_the_python_dispatch(bench):
    """Every contender's per-call time is split into TensorFlow's runtime and the Python around it."""
    _, results, _ = bench
    inference = next(t for t in results["tables"] if t["key"] == "inference")
    note = next(n for n in inference["notes"] if n.startswith("Python dispatch per call"))
    for key in ROWS["inference"]:
        assert f"{key} " in note
