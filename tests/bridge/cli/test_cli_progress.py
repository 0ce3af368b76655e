"""Progress on stderr: on a terminal (a pseudo-terminal here) a live line (spinner, phase, bar, elapsed time) under
the phase lines; none with --quiet (nothing at all), --json, or when stderr is not a terminal (plain lines). And
the progress lines fit the terminal's width."""

from __future__ import annotations

import contextlib
import io
import os
import pty
import re
import subprocess
import sys

import pytest

from tests.corpus import ROOT, module_path

BRIDGE = [sys.executable, "-m", "bridge.cli"]
ENV = {**os.environ, "PYTHONPATH": ROOT, "TERM": "xterm-256color", "COLUMNS": "100"}
ENV.pop("BRIDGE_DEBUG", None)
MODULE = module_path("convnet_bn")
HIDE_CURSOR = b"\x1b[?25l"  # what rich writes when a live display starts
SPINNER = "⠋".encode()  # the first frame of rich's "dots" spinner
ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")


def _run(argv: list, tty: bool) -> tuple:
    """Exit status, stdout and stderr (bytes) of `bridge ARGV`, stderr on a pseudo-terminal when `tty`."""
    if not tty:
        proc = subprocess.run([*BRIDGE, *argv], capture_output=True, env=ENV, timeout=300)
        return proc.returncode, proc.stdout, proc.stderr
    master, slave = pty.openpty()
    proc = subprocess.Popen([*BRIDGE, *argv], stdout=subprocess.PIPE, stderr=slave, env=ENV)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    stdout = proc.stdout.read()
    proc.wait(timeout=300)
    return proc.returncode, stdout, b"".join(chunks)


def _lines(stderr: bytes) -> list:
    return [line for line in re.split(r"[\r\n]+", ANSI.sub(b"", stderr).decode()) if line.strip()]


def test_conversion_phases_show_a_live_line_on_a_terminal(tmp_path):
    status, stdout, stderr = _run(["convert", MODULE, str(tmp_path / "out")], tty=True)
    assert status == 0, stderr
    assert HIDE_CURSOR in stderr and SPINNER in stderr and "━".encode() in stderr
    phases = [line for line in _lines(stderr) if line.startswith("bridge: ")]
    assert phases[0] == f"bridge: reading TF1 Hub module {MODULE}" and any("parity: PASS" in p for p in phases)
    assert stdout.decode().startswith("tf1->tf2: ")


def test_parity_batches_show_a_bar_on_a_terminal():
    status, stdout, stderr = _run(["parity", MODULE, MODULE, "--random", "16", "--batch-size", "2"], tty=True)
    assert status == 0, stderr
    assert HIDE_CURSOR in stderr and "━".encode() in stderr and re.search(rb"\d/8", ANSI.sub(b"", stderr))


@pytest.mark.parametrize("flags,tty", [(["--quiet"], True), (["--json"], True), ([], False)])
def test_no_live_line_with_quiet_json_or_a_pipe(tmp_path, flags, tty):
    status, stdout, stderr = _run(["convert", MODULE, str(tmp_path / "out"), "--no-verify", *flags], tty=tty)
    assert status == 0, stderr
    if "--quiet" in flags:
        assert stderr == b""
        return
    assert b"\x1b[" not in stderr, stderr
    lines = stderr.decode().splitlines()
    assert lines and all(line.startswith("bridge: ") for line in lines), lines


@pytest.fixture(scope="module")
def progress_messages() -> list:
    """What a conversion with verification reports, as `bridge convert` receives it."""
    import tempfile

    import bridge

    messages = []
    with tempfile.TemporaryDirectory() as tmp:
        bridge.convert(os.path.join(ROOT, "testdata", "zoo", "modules", "inception_v2"), os.path.join(tmp, "out"),
                       progress=messages.append)
    return messages


@pytest.mark.parametrize("width", [60, 80, 120])
def test_progress_lines_fit_the_width(progress_messages, monkeypatch, width):
    from bridge.cli.progress import Reporter

    monkeypatch.setenv("COLUMNS", str(width))
    assert max(len(f"bridge: {m}") for m in progress_messages) > 120  # the parity line, say
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        reporter = Reporter("bridge", bars=False)
        for message in progress_messages:
            reporter(message)
    lines = err.getvalue().splitlines()
    assert len(lines) > len(progress_messages) and max(len(line) for line in lines) <= width, lines
    assert " ".join(" ".join(line.split()) for line in lines) == " ".join(
        f"bridge: {' '.join(m.split())}" for m in progress_messages)  # nothing lost, only wrapped


def test_graph_variants_are_spelled_one_way(tmp_path):
    """`{}` and `{train}` in the progress lines of a TF2 -> TF1 conversion and in `inspect` of its result, never
    a Python set or list (`['train']`, `frozenset(...)`)."""
    import bridge
    from bridge.inspect import format_report, inspect_model
    from tests.bridge.tf2_models import keras3_classifier

    source = keras3_classifier(str(tmp_path / "keras3"))
    messages = []
    bridge.convert(source, str(tmp_path / "tf1"), kind="classification", verify=False, progress=messages.append)
    variants = [m for m in messages if "variant" in m]
    assert any(m.startswith("building graph variant {} ") for m in variants), messages
    assert any(m.startswith("building graph variant {train} ") for m in variants), messages
    text = format_report(inspect_model(str(tmp_path / "tf1")), width=1000)
    assert "graph variants: {}, {train}" in text and "  variant {train}: " in text, text
    for shown in messages + [text]:
        assert "['" not in shown and "frozenset" not in shown and "set()" not in shown, shown
