"""`bridge migrate --runner beam` (DirectRunner, two workers) reports what the local run reports.

The reference is the local run, live, over the same zoo (the testdata modules, each converted and verified, plus a
module with a corrupt saved_model.pb): the Beam run must give the same per-model verdicts and the same JSON report
but for the timings and the --out paths; a Beam rerun skips the models done and tries the corrupt one again.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from bridge.cli import main
from tests.corpus import MODULES, ROOT, module_path


@pytest.fixture(scope="module")
def zoo(tmp_path_factory) -> str:
    """testdata/modules plus `corrupt`: convnet_bn with a saved_model.pb that does not parse."""
    root = tmp_path_factory.mktemp("beamzoo") / "zoo"
    shutil.copytree(os.path.join(ROOT, "testdata", "modules"), root)
    corrupt = root / "corrupt"
    shutil.copytree(module_path("convnet_bn"), corrupt)
    (corrupt / "saved_model.pb").write_bytes(b"\x08\x03not a saved model")
    return str(root)


def _migrate(zoo: str, out, report, *extra: str) -> tuple:
    """Exit status, JSON report, stdout and stderr of one `bridge migrate` run in this process."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        status = main(["migrate", zoo, "--out", str(out), "--json-file", str(report), *extra])
    with open(report) as f:
        return status, json.load(f), stdout.getvalue(), stderr.getvalue()


# Each save gives a converted SavedModel a random uuid in fingerprint.pb, written in decimal (up to 39 digits): two
# conversions of one model are identical but for that file, whose size may differ by a few bytes.
UUID_BYTES = 8


def _without_timings(document: dict, out) -> dict:
    """The report without what differs between two runs: the models' seconds and destination sizes (checked
    within UUID_BYTES by the caller), and the --out directory."""
    document = json.loads(json.dumps(document).replace(json.dumps(str(out))[1:-1], "OUT"))
    for model in document["models"]:
        assert isinstance(model.pop("seconds"), float)
        model.pop("destination_bytes")
        model["reason"] = re.sub(r"OUT/(\S+) \(\d+ bytes\)", r"OUT/\1 (N bytes)", model["reason"])
    return document


@pytest.fixture(scope="module")
def runs(zoo, tmp_path_factory) -> dict:
    """The local run (--jobs 2) and the Beam run of the zoo, each into its own --out."""
    base = tmp_path_factory.mktemp("migrate")
    done = {}
    for runner, extra in (("local", ("--jobs", "2")), ("beam", ("--runner", "beam"))):
        status, document, stdout, stderr = _migrate(zoo, base / runner, base / f"{runner}.json", *extra)
        done[runner] = dict(out=base / runner, status=status, document=document, stdout=stdout, stderr=stderr)
    return done


def test_beam_gives_the_local_verdicts_and_report(runs):
    local, on_beam = runs["local"], runs["beam"]
    assert local["status"] == on_beam["status"] == 1  # the corrupt module failed alone
    models = {m["name"]: m for m in on_beam["document"]["models"]}
    assert sorted(models) == sorted(MODULES + ["corrupt"])
    for name in MODULES:
        assert models[name]["status"] == "ok" and models[name]["verified"], models[name]
        assert models[name]["worst_output"]["status"] == "pass"
        assert os.path.isfile(on_beam["out"] / name / "saved_model.pb")
    assert models["corrupt"]["status"] == "error" and "corrupt" in models["corrupt"]["reason"]
    assert not (on_beam["out"] / "corrupt").exists()
    assert _without_timings(on_beam["document"], on_beam["out"]) == _without_timings(local["document"], local["out"])
    for a, b in zip(local["document"]["models"], on_beam["document"]["models"]):
        if a["destination_bytes"] is None:
            assert b["destination_bytes"] is None
        else:
            assert abs(a["destination_bytes"] - b["destination_bytes"]) <= UUID_BYTES


def test_a_beam_rerun_skips_what_is_done(zoo, runs, tmp_path, capsys):
    out = runs["beam"]["out"]
    records = {name: (out / ".bridge-migrate" / f"{name}.json").read_text() for name in MODULES}
    corrupt = (out / ".bridge-migrate" / "corrupt.json").stat().st_mtime_ns
    status = main(["migrate", zoo, "--out", str(out), "--runner", "beam", "--beam-options=--direct_num_workers=1",
                   "--json-file", str(tmp_path / "again.json")])
    captured = capsys.readouterr()
    assert status == 1
    with open(tmp_path / "again.json") as f:
        document = json.load(f)
    statuses = {m["name"]: m["status"] for m in document["models"]}
    assert statuses == {**{name: "skipped" for name in MODULES}, "corrupt": "error"}  # the corrupt one tried again
    assert document["counts"] == {"ok": 0, "skipped": len(MODULES), "verification_failed": 0, "error": 1}
    assert (out / ".bridge-migrate" / "corrupt.json").stat().st_mtime_ns != corrupt
    for name in MODULES:  # the records of the models done are left as they were
        assert (out / ".bridge-migrate" / f"{name}.json").read_text() == records[name]
    lines = captured.out.splitlines()  # the local run's summary table
    assert lines[0].split() == ["model", "direction", "verdict", "worst", "output", "size", "seconds"]
    assert any(line.startswith("convnet_bn ") and " done before " in line for line in lines)
    assert lines[-1] == document["reason"]
    assert "bridge migrate: running 4 models on Beam (DirectRunner)" in captured.err


@pytest.mark.parametrize("argv,message", [
    (["--runner", "beam", "--jobs", "2"], "--jobs is for the local runner"),
    (["--beam-options=--direct_num_workers=2"], "--beam-options needs --runner beam"),
    (["--runner", "beam", "--beam-options=--direct_num_worker=2"], "unknown Beam option '--direct_num_worker=2'"),
])
def test_options_beam_cannot_honour_are_refused(argv, message, tmp_path, capsys):
    assert main(["migrate", module_path("convnet_bn"), "--out", str(tmp_path / "out"), "--quiet"] + argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_without_beam_migrate_says_how_to_install_it(tmp_path):
    """In a fresh process where `import apache_beam` fails, as without the extra: one line, nothing written."""
    out = str(tmp_path / "out")
    script = ("import sys; sys.modules['apache_beam'] = None; from bridge.cli import main; "
              f"sys.exit(main(['migrate', {module_path('convnet_bn')!r}, '--out', {out!r}, '--runner', 'beam']))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=ROOT))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        "bridge migrate: error: --runner beam needs Apache Beam, which is not installed; install it with: "
        "pip install -c constraints/main.txt '.[beam]' (in the tf-hub-bridge checkout)"]
    assert not os.path.exists(out)


def _skeleton(line: str) -> str:
    return re.sub(r"\d+(\.\d+)?", "#", " ".join(line.split()))


def test_the_readme_example_shows_what_a_beam_run_prints(runs):
    """The README's `migrate --runner beam` run over testdata/modules, line by line among the zoo run's lines
    (numbers as placeholders: sizes and seconds differ; the zoo run adds the corrupt module)."""
    with open(os.path.join(ROOT, "README.md")) as f:
        text = f.read()
    start = text.index("$ bridge migrate testdata/modules --out converted/ --runner beam\n")
    shown = text[start:text.index("```", start)].splitlines()[1:]
    output = (runs["beam"]["stdout"] + runs["beam"]["stderr"]).replace(str(runs["beam"]["out"]), "converted/")
    printed = {_skeleton(line) for line in output.splitlines()}
    for line in shown:
        if line.startswith("3 of 3 models converted"):  # the last line counts the models: 4 in the zoo, 1 failed
            continue
        assert _skeleton(line) in printed, line
