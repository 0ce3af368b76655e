"""`--beam-options VALUE` takes a VALUE that starts with `--` (argparse alone would read it as an option): the
README's Dataflow and Flink command lines run through `bridge.cli.main` up to the Beam pipeline options they
build, and `bridge migrate` takes the same spelling. Nothing is launched: the test stops where the options exist."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from bridge.cli import main
from bridge.cli.arguments import normalize_argv
from tests.corpus import ROOT, module_path

pytest.importorskip("apache_beam")


class _Built(Exception):
    """Raised with the pipeline options as soon as they are built, so no pipeline starts."""

    def __init__(self, options):
        super().__init__("options built")
        self.options = options.get_all_options()


def _stop_at_options(monkeypatch, module) -> None:
    real = module.pipeline_options

    def built(beam_options=None):
        raise _Built(real(beam_options))

    monkeypatch.setattr(module, "pipeline_options", built)


def _readme_commands(prefix: str) -> list:
    """The README's console commands starting with `prefix`, each as the argv bash gives it (continuation lines
    joined and quotes removed by bash itself)."""
    with open(os.path.join(ROOT, "README.md")) as f:
        text = f.read()
    commands = re.findall(r"^\$ (" + re.escape(prefix) + r".*?(?:\\\n.*?)*)$", text, flags=re.M)
    argvs = []
    for command in commands:
        out = subprocess.run(["bash", "-c", 'printf "%s\\0" ' + command], capture_output=True, check=True).stdout
        argvs.append(out.decode().split("\0")[:-1])
    return argvs


def test_normalize_joins_a_flag_valued_option():
    assert normalize_argv(["parity", "a", "b", "--beam-options", "--runner=X --project=P", "--quiet"]) == [
        "parity", "a", "b", "--beam-options=--runner=X --project=P", "--quiet"]
    assert normalize_argv(["parity", "--beam-options=--x=1"]) == ["parity", "--beam-options=--x=1"]


@pytest.mark.parametrize("runner,expected", [
    ("DataflowRunner", {"project": "my-project", "region": "us-central1", "temp_location": "gs://my-bucket/tmp",
                        "num_workers": 20, "machine_type": "n2-standard-8",
                        "sdk_container_image": "REGISTRY/bridge-beam:latest"}),
    ("FlinkRunner", {"flink_master": "flink-jobmanager:8081", "parallelism": 16, "environment_type": "DOCKER",
                     "sdk_container_image": "REGISTRY/bridge-beam:latest"}),
])
def test_the_readme_cluster_lines_parse(tmp_path, monkeypatch, runner, expected):
    import bridge.parity.beam

    commands = [argv for argv in _readme_commands("bridge parity old/ new/ ")
                if any(f"--runner={runner}" in a for a in argv)]
    assert len(commands) == 1, commands
    argv = commands[0]
    assert argv[0] == "bridge"
    # The README's models and images, made here: old/ and new/ in the working directory, and its image folder
    # (/mnt/imagenet/val) replaced by a local one holding one JPEG.
    for name in ("old", "new"):
        shutil.copytree(module_path("convnet_bn"), tmp_path / name)
    val = tmp_path / "val"
    val.mkdir()
    import tensorflow as tf

    (val / "a.JPEG").write_bytes(tf.io.encode_jpeg(tf.zeros([8, 8, 3], tf.uint8)).numpy())
    argv = [a.replace("/mnt/imagenet/val", str(val)) for a in argv[1:]]
    monkeypatch.chdir(tmp_path)
    _stop_at_options(monkeypatch, bridge.parity.beam)
    with pytest.raises(_Built) as built:
        main(argv + ["--quiet"])
    options = built.value.options
    assert options["runner"] == runner
    assert {k: options[k] for k in expected} == expected


def test_migrate_takes_the_same_spelling(tmp_path, monkeypatch):
    import bridge.cli.migrate_beam

    _stop_at_options(monkeypatch, bridge.cli.migrate_beam)
    with pytest.raises(_Built) as built:
        main(["migrate", module_path("convnet_bn"), "--out", str(tmp_path / "out"), "--runner", "beam",
              "--beam-options", "--direct_num_workers=3 --direct_running_mode=multi_threading", "--quiet"])
    assert built.value.options["direct_num_workers"] == 3
    assert built.value.options["direct_running_mode"] == "multi_threading"


def test_the_readme_quotes_the_recorded_beam_throughput():
    """The README's "Scaling out" table holds the times and images/s of benchmarks/RESULTS.md's section 6 (the run
    `make bench` recorded), row by row: regenerate one, update the other."""
    with open(os.path.join(ROOT, "benchmarks", "RESULTS.md")) as f:
        results = f.read()
    section = results[results.index("## 6. Parity on Beam"):]
    section = section[:section.index("\n## ", 1)]
    recorded = {cells[0]: (cells[2], cells[3]) for cells in (
        [c.strip() for c in line.strip("|").split("|")] for line in section.splitlines()
        if line.startswith(("| local", "| Beam")))}
    assert len(recorded) == 3, section
    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    scaling = readme[readme.index("## Scaling out"):]
    stamp = re.search(r"Written by `make bench` \(`benchmarks/run.py`\) on (\S+ \S+ UTC)", results).group(1)
    assert stamp in scaling, f"the README should name the recorded run ({stamp})"
    for run, (time, rate) in recorded.items():
        label = "local harness (`bridge parity`)" if run == "local harness" else run
        assert f"| {label} | {time} | {rate} |" in scaling, (run, time, rate)
