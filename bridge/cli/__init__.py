"""The `bridge` command line: each subcommand lives in `bridge.cli.<name>`, the options they share in
`bridge.cli.arguments`; this module only wires them.

Known errors (`BridgeError`) and bad usage print as one line on stderr with exit status 2 (with `--json`, stdout
also gets a JSON document with `"status": "error"`); set BRIDGE_DEBUG=1 for the traceback. Ctrl-C exits with 130.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = ("inspect", "convert", "parity", "migrate")
EXIT_OK, EXIT_MISMATCH, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class ArgumentParser(argparse.ArgumentParser):
    """argparse with one-line errors (exit 2), a JSON error document under --json, and the new spelling named
    when an option's meaning changed."""

    argv: list = []

    def error(self, message: str):  # noqa: D102  (argparse's hook)
        from bridge.cli.arguments import explain_usage_error
        from bridge.cli.output import fail

        prog = self.prog
        command = next((a for a in self.argv if a in COMMANDS), None)
        if prog == "bridge" and command:  # the top-level parser reports a subcommand's leftovers
            prog = f"bridge {command}"
        fail(prog, explain_usage_error(message, self.argv), json_output=_wants_json(self.argv))
        sys.exit(EXIT_USAGE)


def _wants_json(argv: list) -> bool:
    return "--json" in argv or "--json=-" in argv


def build_parser() -> argparse.ArgumentParser:
    from bridge import __version__

    parser = ArgumentParser(
        prog="bridge", description="Carry TensorFlow Hub image models between the TF1 Hub format and TF2 "
                                   "SavedModels, and prove that they match.",
        epilog="Exit status: 0 success, 1 a converted or compared model does not match, 2 bad usage or bad input "
               "(one line on stderr), 130 interrupted (Ctrl-C). BRIDGE_DEBUG=1 shows tracebacks.")
    parser.add_argument("--version", action="version", version=f"bridge (tf-hub-bridge) {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=ArgumentParser)
    for name in COMMANDS:
        importlib.import_module(f"bridge.cli.{name}").register(sub)
    return parser


def main(argv: list | None = None) -> int:
    from bridge.cli.arguments import normalize_argv
    from bridge.cli.quiet import debug_requested, quiet
    from legacy.errors import command_line_spelling

    argv = normalize_argv(list(sys.argv[1:] if argv is None else argv))
    ArgumentParser.argv = argv
    with command_line_spelling():
        parser = build_parser()
        args = parser.parse_args(argv)
        prog = f"bridge {args.command}"
        with quiet(not (getattr(args, "verbose", False) or debug_requested())):
            return _run(args, prog)


def _run(args, prog: str) -> int:
    from bridge.cli.arguments import check
    from bridge.cli.output import fail
    from bridge.cli.quiet import debug_requested
    from legacy.errors import BridgeError

    try:
        check(args)
        return int(args.run(args) or EXIT_OK)
    except BridgeError as e:
        if debug_requested():
            raise
        fail(prog, str(e), json_output=getattr(args, "json", False))
        return EXIT_USAGE
    except KeyboardInterrupt:
        fail(prog, "interrupted", json_output=getattr(args, "json", False))
        return EXIT_INTERRUPTED

if __name__ == "__main__":
    sys.exit(main())
