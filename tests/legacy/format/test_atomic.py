"""legacy.format.atomic: a destination is absent, old-and-complete or new-and-complete, whatever point a writer dies at.

The writers here are small Python processes (no TensorFlow) killed with SIGKILL at chosen points, so each run
takes a fraction of a second; tests/test_atomic_kill.py kills real `bridge convert` runs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from legacy.format import atomic
from legacy.errors import DestinationExistsError
from tests.corpus import ROOT

# A writer that fills `dst` with a model's files (each holding its text) through atomic_directory and SIGKILLs itself
# at the point named by argv[3]; the hooks patch what legacy.format.atomic calls at that point.
_WRITER = textwrap.dedent("""
    import os, signal, sys
    from legacy.format import atomic

    dst, text, point = sys.argv[1], sys.argv[2], sys.argv[3]
    FILES = ("fingerprint.pb", "keras_metadata.pb", "saved_model.pb")  # a model by its file names: --force
    # replaces only a folder holding a model and nothing else
    force = "--force" in sys.argv

    def die(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)

    if point == "before-swap":
        atomic._replace = die
    elif point == "after-swap":  # the swap is done; removing the old content kills us
        atomic.shutil.rmtree = die
    elif point == "between-renames":  # no atomic swap: die after moving the old destination aside
        atomic._exchange = lambda a, b: False
        real_rename = os.rename
        def rename_then_die(a, b):
            real_rename(a, b)
            die()
        atomic.os.rename = rename_then_die
    with atomic.atomic_directory(dst, force=force) as tmp:
        if point == "nested":  # a writer inside ours, replacing our temporary directory, dies
            with atomic.atomic_directory(tmp, force=True) as inner:
                open(os.path.join(inner, "a"), "w").close()
                die()
        for name in FILES:
            with open(os.path.join(tmp, name), "w") as f:
                f.write(text)
            if point == "writing" and name == "keras_metadata.pb":
                die()
        if point == "wait":  # until a line arrives on stdin
            open(dst + ".ready", "w").close()
            sys.stdin.readline()
    print("done")
""")


def _writer(dst, text: str, point: str = "none", force: bool = False, wait: bool = True):
    argv = [sys.executable, "-c", _WRITER, str(dst), text, point] + (["--force"] if force else [])
    proc = subprocess.Popen(argv, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    if wait:
        out, err = proc.communicate(timeout=60)
        return proc.returncode, out, err
    return proc


def _state(dst) -> str | None:
    """None when absent, else the text every file holds; fails on a partial or mixed directory."""
    if not os.path.lexists(dst):
        return None
    files = sorted(os.listdir(dst))
    assert files == ["fingerprint.pb", "keras_metadata.pb", "saved_model.pb"], f"{dst} is partial: {files}"
    texts = {open(os.path.join(dst, f)).read() for f in files}
    assert len(texts) == 1, f"{dst} mixes two writes: {texts}"
    return texts.pop()


def _leftovers(dst) -> list:
    return [os.path.basename(p) for p in atomic.temp_siblings(str(dst))]


@pytest.mark.parametrize("point", ["writing", "before-swap", "after-swap", "between-renames"])
def test_force_write_killed_leaves_old_or_new_and_next_run_cleans_up(tmp_path, point):
    dst = tmp_path / "model"
    assert _writer(dst, "old")[0] == 0
    code, _, _ = _writer(dst, "new", point, force=True)
    assert code == -signal.SIGKILL
    state = _state(dst) if point != "between-renames" else None
    # Before the swap the old destination is untouched; after it, the new one is complete.
    expected = {"writing": "old", "before-swap": "old", "after-swap": "new", "between-renames": None}[point]
    assert state == expected
    assert _leftovers(dst), "the kill should have left a temporary directory behind"
    if point == "between-renames":
        assert not os.path.lexists(dst)  # the old one sits in .model.old-*, the new one in .model.partial-*
        code, _, err = _writer(dst, "next")  # without --force: the old destination comes back first
        assert code == 1 and "already exists; pass force=True" in err  # a Python caller
        assert _state(dst) == "old"
    assert _writer(dst, "next", force=True)[0] == 0
    assert _state(dst) == "next"
    assert _leftovers(dst) == []


def test_first_write_killed_leaves_nothing_and_next_run_succeeds(tmp_path):
    dst = tmp_path / "model"
    assert _writer(dst, "x", "writing")[0] == -signal.SIGKILL
    assert not os.path.lexists(dst)
    assert len(_leftovers(dst)) == 1 and _leftovers(dst)[0].startswith(".model.partial-")
    assert _writer(dst, "y")[0] == 0
    assert _state(dst) == "y" and _leftovers(dst) == []


def test_nested_writer_killed_is_cleaned_up_too(tmp_path):
    dst = tmp_path / "model"
    assert _writer(dst, "x", "nested")[0] == -signal.SIGKILL
    left = sorted(_leftovers(dst))
    assert len(left) == 2 and left[0].startswith("..model.partial-") and left[1].startswith(".model.partial-")
    assert _writer(dst, "y")[0] == 0
    assert _state(dst) == "y" and _leftovers(dst) == []


def test_a_live_writer_is_left_alone(tmp_path):
    dst = tmp_path / "model"
    proc = _writer(dst, "slow", "wait", wait=False)
    try:
        deadline = time.time() + 60
        while not os.path.exists(str(dst) + ".ready"):
            assert proc.poll() is None and time.time() < deadline, proc.stderr.read()
            time.sleep(0.02)
        live = _leftovers(dst)
        assert len(live) == 1
        assert atomic.remove_stale_temp_dirs(str(dst)) == []
        with pytest.raises(DestinationExistsError):  # it finishes first, so ours must not replace it
            with atomic.atomic_directory(str(dst)) as tmp:
                open(os.path.join(tmp, "a"), "w").close()
                proc.communicate("go\n", timeout=60)  # it completes and renames first
        assert _state(dst) == "slow"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert _leftovers(dst) == []


def test_killed_writer_is_cleaned_only_for_its_own_destination(tmp_path):
    dst, other = tmp_path / "model", tmp_path / "other"
    assert _writer(other, "o", "writing")[0] == -signal.SIGKILL
    assert _writer(dst, "m")[0] == 0
    assert len(_leftovers(other)) == 1  # not ours to clean
    assert atomic.remove_stale_temp_dirs(str(other)) and _leftovers(other) == []


def test_leftovers_without_a_process_id_are_removed_only_when_old(tmp_path):
    dst = tmp_path / "model"
    recent, old = tmp_path / ".model.partial-abc123", tmp_path / ".model.partial-def456"
    recent.mkdir()
    old.mkdir()
    two_hours_ago = time.time() - 7200
    os.utime(old, (two_hours_ago, two_hours_ago))
    assert atomic.remove_stale_temp_dirs(str(dst)) == [str(old)]
    assert recent.is_dir()


def test_symlink_and_file_destinations_are_refused(tmp_path):
    target = tmp_path / "real"
    target.mkdir()
    (tmp_path / "link").symlink_to(target)
    (tmp_path / "file").write_text("x")
    with pytest.raises(DestinationExistsError, match="symbolic link; remove it"):
        atomic.check_destination(str(tmp_path / "link"), force=True)
    with pytest.raises(DestinationExistsError, match="not a directory; remove it"):
        atomic.check_destination(str(tmp_path / "file"), force=True)
