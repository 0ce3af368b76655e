"""Recognise a model directory's format in one place, by cheap file tests.

Each format answers "is this mine?"; adding a format adds one entry to `FORMATS`.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Callable

from legacy.errors import NotAModuleError
from legacy.reader import MODULE_DEF_FILENAME, SAVED_MODEL_FILENAME, is_tf1_hub_module

TF1_HUB = "tf1_hub"
TF2_SAVED_MODEL = "tf2_saved_model"


@dataclasses.dataclass(frozen=True)
class Format:
    name: str
    label: str
    claims: Callable[[str], bool]


def _is_tf2_saved_model(path: str) -> bool:
    return os.path.isfile(os.path.join(path, SAVED_MODEL_FILENAME)) and not is_tf1_hub_module(path)


FORMATS = (
    Format(TF1_HUB, "TF1 Hub module", is_tf1_hub_module),  # checked first: a TF1 module also has saved_model.pb
    Format(TF2_SAVED_MODEL, "TF2 SavedModel", _is_tf2_saved_model),
)


def detect(path: str) -> Format:
    """The format of the model directory at `path`, or a one-line error saying what the path is instead."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise NotAModuleError(f"{path}: no such file or directory; check the path")
    if not os.path.isdir(path):
        raise NotAModuleError(f"{path} is a file, but a model is a directory; pass the directory that holds "
                              f"{SAVED_MODEL_FILENAME} (extract archives first)")
    for fmt in FORMATS:
        if fmt.claims(path):
            return fmt
    if not os.listdir(path):
        raise NotAModuleError(f"{path} is an empty directory; pass a TF1 Hub module or TF2 SavedModel directory")
    raise NotAModuleError(f"{path} is neither a TF1 Hub module ({MODULE_DEF_FILENAME}) nor a TF2 SavedModel "
                          f"({SAVED_MODEL_FILENAME}); pass a model directory")
