"""Every argument is checked before any work, in the CLI and the Python API alike, with the caller's spelling.

Covers: image sizes (`image_size=(h, w)` / `--image-size HxW`), options that do not apply to the direction or mode,
multi-value options that must not swallow positionals, cheap checks before TensorFlow is imported, `--json` as one
document with a top-level status on success and on every failure, parity naming what only one model has,
`bridge inspect` of a TF2 model without serving signatures, `--version`, and old spellings that now fail with the
new one named.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

import bridge
from bridge.cli import main
from legacy.errors import InvalidInputError
from tests.corpus import IMAGES_DIR, ROOT, module_path

MODULE = module_path("convnet_bn")


def _cli(capsys, *argv) -> tuple:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _one_line_error(code: int, out: str, err: str, command: str, *fragments: str) -> None:
    assert code == 2 and out == "", out
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"bridge {command}: error: "), err
    for fragment in fragments:
        assert fragment in err, err


@pytest.fixture(scope="module")
def call_only_classifier(tmp_path_factory) -> str:
    """A Keras 3 classifier saved with only __call__ (no serving signatures), 24x24 inputs, 5 logits."""
    from tests.bridge import tf2_models

    return tf2_models.keras3_classifier(str(tmp_path_factory.mktemp("tf2") / "k3"))


# -- image sizes: one grammar, the caller's spelling ---------------------------------------------------------------


@pytest.mark.parametrize("size", [(224,), ("a", "b"), (0, 10), (224.5, 224), (True, 3), "0x10", "224", 224])
def test_python_image_size_is_refused_before_any_work(tmp_path, call_only_classifier, size):
    dst = tmp_path / "out"
    with pytest.raises(InvalidInputError, match=r"^image_size=") as e:
        bridge.convert(call_only_classifier, dst, kind="classification", image_size=size, progress=None)
    assert "--image-size" not in str(e.value) and "image_size=(224, 224)" in str(e.value)
    assert not dst.exists()


@pytest.mark.parametrize("text", ["0x10", "224", "axb", "224x224x3", "1x0"])
def test_cli_image_size_is_refused_in_one_line(capsys, tmp_path, call_only_classifier, text):
    code, out, err = _cli(capsys, "convert", call_only_classifier, str(tmp_path / "out"), "--image-size", text)
    _one_line_error(code, out, err, "convert", f"--image-size {text!r} is not HEIGHTxWIDTH",
                    "pass e.g. --image-size 224x224")
    assert "image_size=" not in err and not (tmp_path / "out").exists()


def test_one_image_size_parser():
    from bridge.conversion import tf2_to_tf1
    from bridge.parity import images
    from bridge.validate import parse_image_size

    assert tf2_to_tf1.parse_image_size is parse_image_size and images.parse_image_size is parse_image_size
    assert parse_image_size("224x160") == parse_image_size("224,160") == parse_image_size((224, 160)) == (224, 160)


# -- options that do not apply are errors, not ignored -------------------------------------------------------------


@pytest.mark.parametrize("argv,fragment", [
    (["--kind", "feature_vector"], "--kind feature_vector applies to TF2 -> TF1 conversions only"),
    (["--image-size", "32x32"], "declares its image size 32x32, which its verification uses: drop --image-size "
                                "32x32"),
    (["--image-size", "32x32", "--no-verify"], "--image-size 32x32 is the size a TF1 -> TF2 verification draws "
                                               "images at, and --no-verify verifies nothing; drop one of the two"),
    (["--no-verify", "--verify-images", IMAGES_DIR], "--verify-images has no effect with --no-verify"),
    (["--no-verify", "--verify-gradients"], "--verify-gradients has no effect with --no-verify"),
])
def test_cli_convert_refuses_options_that_do_not_apply(capsys, tmp_path, argv, fragment):
    code, out, err = _cli(capsys, "convert", MODULE, str(tmp_path / "out"), *argv)
    _one_line_error(code, out, err, "convert", fragment)
    assert not (tmp_path / "out").exists()


def test_signature_does_not_apply_to_tf2_sources(capsys, tmp_path, call_only_classifier):
    code, out, err = _cli(capsys, "convert", call_only_classifier, str(tmp_path / "out"), "--signature", "default",
                          "--kind", "classification")
    _one_line_error(code, out, err, "convert", "--signature default applies to TF1 -> TF2 conversions only")


@pytest.mark.parametrize("kwargs,fragment", [
    (dict(kind="feature_vector"), "kind='feature_vector' applies to TF2 -> TF1 conversions only"),
    (dict(image_size=(32, 32)), "declares its image size 32x32, which its verification uses: drop "
                                "image_size=(32, 32)"),
    (dict(verify=False, verify_gradients=True), "verify_gradients=... has no effect with verify=False"),
    (dict(verify=False, verify_images=IMAGES_DIR), "verify_images=... has no effect with verify=False"),
    (dict(kind="vector"), "kind='vector' is not a known value; pass kind='feature_vector' or kind='classification'"),
    (dict(to="tf3"), "to='tf3' is not a known value"),
    (dict(to="tf2", signature=""), "signature='' is not a name"),
    (dict(seed=-1), "seed must be at least 0"),
    (dict(verify="no"), "verify='no' is not True or False"),
    (dict(verify_images="/no/such/images"), "check the verify_images= path"),
])
def test_python_convert_refuses_in_python_spelling(tmp_path, kwargs, fragment):
    with pytest.raises(InvalidInputError) as e:
        bridge.convert(MODULE, tmp_path / "out", progress=None, **kwargs)
    assert fragment in str(e.value) and " --" not in str(e.value)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("argv,fragment", [
    (["--atol", "gradients:1e-3"], "--atol gradients:0.001 sets a tolerance for gradients, which are compared "
                                   "only with --gradients"),
    (["--rtol", "gradients/conv1/weights:0.1"], "compared only with --gradients"),
    (["--atol", "updates:1"], "sets a tolerance for updates, which are compared only with --training"),
    (["--atol", "training:1", "--gradients"], "compared only with --training"),
])
def test_parity_tolerances_for_modes_not_compared_are_refused_before_loading(capsys, argv, fragment):
    code, out, err = _cli(capsys, "parity", MODULE, MODULE, *argv)
    _one_line_error(code, out, err, "parity", fragment)
    assert "loading" not in err


def test_python_compare_refuses_in_python_spelling():
    with pytest.raises(InvalidInputError, match=r"atol=\{'gradients': 0.001\} .* only with gradients=True"):
        bridge.compare(MODULE, MODULE, atol={"gradients": 1e-3})
    with pytest.raises(InvalidInputError, match=r"^image_size=\(32,\) is not \(height, width\)"):
        bridge.compare(MODULE, MODULE, image_size=(32,))
    with pytest.raises(InvalidInputError, match="batch_size must be at least 1"):
        bridge.compare(MODULE, MODULE, batch_size=0)
    with pytest.raises(InvalidInputError, match=r"^batch_size='8' is not a whole number; pass e.g. batch_size=1$"):
        bridge.compare(MODULE, MODULE, batch_size="8")
    with pytest.raises(InvalidInputError, match=r"^atol='x' is not a number; pass atol=VALUE or atol=\{NAME: VALUE\}"):
        bridge.compare(MODULE, MODULE, atol="x")
    with pytest.raises(InvalidInputError, match=r"^rtol='x' is not a number"):
        bridge.compare(MODULE, MODULE, rtol={"default": "x"})
    with pytest.raises(InvalidInputError, match=r"^atol must be a finite number >= 0, got -1.0$"):
        bridge.compare(MODULE, MODULE, atol=-1)


def test_cli_tolerances_are_refused_in_cli_spelling(capsys):
    code, out, err = _cli(capsys, "parity", MODULE, MODULE, "--atol", "x")
    assert code == 2 and "--atol 'x' is not a number; pass --atol VALUE or --atol NAME:VALUE" in err
    code, out, err = _cli(capsys, "parity", MODULE, MODULE, "--batch-size", "0")
    assert code == 2 and "--batch-size must be at least 1" in err


# -- multi-value options take one value per use ---------------------------------------------------------------------


def test_images_does_not_swallow_the_models(capsys):
    code, out, err = _cli(capsys, "parity", "--images", IMAGES_DIR, MODULE, MODULE, "--quiet")
    assert code == 0, err
    assert "4 image files" in out


def test_verify_images_does_not_swallow_the_paths(capsys, tmp_path):
    dst = str(tmp_path / "tf2")
    code, out, err = _cli(capsys, "convert", "--verify-images", IMAGES_DIR, MODULE, dst, "--quiet")
    assert code == 0, err
    assert out.startswith("tf1->tf2: ") and out.rstrip().endswith("verified: PASS")


def test_two_values_after_one_option_name_the_fix(capsys):
    with pytest.raises(SystemExit) as e:  # argparse's usage errors exit
        main(["parity", MODULE, MODULE, "--atol", "1e-4", "default:1e-3"])
    out, err = capsys.readouterr()
    _one_line_error(e.value.code, out, err, "parity", "unrecognized arguments: default:1e-3",
                    "--atol takes one value per use: repeat the option for more")


def test_help_says_so():
    from bridge.cli import build_parser

    commands = build_parser()._subparsers._group_actions[0].choices
    parity, convert = (" ".join(commands[c].format_help().split()) for c in ("parity", "convert"))
    assert "one path per use, repeat for more" in parity and "repeat for several" in parity
    assert "one path per use, repeat for more" in convert


# -- cheap checks first --------------------------------------------------------------------------------------------


def test_cheap_checks_run_before_tensorflow_is_imported(tmp_path):
    """Each refused command line fails without importing TensorFlow or printing a progress line."""
    (tmp_path / "notmodel").mkdir()
    (tmp_path / "notmodel" / "keep.txt").write_text("keep")
    cases = [
        ["parity", MODULE, str(tmp_path / "missing")],
        ["parity", MODULE, MODULE, "--atol", "small"],
        ["parity", MODULE, MODULE, "--images", str(tmp_path / "missing")],
        ["parity", MODULE, MODULE, "--json-file", str(tmp_path / "no" / "dir.json")],
        ["convert", MODULE, str(tmp_path / "notmodel"), "--force"],
        ["convert", MODULE, str(tmp_path / "notmodel")],
        ["convert", MODULE, "."],
        ["convert", MODULE, ""],
        ["convert", MODULE, str(tmp_path / "out"), "--kind", "classification"],
        ["convert", MODULE, str(tmp_path / "out"), "--seed", "x"],
        ["inspect", str(tmp_path / "missing")],
    ]
    code = (
        "import contextlib, io, json, sys\n"
        "from bridge.cli import main\n"
        "results = []\n"
        f"for argv in {cases!r}:\n"
        "    err = io.StringIO()\n"
        "    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):\n"
        "        status = main(argv)\n"
        "    results.append([status, err.getvalue()])\n"
        "print(json.dumps({'results': results, 'tensorflow': 'tensorflow' in sys.modules}))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": ROOT})
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["tensorflow"] is False
    for argv, (status, err) in zip(cases, data["results"]):
        assert status == 2 and len(err.strip().splitlines()) == 1 and ": error: " in err, (argv, err)
        assert "loading" not in err and "reading" not in err, (argv, err)
    assert (tmp_path / "notmodel" / "keep.txt").read_text() == "keep"


# -- --json: one document with a status, whatever happens ----------------------------------------------------------


def _document(out: str) -> dict:
    data = json.loads(out)  # exactly one JSON document and nothing else
    assert list(data)[:2] == ["status", "reason"] and data["reason"]
    return data


def test_json_ok_for_inspect_and_convert(capsys, tmp_path):
    code, out, _ = _cli(capsys, "inspect", "--json", MODULE)
    assert code == 0 and _document(out)["status"] == "ok"
    code, out, _ = _cli(capsys, "convert", MODULE, str(tmp_path / "tf2"), "--no-verify", "--json")
    data = _document(out)
    assert code == 0 and data["status"] == "ok" and data["direction"] == "tf1->tf2" and data["verification"] is None


@pytest.mark.parametrize("argv", [
    ["inspect", "--json", "/no/such/model"],
    ["convert", "/no/such/model", "out", "--json"],
    ["convert", MODULE, "out", "--json", "--image-size", "0x1"],
    ["parity", MODULE, "/no/such/model", "--json"],
    ["parity", MODULE, "--json"],  # a usage error: B is missing
])
def test_json_error_document_on_every_failure(capsys, argv):
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's usage errors exit
        code = e.code
    out, err = capsys.readouterr()
    data = _document(out)
    assert code == 2 and data["status"] == "error" and data["reason"] in err


def test_json_when_verification_fails(capsys, tmp_path, monkeypatch):
    """A conversion whose check fails (the source is swapped for a module with one bias moved): exit 1, a
    `verification_failed` document on stdout, the table on stderr, nothing written."""
    import numpy as np
    import tensorflow as tf

    from bridge.conversion import converter
    from legacy.format.writer import write_checkpoint

    moved = str(tmp_path / "moved")
    shutil.copytree(MODULE, moved)
    prefix = os.path.join(moved, "variables", "variables")
    reader = tf.train.load_checkpoint(prefix)
    values = {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}
    values["logits/biases"] = values["logits/biases"] + np.float32(0.05)
    shutil.rmtree(os.path.dirname(prefix))
    os.makedirs(os.path.dirname(prefix))
    write_checkpoint(prefix, values)
    real = converter._tf1_to_tf2
    monkeypatch.setattr(converter, "_tf1_to_tf2",
                        lambda *args: (real(*args)[0], lambda: moved))
    dst = tmp_path / "tf2"
    code, out, err = _cli(capsys, "convert", MODULE, str(dst), "--json", "--quiet")
    data = _document(out)
    assert code == 1 and data["status"] == "verification_failed" and "does not match its source" in data["reason"]
    assert data["verification"]["status"] == "verification_failed"
    assert "image_classification/default" in err and not dst.exists()


def test_old_json_file_spelling_names_the_new_one(capsys, tmp_path):
    report = str(tmp_path / "report.json")
    with pytest.raises(SystemExit) as e:
        main(["parity", MODULE, MODULE, "--json", report])
    out, err = capsys.readouterr()
    assert e.value.code == 2 and len(err.strip().splitlines()) == 1
    assert f"pass --json-file {report}" in err and json.loads(out)["status"] == "error"
    code, out, err = _cli(capsys, "parity", MODULE, MODULE, "--random", "1", "--json", "-")  # still stdout
    assert code == 0 and _document(out)["status"] == "ok"


@pytest.mark.parametrize("command", ["inspect", "convert"])
def test_json_file_advice_works_for_every_command(capsys, tmp_path, command):
    """`--json FILE` names --json-file, and that spelling is an option of the command that refused it."""
    report = tmp_path / "report.json"
    argv = [command, MODULE] + ([str(tmp_path / "tf2"), "--no-verify"] if command == "convert" else [])
    with pytest.raises(SystemExit) as e:
        main([*argv, "--json", str(report)])
    _, err = capsys.readouterr()
    assert e.value.code == 2 and f"pass --json-file {report}" in err
    code, out, err = _cli(capsys, *argv, "--json-file", str(report), "--quiet")
    assert code == 0 and out.strip() and not out.lstrip().startswith("{")  # the human report still on stdout
    document = json.loads(report.read_text())
    assert document["status"] == "ok" and document["reason"]
    code, out, err = _cli(capsys, "inspect", MODULE, "--json-file", str(tmp_path / "no" / "dir.json"))
    assert code == 2 and "does not exist" in err and not out


# -- parity names what only one model has --------------------------------------------------------------------------


def _drop_from_module(src: str, dst: str, signature: str, output: str | None = None) -> str:
    """A copy of the module without `signature` (or without one output of it) in every graph variant."""
    from tensorflow.core.protobuf import saved_model_pb2

    shutil.copytree(src, dst)
    path = os.path.join(dst, "saved_model.pb")
    proto = saved_model_pb2.SavedModel()
    with open(path, "rb") as f:
        proto.ParseFromString(f.read())
    for meta_graph in proto.meta_graphs:
        if output is None:
            del meta_graph.signature_def[signature]
        else:
            del meta_graph.signature_def[signature].outputs[output]
    with open(path, "wb") as f:
        f.write(proto.SerializeToString())
    return dst


def test_parity_names_signatures_and_outputs_only_one_model_has(capsys, tmp_path):
    fewer = _drop_from_module(MODULE, str(tmp_path / "fewer"), "image_feature_vector")
    code, out, _ = _cli(capsys, "parity", MODULE, fewer, "--random", "2", "--quiet")
    assert code == 0
    assert f"note: signature only in A ({MODULE}), not compared: image_feature_vector" in out
    code, out, _ = _cli(capsys, "parity", fewer, MODULE, "--random", "2", "--quiet", "--json")
    data = _document(out)
    assert data["only_in_one_model"]["signatures"] == {"A": [], "B": ["image_feature_vector"]}

    no_conv1 = _drop_from_module(MODULE, str(tmp_path / "no_conv1"), "image_feature_vector", "conv1")
    code, out, _ = _cli(capsys, "parity", MODULE, no_conv1, "--random", "2", "--quiet", "--json")
    data = _document(out)
    assert code == 1 and data["status"] == "verification_failed"
    assert data["only_in_one_model"]["outputs"] == {"A": ["image_feature_vector/conv1"], "B": []}
    assert "output only in A: image_feature_vector/conv1" in data["notes"]


# -- inspect reads TF2 models as convert does ---------------------------------------------------------------------


def test_inspect_tf2_without_serving_signatures_reads_call(capsys, call_only_classifier):
    code, out, _ = _cli(capsys, "inspect", "--json", call_only_classifier)
    data = _document(out)
    assert code == 0 and data["signatures"] == {}
    assert data["expected_image_size"] == [24, 24] and data["num_image_channels"] == 3
    assert data["call"]["inputs"] == {"images": {"dtype": "float32", "shape": [None, 24, 24, 3]}}
    assert data["call"]["outputs"] == {"default": {"dtype": "float32", "shape": [None, 5]}}
    assert data["call"]["training"] == [False, True]
    code, out, _ = _cli(capsys, "inspect", call_only_classifier)
    assert "__call__(images: float32[?, 24, 24, 3]) -> default: float32[?, 5]" in out
    assert "expected image size: 24x24" in out and "image channels: 3" in out


# -- --version -----------------------------------------------------------------------------------------------------


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"bridge (tf-hub-bridge) {bridge.__version__}"


def test_an_input_no_signature_has_is_refused_before_tracing(capsys, tmp_path, monkeypatch):
    """`--input NAME=...` naming no input of the TF1 module is refused from its protos, before any function is
    traced (the conversion step is never reached)."""
    from bridge.conversion import converter

    monkeypatch.setattr(converter, "_tf1_to_tf2", lambda *args, **kwargs: pytest.fail("conversion started"))
    code, out, err = _cli(capsys, "convert", MODULE, str(tmp_path / "tf2"), "--input", "foo=1")
    assert code == 2 and "--input foo=... names no input of any signature" in err and "none" in err
    with pytest.raises(InvalidInputError, match=r"inputs=\{'foo': \.\.\.\} names no input"):
        bridge.convert(MODULE, str(tmp_path / "tf2"), inputs={"foo": 1.0})
    assert not (tmp_path / "tf2").exists()
