"""The bridge's own metadata inside a TF2 SavedModel.

TF2 defines no machine-readable expected image size, so a converted model carries it (with the TF1 signatures it
came from) in `assets.extra/tf_hub_bridge.json`: a plain file beside the SavedModel that readers parse without
running anything, and that TensorFlow itself ignores.
"""

from __future__ import annotations

import dataclasses
import json
import os

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

    def to_json(self) -> dict:
        data = dataclasses.asdict(self)
        data["image_size"] = list(self.image_size) if self.image_size else None
        data["schema_version"] = SCHEMA_VERSION
        return data


def read_metadata(saved_model_dir: str) -> BridgeMetadata | None:
    path = os.path.join(saved_model_dir, METADATA_PATH)
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        data = json.load(f)
    size = data.get("image_size")
    return BridgeMetadata(image_size=tuple(size) if size else None, signatures=list(data.get("signatures", [])),
                          primary_signature=data.get("primary_signature", "default"), kind=data.get("kind"),
                          source_format=data.get("source_format"), variants=data.get("variants"))


def write_metadata(saved_model_dir: str, metadata: BridgeMetadata) -> None:
    path = os.path.join(saved_model_dir, METADATA_PATH)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(metadata.to_json(), f, indent=2, sort_keys=True)
        f.write("\n")
