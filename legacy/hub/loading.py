"""Loading a `ModuleSpec` from a path: `hub.load_module_spec`, and `as_module_spec` for what `hub.Module` takes.

The kinds of spec are recognised in one place (`LOADERS`) by cheap file tests: a TF1 Hub module (it holds
`tfhub_module.pb`), else a TF2 SavedModel, which the genuine library refused with `NotFoundError:
tfhub_module.pb` and this shim presents as a module (see `legacy.hub.tf2_module`): its graph variants are built
when its spec is loaded, and the spec is kept for the next load of the same unchanged files.
"""

from __future__ import annotations

import collections
import os

from legacy.errors import NotAModuleError
from legacy.format.conventions import MODULE_DEF_FILENAME, SAVED_MODEL_FILENAME, is_tf1_hub_module, is_tf2_saved_model
from legacy.hub.native_module import NativeModuleSpec
from legacy.hub.spec import ModuleSpec
from legacy.hub.tf2_module import load_saved_model_spec



_SPEC_CACHE_SIZE = 4  # TF2 specs kept (each holds its graph variants, a few MB of protos)
_tf2_specs: collections.OrderedDict = collections.OrderedDict()  # real path -> (files' stat, spec)


def _files_stat(path: str) -> tuple:
    """(relative path, size, mtime) of every file under `path`: changes when the model is written again."""
    found = []
    for root, _, files in os.walk(path):
        for name in files:
            full = os.path.join(root, name)
            stat = os.stat(full)
            found.append((os.path.relpath(full, path), stat.st_size, stat.st_mtime_ns))
    return tuple(sorted(found))


def _cached_saved_model_spec(path: str) -> ModuleSpec:
    """`load_saved_model_spec`, kept for the next load of the same unchanged files: building a TF2 model's graph
    variants takes seconds (2 s for a ResNet), and legacy code often builds a `hub.Module` from the same path in
    every graph it makes. The spec describes the model only; each `hub.Module` makes its own variables from it."""
    key = os.path.realpath(path)
    stat = _files_stat(key)
    cached = _tf2_specs.get(key)
    if cached is not None and cached[0] == stat:
        _tf2_specs.move_to_end(key)
        return cached[1]
    spec = load_saved_model_spec(path)
    _tf2_specs[key] = (stat, spec)
    _tf2_specs.move_to_end(key)
    while len(_tf2_specs) > _SPEC_CACHE_SIZE:
        _tf2_specs.popitem(last=False)
    return spec


# Each entry answers "is this mine?" by a cheap file test; adding a kind of spec adds one entry.
LOADERS: tuple = (
    (is_tf1_hub_module, NativeModuleSpec.load),
    (is_tf2_saved_model, _cached_saved_model_spec),
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
