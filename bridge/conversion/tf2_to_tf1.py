"""Write a TF1 Hub module from a TF2 Reusable SavedModel, for `hub.Module` (genuine or this project's shim).

    module = build("mobilenet_tf2/", kind="feature_vector")     # in memory: graph variants, values, assets
    write(module, "mobilenet_tf1/")                             # atomically
    export_tf1("mobilenet_tf2/", "mobilenet_tf1/", kind="feature_vector")   # both in one call

The graph variants are built by `legacy.engine.from_saved_model` (the same code the import shim uses to present a TF2
SavedModel as a module): `__call__(images, training=False)` becomes the inference variant, `training=True` the
`{"train"}` variant, with the batch-norm assignments as UPDATE_OPS, regularization losses in REGULARIZATION_LOSSES,
TF2 variable names and trainable flags, and the expected image size as `image_module_info`. A file on disk must
declare its kind and image size, so both are required here (from the model's metadata or the arguments).
"""

from __future__ import annotations

import dataclasses

from legacy.engine.from_saved_model import load_reusable, meta_graphs_from_saved_model
from legacy.format.conventions import parse_image_size
from legacy.format.writer import write_module

__all__ = ["TF1Module", "build", "export_tf1", "write"]


@dataclasses.dataclass
class TF1Module:
    """A TF1 Hub module in memory, ready to write: its graph variants, variable values and asset files; `source`
    is the TF2 model it was built from, as loaded (verification compares the written module with it)."""

    meta_graphs: list
    variables: dict
    assets: dict
    source: object = None


def build(src: str, *, kind: str | None = None, image_size: tuple | None = None,
          progress=lambda message: None) -> TF1Module:
    """The TF1 graph variants of the TF2 Reusable SavedModel at `src` (kind and image size as `export_tf1`)."""
    image_size = parse_image_size(image_size)
    progress(f"loading TF2 SavedModel {src}")
    obj = load_reusable(src)
    meta_graphs, values, assets = meta_graphs_from_saved_model(
        src, kind, image_size, require_kind=True, require_image_size=True, size_from_input_shape=True,
        progress=progress, obj=obj, partitioned=True)
    return TF1Module(meta_graphs, values, assets, source=obj)


def write(module: TF1Module, dst: str, *, force: bool = False, progress=lambda message: None) -> str:
    """Write a built module to `dst` (atomically; `force` as in `legacy.format.atomic`)."""
    progress(f"writing TF1 Hub module to {dst}")
    return write_module(dst, module.meta_graphs, variables=module.variables, assets=module.assets, force=force)


def export_tf1(src: str, dst: str, *, kind: str | None = None, image_size: tuple | None = None,
               force: bool = False, progress=lambda message: None) -> str:
    """Convert the TF2 Reusable SavedModel at `src` into a TF1 Hub module at `dst` (atomically, unverified)."""
    return write(build(src, kind=kind, image_size=image_size, progress=progress), dst, force=force, progress=progress)
