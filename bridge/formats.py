"""Recognise a model directory's format in one place, by cheap file tests.

Each format answers "is this mine?"; adding a format adds one entry to `FORMATS`. `open_model` is the one way in
for commands: it also accepts a `.tar.gz` archive or a cached TF Hub handle (see `legacy.format.archive`) and can refuse
models with unsafe ops (see `legacy.format.safety`) before anything runs.

    with open_model("mobilenet.tar.gz", check_safety=True) as model:
        model.path, model.format.name          # a local directory, "tf1_hub" or "tf2_saved_model"
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from typing import Callable, Iterator

from legacy.format.archive import resolve_model_path
from legacy.errors import NotAModuleError
from legacy.format.conventions import MODULE_DEF_FILENAME, SAVED_MODEL_FILENAME, is_tf1_hub_module, is_tf2_saved_model, require_directory

TF1_HUB = "tf1_hub"
TF2_SAVED_MODEL = "tf2_saved_model"


@dataclasses.dataclass(frozen=True)
class Format:
    name: str
    label: str
    claims: Callable[[str], bool]


FORMATS = (
    Format(TF1_HUB, "TF1 Hub module", is_tf1_hub_module),  # checked first: a TF1 module also has saved_model.pb
    Format(TF2_SAVED_MODEL, "TF2 SavedModel", is_tf2_saved_model),
)


def detect(path: str) -> Format:
    """The format of the model directory at `path`, or a one-line error saying what the path is instead."""
    path = require_directory(path)
    for fmt in FORMATS:
        if fmt.claims(path):
            return fmt
    if not os.listdir(path):
        raise NotAModuleError(f"{path} is an empty directory; pass a TF1 Hub module or TF2 SavedModel directory")
    raise NotAModuleError(f"{path} is neither a TF1 Hub module ({MODULE_DEF_FILENAME}) nor a TF2 SavedModel "
                          f"({SAVED_MODEL_FILENAME}); pass a model directory")


def check_source(source) -> Format | None:
    """The cheap checks of a model argument, before anything is extracted, resolved or loaded: a local directory
    must be a model (its format is returned); an archive file or a TF Hub handle passes (None: checked on opening);
    a missing path or a plain file is refused. Objects already in memory pass (None)."""
    from legacy.format.archive import is_archive, is_handle

    if not isinstance(source, (str, os.PathLike)):
        return None
    path = os.fspath(source)
    if is_handle(path) or is_archive(path):
        return None
    return detect(path)


@dataclasses.dataclass(frozen=True)
class OpenedModel:
    """A model ready to read: its local directory, its format, and the safety scan when one was asked for."""

    path: str  # a local directory (inside a temporary directory for archives: valid only inside `open_model`)
    format: Format
    source: str  # what the user gave: a directory, an archive or a handle
    scan: object = None  # legacy.format.safety.ScanResult


@contextlib.contextmanager
def open_model(source, *, check_safety: bool = False, allow_unsafe_ops: bool = False) -> Iterator[OpenedModel]:
    """Resolve `source` (directory, .tar.gz, cached TF Hub handle) to a local directory and detect its format.

    check_safety: scan the graphs first and raise `UnsafeModelError` on ops that touch files, processes or the
    network or run Python, unless `allow_unsafe_ops`. Extracted archives are removed when the block ends.
    """
    with resolve_model_path(source) as path:
        fmt = detect(path)
        scan = None
        if check_safety:
            from legacy.format.safety import check_graph_safe

            scan = check_graph_safe(path, allow_unsafe_ops=allow_unsafe_ops, label=os.fspath(source))
        yield OpenedModel(path=path, format=fmt, source=os.fspath(source), scan=scan)
