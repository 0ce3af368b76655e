"""The `bridge` command line: each subcommand lives in `bridge.commands.<name>`; this module only wires them.

Known errors (`BridgeError`) print as one line on stderr with exit status 2; set BRIDGE_DEBUG=1 for the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

COMMANDS = ("inspect", "convert", "parity")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bridge", description="Carry TensorFlow Hub image models between the TF1 Hub format and TF2 "
                                   "SavedModels, and prove that they match.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"bridge.commands.{name}").register(sub)
    return parser


def main(argv: list | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = build_parser()
    args = parser.parse_args(argv)
    from legacy.errors import BridgeError

    try:
        return int(args.run(args) or 0)
    except BridgeError as e:
        if os.environ.get("BRIDGE_DEBUG"):
            raise
        print(f"bridge {args.command}: error: {_one_line(str(e))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"bridge {args.command}: interrupted", file=sys.stderr)
        return 130


def _one_line(message: str) -> str:
    return " ".join(message.split())


if __name__ == "__main__":
    sys.exit(main())
