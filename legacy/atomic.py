"""Write a directory atomically: it appears complete at its final path, or not at all.

Everything is written into a hidden temporary sibling of the destination and renamed into place at the end (a
rename within one directory is atomic on POSIX). An existing destination is replaced only with `force=True`, and
only once the new content is complete; until then the old one stays untouched.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from typing import Iterator

from legacy.errors import BridgeError, DestinationExistsError


def check_destination(dst: str, force: bool = False) -> None:
    """Fail early, before any work, when `dst` exists and may not be replaced, or its parent is unusable."""
    if os.path.lexists(dst) and not force:
        raise DestinationExistsError(f"{dst} already exists; pass --force (force=True) to replace it")
    if os.path.lexists(dst) and not os.path.isdir(dst):
        raise DestinationExistsError(f"{dst} exists and is not a directory; remove it or choose another destination")
    parent = os.path.dirname(os.path.abspath(dst))
    if not os.path.isdir(parent):
        raise BridgeError(f"the parent directory of {dst} does not exist; create {parent} first")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise BridgeError(f"cannot write into {parent} (permission denied); choose a writable destination")


@contextlib.contextmanager
def atomic_directory(dst: str, force: bool = False) -> Iterator[str]:
    """Yield a temporary directory to fill; on success it becomes `dst`, on any error it is removed."""
    dst = os.path.abspath(os.fspath(dst))
    check_destination(dst, force)
    parent, base = os.path.split(dst)
    try:
        tmp = tempfile.mkdtemp(prefix=f".{base}.partial-", dir=parent)
    except PermissionError:
        raise BridgeError(f"cannot write into {parent} (permission denied); choose a writable destination") from None
    try:
        yield tmp
        os.chmod(tmp, 0o755)
        if os.path.lexists(dst):
            if not force:  # appeared while we were working
                raise DestinationExistsError(f"{dst} already exists; pass --force (force=True) to replace it")
            old = tempfile.mkdtemp(prefix=f".{base}.old-", dir=parent)
            os.rename(dst, os.path.join(old, base))
            os.rename(tmp, dst)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, dst)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
