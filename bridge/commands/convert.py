"""`bridge convert SRC DST`: TF1 Hub module <-> TF2 SavedModel; the direction comes from the source.

Examples:
  bridge convert old_module/ new_savedmodel/
  bridge convert old_module/ new_savedmodel/ --signature image_classification --force
  bridge convert new_savedmodel/ old_module/ --kind feature_vector --image-size 224x224
"""

from __future__ import annotations

import argparse
import json


def register(sub) -> None:
    p = sub.add_parser("convert", help="convert a TF1 Hub module to a TF2 SavedModel, or back",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src", help="source model directory (TF1 Hub module or TF2 SavedModel)")
    p.add_argument("dst", help="destination directory (must not exist unless --force)")
    p.add_argument("--to", choices=("tf1", "tf2"), help="target format (default: the other one)")
    p.add_argument("--signature", help="TF1 signature that __call__ serves (default: 'default')")
    p.add_argument("--kind", choices=("feature_vector", "classification"),
                   help="TF2 -> TF1: the image signature to write besides 'default' (default: from the model's "
                        "metadata)")
    p.add_argument("--image-size", metavar="HEIGHTxWIDTH",
                   help="TF2 -> TF1: expected image size, needed when the model's input size is dynamic")
    p.add_argument("--force", action="store_true", help="replace an existing destination once the new one is "
                                                          "complete")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(run=run)


def run(args) -> int:
    from bridge.convert import convert

    result = convert(args.src, args.dst, to=args.to, signature=args.signature, force=args.force, kind=args.kind,
                     image_size=args.image_size)
    if args.json:
        print(json.dumps(result.__dict__, indent=2, sort_keys=True))
    else:
        print(f"{result.direction}: {result.source} ({result.source_bytes} bytes) -> {result.destination} "
              f"({result.destination_bytes} bytes)")
    return 0
