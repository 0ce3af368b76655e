"""`bridge convert SRC DST`: TF1 Hub module <-> TF2 SavedModel; the direction comes from the source.

The converted model is compared with its source before it appears at DST (parity on 8 seeded random images, plus
--verify-images; inference and training mode; signature inputs besides images get --input values, else the
model's defaults); on a mismatch nothing is written, the parity table goes to stderr
and the exit status is 1. --no-verify skips the check. Options for the other direction are refused (--signature
is TF1 -> TF2 only; --kind is TF2 -> TF1 only; --image-size is TF2 -> TF1, or the verification's size for a TF1
module that takes any size and records none).

Exit status: 0 converted (and verified), 1 verification failed (nothing written), 2 bad usage or bad input, 130
interrupted. With --json, stdout holds one JSON document whatever happens: status ok, verification_failed or
error, and the reason.

Examples:
  bridge convert old_module/ new_savedmodel/
  bridge convert old_module/ new_savedmodel/ --signature image_classification --force
  bridge convert old_module/ new_savedmodel/ --verify-images photos/ --verify-images more.npz --verify-gradients
  bridge convert new_savedmodel/ old_module/ --kind feature_vector --image-size 224x224
  bridge convert old_module/ new_savedmodel/ --input batch_norm_momentum=0.9
  bridge convert old_module/ fast_savedmodel/ --optimize
"""

from __future__ import annotations

import argparse
import contextlib
import sys

from bridge.cli import arguments


def register(sub) -> None:
    p = sub.add_parser("convert", help="convert a TF1 Hub module to a TF2 SavedModel, or back, and prove it",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    arguments.add_model_source(p, [
        ("src", "SRC", None, "source model: a TF1 Hub module or TF2 SavedModel directory, a .tar.gz archive of one, "
                             "or a cached TF Hub handle"),
        ("dst", "DST", None, "destination directory: new, empty, or (with --force) a model to replace")])
    arguments.add_conversion(p).add_argument(
        "--optimize", action="store_true",
        help="TF1 -> TF2 only: inference (training=False and the serving signatures) runs a frozen copy of the "
             "inference graph, weights as constants, constant-folded, batch norms folded into the weights before "
             "them; verified like any conversion (outputs within the parity tolerance, not bit-identical). "
             "Trade-offs: the frozen path does not see fine-tuned weights (training mode and the variables do), "
             "and the SavedModel holds the weights twice")
    arguments.add_verification(p)
    arguments.add_output(p, full=True)
    p.set_defaults(run=run)


def conversion_options(args) -> dict:
    """The `bridge.convert` keyword arguments of parsed convert/migrate options."""
    return dict(to=args.to, signature=args.signature, force=args.force, kind=args.kind, image_size=args.image_size,
                verify=args.verify, verify_images=args.verify_images, verify_gradients=args.verify_gradients,
                seed=args.seed, inputs=args.input or None, allow_unsafe_ops=args.allow_unsafe_ops,
                optimize=args.optimize)


def run(args) -> int:
    from bridge.cli.output import OK, VERIFICATION_FAILED, emit_json, one_line, save_json
    from bridge.cli.progress import reporter
    from bridge.conversion.converter import convert
    from bridge.parity.report import check_parent, random_ops_line
    from legacy.errors import VerificationError

    if args.json_file:
        check_parent(args.json_file)
    progress = reporter("bridge", quiet=args.quiet, json_output=args.json)
    try:
        with progress or contextlib.nullcontext():  # the live progress line goes before anything else is printed
            result = convert(args.src, args.dst, progress=progress, **conversion_options(args))
    except VerificationError as e:
        print(e.report.table(full=args.full), file=sys.stderr)
        print(f"bridge convert: error: {one_line(e)}", file=sys.stderr)
        document = {"status": VERIFICATION_FAILED, "reason": one_line(e), "source": args.src,
                    "destination": args.dst, "verification": e.report.to_json()}
        save_json(document, args.json_file)
        if args.json:
            emit_json(document)
        return 1
    line = (f"{result.direction}: {result.source} ({result.source_bytes} bytes) -> {result.destination} "
            f"({result.destination_bytes} bytes)"
            + ("" if result.verification is None else f", verified: {result.verification.status.upper()}"))
    document = {"status": OK, "reason": line, **result.to_json()}
    save_json(document, args.json_file)
    if args.json:
        emit_json(document)
        return 0
    report = result.verification
    if report is not None and args.full:  # the table (its notes say how random ops were compared) on success too
        print(report.table(full=True))
        print()
    elif report is not None and random_ops_line(report):
        print(random_ops_line(report))
    print(line)
    return 0
