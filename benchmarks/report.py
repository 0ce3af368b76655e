"""Results of a benchmark run: tables, targets, the machine description, and how they are printed and written."""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import os
import platform
import sys

MIB = 1024 * 1024


@dataclasses.dataclass
class Row:
    """One line of a table: `cells` as shown (the first is the label), `data` the numbers behind them."""

    key: str
    cells: list
    data: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Table:
    key: str
    title: str
    columns: list
    rows: list = dataclasses.field(default_factory=list)
    notes: list = dataclasses.field(default_factory=list)
    errors: list = dataclasses.field(default_factory=list)  # measurements that failed (their rows say "failed")

    def row(self, key: str) -> Row:
        for row in self.rows:
            if row.key == key:
                return row
        raise KeyError(f"table {self.key!r} has no row {key!r}; rows: {', '.join(r.key for r in self.rows)}")


@dataclasses.dataclass
class Target:
    """A performance goal (issue 8), what was measured against it, and whether it was met (None: not measured)."""

    key: str
    goal: str
    measured: str
    met: bool | None


@dataclasses.dataclass
class Results:
    settings: dict
    machine: dict
    model: dict
    tables: list = dataclasses.field(default_factory=list)
    targets: list = dataclasses.field(default_factory=list)
    errors: list = dataclasses.field(default_factory=list)
    seconds: float = 0.0

    def table(self, key: str) -> Table:
        for table in self.tables:
            if table.key == key:
                return table
        raise KeyError(f"no table {key!r}; have {', '.join(t.key for t in self.tables)}")

    def to_json(self) -> dict:
        return _finite(dataclasses.asdict(self))

    def markdown(self, header: bool = True) -> str:
        lines = []
        if header:
            when = self.settings.get("date", "")
            command = " ".join(["benchmarks/run.py"] + ([self.settings["args"]] if self.settings.get("args") else []))
            lines += ["# Benchmark results", "",
                      f"Written by `make bench` (`{command}`) on {when}, in {self.seconds / 60:.1f} min. Regenerate "
                      "it rather than editing it; `benchmarks/run.py --help` says what each number is.", ""]
            lines += ["## Machine", ""] + [f"- {k}: {v}" for k, v in self.machine.items()] + [""]
            lines += ["## Model", ""] + [f"- {k}: {v}" for k, v in self.model.items()] + [""]
            lines += ["## Method", ""] + [f"- {k}: {v}" for k, v in self.settings.get("method", {}).items()] + [""]
        for table in self.tables:
            lines += [f"## {table.title}", "", *markdown_table(table.columns, [r.cells for r in table.rows]), ""]
            lines += [f"- {note}" for note in table.notes]
            if table.notes:
                lines.append("")
        if self.targets:
            lines += ["## Targets", "", *markdown_table(
                ["target", "measured", "met"],
                [[t.goal, t.measured, {True: "yes", False: "**no**", None: "not measured"}[t.met]]
                 for t in self.targets]), ""]
        if self.errors:
            lines += ["## Errors", ""] + [f"- {e}" for e in self.errors] + [""]
        return "\n".join(lines).rstrip() + "\n"


def markdown_table(columns: list, rows: list) -> list:
    """A Markdown pipe table, padded so that it also reads well as plain text."""
    rows = [[str(c) for c in row] + [""] * (len(columns) - len(row)) for row in rows]
    widths = [max([len(str(c))] + [len(r[i]) for r in rows]) for i, c in enumerate(columns)]
    fmt = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return [fmt([str(c) for c in columns]), rule] + [fmt(r) for r in rows]


def _finite(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


# -- formatting numbers --------------------------------------------------------------------------------------------


def ms(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "-"
    value = seconds * 1000
    return f"{value:.0f} ms" if value >= 100 else f"{value:.1f} ms" if value >= 10 else f"{value:.2f} ms"


def secs(seconds: float) -> str:
    return "-" if seconds is None or not math.isfinite(seconds) else f"{seconds:.1f} s"


def ratio(value: float) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.2f}x"


def mib(n_bytes) -> str:
    return "-" if n_bytes is None else f"{n_bytes / MIB:.0f} MiB"


# -- the machine ---------------------------------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_total() -> str:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def _version(module: str) -> str:
    try:
        from importlib import metadata
        return metadata.version(module)
    except Exception:  # noqa: BLE001  (any failure means: not installed)
        return "not installed"


def load_average() -> str:
    try:
        return " / ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def machine(load_at_start: str) -> dict:
    """What the numbers were measured on. CPU contention matters most: the load averages say how busy it was."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "CPU": f"{_cpu_model()}, {os.cpu_count()} logical CPUs ({usable} usable by the benchmark)",
        "memory": _memory_total(),
        "OS": platform.platform(),
        "Python": platform.python_version(),
        "TensorFlow": _version("tensorflow") + f" (tensorflow-hub {_version('tensorflow-hub')}, tf-keras "
                                               f"{_version('tf-keras')}, numpy {_version('numpy')})",
        "TensorFlow threads": "defaults (intra-op and inter-op pools sized to the CPUs)",
        "load average (1/5/15 min)": f"{load_at_start} at start, {load_average()} at the end",
    }


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def write(results: Results, path: str | None = None, json_path: str | None = None) -> None:
    if path:
        with open(path, "w") as f:
            f.write(results.markdown())
    if json_path:
        with open(json_path, "w") as f:
            json.dump(results.to_json(), f, indent=1)
            f.write("\n")


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)
