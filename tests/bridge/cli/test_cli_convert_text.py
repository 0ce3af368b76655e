"""`bridge convert`'s human output: which outputs depend on random ops and how they were compared (one line), and
`--full` printing every row of the verification table on success too; `bridge parity`'s summary names the flag."""

from __future__ import annotations

import json
import os

import pytest

from bridge.cli import main
from tests.corpus import ROOT

# A TF-Slim Inception V2 head with dropout in its train variant, exported by the genuine library (testdata/zoo/).
MODULE = os.path.join(ROOT, "testdata", "zoo", "modules", "inception_v2")


def _run(capsys, *argv) -> tuple:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def convert_runs(tmp_path_factory) -> dict:
    """One text conversion with its JSON document written beside it (--json-file), and one with --full."""
    import contextlib
    import io

    root = tmp_path_factory.mktemp("convert_text")
    runs = {}
    for label, extra in (("plain", ["--json-file", str(root / "plain.json")]), ("full", ["--full"])):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["convert", MODULE, str(root / label), *extra])
        runs[label] = (code, out.getvalue(), err.getvalue())
    with open(root / "plain.json") as f:
        runs["json"] = json.load(f)
    runs["dst"] = str(root / "plain")
    return runs


def _dependent(document: dict) -> list:
    """The outputs the JSON report says depend on random ops, named as the text names them."""
    return sorted({o["name"] if o["mode"] == "inference" else f"{o['name']} [{o['mode']}]"
                   for o in document["verification"]["outputs"] if "depends on random ops" in (o["reason"] or "")})


def test_text_output_says_which_outputs_depend_on_random_ops(convert_runs):
    code, out, err = convert_runs["plain"]
    assert code == 0, err
    dependent = _dependent(convert_runs["json"])
    assert dependent  # the dropout before the logits, in training mode
    lines = out.splitlines()
    assert lines[-1].startswith("tf1->tf2: ") and lines[-1].endswith("verified: PASS")
    (line,) = [x for x in lines if x.startswith("random ops: ")]
    assert line == (f"random ops: {', '.join(dependent)} depend on them; compared with both models drawing the same "
                    "numbers (random ops seeded alike on both sides)")
    assert convert_runs["json"]["verification"]["settings"]["random_ops"]["A"]["matched"]


def test_full_prints_every_row_when_verification_passes(convert_runs):
    code, out, err = convert_runs["full"]
    assert code == 0, err
    outputs = convert_runs["json"]["verification"]["outputs"]
    rows = [line.split()[0] for line in out.splitlines() if line.startswith("  ") and not line.startswith("   ")]
    assert not convert_runs["json"]["verification"]["other_sizes"]  # a fixed-size module: one table
    assert len(rows) == len(outputs)
    for mode in {o["mode"] for o in outputs}:  # every row of every section
        names = [o["name"] for o in outputs if o["mode"] == mode]
        assert all(f"  {name} " in out for name in names), mode
    assert "more output" not in out  # nothing hidden
    assert "note: random ops:" in out  # the table's own note says how they were compared
    assert out.splitlines()[-1].startswith("tf1->tf2: ") and out.splitlines()[-1].endswith("verified: PASS")


def test_parity_summary_names_the_cli_flag_only(capsys, convert_runs):
    code, out, err = _run(capsys, "parity", MODULE, convert_runs["dst"], "--training")
    assert code == 0, err
    (hidden,) = [line for line in out.splitlines() if "more output" in line]
    assert hidden.rstrip().endswith("--full shows every row") and "table(" not in out
