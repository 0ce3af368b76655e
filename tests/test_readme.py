"""The README's Python examples, extracted and run, so the README cannot drift from the code.

Every ```python block runs, in README order, in one fresh interpreter (examples install `legacy` into
tensorflow_hub, which is process-wide) sharing one namespace, as a reader pasting them into a session would. Each
block gets its own working directory holding the README's placeholder paths:

    old_module/      a copy of testdata/modules/convnet_bn (a TF1 Hub module)
    new_savedmodel/  its TF2 conversion; for a block passing `image_size=`, a TF2 model of dynamic input size
    photos/          the bundled photographs (testdata/images)
    testdata/        the repository's testdata

minus the destinations the block converts to. `images` is predefined: a batch of 4 images of 32x32 (the size of
convnet_bn). Functions named test_* that a block defines are called (with `tmp_path`). What a block prints must be
what the README shows: it starts with the `# value` comments of its print lines, and ends with the ```text block
right after it, the output of the last print (whose comment is then a remark), which may leave out lines before;
numbers agree within 1%, as the README rounds them. One detail is not compared: which element a failing output
reports as "largest at image N (file) index [i]: A=.. B=..", since when several differ by the same amount (a moved
bias) float rounding on the machine picks the one reported.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

from tests.corpus import ROOT, module_path

README = os.path.join(ROOT, "README.md")
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```[ \t]*$", re.M | re.S)
_CONVERT_DESTINATION = re.compile(r"convert\(\s*\"[^\"]+\",\s*\"([^\"]+)\"")
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_WORST_ELEMENT = re.compile(r"largest at image \d+ \([^)]*\) index \[[^\]]*\]: A=\S+ B=\S+")


def examples(text: str) -> list:
    """[{"line", "code", "first", "last"}] for every python block: the lines its output must start and end with."""
    blocks = [(m.group(1), m.group(2), text.count("\n", 0, m.start()) + 1, m.end()) for m in _FENCE.finditer(text)]
    found = []
    for i, (language, code, line, end) in enumerate(blocks):
        if language != "python":
            continue
        first = [m.group(1).strip() for m in re.finditer(r"^\s*print\(.*\)\s*#\s*(.+)$", code, re.M)]
        follows = blocks[i + 1] if i + 1 < len(blocks) else None
        last = []
        if follows and follows[0] == "text" and not text[end:text.index("```text", end)].strip():
            last = follows[1].rstrip("\n").split("\n")
            if re.search(r"^\s*print\(.*\)\s*#.*\Z", code.rstrip(), re.M):
                first = first[:-1]  # the last print's output is the text block; its comment says something else
        found.append({"line": line, "code": code, "first": first, "last": last})
    return found


def _same_up_to_rounding(actual: str, expected: str) -> bool:
    actual, expected = (_WORST_ELEMENT.sub("largest at ...", line) for line in (actual, expected))
    if _NUMBER.sub("#", actual) != _NUMBER.sub("#", expected):
        return False
    for a, e in zip(_NUMBER.findall(actual), _NUMBER.findall(expected)):
        a, e = float(a), float(e)
        if abs(a - e) > 0.01 * max(abs(a), abs(e)):
            return False
    return True


def _sandbox(path: str, code: str, converted: str, dynamic: str) -> None:
    os.makedirs(path)
    os.symlink(os.path.join(ROOT, "testdata"), os.path.join(path, "testdata"))
    os.symlink(os.path.join(ROOT, "testdata", "images"), os.path.join(path, "photos"))
    shutil.copytree(module_path("convnet_bn"), os.path.join(path, "old_module"))
    shutil.copytree(dynamic if "image_size=" in code else converted, os.path.join(path, "new_savedmodel"))
    for destination in _CONVERT_DESTINATION.findall(code):
        shutil.rmtree(os.path.join(path, destination), ignore_errors=True)


def test_readme_python_examples_run_and_print_what_the_readme_shows(tmp_path, converted, tf2_model):
    with open(README) as f:
        found = examples(f.read())
    assert len(found) >= 8, "the README's Python examples were not found"
    assert any(e["first"] and e["last"] for e in found), "no example shows its output"
    for i, example in enumerate(found):
        example["dir"] = str(tmp_path / f"block{i}_line{example['line']}")
        _sandbox(example["dir"], example["code"], converted["convnet_bn"], tf2_model("dynamic_size_classifier"))
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(found))
    proc = subprocess.run([sys.executable, "-m", "tests.test_readme", str(plan), str(tmp_path / "result.json")],
                          cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2"))
    assert proc.returncode == 0, proc.stderr[-4000:]
    results = json.loads((tmp_path / "result.json").read_text())
    assert len(results) == len(found)
    for example, result in zip(found, results):
        where = f"README.md line {example['line']}"
        assert result["error"] is None, f"{where}:\n{example['code']}\n{result['error']}"
        printed = result["stdout"].rstrip("\n").split("\n")
        first, last = example["first"], example["last"]
        shown = "\n".join(first + ["..."] + last)
        assert len(printed) >= len(first) + len(last), (
            f"{where} prints:\n{result['stdout']}\nthe README shows:\n{shown}")
        pairs = list(zip(printed[:len(first)], first)) + list(zip(printed[len(printed) - len(last):], last))
        assert all(_same_up_to_rounding(a, e) for a, e in pairs), (
            f"{where} prints:\n{result['stdout']}\nthe README shows:\n{shown}")


def _run(plan_path: str, result_path: str) -> int:
    """In a fresh interpreter: run the blocks in order, one namespace, each in its own working directory."""
    import contextlib
    import io
    import pathlib
    import traceback

    import numpy as np

    with open(plan_path) as f:
        plan = json.load(f)
    namespace = {"__name__": "readme", "images": np.random.default_rng(0).uniform(size=(4, 32, 32, 3)).astype(
        np.float32)}
    results = []
    for example in plan:
        os.chdir(example["dir"])
        stdout, error = io.StringIO(), None
        try:
            with contextlib.redirect_stdout(stdout):
                before = set(namespace)
                exec(compile(example["code"], f"README.md:{example['line']}", "exec"), namespace)
                for name in sorted(set(namespace) - before):
                    if name.startswith("test_") and callable(namespace[name]):
                        tmp = pathlib.Path(example["dir"]) / f"{name}_tmp"
                        tmp.mkdir()
                        namespace[name](tmp)
        except Exception:  # noqa: BLE001  (reported to the test with the block's line)
            error = traceback.format_exc()
        results.append({"stdout": stdout.getvalue(), "error": error})
    with open(result_path, "w") as f:
        json.dump(results, f)
    return 0


if __name__ == "__main__":
    sys.exit(_run(*sys.argv[1:3]))
