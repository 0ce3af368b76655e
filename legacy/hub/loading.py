"""Loading a `ModuleSpec` from a path: `hub.load_module_spec`, and `as_module_spec` for what `hub.Module` takes.

The kinds of spec are recognised in one place (`LOADERS`) by cheap file tests: a TF1 Hub module (it holds
`tfhub_module.pb`), else a TF2 SavedModel, which the genuine library refused with `NotFoundError:
tfhub_module.pb` and this shim presents as a module (see `legacy.hub.tf2_module`). Loading reads protocol buffers
only; nothing runs until a `hub.Module` is built from the spec.
"""

from __future__ import annotations

import os

from legacy.errors import NotAModuleError
from legacy.format.conventions import MODULE_DEF_FILENAME, SAVED_MODEL_FILENAME, is_tf1_hub_module, is_tf2_saved_model
from legacy.hub.native_module import NativeModuleSpec
from legacy.hub.spec import ModuleSpec
from legacy.hub.tf2_module import load_saved_model_spec



# Each entry answers "is this mine?" by a cheap file test; adding a kind of spec adds one entry.
LOADERS: tuple = (
    (is_tf1_hub_module, NativeModuleSpec.load),
    (is_tf2_saved_model, load_saved_model_spec),
)


def load_module_spec(path) -> ModuleSpec:
    """The spec of the TF1 Hub module or TF2 SavedModel in a directory (or behind a tfhub.dev / Kaggle handle)."""
    path = os.fspath(path)
    if "://" in path and not os.path.exists(path):
        import tensorflow_hub  # resolves and caches handles; imported only when one is given

        path = tensorflow_hub.resolve(path)
    if not os.path.isdir(path):
        what = "no such file or directory" if not os.path.exists(path) else "a file, not a module directory"
        raise NotAModuleError(f"{path}: {what}; pass the directory that holds {MODULE_DEF_FILENAME} (a TF1 Hub "
                              f"module) or {SAVED_MODEL_FILENAME} (a TF2 SavedModel); extract archives first")
    for claims, load in LOADERS:
        if claims(path):
            return load(path)
    raise NotAModuleError(f"{path} is neither a TF1 Hub module ({MODULE_DEF_FILENAME}) nor a TF2 SavedModel "
                          f"({SAVED_MODEL_FILENAME}); pass a model directory")


def as_module_spec(spec) -> ModuleSpec:
    """A `ModuleSpec` as is, or the spec loaded from a path."""
    if isinstance(spec, ModuleSpec):
        return spec
    if isinstance(spec, (str, os.PathLike)):
        return load_module_spec(spec)
    raise ValueError(f"Unknown module spec type: {type(spec).__name__}; pass a path or a ModuleSpec "
                     "(from hub.load_module_spec or hub.create_module_spec)")
