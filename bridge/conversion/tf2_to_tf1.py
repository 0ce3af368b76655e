"""Write a TF1 Hub module from a TF2 Reusable SavedModel, for `hub.Module` (genuine or this project's shim).

    export_tf1("mobilenet_tf2/", "mobilenet_tf1/", kind="feature_vector")

The graph variants are built by `legacy.engine.from_saved_model` (the same code the import shim uses to present a TF2
SavedModel as a module): `__call__(images, training=False)` becomes the inference variant, `training=True` the
`{"train"}` variant, with the batch-norm assignments as UPDATE_OPS, regularization losses in REGULARIZATION_LOSSES,
TF2 variable names and trainable flags, and the expected image size as `image_module_info`. A file on disk must
declare its kind and image size, so both are required here (from the model's metadata or the arguments).
"""

from __future__ import annotations

from legacy.engine.from_saved_model import meta_graphs_from_saved_model
from legacy.format.writer import write_module

__all__ = ["export_tf1"]


def export_tf1(src: str, dst: str, *, kind: str | None = None, image_size: tuple | None = None,
               force: bool = False, progress=lambda message: None) -> str:
    """Convert the TF2 Reusable SavedModel at `src` into a TF1 Hub module at `dst` (atomically)."""
    meta_graphs, values, assets = meta_graphs_from_saved_model(
        src, kind, image_size, require_kind=True, require_image_size=True, size_from_input_shape=True,
        progress=progress)
    progress(f"writing TF1 Hub module to {dst}")
    return write_module(dst, meta_graphs, variables=values, assets=assets, force=force)
