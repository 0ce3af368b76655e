"""Progress on stderr: a live status line and bar (rich) on a terminal, plain lines otherwise, nothing with --quiet;
no live line with --json.

The library functions report progress as text (`progress("batch 2/5: 16/40 images")`); `Reporter` shows the
current phase in a live line (a spinner and the elapsed time, a bar for batch lines) and the phase lines above
it. The live line is off when stderr is not a terminal, so logs and pipes get one line per phase, as before.
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
    """The `progress` callback of `bridge.convert`/`bridge.compare` for a command. On a terminal (and unless
    `bars=False`) one live line at the bottom shows the current phase with a spinner and the time it has taken,
    and becomes a bar for "batch i/n" lines; each phase line is also printed above it, so the log stays. Off a
    terminal, plain lines (one per phase and batch), as before. `close()` (or the `with` block) removes the live
    line before the command prints its result."""

    def __init__(self, prog: str, bars: bool = True):
        self.prog, self.bars = prog, bars and _terminal()
        self._progress = self._task = None

    def __enter__(self) -> "Reporter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _live(self):
        if self._progress is None:
            from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            self._progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                      TextColumn("{task.fields[count]}"), TimeElapsedColumn(), console=_console(),
                                      transient=True)
            self._task = self._progress.add_task("", total=None, count="")
            self._progress.start()
        return self._progress

    def _describe(self, text: str) -> str:
        from bridge.parity.report import terminal_width

        room = max(12, terminal_width() - 40)  # besides the spinner, bar, count and time
        return text if len(text) <= room else text[:room - 3] + "..."

    def __call__(self, message: str) -> None:
        from bridge.parity.report import wrap_lines

        text = " ".join(message.split())
        match = _BATCH.search(text)
        if match and self.bars:
            done, total = int(match.group(1)), int(match.group(2))
            label = text[:match.start()].strip(" :") or "batches"
            self._live().update(self._task, description=self._describe(label), total=total, completed=done,
                                count=f"{done}/{total}")
            return
        line = "\n".join(wrap_lines([f"{self.prog}: {text}"]))
        if not self.bars:
            print(line, file=sys.stderr, flush=True)
            return
        live = self._live()
        live.console.print(line)
        live.reset(self._task, description=self._describe(text), total=None, completed=0, count="")

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = self._task = None


def reporter(prog: str, *, quiet: bool = False, json_output: bool = False):
    """The progress callback for a command, or None when progress is off (--quiet)."""
    if quiet:
        return None
    return Reporter(prog, bars=not json_output)
