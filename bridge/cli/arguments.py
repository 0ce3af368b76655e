"""The options the `bridge` commands share, defined once so that each means one thing everywhere.

Groups: model source and safety (`--allow-unsafe-ops`), conversion (`--to`, `--signature`, `--kind`,
`--image-size`, `--force`), verification (`--no-verify`, `--verify-images`, `--verify-gradients`, `--seed`,
`--input`), image inputs (`--images`, `--random`, `--seed`, `--val-range`, `--batch-size`, `--image-size`,
`--input`), tolerances (`--atol`, `--rtol`), output (`--json`, `--json-file`, `--full`, `--quiet`, `--verbose`)
and scaling out (`--runner`, `--beam-options`).

Option values are checked right after parsing (`check`, on `bridge.validate`: the grammar the Python API uses), so
a typo fails in milliseconds, before TensorFlow is imported or anything is printed. Options that take several values take one per use (`action="append"`): `--images a --images b`, so they
never swallow the positional arguments that follow.
"""

from __future__ import annotations

import argparse
import re

from bridge import validate
from legacy.errors import InvalidInputError
from legacy.format.conventions import KINDS

MULTI_VALUE = ("--images", "--verify-images", "--atol", "--rtol", "--signature", "--logits", "--input")


def check(args) -> None:
    """Check and convert the option values of a parsed command line, before any work (and before TensorFlow is
    imported): raises `InvalidInputError` naming the option. The grammars are `bridge.validate`'s, which the
    Python API uses too."""
    from bridge.parity.images import parse_val_range

    if getattr(args, "image_size", None) is not None:
        args.image_size = validate.parse_image_size(args.image_size)
    for name, minimum in (("seed", 0), ("random", 0), ("batch_size", 1), ("jobs", 1)):
        value = getattr(args, name, None)
        if isinstance(value, str):
            setattr(args, name, _whole_number(value, name, minimum))
    if hasattr(args, "input") and not isinstance(args.input, dict):
        args.input = validate.parse_input_options(args.input)
    if isinstance(getattr(args, "val_range", None), str):
        args.val_range = parse_val_range(args.val_range)
    if getattr(args, "atol", None) or getattr(args, "rtol", None):
        from bridge.parity.tolerance import Tolerances

        Tolerances.parse(args.atol, args.rtol)  # the syntax; names are checked against the models' outputs


def _whole_number(text: str, name: str, minimum: int) -> int:
    flag = "--" + name.replace("_", "-")
    try:
        value = int(text)
    except ValueError:
        raise InvalidInputError(f"{flag} {text!r} is not a whole number; pass e.g. {flag} {max(minimum, 1)}") \
            from None
    if value < minimum:
        raise InvalidInputError(f"{flag} must be at least {minimum}, got {value}")
    return value


# -- the groups ---------------------------------------------------------------------------------------------------


def add_model_source(parser, positionals: list) -> argparse._ArgumentGroup:
    """The model positionals [(name, metavar, nargs, help)] and --allow-unsafe-ops."""
    group = parser.add_argument_group("models")
    for name, metavar, nargs, help_text in positionals:
        kwargs = {"nargs": nargs} if nargs else {}
        group.add_argument(name, metavar=metavar, help=help_text, **kwargs)
    group.add_argument("--allow-unsafe-ops", action="store_true",
                       help="run models whose graphs have ops that touch files, processes or the network (refused "
                            "by default; only for models you trust)")
    return group


def add_image_size(group, help_text: str) -> None:
    group.add_argument("--image-size", metavar="HxW", help=help_text)


def add_seed(group, help_text: str) -> None:
    group.add_argument("--seed", default="0", help=help_text)


def add_conversion(parser):
    """The options of a conversion (bridge convert, bridge migrate); returns their argument group."""
    group = parser.add_argument_group("conversion")
    group.add_argument("--to", choices=("tf1", "tf2"), help="target format (default: the other one)")
    group.add_argument("--signature", metavar="NAME",
                       help="TF1 -> TF2 only: the TF1 signature that __call__ serves (default: 'default')")
    group.add_argument("--kind", choices=tuple(KINDS),
                       help="TF2 -> TF1 only: the image signature to write besides 'default' (default: from the "
                            "model's metadata)")
    add_image_size(group, "TF2 -> TF1: the expected image size to record, needed when the model's input size is "
                          "dynamic and nothing records it; TF1 -> TF2: the size to verify at, for a module that "
                          "takes any size and records none (the converted model keeps taking any size)")
    group.add_argument("--force", action="store_true",
                       help="replace an existing model (or fill an empty directory) at the destination, once the "
                            "new one is complete; never any other directory")
    return group


def add_verification(parser) -> None:
    group = parser.add_argument_group("verification (on by default)")
    group.add_argument("--no-verify", dest="verify", action="store_false",
                       help="write the converted model without comparing it with the source")
    group.add_argument("--verify-images", metavar="PATH", action="append",
                       help="also feed these images (a folder, an image file, .npy/.npz) to both models; one path "
                            "per use, repeat for more")
    group.add_argument("--verify-gradients", action="store_true",
                       help="also compare the gradients of a seeded loss w.r.t. the trainable variables")
    add_seed(group, "seed of the random images (default: 0)")
    add_input(group)


def add_input(group) -> None:
    group.add_argument("--input", action="append", metavar="NAME=VALUE",
                       help="value of a signature input besides images (e.g. batch_norm_momentum=0.99), fed to both "
                            "models; default: the model's own default, and a signature whose input has none is "
                            "not compared (the report says so); one per use, repeat for more")


def add_image_inputs(parser) -> None:
    group = parser.add_argument_group("inputs (the same batches go to both models)")
    group.add_argument("--images", action="append", metavar="PATH",
                       help="an image file, a folder of images (searched recursively; files whose extension is not "
                            "an image's are skipped), a .npy or .npz array; one path per use, repeat for more. "
                            "Models of named tensors (token ids, masks) take an .npz of one array per input")
    group.add_argument("--random", metavar="N",
                       help="add N random images, uniform in --val-range (default: 8 when no --images)")
    add_seed(group, "seed of the random images and of the gradient loss weights (default: 0)")
    group.add_argument("--val-range", default="0,1", metavar="LOW,HIGH", help="value range of random images (default: 0,1; a negative LOW needs "
                                                "the = form: --val-range=-1,1)")
    group.add_argument("--batch-size", metavar="N",
                       help="images per batch (default: 8, or the models' own batch size when they were exported "
                            "with a fixed one, which is the only one they take)")
    add_image_size(group, "size to resize image files to and of random images (default: the models' expected "
                          "size)")
    add_input(group)


def add_tolerances(parser) -> None:
    group = parser.add_argument_group("tolerance (an element fails only when |A-B| > atol and |A-B| > rtol*|A|)")
    group.add_argument("--atol", action="append", metavar="[NAME:]VALUE",
                       help="absolute tolerance, for every output or for NAME (default per output: 1e-5 * max|A|); "
                            "repeat for several")
    group.add_argument("--rtol", action="append", metavar="[NAME:]VALUE",
                       help="tolerance relative to |A|, for every output or for NAME (default: 1e-5); repeat for "
                            "several")


def add_output(parser, *, full: bool = False) -> None:
    group = parser.add_argument_group("output")
    group.add_argument("--json", action="store_true",
                       help="print one JSON document on stdout and nothing else: top-level status (ok, "
                            "verification_failed or error) and reason, on success and on every failure")
    group.add_argument("--json-file", metavar="FILE",
                       help="write the JSON document (as --json prints it) to FILE; its directory must exist")
    if full:
        group.add_argument("--full", action="store_true",
                           help="show every output's row (default: a summary: failures and the worst outputs)")
    add_verbosity(group)


def add_scale_out(parser, *, what: str, local: str, beam: str, options_example: str) -> None:
    """--runner and --beam-options; `what`: what runs on Beam, `local`/`beam`: what each runner does,
    `options_example`: the pipeline options shown in the help."""
    group = parser.add_argument_group(f"scaling out ({what}needs Apache Beam: pip install '.[beam]' in the "
                                      "checkout)")
    group.add_argument("--runner", choices=("local", "beam"), default="local",
                       help=f"local: {local} (default); beam: {beam}")
    group.add_argument("--beam-options", metavar="\"FLAGS\"",
                       help=f"Beam pipeline options, e.g. --beam-options=\"{options_example}\" (default: "
                            "DirectRunner, 2 workers)")


def add_verbosity(group) -> None:
    group.add_argument("--quiet", "-q", action="store_true", help="no progress on stderr, only errors")
    group.add_argument("--verbose", "-v", action="store_true",
                       help="also show TensorFlow's own log lines and warnings (as BRIDGE_DEBUG=1 does)")


# -- spellings that changed ---------------------------------------------------------------------------------------


# Options whose value is itself a list of flags ("--runner=DataflowRunner --project=P"): argparse would take a
# separate value that starts with "--" for an option of its own, so `--beam-options "--runner=..."` becomes
# `--beam-options=--runner=...` before parsing.
FLAG_VALUED = ("--beam-options",)


def normalize_argv(argv: list) -> list:
    """`--json -` and `--json=-` (parity's old spelling of JSON on stdout) mean `--json`; `--beam-options VALUE`
    means `--beam-options=VALUE` even when VALUE starts with `--`."""
    out, i = [], 0
    while i < len(argv):
        if argv[i] in FLAG_VALUED and i + 1 < len(argv):
            out.append(f"{argv[i]}={argv[i + 1]}")
            i += 1
        elif argv[i] == "--json=-":
            out.append("--json")
        elif argv[i] == "--json" and i + 1 < len(argv) and argv[i + 1] == "-":
            out.append("--json")
            i += 1
        else:
            out.append(argv[i])
        i += 1
    return out


def explain_usage_error(message: str, argv: list) -> str:
    """argparse's message, with the fix when an old spelling caused it."""
    match = re.match(r"argument (\S+?)(?:/\S+)?: (--\S+ .*)", message)
    if match:  # "argument --image-size: --image-size '0x10' is ..." names the option once
        message = match.group(2)
    if message.startswith("unrecognized arguments:"):
        for flag, value in zip(argv, argv[1:]):
            if flag == "--json" and not value.startswith("-"):
                return (f"--json takes no file name: it prints the JSON document on stdout; to write it to a file, "
                        f"pass --json-file {value}")
        used = [f for f in MULTI_VALUE if f in argv]
        if used:
            message += (f" ({', '.join(used)} take{'s' if len(used) == 1 else ''} one value per use: repeat the "
                        "option for more)")
    if message.startswith("argument --json: ignored explicit argument"):
        value = message.rsplit(" ", 1)[-1].strip("'")
        return f"--json takes no value: it prints JSON on stdout; to write a file, pass --json-file {value}"
    return message
