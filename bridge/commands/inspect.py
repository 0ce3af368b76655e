"""`bridge inspect PATH`: what a model holds, read from its protos without running it.

PATH is a model directory (TF1 Hub module or TF2 SavedModel), a .tar.gz archive of one (the TF Hub compressed
format), or a TF Hub handle already in the local cache (TFHUB_CACHE_DIR; nothing is downloaded). The report ends
with the safety scan: ops that would touch files, processes or the network or run Python, by node name.

Examples:
  bridge inspect testdata/modules/convnet_bn
  bridge inspect --json converted/ > report.json
  bridge inspect mobilenet_v2.tar.gz
  TFHUB_CACHE_DIR=~/hub_cache bridge inspect https://tfhub.dev/google/imagenet/mobilenet_v2_100_224/feature_vector/4
"""

from __future__ import annotations

import argparse
import json


def register(sub) -> None:
    p = sub.add_parser("inspect", help="describe a TF1 Hub module or TF2 SavedModel without running it",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("path", help="model directory, .tar.gz archive of one, or a TF Hub handle in the local cache")
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
