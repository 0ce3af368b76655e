"""What `bridge migrate` finds under its sources and how it names them: module folders, .tar.gz archives, a
TFHUB_CACHE_DIR laid out as tensorflow_hub writes it (<sha1 of the handle>/ beside <sha1>.descriptor.txt), and
never the --out folder (nor its .bridge-migrate state) when --out lies inside a source folder."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile

import pytest

from bridge.cli import main
from bridge.cli.migrate import find_models, handle_name
from tests.corpus import ROOT, module_path

BRIDGE = [sys.executable, "-m", "bridge.cli"]
ENV = {**os.environ, "PYTHONPATH": ROOT}
HANDLES = ("https://tfhub.dev/google/imagenet/mobilenet_v2_100_224/feature_vector/4",
           "https://tfhub.dev/google/imagenet/mobilenet_v2_100_224/classification/4",
           "https://tfhub.dev/google/imagenet/inception_v3/feature_vector/4")


def _cache_entry(cache, handle: str, module: str) -> str:
    """A cache entry as tensorflow_hub's resolver writes it: the folder named by the handle's SHA-1, and beside
    it <sha1>.descriptor.txt starting with "Module: <handle>"."""
    digest = hashlib.sha1(handle.encode("utf8")).hexdigest()
    shutil.copytree(module, cache / digest)
    (cache / f"{digest}.descriptor.txt").write_text(
        f"Module: {handle}\nDownload Time: 2024-01-01 00:00:00\nDownloader Hostname: host (PID:1)\n")
    return str(cache / digest)


def test_a_cache_entry_is_named_after_its_handle(tmp_path):
    cache = tmp_path / "hub_cache"
    cache.mkdir()
    for handle in HANDLES:
        _cache_entry(cache, handle, module_path("convnet_bn"))
    names = sorted(m.name for m in find_models([str(cache)]))
    assert names == ["imagenet_inception_v3_feature_vector_4", "imagenet_mobilenet_v2_100_224_classification_4",
                     "imagenet_mobilenet_v2_100_224_feature_vector_4"]


@pytest.mark.parametrize("handle,name", [
    ("https://tfhub.dev/google/imagenet/mobilenet_v2_100_224/feature_vector/4",
     "imagenet_mobilenet_v2_100_224_feature_vector_4"),
    ("https://tfhub.dev/google/imagenet/resnet_v2_50/classification/5?tf-hub-format=compressed",
     "imagenet_resnet_v2_50_classification_5"),
    ("https://www.kaggle.com/models/google/mobilenet-v2/TensorFlow1/100-224-feature-vector/2",
     "mobilenet-v2_TensorFlow1_100-224-feature-vector_2"),
    ("https://example.com/my_module/1", "my_module_1"),
])
def test_handle_names(handle, name):
    assert handle_name(handle) == name


def test_archives_and_folders_are_found_with_unique_names(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(module_path("convnet_bn"), src / "a" / "convnet_bn")
    shutil.copytree(module_path("convnet_bn"), src / "b" / "convnet_bn")
    with tarfile.open(src / "mobilenet.tar.gz", "w:gz") as tar:
        tar.add(module_path("convnet_bn"), arcname=".")
    (src / "notes.txt").write_text("not a model")
    models = find_models([str(src)])
    assert [(os.path.relpath(m.source, src), m.name) for m in models] == [
        ("mobilenet.tar.gz", "mobilenet"), ("a/convnet_bn", "convnet_bn"), ("b/convnet_bn", "convnet_bn_2")]


def test_the_out_folder_inside_a_source_is_not_searched(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(module_path("convnet_bn"), src / "convnet_bn")
    out = src / "converted"  # as a first run leaves it: a converted model and the state folder
    shutil.copytree(module_path("convnet_bn"), out / "convnet_bn")
    (out / ".bridge-migrate").mkdir()
    shutil.copytree(module_path("convnet_bn"), out / ".bridge-migrate" / "stray")
    assert [m.name for m in find_models([str(src)], str(out))] == ["convnet_bn"]
    assert sorted(m.name for m in find_models([str(src)])) == ["convnet_bn", "convnet_bn_2"]  # the trap itself


def test_a_rerun_with_out_inside_the_source_converts_nothing_new(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(module_path("convnet_bn"), src / "convnet_bn")
    argv = [*BRIDGE, "migrate", str(src), "--out", str(src / "converted"), "--no-verify", "--json"]
    for run in (1, 2):
        proc = subprocess.run(argv, capture_output=True, text=True, env=ENV, timeout=300)
        assert proc.returncode == 0, proc.stderr
        models = json.loads(proc.stdout)["models"]
        assert [(m["name"], m["status"]) for m in models] == [("convnet_bn", "ok" if run == 1 else "skipped")]
    assert models[0]["reason"] == "already converted by an earlier run (not verified: --no-verify)"
    assert sorted(os.listdir(src / "converted")) == [".bridge-migrate", "convnet_bn"]


@pytest.mark.parametrize("where", ["model", "folder"])
def test_out_inside_a_source_model_is_refused(tmp_path, where):
    src = tmp_path / "src"
    shutil.copytree(module_path("convnet_bn"), src / "convnet_bn")
    model = src / "convnet_bn"
    out = model / "converted"
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
        status = main(["migrate", str(model if where == "model" else src), "--out", str(out), "--quiet"])
    lines = stderr.getvalue().splitlines()
    assert status == 2 and len(lines) == 1, lines
    assert lines[0] == (f"bridge migrate: error: --out {out} is inside the model {model}; choose a directory "
                        "outside the models")
    assert not out.exists() and sorted(os.listdir(model)) == sorted(os.listdir(module_path("convnet_bn")))
