"""The bridge's own metadata inside a TF2 SavedModel.

TF2 defines no machine-readable expected image size, so a converted model carries it (with the TF1 signatures it
came from) in `assets.extra/tf_hub_bridge.json`: a plain file beside the SavedModel that readers parse without
running anything, and that TensorFlow itself ignores.
"""

from __future__ import annotations

import dataclasses
import json
import os

from legacy.errors import ModuleFormatError

METADATA_PATH = os.path.join("assets.extra", "tf_hub_bridge.json")
SCHEMA_VERSION = 1


@dataclasses.dataclass
class BridgeMetadata:
    image_size: tuple | None = None  # (height, width)
    signatures: list = dataclasses.field(default_factory=list)  # the TF1 signature names, primary first
    primary_signature: str = "default"
    kind: str | None = None  # "feature_vector" or "classification"
    source_format: str | None = None  # "tf1_hub" or "tf2_saved_model"
    variants: list | None = None  # the TF1 graph variants it came from, as sorted tag lists ([[], ["train"]])
    # Converted with --optimize: inference (training=False, the serving signatures) runs a frozen copy of the weights
    # taken at conversion time, so fine-tuning changes training mode and the variables but not inference outputs.
    optimized_inference: bool = False
    # The parts of partitioned TF1 variables (tf.compat.v1.fixed_size_partitioner): part variable name ->
    # {"full_name", "full_shape", "offset"}, so that TF2 -> TF1 writes them back as one partitioned variable.
    partitions: dict = dataclasses.field(default_factory=dict)

    def to_json(self) -> dict:
        data = dataclasses.asdict(self)
        data["image_size"] = list(self.image_size) if self.image_size else None
        data["schema_version"] = SCHEMA_VERSION
        return data


def read_metadata(saved_model_dir: str) -> BridgeMetadata | None:
    """The bridge metadata of a SavedModel, None when it has none; a damaged file is a `ModuleFormatError`."""
    path = os.path.join(saved_model_dir, METADATA_PATH)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, "rb") as f:
            raw = f.read(_MAX_BYTES + 1)
        if len(raw) > _MAX_BYTES:
            raise _corrupt(path, f"larger than {_MAX_BYTES} bytes")
        data = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as e:  # bad UTF-8 or JSON (UnicodeDecodeError is a ValueError)
        raise _corrupt(path, f"not valid JSON: {' '.join(str(e).split())[:120]}") from None
    except OSError as e:
        raise ModuleFormatError(f"{path}: cannot read ({e.strerror or e}); check the file's permissions") from None
    if not isinstance(data, dict):
        raise _corrupt(path, f"holds a JSON {type(data).__name__}, not an object")
    size = data.get("image_size")
    if size is not None and not (isinstance(size, list) and (not size or _is_size(size))):
        raise _corrupt(path, f"image_size is {_short(size)}, not [height, width]")
    signatures = data.get("signatures", [])
    if not isinstance(signatures, list) or not all(isinstance(n, str) and n for n in signatures):
        raise _corrupt(path, f"signatures is {_short(signatures)}, not a list of names")
    for key in ("primary_signature", "kind", "source_format"):
        if data.get(key) is not None and not isinstance(data[key], str):
            raise _corrupt(path, f"{key} is {_short(data[key])}, not a string")
    variants = data.get("variants")
    if variants is not None and not (isinstance(variants, list) and all(
            isinstance(v, list) and all(isinstance(t, str) for t in v) for v in variants)):
        raise _corrupt(path, f"variants is {_short(variants)}, not a list of tag lists")
    optimized = data.get("optimized_inference", False)
    if not isinstance(optimized, bool):
        raise _corrupt(path, f"optimized_inference is {_short(optimized)}, not true or false")
    partitions = data.get("partitions") or {}
    if not (isinstance(partitions, dict) and all(isinstance(k, str) and _is_part(v) for k, v in partitions.items())):
        raise _corrupt(path, f"partitions is {_short(partitions)}, not part name -> {{full_name, full_shape, offset}}")
    return BridgeMetadata(image_size=tuple(size) if size else None, signatures=list(signatures),
                          primary_signature=data.get("primary_signature") or "default", kind=data.get("kind"),
                          source_format=data.get("source_format"), variants=variants, optimized_inference=optimized,
                          partitions=partitions)


def _is_part(part) -> bool:
    """{"full_name": str, "full_shape": [n, ...], "offset": [o, ...]} with offsets inside the shape."""
    if not (isinstance(part, dict) and isinstance(part.get("full_name"), str) and part["full_name"]):
        return False
    shape, offset = part.get("full_shape"), part.get("offset")
    return (isinstance(shape, list) and isinstance(offset, list) and len(shape) == len(offset) and
            all(type(n) is int and n >= 0 for n in shape) and
            all(type(o) is int and 0 <= o <= n for o, n in zip(offset, shape)))


_MAX_BYTES = 1 << 20  # the file holds a few names and numbers
_MAX_SIDE = 1 << 16


def _is_size(size: list) -> bool:
    return len(size) == 2 and all(type(v) is int and 0 < v <= _MAX_SIDE for v in size)


def _short(value) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _corrupt(path: str, problem: str) -> ModuleFormatError:
    return ModuleFormatError(f"{path} is damaged ({problem}); convert the model again, or delete the file to "
                             "use the model without the bridge metadata")


def partitions_of(module) -> dict:
    """What `BridgeMetadata.partitions` records of a TF1 module's (a `legacy.format.reader.StoredModule`)
    partitioned variables: part name -> its whole variable's name and shape, and the part's offset in it."""
    return {var.name: {"full_name": var.full_name, "full_shape": list(var.full_shape), "offset": list(var.offset)}
            for var in module.variables() if var.is_part}


def write_metadata(saved_model_dir: str, metadata: BridgeMetadata) -> None:
    path = os.path.join(saved_model_dir, METADATA_PATH)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(metadata.to_json(), f, indent=2, sort_keys=True)
        f.write("\n")
