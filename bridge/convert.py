"""Convert between the TF1 Hub format and TF2 Reusable SavedModels: `convert(src, dst)` in both directions.

    convert("old_module/", "new_savedmodel/")            # TF1 Hub -> TF2 SavedModel (direction from the source)

Writes are atomic: `dst` appears complete or not at all, and an existing `dst` is replaced only with `force=True`.
"""

from __future__ import annotations

import dataclasses
import os
import sys

from bridge import formats
from legacy.atomic import atomic_directory, check_destination
from legacy.errors import BridgeError, ConversionError

TF1 = "tf1"
TF2 = "tf2"


@dataclasses.dataclass
class ConversionResult:
    source: str
    destination: str
    direction: str  # "tf1->tf2" or "tf2->tf1"
    source_bytes: int
    destination_bytes: int


def _progress(message: str) -> None:
    print(f"bridge: {message}", file=sys.stderr, flush=True)


def directory_bytes(path: str) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            total += os.path.getsize(os.path.join(root, f))
    return total


def check_paths(src: str, dst: str, force: bool) -> None:
    """Refuse a destination that is the source or lies inside it, or that exists without force."""
    src_real, dst_real = os.path.realpath(src), os.path.realpath(dst)
    if dst_real == src_real or dst_real.startswith(src_real + os.sep):
        raise BridgeError(f"destination {dst} is the source or inside it; choose a path outside {src}")
    if src_real.startswith(dst_real + os.sep):
        raise BridgeError(f"destination {dst} contains the source; choose a path outside {src}")
    check_destination(dst, force)


def convert(src: str, dst: str, *, to: str | None = None, signature: str | None = None, force: bool = False,
            kind: str | None = None, image_size: tuple | str | None = None,
            progress=_progress) -> ConversionResult:
    """Convert the model at `src` into the other format at `dst`; `to` ("tf1"/"tf2") overrides the detection.

    TF1 -> TF2: `signature` picks the TF1 signature that `__call__` serves (default "default").
    TF2 -> TF1: `kind` ("feature_vector"/"classification") names the image signature to write besides "default"
    (taken from the model's bridge metadata when it has some); `image_size` (h, w) or "HxW" is needed when the
    model's input size is dynamic and nothing records it.
    """
    src, dst = os.fspath(src), os.fspath(dst)
    fmt = formats.detect(src)
    target = to or (TF2 if fmt.name == formats.TF1_HUB else TF1)
    if target not in (TF1, TF2):
        raise BridgeError(f"unknown target format {to!r}; use 'tf1' or 'tf2'")
    check_paths(src, dst, force)
    if fmt.name == formats.TF1_HUB and target == TF2:
        _tf1_to_tf2(src, dst, signature=signature, force=force, progress=progress)
        direction = "tf1->tf2"
    elif fmt.name == formats.TF2_SAVED_MODEL and target == TF1:
        from bridge.tf2_to_tf1 import export_tf1, parse_image_size

        if isinstance(image_size, str):
            image_size = parse_image_size(image_size)
        export_tf1(src, dst, kind=kind, image_size=image_size, force=force, progress=progress)
        direction = "tf2->tf1"
    else:
        raise ConversionError(f"{src} is already a {fmt.label}; pass --to {TF1 if target == TF2 else TF2} "
                              "or a source in the other format")
    return ConversionResult(src, dst, direction, directory_bytes(src), directory_bytes(dst))


def _tf1_to_tf2(src: str, dst: str, *, signature: str | None, force: bool, progress) -> None:
    import tensorflow as tf

    from bridge.adapter import adapt
    from legacy.metadata import write_metadata

    progress(f"reading TF1 Hub module {src}")
    adapter = adapt(src, signature=signature)
    progress("tracing the inference and training functions")
    signatures = adapter.trace_for_export()
    with atomic_directory(dst, force=force) as tmp:
        progress(f"writing TF2 SavedModel to {dst}")
        tf.saved_model.save(adapter, tmp, signatures=signatures)
        write_metadata(tmp, adapter.metadata)
