"""The README's parity example prints what the README shows (numbers may differ in the last bits between CPUs, so
they are compared as placeholders, and so is the image holding an output's largest difference; the layout, names
and verdicts must match)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from tests.corpus import ROOT

NUMBER = re.compile(r"-?\d+(\.\d+)?(e[-+]?\d+)?")
# Where the largest difference lies is numbers too: which image holds it depends on the last bits (the README shows
# astronaut.png; with ONEDNN_MAX_CPU_ISA=SSE41 it is camera.png).
IMAGE = re.compile(r"\(testdata/images/[^)]+\)")


def _blocks() -> tuple:
    with open(os.path.join(ROOT, "README.md")) as f:
        text = f.read()
    start = text.index("reference = bridge.adapt(\"testdata/modules/convnet_bn\")")
    code = text[text.rindex("```python", 0, start) + len("```python"):text.index("```", start)]
    after = text.index("```text", start) + len("```text")
    shown = text[after:text.index("```", after)]
    return code, shown


def _skeleton(text: str) -> list:
    return [NUMBER.sub("#", IMAGE.sub("(image)", " ".join(line.split()))) for line in text.strip().splitlines()]


def test_readme_table_example_prints_what_it_shows():
    code, shown = _blocks()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": ROOT})
    assert proc.returncode == 0, proc.stderr
    printed = proc.stdout.strip().splitlines()
    assert printed[:2] == ["False", "['image_classification/default']"]
    assert _skeleton("\n".join(printed[2:])) == _skeleton(shown)
