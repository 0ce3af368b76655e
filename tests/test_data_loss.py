"""`--force` replaces a model or an empty directory, nothing else: every refused destination is left as it was.

Each case runs in a temporary working directory holding a user's files (`sentinel.txt`, `notes/`) next to a
folder that is not a model (`notmodel/important.txt`); after the command, every file outside the destination
must be byte for byte what it was. The checks run before TensorFlow is imported, so these cases are cheap.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from bridge.conversion.converter import convert
from legacy.errors import DestinationExistsError
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
    with pytest.raises(DestinationExistsError, match=reason):
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
    with pytest.raises(DestinationExistsError, match="pass --force"):
        convert(SOURCE, "../empty", verify=False)
