"""SIGKILL a real `bridge convert` at several points: the destination is absent or complete, never partial.

A few real processes only (each imports TensorFlow and traces a module, 10-20 s on a small machine); the kill
points are chosen by watching the destination's directory and the progress lines, not by timers, so each test
kills at the intended moment however slow the machine is. tests/legacy/format/test_atomic.py covers the same guarantees with
cheap writers at finer-grained points.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from typing import Callable

import pytest

from legacy.format.atomic import temp_siblings
from tests.corpus import ROOT, module_path

BRIDGE = os.path.join(os.path.dirname(sys.executable), "bridge")
SOURCE = module_path("classifier_assets")  # the smallest corpus module: the fastest to convert


def _files(path: str) -> list:
    """Relative paths of the files under `path`, sorted."""
    return sorted(os.path.relpath(os.path.join(root, f), path) for root, _, files in os.walk(path) for f in files)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> list:
    """The files a complete conversion of SOURCE has (converted in-process)."""
    from bridge.conversion.converter import convert

    dst = str(tmp_path_factory.mktemp("reference") / "tf2")
    convert(SOURCE, dst, verify=False, progress=lambda message: None)
    return _files(dst)


def assert_complete(path: str, reference: list) -> None:
    from tensorflow.core.protobuf import saved_model_pb2

    assert _files(path) == reference
    with open(os.path.join(path, "saved_model.pb"), "rb") as f:
        assert saved_model_pb2.SavedModel.FromString(f.read()).meta_graphs


def convert_and_kill(dst: str, when: Callable[[list, list], bool], *extra) -> list:
    """Run `bridge convert SOURCE dst`, SIGKILL it once `when(partial_dirs, stderr_lines)` holds; its stderr lines.

    Fails if the process ends before the condition is met (the kill point was never reached).
    """
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.Popen([BRIDGE, "convert", SOURCE, dst, *extra], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)
    reader.start()
    deadline = time.time() + 300
    try:
        while not when(temp_siblings(dst), list(lines)):
            assert proc.poll() is None, f"bridge convert ended (status {proc.returncode}) before the kill point: " \
                                        f"{''.join(lines)}"
            assert time.time() < deadline, "timed out waiting for the kill point"
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        reader.join(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    return lines


def writing_variables(partials, lines) -> bool:
    return any(os.path.isdir(os.path.join(p, "variables")) and os.listdir(os.path.join(p, "variables"))
               for p in partials)


def verifying(partials, lines) -> bool:
    return any("verifying" in line for line in lines)


def test_killed_conversions_leave_no_partial_destination(tmp_path, reference):
    dst = str(tmp_path / "tf2")
    for when, extra in ((writing_variables, ["--no-verify"]), (verifying, [])):
        convert_and_kill(dst, when, *extra)
        assert not os.path.lexists(dst), f"{when.__name__}: the destination appeared before it was complete"
        leftovers = temp_siblings(dst)
        assert len(leftovers) == 1, leftovers  # each run cleaned the previous one's leftover first
    # The last run died while verifying: its model was complete, but only in the temporary directory.
    assert_complete(leftovers[0], reference)
    from bridge.cli import main

    assert main(["convert", SOURCE, dst, "--no-verify"]) == 0  # the next run (in-process: TF is loaded already)
    assert_complete(dst, reference)
    assert temp_siblings(dst) == []


def test_force_keeps_the_old_destination_until_the_new_one_is_complete(tmp_path, reference):
    from bridge.conversion.converter import convert

    dst = str(tmp_path / "tf2")
    convert(SOURCE, dst, verify=False, progress=lambda message: None)
    # A mark of the previous conversion where a model may hold one (--force replaces only a folder holding a model
    # and nothing else).
    mark = os.path.join("assets.extra", "OLD")
    with open(os.path.join(dst, mark), "w") as f:
        f.write("the previous conversion")
    convert_and_kill(dst, verifying, "--force")  # the new model is complete in its temporary directory
    assert open(os.path.join(dst, mark)).read() == "the previous conversion"
    assert_complete(dst, sorted(reference + [mark]))
    convert(SOURCE, dst, force=True, verify=False, progress=lambda message: None)
    assert_complete(dst, reference)  # replaced: the mark is gone with the old model
    assert temp_siblings(dst) == []
