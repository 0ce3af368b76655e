"""Show a parity `Report`: a readable table, a JSON document, and `.npz` files written as the run streams.

The table has two parts: the error statistics per output, then the verdict per output with its tolerances and
the smallest tolerances that would have passed; it ends with the overall verdict.
"""

from __future__ import annotations

import json
import math
import os
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


def _render(header: list, rows: list, left: int = 1) -> list:
    """Aligned columns: the first `left` and the last column left-aligned, the numbers right-aligned."""
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows)]
    lines = []
    for row in [header] + rows:
        cells = [str(c).ljust(w) if i < left or i == len(row) - 1 else str(c).rjust(w)
                 for i, (c, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells).rstrip())
    return lines


def _shape(shape) -> str:
    return "-" if shape is None else "[" + ",".join(str(d) for d in shape) + "]"


_SECTIONS = (("inference", "inference (training=False)"), ("training", "training mode (training=True)"),
             ("gradients", "gradients of the seeded loss"),
             ("updates", "non-trainable variables after each training call (batch-norm updates)"))


def _sections(results: list, row) -> list:
    """One block of rows per mode, each headed by what the mode compares."""
    lines = []
    for mode, title in _SECTIONS:
        rows = [row(r) for r in results if r.mode == mode]
        rows = [r for r in rows if r is not None]
        if rows:
            lines.append((title, rows))
    return lines


def _stats_row(r):
    if not r.elements:  # nothing compared (missing, or no gradient): the verdict table says why
        return None
    top = "-" if r.top1 is None else _percent(r.top1) + ("" if r.top5 is None else f"/{_percent(r.top5)}")
    return [f"  {r.name}", _shape(r.shape), _num(r.max_abs), _num(r.mean_abs), _num(r.median_abs), _num(r.p99_abs),
            _num(r.max_rel), _num(r.mean_rel), _num(r.median_rel), _num(r.p99_rel), _cosine(r.cosine), top]


def _verdict_row(r):
    verdict = r.status.upper() + (f": {r.reason}" if r.reason else "")
    return [f"  {r.name}", _num(r.atol), _num(r.rtol), "-" if r.status == "missing" else str(r.failing),
            _num(r.min_atol), _num(r.min_rtol), verdict]


def _table(header: list, blocks: list) -> list:
    """Render blocks of rows under one header, so that every block shares the column widths."""
    rows, titles = [], []
    for title, block in blocks:
        titles.append(len(rows))
        rows.append(None)
        rows.extend(block)
    body = [r for r in rows if r is not None]
    rendered = _render(header, body)
    lines, k = [rendered[0]], 1
    title_iter = iter(blocks)
    for r in rows:
        if r is None:
            lines.append(next(title_iter)[0] + ":")
        else:
            lines.append(rendered[k])
            k += 1
    return lines


def format_table(report, full: bool = True) -> str:
    """The human-readable report: what ran, error statistics per output, verdicts, the overall result."""
    lines = [f"A (reference): {report.a['label']} [{report.a['format']}]",
             f"B:             {report.b['label']} [{report.b['format']}]",
             f"inputs:        {describe_inputs(report.inputs)}"]
    if report.inputs.get("resize"):
        lines.append(f"               image files: RGB in [0, 1], {report.inputs['resize']}")
    lines.append(f"compared:      signatures {', '.join(report.settings['signatures'])}; "
                 f"{', '.join(report.settings['modes'])}")
    lines.append(f"tolerance:     {report.settings['tolerance']['semantics']}")
    results = report.results
    if not results:
        return "\n".join(lines + ["", "FAIL: nothing was compared"])
    stats = _sections(results, _stats_row)
    if stats:
        lines += [""] + _table(["output", "shape", "max abs", "mean abs", "median abs", "p99 abs", "max rel",
                                "mean rel", "median rel", "p99 rel", "cosine", "top-1/5"], stats)
    lines += [""] + _table(["output", "atol", "rtol", "failing", "min atol", "min rtol", "verdict"],
                           _sections(results, _verdict_row))
    if not all(r.exact_quantiles for r in results):
        lines.append("(median and p99 of outputs with more than 65,536 elements are histogram upper bounds, "
                     "within 2.3%)")
    lines += [""] + [f"note: {n}" for n in report.notes]
    lines.append(summary_line(report))
    lines.append(minimum_line(report))
    return "\n".join(lines)


def describe_inputs(inputs: dict) -> str:
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
        return f"PASS: all {len(results)} outputs within tolerance ({tail})"
    failed = [r.name if r.mode == "inference" else f"{r.name} [{r.mode}]" for r in report.failures]
    shown = ", ".join(failed[:5]) + (f" and {len(failed) - 5} more" if len(failed) > 5 else "")
    return f"FAIL: {len(failed)} of {len(results)} outputs do not match ({passed} pass): {shown}"


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
