"""Keep the terminal for the bridge's own lines: TensorFlow's native log output and Python warnings are hidden.

TensorFlow 2.21 prints its start-up lines (`WARNING: All log messages before absl::InitializeLog()`, oneDNN,
`cudart_stub`, `cpu_feature_guard`, and on first use `E0000 ... failed call to cuInit`) from C++ straight to file
descriptor 2, whatever TF_CPP_MIN_LOG_LEVEL says (checked); so do graph imports (`graph_constructor.cc ... lower
producer version`) and libpng (`iCCP: known incorrect sRGB profile`). So while a command runs, descriptor 2 points
to /dev/null and Python's `sys.stderr` (the bridge's messages, progress bars, tracebacks) writes to a duplicate of
the real one. TensorFlow's Python logger (deprecations, tf.function retracing) is set to errors only, and Python
warnings are ignored. `--verbose` or BRIDGE_DEBUG=1 shows everything.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import warnings
from typing import Iterator


def debug_requested() -> bool:
    return os.environ.get("BRIDGE_DEBUG", "") not in ("", "0")


@contextlib.contextmanager
def quiet(enabled: bool = True) -> Iterator[None]:
    """Hide native stderr output, TensorFlow's Python log below ERROR and Python warnings inside the block."""
    if not enabled:
        yield
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # what the native logger does honour after start-up
    tf_logger = logging.getLogger("tensorflow")
    old_level = tf_logger.level
    tf_logger.setLevel(logging.ERROR)
    sys.stderr.flush()
    try:
        owns_fd2 = sys.stderr.fileno() == 2
    except (AttributeError, OSError, io.UnsupportedOperation, ValueError):
        owns_fd2 = False  # a captured stream (tests): Python's messages go to it, only fd 2 is silenced
    saved = os.dup(2)
    old_stderr = sys.stderr
    if owns_fd2:
        sys.stderr = open(os.dup(saved), "w", buffering=1, encoding=getattr(old_stderr, "encoding", None) or "utf-8",
                          errors="backslashreplace")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        if owns_fd2:
            sys.stderr.close()
            sys.stderr = old_stderr
        tf_logger.setLevel(old_level)
