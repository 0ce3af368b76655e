"""`bridge parity A B`: run two models on identical image batches and compare every output (A is the reference).

A and B are each a TF1 Hub module or a TF2 SavedModel, in any mix. Inputs are image files and folders (JPEG, PNG,
GIF, BMP; grayscale and RGBA become RGB; values in [0, 1]; resized to the expected size with
tf.image.resize(method='bilinear', antialias=False), aspect ratio not kept), .npy/.npz float32 [N, H, W, 3] arrays
(never resized), and --random N seeded uniform images; with none of them, --random 8.

Tolerance: an element fails only when |A-B| > atol AND |A-B| > rtol*|A|. Defaults per output: atol = 1e-5 * max|A|
of that output, rtol = 1e-5. --atol/--rtol VALUE sets every output; NAME:VALUE one output, where NAME is the
name the report shows (signature/output_key, gradients/<variable>, updates/<variable>), an output key (every
signature's output of that key), or a mode (inference, training, gradients, updates); the most specific wins.

Compared: every output of every signature both models have (--signature to pick), in inference mode; with
--training also in training mode, plus the non-trainable variables (batch-norm moving statistics) after each
training call; with --gradients the gradients w.r.t. the trainable variables. Per output: max/mean/median/p99
absolute and relative error, cosine similarity, top-1/top-5 agreement of classification logits, the verdict, and
the smallest atol and rtol that would have passed.

Exit status: 0 every output matches, 1 a mismatch, 2 bad usage or bad input. Progress goes to stderr; put
--images/--atol/--rtol after A and B (they take several values).

Examples:
  bridge parity testdata/modules/convnet_bn converted/ --images testdata/images
  bridge parity old_module/ new_savedmodel/ --random 64 --seed 1 --batch-size 16 --training --gradients
  bridge parity a/ b/ --images photos/ --atol 1e-4 image_classification/default:1e-3 --json report.json
  bridge parity a/ b/ --signature image_feature_vector --json - | jq .status
"""

from __future__ import annotations

import argparse
import sys


def register(sub) -> None:
    p = sub.add_parser("parity", help="compare two models output by output on identical image batches",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("a", metavar="A", help="reference model: a TF1 Hub module or TF2 SavedModel directory, a .tar.gz "
                                          "archive of one, or a cached TF Hub handle")
    p.add_argument("b", metavar="B", help="model to check against A (the same kinds)")
    inputs = p.add_argument_group("inputs (the same batches go to both models)")
    inputs.add_argument("--images", nargs="+", action="extend", metavar="PATH",
                        help="image files, folders of images (searched recursively; files whose extension is not "
                             "an image's are skipped), .npy or .npz arrays")
    inputs.add_argument("--random", type=int, metavar="N", help="add N random images, uniform in --val-range "
                                                                "(default: 8 when no --images)")
    inputs.add_argument("--seed", type=int, default=0, help="seed of the random images and of the gradient loss "
                                                             "weights (default: 0)")
    inputs.add_argument("--val-range", default="0,1", metavar="LOW,HIGH",
                        help="value range of random images (default: 0,1; a negative LOW needs the = form: "
                             "--val-range=-1,1)")
    inputs.add_argument("--batch-size", type=int, default=8, metavar="N", help="images per batch (default: 8)")
    inputs.add_argument("--image-size", metavar="HxW",
                        help="size to resize images to and of random images (default: the models' expected size)")
    what = p.add_argument_group("what to compare")
    what.add_argument("--signature", action="append", metavar="NAME",
                      help="compare this signature (repeatable; default: every signature both models have)")
    what.add_argument("--training", action="store_true",
                      help="also compare training-mode outputs and the batch-norm updates (non-trainable "
                           "variables) they make")
    what.add_argument("--gradients", action="store_true",
                      help="also compare the gradients of one seeded loss, the sum over the compared outputs of "
                           "sum(output * W), W ~ N(0, 1), w.r.t. the trainable variables, matched by name "
                           "(training mode when both models have one)")
    what.add_argument("--logits", action="append", default=[], metavar="NAME",
                      help="also report top-1/top-5 agreement of this output (image_classification/default and a "
                           "classifier's default output always are)")
    tol = p.add_argument_group("tolerance")
    tol.add_argument("--atol", nargs="+", action="extend", metavar="[NAME:]VALUE",
                     help="absolute tolerance (default per output: 1e-5 * max|A|)")
    tol.add_argument("--rtol", nargs="+", action="extend", metavar="[NAME:]VALUE",
                     help="tolerance relative to |A| (default: 1e-5)")
    out = p.add_argument_group("output")
    out.add_argument("--json", metavar="FILE", help="write the JSON report to FILE ('-': stdout, and nothing else "
                                                    "goes there)")
    out.add_argument("--save-inputs", metavar="FILE.npz",
                     help="save the input batches, keys batch_00000, ... (reusable as --images)")
    out.add_argument("--save-outputs", metavar="FILE.npz",
                     help="save both models' outputs, one array per batch: keys A|B/<mode>/<output>/<batch>")
    out.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.add_argument("--allow-unsafe-ops", action="store_true",
                   help="run models whose graphs have ops that touch files, processes or the network (refused by "
                        "default; only for models you trust)")
    p.set_defaults(run=run)


def _progress(message: str) -> None:
    print(f"bridge parity: {message}", file=sys.stderr, flush=True)


def run(args) -> int:
    from bridge.parity.comparison import compare
    from bridge.parity.images import parse_image_size, parse_val_range
    from bridge.parity.report import check_parent, write_json
    from legacy.errors import InvalidInputError

    if args.batch_size < 1:
        raise InvalidInputError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.json and args.json != "-":
        check_parent(args.json)
    progress = None if args.quiet else _progress
    if progress:
        progress(f"loading {args.a} and {args.b}")
    report = compare(
        args.a, args.b, images=args.images, random=args.random, seed=args.seed,
        val_range=parse_val_range(args.val_range), batch_size=args.batch_size,
        image_size=parse_image_size(args.image_size) if args.image_size else None, signatures=args.signature,
        training=args.training, gradients=args.gradients, atol=args.atol, rtol=args.rtol, logits=args.logits,
        save_inputs=args.save_inputs, save_outputs=args.save_outputs, allow_unsafe_ops=args.allow_unsafe_ops,
        progress=progress)
    if args.json:
        write_json(report, args.json)
    if args.json != "-":
        print(report.table())
    elif not args.quiet:
        from bridge.parity.report import summary_line
        print(summary_line(report), file=sys.stderr)
    return 0 if report.passed else 1
