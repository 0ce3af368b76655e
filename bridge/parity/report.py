"""Show a parity `Report`: a readable table, a JSON document, and `.npz` files written as the run streams.

The table fits the terminal: one row per output with its statistics and verdict together, the reasons of failures
below it, and the overall verdict; by default a summary (the failures and the worst outputs), `full=True` (`--full`)
every row. The JSON has every output under its full name.
"""

from __future__ import annotations

import json
import math
import os
import re
import zipfile

import numpy as np

from legacy.errors import InvalidInputError

SCHEMA_VERSION = 1


def _num(value, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if value == 0:
        return "0"
    return f"{value:.{digits}g}"


def _cosine(value) -> str:
    return "-" if value is None else f"{value:.7f}"


def _percent(value) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def terminal_width() -> int:
    """The width tables are laid out for: $COLUMNS, else the terminal's, else (a file, a pipe) 120."""
    import shutil

    return max(40, shutil.get_terminal_size((120, 24)).columns)


def _shorten(text: str, width: int) -> str:
    """`text` in at most `width` characters, the middle replaced by '...' (the JSON keeps the full name)."""
    if len(text) <= width:
        return text
    keep = width - 3
    return text[:keep - keep // 2] + "..." + text[len(text) - keep // 2:]


def fit_table(header: list, rows: list, *, numeric=(), shrink=(0,), drop=(), width: int | None = None) -> list:
    """Aligned columns within `width`: text columns left-aligned, `numeric` ones right-aligned. When too wide,
    the `drop` columns go first (in order), then the `shrink` columns are shortened in the middle. A row of one
    string is a title line across the table."""
    width = width or terminal_width()
    columns = list(range(len(header)))

    def widths(cols):
        return {c: max([len(str(header[c]))] + [len(str(r[c])) for r in rows if not isinstance(r, str)])
                for c in cols}

    def total(w):
        return sum(w.values()) + 2 * (len(w) - 1)

    w = widths(columns)
    for c in drop:
        if total(w) <= width:
            break
        columns.remove(c)
        w = widths(columns)
    for c in shrink:
        excess = total(w) - width
        if excess > 0 and c in w:
            w[c] = max(len(str(header[c])), 12, w[c] - excess)
    lines = []
    for row in [header] + rows:
        if isinstance(row, str):
            lines.append(_shorten(row, width))
            continue
        cells = [_shorten(str(row[c]), w[c]) for c in columns]
        cells = [cell.rjust(w[c]) if c in numeric else cell.ljust(w[c]) for cell, c in zip(cells, columns)]
        lines.append("  ".join(cells).rstrip())
    return lines


def _wrap(text: str, width: int, indent: str = "") -> list:
    import textwrap

    return textwrap.wrap(text, width=width, subsequent_indent=indent, break_on_hyphens=False,
                         break_long_words=True) or [""]


def wrap_lines(lines, width: int | None = None, indent: str = "    ") -> list:
    """Every line within `width` columns (default: the terminal's): a longer one goes on over lines indented by its
    own indentation plus `indent`, broken between words but never inside a shape's brackets (`float32[?, 4, 4]`).
    For the reports and progress lines besides the tables (which `fit_table` lays out)."""
    import textwrap

    width = width or terminal_width()
    out = []
    for line in lines:
        if len(line) <= width:
            out.append(line)
            continue
        lead = line[:len(line) - len(line.lstrip())]
        kept = re.sub(r"\[[^\]]*\]", lambda m: m.group(0).replace(" ", "\0"), line.strip())
        out += [part.replace("\0", " ") for part in textwrap.wrap(
            kept, width=width, initial_indent=lead, subsequent_indent=lead + indent, break_on_hyphens=False,
            break_long_words=True)]
    return out


def _shape(shape) -> str:
    return "-" if shape is None else "[" + ",".join(str(d) for d in shape) + "]"


_SECTIONS = (("inference", "inference (training=False)"), ("training", "training mode (training=True)"),
             ("gradients", "gradients of the seeded loss"),
             ("updates", "non-trainable variables after each training call (batch-norm updates)"))
SUMMARY_ROWS = 8  # rows the summary view shows at most besides the failures
_HEADER = ["output", "shape", "max abs", "mean abs", "max rel", "cosine", "top-1/5", "atol", "min atol", "verdict"]


def _relative_error(r) -> float:
    if r.status != "pass":
        return math.inf
    if not r.max_abs:
        return 0.0
    return r.max_abs / r.scale if r.scale else math.inf


def _row(r) -> list:
    top = "-" if r.top1 is None else _percent(r.top1) + ("" if r.top5 is None else f"/{_percent(r.top5)}")
    verdict = r.status.upper()
    name = r.name + "".join(f" = {alias}" for alias in getattr(r, "aliases", []))
    return [f"  {name}", _shape(r.shape), _num(r.max_abs), _num(r.mean_abs), _num(r.max_rel), _cosine(r.cosine),
            top, _num(r.atol), _num(r.min_atol), verdict]


def format_table(report, full: bool = False, width: int | None = None) -> str:
    """The human-readable report within `width` columns (default: the terminal's): what ran, one row per output
    with its statistics and verdict, why each failure failed, the overall result and the smallest passing
    tolerance. The default view shows the failures and the worst outputs (at most `SUMMARY_ROWS` besides the
    failures); `full=True` every output. The JSON (`to_json`) always has every output and full names."""
    width = width or terminal_width()
    lines = []
    for label, text in (("A (reference):", f"{report.a['label']} [{report.a['format']}]"),
                        ("B:", f"{report.b['label']} [{report.b['format']}]"),
                        ("inputs:", describe_inputs(report.inputs)),
                        ("", f"image files: RGB in [0, 1], {report.inputs['resize']}"
                         if report.inputs.get("resize") else ""),
                        ("compared:", f"signatures {', '.join(report.settings['signatures'])}; "
                                      f"{', '.join(report.settings['modes'])}"),
                        ("tolerance:", report.settings["tolerance"]["semantics"])):
        if text:
            lines += _wrap(f"{label:<15}{text}", width, " " * 15)
    results = report.results
    if not results:
        return "\n".join(lines + ["", "FAIL: nothing was compared"])
    shown = set(id(r) for r in results)
    if not full:
        failures = [r for r in results if not r.passed]
        worst = sorted((r for r in results if r.passed), key=_relative_error, reverse=True)
        shown = set(id(r) for r in failures + worst[:SUMMARY_ROWS])
    rows = []
    for mode, title in _SECTIONS:
        block = [_row(r) for r in results if r.mode == mode and id(r) in shown]
        if block:
            rows.append(f"{title}:")
            rows.extend(block)
    lines += [""] + fit_table(_HEADER, rows, numeric=range(1, 9), shrink=(0,), drop=(3, 6, 1, 5, 4), width=width)
    hidden = len(results) - len(shown)
    if hidden:
        lines += _wrap(f"  ... {hidden} more output{'s' if hidden != 1 else ''}, all within tolerance "
                       f"({sum(r.identical for r in results if id(r) not in shown)} identical); --full shows every row",
                       width, "    ")
    failed = [r for r in results if not r.passed]
    if failed:
        lines.append("")
        for r in failed:
            name = r.name if r.mode == "inference" else f"{r.name} [{r.mode}]"
            lines += _wrap(f"{r.status.upper()} {name}: {r.reason}", width, "    ")
    if not all(r.exact_quantiles for r in results):
        lines += _wrap("(median and p99 of outputs with more than 65,536 elements are histogram upper bounds, "
                       "within 2.3%; the JSON has them)", width)
    if report.notes:
        lines.append("")
    for note in report.notes:
        lines += _wrap(f"note: {note}", width, "      ")
    for other in report.other_sizes:
        lines += ["", f"at {'x'.join(map(str, other.inputs['image_size']))}:", format_table(other, full=full, width=width)]
    lines.append("")
    lines += _wrap(summary_line(report), width, "  ")
    lines += _wrap(minimum_line(report), width, "  ")
    return "\n".join(lines)


def describe_inputs(inputs: dict) -> str:
    if "examples" in inputs:
        parts = [f"{inputs['example_files']} from files"] if inputs.get("example_files") else []
        if inputs.get("array_examples"):
            parts.append(f"{inputs['array_examples']} given")
        parts += [f"{r['count']} random (seed {r['seed']}, integers in [{r['int_range'][0]}, {r['int_range'][1]})"
                  + "".join(f", {k} in [{lo}, {hi})" for k, (lo, hi) in r.get("index_ranges", {}).items())
                  + f", unknown lengths {r['unknown_length']})" for r in inputs["random_tensors"]]
        return (f"{inputs['examples']} examples of {', '.join(inputs['input_keys'])} in {inputs['batches']} "
                f"batch{'es' if inputs['batches'] != 1 else ''} of up to {inputs['batch_size']}: {', '.join(parts)}")
    if "sentences" in inputs:
        parts = [f"{inputs['text_files']} from files"] if inputs.get("text_files") else []
        if inputs.get("array_sentences"):
            parts.append(f"{inputs['array_sentences']} given")
        parts += [f"{r['count']} random (seed {r['seed']}, words from {r['from']})" for r in inputs["random_text"]]
        return (f"{inputs['sentences']} sentences in {inputs['batches']} batch{'es' if inputs['batches'] != 1 else ''}"
                f" of up to {inputs['batch_size']}: {', '.join(parts)}")
    parts = []
    if inputs.get("image_files"):
        parts.append(f"{inputs['image_files']} image files")
    if inputs.get("array_images"):
        parts.append(f"{inputs['array_images']} array images")
    for r in inputs.get("random", []):
        low, high = r["val_range"]
        parts.append(f"{r['count']} random (seed {r['seed']}, uniform in [{low:g}, {high:g}))")
    size = inputs.get("image_size")
    text = (f"{inputs['images']} images in {inputs['batches']} batch{'es' if inputs['batches'] != 1 else ''} of "
            f"up to {inputs['batch_size']}: {', '.join(parts)}")
    if size:
        text += f"; {size[0]}x{size[1]}"
    skipped = inputs.get("skipped_files") or []
    if skipped:
        names = ", ".join(os.path.basename(f) for f in skipped[:3]) + (", ..." if len(skipped) > 3 else "")
        text += f"; skipped {len(skipped)} file{'s' if len(skipped) != 1 else ''} without an image extension ({names})"
    return text


def summary_line(report) -> str:
    results = report.results
    passed = sum(r.passed for r in results)
    identical = sum(r.identical for r in results)
    if report.passed:
        tail = "all identical" if identical == len(results) else f"{identical} identical"
        return f"PASS: all {len(results)} outputs within tolerance ({tail})" + "".join(
            f"; at {'x'.join(map(str, o.inputs['image_size']))}: {summary_line(o)}" for o in report.other_sizes)
    if all(r.passed for r in results):
        return "; ".join(f"FAIL at {'x'.join(map(str, o.inputs['image_size']))}: {summary_line(o)}"
                         for o in report.other_sizes if not o.passed)
    failed = [r.name if r.mode == "inference" else f"{r.name} [{r.mode}]" for r in report.failures]
    shown = ", ".join(failed[:5]) + (f" and {len(failed) - 5} more" if len(failed) > 5 else "")
    return f"FAIL: {len(failed)} of {len(results)} outputs do not match ({passed} pass): {shown}"


def random_ops_line(report) -> str | None:
    """One line on random ops for a short text report: which outputs depend on them and how they were compared;
    None when neither model has any (the table's note says the same at length)."""
    random = report.settings.get("random_ops") or {}
    if not any(side is None or side.get("ops") for side in random.values()):
        return None
    dependent = sorted({r.name if r.mode == "inference" else f"{r.name} [{r.mode}]" for r in report.results
                        if r.reason and "depends on random ops" in r.reason})
    if all(side is not None and side.get("matched") for side in random.values()):
        how = "compared with both models drawing the same numbers (random ops seeded alike on both sides)"
    else:
        how = "compared with draws that could not be matched on both sides"
    return f"random ops: {', '.join(dependent) or 'no compared output'} depend on them; {how}"


def minimum_tolerances(report) -> dict:
    """The smallest atol (at each output's rtol) and rtol (at each output's atol) that pass every output.

    Infinite when some output passes at no tolerance (it exists in only one model, or its shapes differ).
    """
    return {"atol": max((r.min_atol for r in report.results), default=0.0),
            "rtol": max((r.min_rtol for r in report.results), default=0.0)}


def minimum_line(report) -> str:
    least = minimum_tolerances(report)
    if math.isinf(least["atol"]) and math.isinf(least["rtol"]):
        return ("smallest passing tolerance: none (an output exists in only one model, differs in shape, or "
                "is not finite where the reference is)")
    return (f"smallest passing tolerance: atol {_num(least['atol'])} at each output's rtol, or rtol "
            f"{_num(least['rtol'])} at each output's atol")


def to_json(report) -> dict:
    """The report as JSON-ready data (non-finite numbers as the strings "inf", "-inf", "nan")."""
    results = report.results
    least = minimum_tolerances(report)
    return {
        "schema_version": SCHEMA_VERSION,
        # One vocabulary with every `bridge ... --json` document: ok, verification_failed (error: the CLI's own).
        "status": "ok" if report.passed else "verification_failed",
        "reason": summary_line(report),
        "passed": report.passed,
        "identical": report.identical,
        "a": report.a,
        "b": report.b,
        "inputs": report.inputs,
        "settings": report.settings,
        "summary": {
            "outputs": len(results),
            "passed": sum(r.status == "pass" for r in results),
            "failed": sum(r.status == "fail" for r in results),
            "missing": sum(r.status == "missing" for r in results),
            "identical": sum(r.identical for r in results),
            "min_passing_atol": _finite_or_text(least["atol"]),
            "min_passing_rtol": _finite_or_text(least["rtol"]),
            "message": summary_line(report),
        },
        "outputs": [r.to_json() for r in results],
        "only_in_one_model": {
            "signatures": report.settings.get("signatures_only_in", {"A": [], "B": []}),
            "outputs": {side: list(dict.fromkeys(r.name for r in results if r.status == "missing"
                                                 and r.reason.endswith(f"only in {side}"))) for side in ("A", "B")},
        },
        "notes": list(report.notes),
        "other_sizes": [to_json(other) for other in report.other_sizes],
    }


def _finite_or_text(value):
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else "inf"
    return value


def write_json(report, path: str) -> None:
    """Write the JSON report to `path`, or to stdout when `path` is '-' (and then nothing else goes there)."""
    text = json.dumps(to_json(report), indent=2, sort_keys=False) + "\n"
    if path == "-":
        import sys
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    check_parent(path)
    with open(path, "w") as f:
        f.write(text)


def check_parent(path: str) -> None:
    """Refuse an output file whose directory does not exist (checked before the run, not after it)."""
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise InvalidInputError(f"{path}: directory {parent} does not exist; create it or choose another path")


class NpzWriter:
    """Writes arrays into an `.npz` one at a time (a zip of .npy files), so a streamed run needs no buffer.

    The file appears under its name only when complete (`close()`); `abort()` removes the partial file.
    """

    def __init__(self, path: str):
        path = os.fspath(path)
        if not path.endswith(".npz"):
            raise InvalidInputError(f"{path}: arrays are saved as .npz; pass a file name ending in .npz")
        check_parent(path)
        self.path = path
        self._partial = path + ".partial"
        self._zip = zipfile.ZipFile(self._partial, "w", compression=zipfile.ZIP_STORED, allowZip64=True)

    def add(self, name: str, array) -> None:
        if isinstance(array, dict):  # a batch of named tensors: one array per input
            for key, value in array.items():
                self.add(f"{name}/{key}", value)
            return
        with self._zip.open(name + ".npy", "w", force_zip64=True) as f:
            np.lib.format.write_array(f, np.asarray(array), allow_pickle=False)

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()
            self._zip = None
            os.replace(self._partial, self.path)

    def abort(self) -> None:
        if self._zip is not None:
            self._zip.close()
            self._zip = None
            os.remove(self._partial)
