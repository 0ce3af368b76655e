"""`bridge convert SRC DST`: TF1 Hub module <-> TF2 SavedModel; the direction comes from the source.

The converted model is compared with its source before it appears at DST (parity on 8 seeded random images, plus
--verify-images; inference and training mode); on a mismatch nothing is written, the parity table goes to stderr
and the exit status is 1. --no-verify skips the check.

Examples:
  bridge convert old_module/ new_savedmodel/
  bridge convert old_module/ new_savedmodel/ --signature image_classification --force
  bridge convert old_module/ new_savedmodel/ --verify-images photos/ --verify-gradients
  bridge convert new_savedmodel/ old_module/ --kind feature_vector --image-size 224x224
"""

from __future__ import annotations

import argparse
import json
import sys


def register(sub) -> None:
    p = sub.add_parser("convert", help="convert a TF1 Hub module to a TF2 SavedModel, or back, and prove it",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src", help="source model: a TF1 Hub module or TF2 SavedModel directory, a .tar.gz archive of "
                               "one, or a cached TF Hub handle")
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
    p.add_argument("--allow-unsafe-ops", action="store_true",
                   help="run a model whose graphs have ops that touch files, processes or the network (refused "
                        "by default; only for models you trust)")
    verify = p.add_argument_group("verification (on by default)")
    verify.add_argument("--no-verify", dest="verify", action="store_false",
                        help="write the converted model without comparing it with the source")
    verify.add_argument("--verify-images", metavar="DIR", nargs="+", action="extend",
                        help="also feed these images (folders, image files, .npy/.npz) to both models")
    verify.add_argument("--verify-gradients", action="store_true",
                        help="also compare the gradients of a seeded loss w.r.t. the trainable variables")
    verify.add_argument("--seed", type=int, default=0, help="seed of the random images (default: 0)")
    p.add_argument("--json", action="store_true", help="print the result (with the parity report) as JSON; the "
                                                       "progress and the parity summary go to stderr")
    p.set_defaults(run=run)


def run(args) -> int:
    from bridge.conversion.converter import VerificationError, convert

    try:
        result = convert(args.src, args.dst, to=args.to, signature=args.signature, force=args.force,
                         kind=args.kind, image_size=args.image_size, verify=args.verify,
                         verify_images=args.verify_images, verify_gradients=args.verify_gradients, seed=args.seed,
                         allow_unsafe_ops=args.allow_unsafe_ops)
    except VerificationError as e:
        print(e.report.table(), file=sys.stderr)
        print(f"bridge convert: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result.to_json(), indent=2, sort_keys=True))
    else:
        print(f"{result.direction}: {result.source} ({result.source_bytes} bytes) -> {result.destination} "
              f"({result.destination_bytes} bytes)"
              + ("" if result.verification is None else f", verified: {result.verification.status.upper()}"))
    return 0
