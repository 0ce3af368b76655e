"""`bridge parity A B`: run two models on identical image batches and compare every output (A is the reference).

A and B are each a TF1 Hub module or a TF2 SavedModel, in any mix. Inputs are image files and folders (JPEG, PNG,
GIF, BMP; grayscale and RGBA become RGB; values in [0, 1]; resized to the expected size with
tf.image.resize(method='bilinear', antialias=False), aspect ratio not kept), .npy/.npz float32 [N, H, W, 3] arrays
(never resized), and --random N seeded uniform images; with none of them, --random 8.

Tolerance: an element fails only when |A-B| > atol AND |A-B| > rtol*|A|. Defaults per output: atol = 1e-5 * max|A|
of that output, rtol = 1e-5. --atol/--rtol VALUE sets every output; NAME:VALUE one output, where NAME is the
name the report shows (signature/output_key, gradients/<variable>, updates/<variable>), an output key (every
signature's output of that key), or a mode (inference, training, gradients, updates); the most specific wins. A
name that matches no output, or a mode that is not compared (gradients without --gradients), is refused.

Compared: every output of every signature both models have (--signature to pick; signatures and outputs that
only one model has are named in the report), in inference mode; with --training also in training mode, plus the
non-trainable variables (batch-norm moving statistics) after each training call; with --gradients the gradients
w.r.t. the trainable variables. Per output: max/mean/median/p99 absolute and relative error, cosine similarity,
top-1/top-5 agreement of classification logits, the verdict, and the smallest atol and rtol that would have passed.

Signature inputs besides images (batch_norm_momentum of *_with_bn_hparams, say): --input NAME=VALUE feeds
VALUE to both models, else each uses its default; a signature with an input that has no default and no --input
value is not compared, and the report names it with the reason.

Options that take several values take one per use: --images a/ --images b.npz, --atol 1e-4 --atol NAME:1e-3.

Exit status: 0 every output matches, 1 a mismatch, 2 bad usage or bad input, 130 interrupted. Progress goes to
stderr. --json prints one JSON document on stdout (status ok, verification_failed or error) and nothing else;
--json-file FILE writes it to a file as well.

Examples:
  bridge parity testdata/modules/convnet_bn converted/ --images testdata/images
  bridge parity old_module/ new_savedmodel/ --random 64 --seed 1 --batch-size 16 --training --gradients
  bridge parity a/ b/ --images photos/ --atol 1e-4 --atol image_classification/default:1e-3 --json-file report.json
  bridge parity a/ b/ --signature image_feature_vector --json | jq .status
  bridge parity old_module/ new_savedmodel/ --training --input batch_norm_momentum=0.5
  bridge parity a/ b/ --images 'val/*.JPEG' --runner beam --beam-options="--direct_num_workers=2"
"""

from __future__ import annotations

import argparse
import contextlib
import sys

from bridge.cli import arguments


def register(sub) -> None:
    p = sub.add_parser("parity", help="compare two models output by output on identical image batches",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    arguments.add_model_source(p, [
        ("a", "A", None, "reference model: a TF1 Hub module or TF2 SavedModel directory, a .tar.gz archive of one, "
                         "or a cached TF Hub handle"),
        ("b", "B", None, "model to check against A (the same kinds)")])
    arguments.add_image_inputs(p)
    what = p.add_argument_group("what to compare")
    what.add_argument("--signature", action="append", metavar="NAME",
                      help="compare this signature (repeat for several; default: every signature both models have)")
    what.add_argument("--training", action="store_true",
                      help="also compare training-mode outputs and the batch-norm updates (non-trainable "
                           "variables) they make")
    what.add_argument("--gradients", action="store_true",
                      help="also compare the gradients of one seeded loss, the sum over the compared outputs of "
                           "sum(output * W), W ~ N(0, 1), w.r.t. the trainable variables, matched by name "
                           "(training mode when both models have one)")
    what.add_argument("--logits", action="append", default=[], metavar="NAME",
                      help="also report top-1/top-5 agreement of this output (image_classification/default and a "
                           "classifier's default output always are); repeat for several")
    arguments.add_tolerances(p)
    arguments.add_output(p, full=True)
    saved = p.add_argument_group("saved arrays")
    saved.add_argument("--save-inputs", metavar="FILE.npz",
                       help="save the input batches, keys batch_00000, ... (reusable as --images)")
    saved.add_argument("--save-outputs", metavar="FILE.npz",
                       help="save both models' outputs, one array per batch: keys A|B/<mode>/<output>/<batch>")
    arguments.add_scale_out(p, what="inference outputs; ", local="this process",
                            beam="an Apache Beam pipeline, the same report (--images may then be glob patterns)",
                            options_example="--runner=DataflowRunner --project=P --region=R "
                                            "--temp_location=gs://B/tmp")
    p.set_defaults(run=run)


def run(args) -> int:
    from bridge.cli.output import emit_json
    from bridge.cli.progress import reporter
    from bridge.parity.comparison import check_compare_arguments, compare
    from bridge.parity.report import summary_line, write_json

    options = dict(images=args.images, random=args.random, seed=args.seed, val_range=args.val_range,
                   batch_size=args.batch_size, image_size=args.image_size, signatures=args.signature,
                   training=args.training, gradients=args.gradients, atol=args.atol, rtol=args.rtol,
                   logits=args.logits, save_inputs=args.save_inputs, save_outputs=args.save_outputs,
                   inputs=args.input or None, allow_unsafe_ops=args.allow_unsafe_ops)
    if args.runner == "beam":  # Beam takes glob patterns: expanded first, so the paths below are files
        from bridge.parity.beam import expand_globs
        options["images"] = expand_globs(args.images)
    # Every cheap check (paths, output files, option combinations) before anything loads or is printed.
    check_compare_arguments(args.a, args.b, json_file=args.json_file, **options)
    progress = reporter("bridge parity", quiet=args.quiet, json_output=args.json)
    with progress or contextlib.nullcontext():  # the live progress line goes before the report is printed
        if progress:
            progress(f"loading {args.a} and {args.b}")
        if args.runner == "beam":
            report = _run_on_beam(args, options, progress)
        elif args.beam_options:
            from legacy.errors import InvalidInputError
            raise InvalidInputError("--beam-options needs --runner beam")
        else:
            report = compare(args.a, args.b, progress=progress, **options)
    if args.json_file:
        write_json(report, args.json_file)
    if args.json:
        emit_json(report.to_json())
    else:
        print(report.table(full=args.full))
    if args.json and not args.quiet:
        from bridge.parity.report import wrap_lines

        print("\n".join(wrap_lines([summary_line(report)])), file=sys.stderr)
    return 0 if report.passed else 1


def _run_on_beam(args, options: dict, progress):
    from legacy.errors import InvalidInputError

    local_only = [flag for flag, key in (("--training", "training"), ("--gradients", "gradients"),
                                         ("--save-inputs", "save_inputs"), ("--save-outputs", "save_outputs"),
                                         ("--input", "inputs"))
                  if options.pop(key)]
    if local_only:
        raise InvalidInputError(f"{local_only[0]} runs only locally (it follows the sequence of batches); drop it "
                                "or drop --runner beam")
    from bridge.parity.beam import compare_on_beam

    return compare_on_beam(args.a, args.b, beam_options=args.beam_options, progress=progress, **options)
