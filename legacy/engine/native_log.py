"""Drop TensorFlow's known-harmless native log lines around the calls that print them, keep everything else.

Importing a TF1 module's GraphDef logs `graph_constructor.cc ... Importing a graph with a lower producer version`
once per import (60 lines for one module and a few calls), the first device use logs `failed call to cuInit`
on a machine without a GPU, and libpng warns `iCCP: known incorrect sRGB profile` for each PNG that carries an
old sRGB profile (the images bundled in testdata/ do). All come from C++ straight to file descriptor 2
(TF_CPP_MIN_LOG_LEVEL set after TensorFlow started does not stop them), so a Python user of the adapter or the shim would see them on every call.
Inside `quiet_native_log()` descriptor 2 goes to a temporary file; on exit the lines that match none of `NOISE`
are written back, in order. BRIDGE_DEBUG=1 turns the filter off.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import threading
from typing import Iterator

NOISE = (b"Importing a graph with a lower producer version", b"failed call to cuInit",
         b"iCCP: known incorrect sRGB profile")  # libpng, on PNGs saved with an old sRGB profile (harmless)
_LOCK = threading.RLock()  # descriptor 2 is process-wide: one filter at a time
_depth = 0


@contextlib.contextmanager
def quiet_native_log(noise: tuple = NOISE) -> Iterator[None]:
    global _depth
    if os.environ.get("BRIDGE_DEBUG", "") not in ("", "0"):
        yield
        return
    with _LOCK:
        if _depth:  # already filtered further up
            yield
            return
        _depth += 1
        try:
            sys.stderr.flush()
        except (AttributeError, ValueError):
            pass
        saved = os.dup(2)
        capture = tempfile.TemporaryFile()
        os.dup2(capture.fileno(), 2)
        try:
            _start_devices()
            yield
        finally:
            try:
                sys.stderr.flush()
            except (AttributeError, ValueError):
                pass
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = [line for line in capture.read().splitlines(keepends=True) if not any(n in line for n in noise)]
            capture.close()
            if kept:
                os.write(2, b"".join(kept))
            _depth -= 1


_started = False


def _start_devices() -> None:
    """Initialise TensorFlow's devices once, inside the filter (that is when cuInit reports no GPU)."""
    global _started
    if not _started and "tensorflow" in sys.modules:
        _started = True
        sys.modules["tensorflow"].config.list_logical_devices()


def start_devices() -> None:
    """Start TensorFlow's devices with the cuInit notice filtered: call before the first op of a code path."""
    if not _started:
        with quiet_native_log():
            pass
