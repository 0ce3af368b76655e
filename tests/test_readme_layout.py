"""The README's "Project layout" names every module of `bridge` and `legacy` under its own folder, so it cannot
drift from the tree: a module added, moved or renamed without its line fails here."""

from __future__ import annotations

import os
import re

import pytest

from tests.corpus import ROOT

NAME_WIDTH = 24  # the layout's first column: folder and file names; the description follows


def layout_block(readme: str) -> list:
    """The lines of the code block under the "Project layout" heading."""
    section = readme.split("## Project layout", 1)[1]
    return section.split("```", 2)[1].strip("\n").splitlines()


def folder_texts(lines: list) -> dict:
    """{folder ("bridge/parity/"): the text that describes its files}: the folder's own entry and those of the
    files listed directly under it (indented one step further), each with its continuation lines."""
    texts, path = {}, []
    for line in lines:
        name = line[:NAME_WIDTH].strip()
        if not name:  # a continuation of the entry above
            texts[current] += " " + line.strip()
            continue
        depth = (len(line) - len(line.lstrip())) // 2
        del path[depth:]
        if name.endswith("/") and " " not in name:
            path.append(name)
            current = "".join(path)
            texts.setdefault(current, "")
            texts[current] += " " + line[NAME_WIDTH:].strip()
        else:  # files of the enclosing folder: their names and description count for it
            current = "".join(path)
            texts[current] += " " + line.strip()
    return texts


def project_files() -> list:
    """Every .py of bridge/ and legacy/ but the packages' __init__.py, as (folder, file name)."""
    found = []
    for package in ("bridge", "legacy"):
        for root, _, files in os.walk(os.path.join(ROOT, package)):
            folder = os.path.relpath(root, ROOT).replace(os.sep, "/") + "/"
            found += [(folder, f) for f in sorted(files) if f.endswith(".py") and f != "__init__.py"]
    return sorted(found)


def named(text: str, filename: str) -> bool:
    return re.search(rf"(?<![\w/.]){re.escape(filename)}(?!\w)", text) is not None


with open(os.path.join(ROOT, "README.md")) as _f:
    TEXTS = folder_texts(layout_block(_f.read()))


def test_the_scan_reads_the_layout():
    assert {"legacy/", "legacy/hub/", "legacy/engine/", "legacy/format/", "bridge/", "bridge/conversion/",
            "bridge/parity/", "bridge/cli/"} <= set(TEXTS)
    assert named(TEXTS["legacy/format/"], "conventions.py") and not named(TEXTS["legacy/format/"], "keras.py")
    assert named(TEXTS["bridge/"], "keras.py") and not named(TEXTS["bridge/"], "comparison.py")
    # A file named under the wrong folder does not count for the right one.
    moved = folder_texts(["bridge/", "  parity/                 testing.py"])
    assert not named(moved["bridge/"], "testing.py")


@pytest.mark.parametrize("folder, filename", project_files())
def test_every_module_is_in_the_project_layout(folder, filename):
    assert folder in TEXTS, f"README's Project layout has no entry for {folder}"
    assert named(TEXTS[folder], filename), (f"README's Project layout does not name {folder}{filename}: add it "
                                            f"under {folder}")
