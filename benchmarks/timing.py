"""Timing and memory helpers: interleaved repetitions, medians, resident memory of this process."""

from __future__ import annotations

import math
import os
import resource
import statistics
import sys
import time
from typing import Callable, Mapping



def median(values) -> float:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else math.nan


def paired_ratio(a: list, b: list) -> tuple:
    """(median, lowest, highest) of a[i] / b[i]: each repetition's ratio of two contenders measured side by side.

    Their range shows how far the load of a shared machine moved a comparison from one repetition to the next.
    """
    ratios = [x / y for x, y in zip(a, b) if y > 0]
    return (median(ratios), min(ratios), max(ratios)) if ratios else (math.nan, math.nan, math.nan)


def interleaved(contenders: Mapping[str, Callable[[], object]], reps: int, min_seconds: float = 0.3,
                warmup: int = 1) -> dict:
    """Seconds per call of each contender: one sample per repetition, the contenders taking turns.

    Every contender is called `warmup` times first (tracing, Grappler and kernel caches are paid there). A sample
    times as many back-to-back calls as fit in `min_seconds` (calibrated on a warm call), so short calls are not
    dominated by timer noise. Repetition r starts at contender r (rotating order), so that drifting load on a
    shared machine hits every contender alike.
    """
    names = list(contenders)
    calls = {}
    for name in names:
        for _ in range(max(1, warmup)):
            elapsed = _timed(contenders[name])
        if elapsed < min_seconds:  # cheap call: calibrate on a call that no longer pays for the first one
            elapsed = _timed(contenders[name])
        calls[name] = max(1, math.ceil(min_seconds / max(elapsed, 1e-6)))
    samples = {name: [] for name in names}
    for rep in range(reps):
        shift = rep % len(names)
        for name in names[shift:] + names[:shift]:
            fn, n = contenders[name], calls[name]
            start = time.perf_counter()
            for _ in range(n):
                fn()
            samples[name].append((time.perf_counter() - start) / n)
    return samples


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def cpu_seconds() -> float:
    """User + system CPU time of this process so far: less sensitive than wall time to other processes' load."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_bytes() -> int:
    """Peak resident set size of this process so far (ru_maxrss; kilobytes on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def current_rss_bytes() -> int | None:
    """Resident set size right now (Linux /proc), or None where it cannot be read."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


class PhaseClock:
    """Records (seconds since start, message, peak RSS, CPU seconds since start) at each progress message."""

    def __init__(self):
        self.start = time.perf_counter()
        self.cpu_start = cpu_seconds()
        self.events: list = []

    def __call__(self, message: str) -> None:
        self.events.append((time.perf_counter() - self.start, message, peak_rss_bytes(),
                            cpu_seconds() - self.cpu_start))

    def first(self, prefix: str):
        """The first event whose message starts with `prefix`, or None."""
        for event in self.events:
            if event[1].startswith(prefix):
                return event
        return None


class PhaseTimer:
    """Exclusive wall time and peak-memory growth per phase, from functions wrapped at run time (nothing changes in
    the code measured).

        timer = PhaseTimer()
        timer.wrap(tf.saved_model, "save", "save")
        ...                                   # run the conversion
        timer.totals                          # {"save": 2.1, ...}: a phase nested in another is not counted twice
        timer.peak_growth                     # {"save": 96468992, ...}: bytes the process's peak RSS rose by in it
        timer.concurrent                      # {"run A": 0.9, ...}: phases run in worker threads, side by side

    `label` may be a function of the call's arguments (e.g. to tell the source runner from the converted one).
    Each thread nests its own phases; a phase that starts a worker thread's stack runs beside others (the parity
    harness runs both models at once), so its seconds go to `concurrent`, not into any exclusive total: the phase
    of the main thread that waits for the workers holds that wall time.
    """

    def __init__(self):
        import threading

        self.totals: dict = {}
        self.peak_growth: dict = {}
        self.concurrent: dict = {}
        self._local = threading.local()
        self._main = threading.main_thread()
        self._wrapped: list = []  # (owner, attr, original): what `restore` puts back

    @property
    def _stack(self) -> list:
        """This thread's open phases: [label, start, seconds in nested phases, peak RSS at start, nested growth]."""
        if not hasattr(self._local, "stack"):
            self._local.stack = []
        return self._local.stack

    def wrap(self, owner, attr: str, label) -> None:
        import functools
        import threading

        original = getattr(owner, attr)
        if getattr(original, "_phase_timer", None) is self:
            return

        @functools.wraps(original)
        def timed(*args, **kwargs):
            name = label(*args, **kwargs) if callable(label) else label
            stack = self._stack
            if name is None or (stack and stack[-1][0] == name):
                return original(*args, **kwargs)  # not a phase of its own, or a recursive call of one
            stack.append([name, time.perf_counter(), 0.0, peak_rss_bytes(), 0])
            try:
                return original(*args, **kwargs)
            finally:
                name, start, nested, peak_start, nested_growth = stack.pop()
                elapsed, growth = time.perf_counter() - start, peak_rss_bytes() - peak_start
                if stack or threading.current_thread() is self._main:
                    self.totals[name] = self.totals.get(name, 0.0) + elapsed - nested
                    self.peak_growth[name] = self.peak_growth.get(name, 0) + growth - nested_growth
                else:
                    self.concurrent[name] = self.concurrent.get(name, 0.0) + elapsed
                if stack:
                    stack[-1][2] += elapsed
                    stack[-1][4] += growth

        timed._phase_timer = self
        self._wrapped.append((owner, attr, vars(owner).get(attr, original) if isinstance(owner, type) else original))
        setattr(owner, attr, timed)

    def restore(self) -> None:
        """Put every wrapped function back (a process running several measurements measures each once)."""
        for owner, attr, original in reversed(self._wrapped):
            setattr(owner, attr, original)
        self._wrapped.clear()

    def rounded(self, total: float | None = None) -> dict:
        """Phase -> seconds (2 decimals), plus 'other' = `total` minus the phases, when given."""
        result = {k: round(v, 2) for k, v in self.totals.items()}
        if total is not None:
            result["other"] = round(total - sum(self.totals.values()), 2)
        return result

    def memory(self) -> dict:
        """Phase -> MiB (1 decimal) the process's peak RSS rose by during it, exclusive of nested phases."""
        return {k: round(v / 2**20, 1) for k, v in self.peak_growth.items()}
