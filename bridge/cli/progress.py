"""Progress on stderr: a bar (rich) on a terminal, plain lines otherwise, nothing with --quiet or --json.

The library functions report progress as text (`progress("batch 2/5: 16/40 images")`); `Reporter` turns batch
lines into a bar and shows the phase lines above it. The bar is off when stderr is not a terminal, so logs and
pipes get one line per phase, as before.
"""

from __future__ import annotations

import re
import sys

_BATCH = re.compile(r"batch (\d+)/(\d+)")


def _terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def _console():
    from rich.console import Console

    return Console(file=sys.stderr, highlight=False, markup=False)


class Bar:
    """A progress bar over `total` steps on a terminal (transient: it goes away when done); off otherwise."""

    def __init__(self, total: int, description: str, enabled: bool = True):
        self.total, self.description = total, description
        self.enabled = enabled and _terminal()
        self._progress = self._task = None

    def __enter__(self) -> "Bar":
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                      TimeElapsedColumn(), console=_console(), transient=True)
            self._progress.__enter__()
            self._task = self._progress.add_task(self.description, total=self.total)
        return self

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)
            self._progress = None

    def advance(self, completed: int | None = None, total: int | None = None) -> None:
        if self._progress is not None:
            if total is not None:
                self._progress.update(self._task, total=total)
            if completed is None:
                self._progress.advance(self._task)
            else:
                self._progress.update(self._task, completed=completed)

    def print(self, text: str, quiet: bool = False) -> None:
        """A line above the bar (or a plain line on stderr), unless quiet."""
        if quiet:
            return
        if self._progress is not None:
            self._progress.console.print(text)
        else:
            print(text, file=sys.stderr, flush=True)


class Reporter:
    """The `progress` callback of `bridge.convert`/`bridge.compare` for a command: phase lines prefixed with the
    command's name, "batch i/n" lines as a bar on a terminal."""

    def __init__(self, prog: str, bars: bool = True):
        self.prog, self.bars = prog, bars
        self.bar: Bar | None = None

    def __call__(self, message: str) -> None:
        match = _BATCH.search(message)
        if match and self.bars and _terminal():
            done, total = int(match.group(1)), int(match.group(2))
            if self.bar is None:
                self.bar = Bar(total, message[:match.start()].strip(" :") or "batches").__enter__()
            self.bar.advance(completed=done, total=total)
            if done >= total:
                self.close()
            return
        target = self.bar if self.bar is not None else Bar(0, "", enabled=False)
        target.print(f"{self.prog}: {' '.join(message.split())}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


def reporter(prog: str, *, quiet: bool = False, json_output: bool = False):
    """The progress callback for a command, or None when progress is off (--quiet)."""
    if quiet:
        return None
    return Reporter(prog, bars=not json_output)
