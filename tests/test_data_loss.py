"""`--force` replaces a model or an empty directory, nothing else: every refused destination is left as it was.

Each case runs in a temporary working directory holding a user's files (`sentinel.txt`, `notes/`) next to a
folder that is not a model (`notmodel/important.txt`); after the command, every file outside the destination
must be byte for byte what it was. The checks run before TensorFlow is imported, so these cases are cheap.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys

import pytest

from bridge.conversion.converter import convert
from legacy.errors import BridgeError, DestinationExistsError
from tests.corpus import ROOT

SOURCE = os.path.join(ROOT, "testdata", "modules", "convnet_bn")
BRIDGE = [sys.executable, "-m", "bridge.cli"]


def snapshot(top: str) -> dict:
    """Every file under `top` with its content (directories as None), to prove nothing was touched."""
    state = {}
    for root, dirs, files in os.walk(top):
        for d in dirs:
            state[os.path.relpath(os.path.join(root, d), top)] = None
        for f in files:
            path = os.path.join(root, f)
            with open(path, "rb") as fh:
                state[os.path.relpath(path, top)] = fh.read()
    return state


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """tmp_path/work as the working directory, with a user's files in and around it."""
    work = tmp_path / "work"
    (work / "notes").mkdir(parents=True)
    (work / "sentinel.txt").write_text("keep me")
    (work / "notes" / "todo.md").write_text("- keep me too")
    (tmp_path / "notmodel").mkdir()
    (tmp_path / "notmodel" / "important.txt").write_text("precious")
    (tmp_path / "empty").mkdir()
    # Folders that hold a model's files and a user's besides: replacing them would delete the user's.
    project = tmp_path / "project"
    (project / "variables").mkdir(parents=True)
    (project / "data").mkdir()
    (project / "saved_model.pb").write_bytes(b"not even a real model")
    (project / "variables" / "variables.index").write_bytes(b"")
    (project / "train.py").write_text("print('my training script')")
    (project / "data" / "x.csv").write_text("1,2,3")
    hidden = tmp_path / "hidden_in_variables"
    shutil.copytree(SOURCE, hidden)
    (hidden / "variables" / "notes.txt").write_text("a note kept with the weights")
    # Links naming protected or replaceable folders, typed with and without a trailing slash.
    (work / "link_to_work").symlink_to(work, target_is_directory=True)
    (work / "link_to_empty").symlink_to(tmp_path / "empty", target_is_directory=True)
    (work / "link_to_notmodel").symlink_to(tmp_path / "notmodel", target_is_directory=True)
    monkeypatch.chdir(work)
    return tmp_path


# (destination as typed, relative to tmp_path/work; the words the one-line error must contain)
REFUSED = [
    (".", "is the current directory"),
    ("", "destination path is empty"),
    ("..", "contains the current directory"),
    ("../notmodel", "not a model"),
    ("notes", "not a model"),
    ("/", "is the root directory"),
    (os.path.expanduser("~"), "is the home directory"),
    ("./", "is the current directory"),
    ("../", "contains the current directory"),
    ("notes/", "not a model"),
    ("../notmodel/", "not a model"),
    ("../project", "holds files that are not part of a model (data/, train.py)"),
    ("../hidden_in_variables", "holds files that are not part of a model (variables/notes.txt)"),
    ("link_to_work", "is the current directory"),
    ("link_to_work/", "is the current directory"),
    ("link_to_empty", "is a symbolic link"),
    ("link_to_empty/", "is a symbolic link"),
    ("link_to_notmodel/", "is a symbolic link"),
]


@pytest.mark.parametrize("force", [True, False])
@pytest.mark.parametrize("dst,reason", REFUSED)
def test_cli_refuses_and_touches_nothing(workdir, dst, reason, force):
    before = snapshot(str(workdir))
    args = [*BRIDGE, "convert", SOURCE, dst, "--no-verify"] + (["--force"] if force else [])
    proc = subprocess.run(args, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=ROOT))
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and reason in lines[0], proc.stderr
    assert "--force" not in lines[0], "the error must not suggest the flag that would destroy the folder"
    assert snapshot(str(workdir)) == before


@pytest.mark.parametrize("dst,reason", REFUSED)
def test_python_api_refuses_and_touches_nothing(workdir, dst, reason):
    before = snapshot(str(workdir))
    with pytest.raises(DestinationExistsError, match=re.escape(reason)):
        convert(SOURCE, dst, force=True, verify=False)
    assert snapshot(str(workdir)) == before


def test_ancestor_of_the_source_is_refused(tmp_path, monkeypatch):
    source = tmp_path / "zoo" / "convnet"
    os.makedirs(source.parent)
    subprocess.run(["cp", "-r", SOURCE, str(source)], check=True)
    monkeypatch.chdir(tmp_path)
    before = snapshot(str(tmp_path))
    with pytest.raises(DestinationExistsError, match="contains"):
        convert(str(source), str(tmp_path / "zoo"), force=True, verify=False)
    assert snapshot(str(tmp_path)) == before


def test_force_replaces_a_model_and_an_empty_directory(workdir):
    before = snapshot(str(workdir / "work"))
    first = convert(SOURCE, "../empty", force=True, verify=False)
    assert os.path.isfile(os.path.join(first.destination, "saved_model.pb"))
    # A second conversion over the model just written replaces it; the user's files stay as they were.
    convert(SOURCE, "../empty", force=True, verify=False)
    assert os.path.isfile(os.path.join(workdir, "empty", "saved_model.pb"))
    assert snapshot(str(workdir / "work")) == before
    assert (workdir / "notmodel" / "important.txt").read_text() == "precious"


def test_existing_model_without_force_suggests_force(workdir):
    convert(SOURCE, "../empty", force=True, verify=False)
    with pytest.raises(DestinationExistsError, match=r"pass force=True to replace it"):
        convert(SOURCE, "../empty", verify=False)


def test_a_cached_handle_is_never_its_own_destination(tmp_path, monkeypatch):
    """A TF Hub handle resolves to a folder in TFHUB_CACHE_DIR: that folder is the source, never replaced."""
    handle = "https://tfhub.dev/example/convnet/1"
    cache = tmp_path / "hub_cache"
    cached = cache / hashlib.sha1(handle.encode("utf8")).hexdigest()
    shutil.copytree(SOURCE, cached)
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(cache))
    before = snapshot(str(tmp_path))
    for dst in (cached, cached / "variables"):
        with pytest.raises(BridgeError, match="is the source or inside it"):
            convert(handle, str(dst), force=True, verify=False)
    assert snapshot(str(tmp_path)) == before


def test_interrupted_convert_exits_130_and_leaves_nothing(tmp_path):
    """Ctrl-C (SIGINT) during a conversion: exit status 130, the JSON error document, no output, no leftovers."""
    import json
    import signal
    import time

    dst = tmp_path / "out"
    proc = subprocess.Popen([*BRIDGE, "convert", SOURCE, str(dst), "--json"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=ROOT))
    deadline = time.monotonic() + 120
    while not any(name.startswith(".out.partial-") for name in os.listdir(tmp_path)):  # mid-conversion
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert json.loads(out)["status"] == "error"
    assert err.strip().splitlines()[-1] == "bridge convert: error: interrupted"  # after the progress lines
    assert os.listdir(tmp_path) == []
