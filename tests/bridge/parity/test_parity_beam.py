"""Parity on Apache Beam (DirectRunner, two workers) reports what the local harness reports, value for value.

The reference is the local harness run live on the same inputs in the same process: a Beam run must give the same
JSON report (verdicts, every statistic, the worst element), for a faithful conversion of testdata convnet_bn and
for one whose conv1 kernel moved by 1e-3 in one weight (conv1 fails, the later outputs pass with small errors).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from bridge.cli import main
from bridge.conversion.converter import convert
from bridge.parity import compare
from bridge.parity.images import collect_inputs
from legacy.errors import InvalidInputError
from tests.corpus import ROOT, module_path

SOURCE = module_path("convnet_bn")
FILES, RANDOM, BATCH = 237, 11, 8  # 237 files + 5 array images + 11 random: batches cross every kind of source
QUIET = dict(progress=None)


@pytest.fixture(scope="module")
def converted_path(tmp_path_factory) -> str:
    return convert(SOURCE, str(tmp_path_factory.mktemp("beam") / "tf2"), verify=False, **QUIET).destination


@pytest.fixture(scope="module")
def perturbed(tmp_path_factory) -> str:
    """The same conversion with conv1/weights[1, 1, 0, 0] moved by 1e-3 just before the SavedModel is written."""
    real = tf.saved_model.save

    def save(obj, path, *args, **kwargs):
        var = next(v for v in obj.variables if v.name.startswith("conv1/weights"))
        var.assign_add(tf.scatter_nd([[1, 1, 0, 0]], [1e-3], var.shape))
        return real(obj, path, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tf.saved_model, "save", save)
        return convert(SOURCE, str(tmp_path_factory.mktemp("beam") / "moved"), verify=False, **QUIET).destination


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> list:
    """Generated PNGs (most 32x32, some to be resized, some grayscale) and a .npy of 5 images."""
    folder = tmp_path_factory.mktemp("images")
    (folder / "photos").mkdir()
    rng = np.random.default_rng(7)
    for i in range(FILES):
        shape = (32, 32, 3) if i % 5 else ((40, 36, 3) if i % 2 else (32, 32, 1))
        pixels = rng.integers(0, 256, shape, dtype=np.uint8)
        tf.io.write_file(str(folder / "photos" / f"{i:04d}.png"), tf.io.encode_png(pixels))
    array = str(folder / "extra.npy")
    np.save(array, rng.uniform(0, 1, (5, 32, 32, 3)).astype(np.float32))
    return [str(folder / "photos"), array]


def test_beam_batches_are_the_local_batches_bit_for_bit(images, tmp_path):
    """The batch plans, read apart from each other as workers read them, hold exactly the local batches."""
    from bridge.parity.beam import plan_batches, read_batch

    npz = str(tmp_path / "more.npz")
    np.savez(npz, first=np.random.default_rng(1).uniform(0, 1, (6, 32, 32, 3)).astype(np.float32))
    inputs = collect_inputs(images + [npz, np.zeros((2, 32, 32, 3), np.float32)], random=RANDOM, seed=3,
                            image_size=(32, 32), batch_size=7)
    local = list(inputs.batches())
    plans = plan_batches(inputs)
    assert len(plans) == len(local) == inputs.num_batches
    for plan in reversed(plans):  # any order, any worker
        batch, expected = read_batch(plan, (32, 32)), local[plan.index]
        assert batch.start == expected.start and batch.names == expected.names
        np.testing.assert_array_equal(batch.images, expected.images)
        assert batch.images.dtype == expected.images.dtype


def _both(a, b, images) -> tuple:
    from bridge.parity.beam import compare_on_beam

    options = dict(images=images, random=RANDOM, batch_size=BATCH)
    return compare(a, b, **options, **QUIET).to_json(), compare_on_beam(a, b, **options).to_json()


def test_a_faithful_conversion_gets_the_local_report(converted_path, images):
    local, beam = _both(SOURCE, converted_path, images)
    assert beam == local
    assert beam["passed"] and beam["inputs"]["images"] == FILES + 5 + RANDOM


def test_a_moved_weight_fails_the_same_outputs_with_the_same_statistics(perturbed, images, tmp_path):
    """Through the CLI, images given as a glob pattern: the JSON report equals the local one on the same files."""
    pattern = os.path.join(images[0], "*.png")
    report = str(tmp_path / "beam.json")
    code = main(["parity", SOURCE, perturbed, "--images", pattern, "--images", images[1], "--random", str(RANDOM),
                 "--batch-size", str(BATCH), "--runner", "beam", "--beam-options=--direct_num_workers=2",
                 "--json-file", report, "--quiet"])
    with open(report) as f:
        beam = json.load(f)
    files = sorted(os.path.join(images[0], name) for name in os.listdir(images[0]))
    local = compare(SOURCE, perturbed, images=files + [images[1]], random=RANDOM, batch_size=BATCH, **QUIET)
    assert code == 1 and beam == json.loads(json.dumps(local.to_json()))
    failed = {r["name"] for r in beam["outputs"] if r["status"] == "fail"}
    assert failed == {r.name for r in local.failures} == {"image_feature_vector/conv1"}
    conv1 = local.result("image_feature_vector/conv1")
    passing = local.result("image_feature_vector/default")
    assert not conv1.exact_quantiles and conv1.failing > 0 and conv1.mean_abs > 0  # merged histograms
    assert passing.exact_quantiles and passing.max_abs > 0 and not passing.identical  # merged exact errors


def test_an_image_that_fails_to_decode_on_a_worker_is_one_line(converted_path, tmp_path, capsys):
    folder = tmp_path / "bad"
    folder.mkdir()
    pixels = tf.io.encode_png(np.zeros((32, 32, 3), np.uint8)).numpy()
    (folder / "a.png").write_bytes(pixels)  # the first batch, which also runs before the pipeline starts
    (folder / "z.png").write_bytes(pixels[:40])  # a PNG header, then nothing: found only when a worker decodes it
    with pytest.raises(InvalidInputError) as local:
        compare(SOURCE, converted_path, images=str(folder), batch_size=1, **QUIET)
    assert main(["parity", SOURCE, converted_path, "--images", str(folder), "--batch-size", "1", "--runner", "beam",
                 "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == f"bridge parity: error: {local.value}" and "z.png: cannot decode" in err[-1]


def test_without_beam_the_runner_says_how_to_install_it(converted_path):
    """In a fresh process where `import apache_beam` fails, as without the extra."""
    script = ("import sys; sys.modules['apache_beam'] = None; from bridge.cli import main; "
              f"sys.exit(main(['parity', {SOURCE!r}, {converted_path!r}, '--runner', 'beam', '--quiet']))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=ROOT))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        "bridge parity: error: --runner beam needs Apache Beam, which is not installed; install it with: "
        "pip install -c constraints/main.txt '.[beam]' (in the tf-hub-bridge checkout)"]


@pytest.mark.parametrize("argv,message", [
    (["--training"], "--training runs only locally"),
    (["--beam-options=--direct_num_worker=2"], "unknown Beam option '--direct_num_worker=2'"),
])
def test_options_the_beam_runner_cannot_honour_are_refused(converted_path, capsys, argv, message):
    assert main(["parity", SOURCE, converted_path, "--runner", "beam", "--quiet"] + argv) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("flags,expected", [
    (None, ("DirectRunner", 2, "multi_threading")),
    ("--direct_num_workers=1", ("DirectRunner", 1, "multi_threading")),
    ("--runner=DirectRunner", ("DirectRunner", 2, "multi_threading")),
    ("--runner FlinkRunner --flink_master=host:8081", ("FlinkRunner", 1, "in_memory")),  # Beam's own defaults
])
def test_beam_options_default_to_two_direct_workers_only_on_directrunner(flags, expected):
    from bridge.parity.beam import pipeline_options

    options = pipeline_options(flags).get_all_options()
    assert (options["runner"], options["direct_num_workers"], options["direct_running_mode"]) == expected
