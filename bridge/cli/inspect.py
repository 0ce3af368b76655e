"""`bridge inspect PATH`: what a model holds, read from its protos without running it.

PATH is a model directory (TF1 Hub module or TF2 SavedModel), a .tar.gz archive of one (the TF Hub compressed
format), or a TF Hub handle already in the local cache (TFHUB_CACHE_DIR; nothing is downloaded). A TF2 SavedModel
without serving signatures is described by its __call__ function's traced input and outputs, as `bridge convert`
reads it. The report ends with the safety scan: ops that would touch files, processes or the network or run
Python, by node name.

Examples:
  bridge inspect testdata/modules/convnet_bn
  bridge inspect --json converted/ > report.json
  bridge inspect converted/ --json-file report.json
  bridge inspect mobilenet_v2.tar.gz
  TFHUB_CACHE_DIR=~/hub_cache bridge inspect https://tfhub.dev/google/imagenet/mobilenet_v2_100_224/feature_vector/4
"""

from __future__ import annotations

import argparse

from bridge.cli import arguments


def register(sub) -> None:
    p = sub.add_parser("inspect", help="describe a TF1 Hub module or TF2 SavedModel without running it",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    group = p.add_argument_group("model")
    group.add_argument("path", help="model directory, .tar.gz archive of one, or a TF Hub handle in the local cache")
    arguments.add_output(p)
    p.set_defaults(run=run)


def run(args) -> int:
    from bridge.cli.output import OK, emit_json, save_json
    from bridge.inspect import format_report, inspect_model
    from bridge.parity.report import check_parent

    if args.json_file:
        check_parent(args.json_file)
    report = inspect_model(args.path)
    document = {"status": OK, "reason": f"{report['format_label']} described", **report}
    save_json(document, args.json_file)
    if args.json:
        emit_json(document)
    else:
        print(format_report(report))
    return 0
