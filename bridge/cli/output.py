"""What the commands write: one JSON document on stdout under --json, one-line messages on stderr.

Every `--json` document has a top-level `status` (`STATUSES`) and a `reason`, on success and on every failure, and
nothing else goes to stdout; progress and messages go to stderr.
"""

from __future__ import annotations

import json
import sys

OK, VERIFICATION_FAILED, ERROR = "ok", "verification_failed", "error"
STATUSES = (OK, VERIFICATION_FAILED, ERROR)


def one_line(message: str) -> str:
    return " ".join(str(message).split())


def _ordered(document: dict) -> dict:
    assert document.get("status") in STATUSES, document.get("status")
    ordered = {"status": document["status"], "reason": document.get("reason", "")}
    ordered.update(document)
    return ordered


def emit_json(document: dict) -> None:
    """Write `document` (with `status` first) as the only thing on stdout."""
    sys.stdout.write(json.dumps(_ordered(document), indent=2) + "\n")
    sys.stdout.flush()


def save_json(document: dict, path: str | None) -> None:
    """`--json-file PATH`: write `document` (with `status` first) to PATH; nothing when PATH is None."""
    if path:
        with open(path, "w") as f:
            f.write(json.dumps(_ordered(document), indent=2) + "\n")


def message(prog: str, text: str) -> None:
    print(f"{prog}: {one_line(text)}", file=sys.stderr, flush=True)


def fail(prog: str, reason: str, *, json_output: bool = False, **fields) -> None:
    """Report an error: one line on stderr, and the JSON error document on stdout under --json."""
    print(f"{prog}: error: {one_line(reason)}", file=sys.stderr, flush=True)
    if json_output:
        emit_json({"status": ERROR, "reason": one_line(reason), "command": prog, **fields})
