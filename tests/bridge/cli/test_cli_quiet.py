"""The CLI shows only its own lines (TensorFlow's native and Python logs hidden unless --verbose), Python use of the
adapter and the shim logs nothing, and reports fit the terminal's width."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.corpus import IMAGES_DIR, ROOT, module_path

BRIDGE = [sys.executable, "-m", "bridge.cli"]
ENV = {**os.environ, "PYTHONPATH": ROOT}
ENV.pop("BRIDGE_DEBUG", None)
MODULE = module_path("convnet_bn")
ZOO_MODULE = os.path.join(ROOT, "testdata", "zoo", "modules", "mobilenet_v2")


def test_convert_prints_only_its_own_lines(tmp_path):
    proc = subprocess.run([*BRIDGE, "convert", MODULE, str(tmp_path / "tf2")], capture_output=True, text=True,
                          env=ENV, timeout=300)
    assert proc.returncode == 0, proc.stderr
    # the bridge's lines, a long one wrapped at the terminal's width (120 without one) on indented lines
    assert proc.stderr and all(line.startswith(("bridge: ", "    ")) for line in proc.stderr.splitlines()), proc.stderr
    assert proc.stdout.startswith("tf1->tf2: ") and len(proc.stdout.splitlines()) == 1


def test_verbose_shows_tensorflow_again(tmp_path):
    proc = subprocess.run([*BRIDGE, "inspect", MODULE, "--verbose"], capture_output=True, text=True, env=ENV,
                          timeout=300)
    assert proc.returncode == 0
    assert any(not line.startswith("bridge") for line in proc.stderr.splitlines()), proc.stderr  # TF's own lines


@pytest.fixture(scope="module")
def bad_models(tmp_path_factory) -> dict:
    """A module with a corrupt saved_model.pb and a SavedModel that reads a file: both fail once TF is loaded."""
    import shutil

    import tensorflow as tf

    root = tmp_path_factory.mktemp("bad")
    corrupt = root / "corrupt"
    shutil.copytree(MODULE, corrupt)
    (corrupt / "saved_model.pb").write_bytes(b"\x08\x03not a saved model")
    secret = root / "secret.txt"
    secret.write_text("secret")
    obj = tf.__internal__.tracking.AutoTrackable()
    obj.__call__ = tf.function(lambda images, training=False: images[:, 0, 0, :] + tf.cast(
        tf.strings.length(tf.io.read_file(str(secret))), tf.float32))
    obj.__call__.get_concrete_function(tf.TensorSpec([None, 4, 4, 3], tf.float32), training=False)
    tf.saved_model.save(obj, str(root / "unsafe"))
    return {"corrupt": str(corrupt), "unsafe": str(root / "unsafe")}


@pytest.mark.parametrize("name,fragment", [("corrupt", "corrupt"), ("unsafe", "ReadFile")])
def test_bad_input_is_one_line_on_stderr(tmp_path, bad_models, name, fragment):
    proc = subprocess.run([*BRIDGE, "convert", bad_models[name], str(tmp_path / "out")], capture_output=True,
                          text=True, env=ENV, timeout=300)
    assert proc.returncode == 2 and proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("bridge convert: error: ") and fragment in lines[0], lines


def _assert_prints_nothing_after_mark(code: str) -> None:
    """Run `code` (which writes MARK to stderr once TensorFlow has started, then prints "done") in a fresh
    Python: it must succeed and print nothing on stderr after MARK."""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=300,
                          cwd=ROOT)
    assert proc.returncode == 0 and proc.stdout.strip() == "done", proc.stderr
    assert proc.stderr.split("MARK\n", 1)[1] == ""


def test_python_use_of_the_adapter_and_the_shim_logs_nothing():
    """After the caller's own `import tensorflow` (whose start-up lines are TensorFlow's), adapting a module, the
    shim, and calling both print nothing (no graph_constructor producer-version lines, no cuInit notice)."""
    code = f"""
import os, sys
import numpy as np
import tensorflow as tf
sys.stderr.write("MARK\\n"); sys.stderr.flush()
import bridge
from legacy import hub
images = np.random.default_rng(0).uniform(size=(2, 32, 32, 3)).astype(np.float32)
adapter = bridge.adapt({MODULE!r})
for training in (False, True, False):
    adapter(images, training=training)
zoo = bridge.adapt({ZOO_MODULE!r})  # 13 regularization losses, each its own function, each traced once
assert len(zoo.regularization_losses) > 5
sum(float(loss()) for loss in zoo.regularization_losses)
zoo(images, training=True, batch_norm_momentum=0.5)
module = hub.Module({MODULE!r}, trainable=True, tags={{"train"}})
for _ in range(3):
    module(images, signature="image_feature_vector", as_dict=True)
print("done")
"""
    _assert_prints_nothing_after_mark(code)


@pytest.fixture(scope="module")
def report():
    import bridge

    moved = bridge.adapt(MODULE)
    bias = next(v for v in moved.variables if v.name.startswith("logits/biases"))
    bias.assign_add([0.05] + [0.0] * 9)
    return bridge.compare(MODULE, moved, images=IMAGES_DIR, random=4, training=True, gradients=True)


@pytest.mark.parametrize("width", [60, 80, 120])
def test_report_fits_the_width(report, width):
    for full in (False, True):
        lines = report.table(full=full, width=width).splitlines()
        assert max(len(line) for line in lines) <= width, "\n".join(lines)
    summary, full = report.table(width=width), report.table(full=True, width=width)
    assert "FAIL image_classification/default: " in summary  # the failure and its reason are always shown
    assert "--full" in summary and "--full" not in full
    assert len(full.splitlines()) > len(summary.splitlines())


def test_cli_report_fits_the_terminal(tmp_path):
    proc = subprocess.run([*BRIDGE, "parity", MODULE, MODULE, "--images", IMAGES_DIR, "--training", "--gradients",
                           "--full"], capture_output=True, text=True, env={**ENV, "COLUMNS": "72"}, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert max(len(line) for line in proc.stdout.splitlines()) <= 72, proc.stdout
    # one row per output: statistics and verdict together
    rows = [line for line in proc.stdout.splitlines() if line.startswith("  ") and line.endswith("  PASS")]
    assert len(rows) == 20 and all(" 0 " in row for row in rows)  # every output, each identical


@pytest.fixture(scope="module")
def inspected() -> dict:
    from bridge.inspect import inspect_model

    return inspect_model(os.path.join(ROOT, "testdata", "zoo", "modules", "inception_v2"))


@pytest.mark.parametrize("width", [60, 80, 120])
def test_inspect_fits_the_terminal(inspected, monkeypatch, width):
    from bridge.inspect import format_report

    unwrapped = format_report(inspected, width=1000)
    assert max(len(line) for line in unwrapped.splitlines()) > 110  # the signature lines
    monkeypatch.setenv("COLUMNS", str(width))
    text = format_report(inspected)  # as `bridge inspect` prints it
    assert max(len(line) for line in text.splitlines()) <= width, text
    assert text.split() == unwrapped.split()  # the same words, only wrapped
    assert "float32[?, 4, 4, 25]" in text  # a shape is never broken


@pytest.mark.parametrize("command", ["inspect", "parity"])
def test_inspect_and_parity_print_only_their_own_lines(command):
    """In a process of their own: no TensorFlow start-up lines, no warnings, no libpng `iCCP` lines (the bundled
    PNGs carry a known-incorrect sRGB profile) on stderr; only the bridge's lines or their wrapped rest."""
    argv = {"inspect": ["inspect", MODULE], "parity": ["parity", MODULE, MODULE, "--images", IMAGES_DIR]}[command]
    proc = subprocess.run([*BRIDGE, *argv], capture_output=True, text=True, env=ENV, timeout=300)
    assert proc.returncode == 0, proc.stderr
    if command == "inspect":
        assert proc.stderr == ""
    else:
        lines = proc.stderr.splitlines()
        assert lines and all(line.startswith(("bridge parity: ", "    ")) for line in lines), proc.stderr


@pytest.fixture(scope="module")
def tf2_sources(tmp_path_factory) -> tuple:
    """A Keras 3 Reusable SavedModel and convnet_bn converted to TF2, made in this process."""
    import bridge
    from tests.bridge.tf2_models import keras3_classifier

    root = tmp_path_factory.mktemp("tf2_sources")
    keras_model = keras3_classifier(str(root / "keras3"))
    bridge.convert(MODULE, str(root / "converted"), verify=False, progress=lambda message: None)
    return keras_model, str(root / "converted")


def test_python_use_on_tf2_sources_logs_nothing(tf2_sources):
    """The shim on TF2 SavedModels (a Keras 3 export and a converted module; eager and graph mode, inference and
    training, repeated calls) and bridge.compare of a TF2 model against its TF1 source on the bundled PNGs, in a
    fresh process: no retracing or deprecation warnings, no cuInit notice, no libpng iCCP lines."""
    keras_model, converted = tf2_sources
    code = f"""
import sys
import numpy as np
import tensorflow as tf
sys.stderr.write("MARK\\n"); sys.stderr.flush()
import bridge
from legacy import hub
keras_model, converted = {keras_model!r}, {converted!r}
rng = np.random.default_rng(0)
for path, size in ((keras_model, 24), (converted, 32)):
    for tags in (None, {{"train"}}):
        module = hub.Module(path, trainable=True, tags=tags)
        for batch in (2, 3, 2):
            module(rng.uniform(size=(batch, size, size, 3)).astype(np.float32))
with tf.Graph().as_default():
    module = hub.Module(converted, tags={{"train"}})
    images = tf.compat.v1.placeholder(tf.float32, [None, 32, 32, 3])
    out = module(images)
    with tf.compat.v1.Session() as session:
        session.run(tf.compat.v1.global_variables_initializer())
        for batch in (2, 3):
            session.run(out, {{images: np.zeros((batch, 32, 32, 3), np.float32)}})
report = bridge.compare(converted, {MODULE!r}, images={IMAGES_DIR!r}, random=4, training=True, gradients=True)
assert report.passed
report = bridge.compare(keras_model, keras_model, random=4, batch_size=2, training=True, gradients=True)
assert report.passed
print("done")
"""
    _assert_prints_nothing_after_mark(code)


def test_python_compare_on_the_bundled_images_logs_nothing():
    """bridge.compare of a TF1 module with itself on testdata/images (PNGs with an old sRGB profile), training mode
    and gradients, after the caller's own TensorFlow start-up: no libpng `iCCP` lines, no retracing warning (each
    signature function traced once per input signature)."""
    code = f"""
import sys
import tensorflow as tf
tf.config.list_logical_devices()
sys.stderr.write("MARK\\n"); sys.stderr.flush()
import bridge
report = bridge.compare({MODULE!r}, {MODULE!r}, images={IMAGES_DIR!r}, random=4, training=True, gradients=True)
assert report.passed
print("done")
"""
    _assert_prints_nothing_after_mark(code)
