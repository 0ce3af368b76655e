"""`bridge inspect PATH`: what a model directory holds, read from its protos without running it.

Examples:
  bridge inspect testdata/modules/convnet_bn
  bridge inspect --json converted/ > report.json
"""

from __future__ import annotations

import argparse
import json


def register(sub) -> None:
    p = sub.add_parser("inspect", help="describe a TF1 Hub module or TF2 SavedModel without running it",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("path", help="model directory")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(run=run)


def run(args) -> int:
    from bridge.inspect import format_report, inspect_model

    report = inspect_model(args.path)
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True))
    else:
        print(format_report(report))
    return 0
