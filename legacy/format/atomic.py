"""Write a directory atomically: it appears complete at its final path, or not at all.

Everything is written into a hidden temporary sibling of the destination, `.<name>.partial-<pid>-<random>`, and
renamed into place at the end (a rename within one directory is atomic on POSIX). An existing destination is
replaced only with `force=True`, and only once the new content is complete: on Linux the two directories are
swapped in one step (`renameat2(RENAME_EXCHANGE)`), elsewhere the old one is moved aside just before the new one
moves in. Until then the old one stays untouched.

A process killed mid-write (SIGKILL, power loss) leaves its temporary directory behind. Each writer holds an
exclusive `flock` on its temporary directory while it works, so the next write to the same destination can tell
such leftovers (unlocked, their process gone) from another writer's work in progress, and removes them; an old
destination that a killed `force=True` write had moved aside is put back first.

    with atomic_directory("out/model", force=True) as tmp:
        write_everything_into(tmp)
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import re
import shutil
import tempfile
import time
from typing import Iterator

from legacy.errors import BridgeError, DestinationExistsError, spell
from legacy.format.conventions import foreign_entries, is_model_directory

PARTIAL = "partial"  # temporary directory being filled
OLD = "old"  # an old destination moved aside while --force replaces it (only where an atomic swap is missing)
# Leftovers whose name carries no process id (written by earlier versions) are removed once this old.
_UNOWNED_STALE_SECONDS = 3600.0
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def check_destination(dst: str, force: bool = False, protect=()) -> None:
    """Fail early, before any work, when `dst` exists and may not be replaced, or its parent is unusable.

    An empty directory is filled. `force` replaces only what `replaceable_reason` allows: a model directory, never the
    working directory, `/`, the home directory, an ancestor of the working directory or of a path in `protect`
    (the source), or a folder with other files in it. Leftovers of writers to `dst` that were killed are cleaned
    up first (see `remove_stale_temp_dirs`).
    """
    if not os.fspath(dst).strip():
        raise DestinationExistsError("the destination path is empty (''); pass the directory to write, e.g. out/model")
    refusal = protected_reason(dst, protect)
    if refusal:
        raise DestinationExistsError(f"{dst} {refusal}; choose a new or empty directory for the output")
    remove_stale_temp_dirs(dst)
    if os.path.islink(os.fspath(dst).rstrip(os.sep) or os.sep):  # `link/` names the link too
        raise DestinationExistsError(f"{dst} is a symbolic link; remove it, or pass the directory it points to")
    if os.path.lexists(dst) and not os.path.isdir(dst):
        raise DestinationExistsError(f"{dst} exists and is not a directory; remove it or choose another destination")
    if os.path.isdir(dst):
        refusal = replaceable_reason(dst)
        if refusal:
            raise DestinationExistsError(f"{dst} {refusal}; choose a new or empty directory for the output")
        if not force and os.listdir(dst):  # an empty directory is filled without ceremony
            raise DestinationExistsError(f"{dst} already exists; pass {spell('force=True', '--force')} to replace it")
    parent = os.path.dirname(os.path.abspath(dst))
    if not os.path.isdir(parent):
        raise BridgeError(f"the parent directory of {dst} does not exist; create {parent} first")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise BridgeError(f"cannot write into {parent} (permission denied); choose a writable destination")


def protected_reason(dst: str, protect=()) -> str | None:
    """Why `dst` may never be written over (it is `/`, home, the working directory or an ancestor of it or of a
    path in `protect`), or None. Checked whether or not `dst` exists: these paths are never a fresh output."""
    real = os.path.realpath(dst)
    if real == os.path.realpath(os.sep):
        return "is the root directory"
    if real == os.path.realpath(os.path.expanduser("~")):
        return "is the home directory"
    cwd = os.path.realpath(os.getcwd())
    if real == cwd:
        return "is the current directory"
    if cwd.startswith(real.rstrip(os.sep) + os.sep):
        return "contains the current directory"
    for path in protect:
        other = os.path.realpath(path)
        if other == real or other.startswith(real.rstrip(os.sep) + os.sep):
            return f"contains {os.fspath(path)}"
    return None


def replaceable_reason(path: str) -> str | None:
    """Why the existing directory `path` may not be replaced, or None when it is empty or holds a model (a TF1
    Hub module or a TF2 SavedModel) and nothing else: a model folder that also holds other files (a project with
    its saved_model.pb beside train.py) is never replaced, since replacing it would delete them."""
    try:
        entries = os.listdir(path)
        foreign = foreign_entries(path) if entries else []
    except OSError as e:
        return f"cannot be read ({e.strerror})"
    if not entries:
        return None
    if not is_model_directory(path):
        return "is a folder with other files in it, not a model, so it is never replaced"
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        return f"holds files that are not part of a model ({shown}), so it is never replaced"
    return None


def temp_prefix(dst: str, kind: str = PARTIAL) -> str:
    """The name prefix of the temporary siblings of `dst` (`.<name>.partial-` or `.<name>.old-`)."""
    return f".{os.path.basename(os.path.abspath(dst))}.{kind}-"


def _prefixes(dst: str) -> tuple:
    # The last one: temporary directories of writers nested in ours (a module written into our temporary directory
    # with force=True), which sit next to it as `..<name>.partial-<pid>-<random>.partial-...`.
    return temp_prefix(dst, PARTIAL), temp_prefix(dst, OLD), "." + temp_prefix(dst, PARTIAL)


def temp_siblings(dst: str) -> list:
    """Paths of the temporary directories of `dst` that exist now (ours, other writers', leftovers)."""
    parent = os.path.dirname(os.path.abspath(dst))
    prefixes = _prefixes(dst)
    try:
        names = os.listdir(parent)
    except OSError:
        return []
    return sorted(os.path.join(parent, n) for n in names if n.startswith(prefixes))


def remove_stale_temp_dirs(dst: str) -> list:
    """Remove temporary directories of `dst` left by writers that were killed; return the removed paths.

    A directory is stale when nobody holds its lock and the process named in it is gone (for names without a
    process id: when it is over an hour old). Another writer's work in progress is never touched.
    """
    dst = os.path.abspath(os.fspath(dst))
    removed = []
    for path in temp_siblings(dst):
        if not _is_stale(path, *_prefixes(dst)):
            continue
        moved_aside = os.path.join(path, os.path.basename(dst))
        if os.path.basename(path).startswith(temp_prefix(dst, OLD)) and not os.path.lexists(dst) \
                and os.path.isdir(moved_aside):
            # Killed between moving the old destination aside and moving the new one in: put the old one back.
            os.rename(moved_aside, dst)
        shutil.rmtree(path, ignore_errors=True)
        if not os.path.lexists(path):
            removed.append(path)
    return removed


def _is_stale(path: str, *prefixes: str) -> bool:
    if os.path.islink(path) or not os.path.isdir(path):
        return False
    fd = _try_lock(path)
    if fd is None:  # locked: a live writer is filling it
        return False
    try:
        name = os.path.basename(path)
        rest = next(name[len(p):] for p in prefixes if name.startswith(p))
        match = re.match(r"(\d+)-", rest)
        if match:
            return not _process_alive(int(match.group(1)))
        return time.time() - os.path.getmtime(path) > _UNOWNED_STALE_SECONDS
    except OSError:
        return False
    finally:
        os.close(fd)


def _try_lock(path: str) -> int | None:
    """An fd holding an exclusive lock on directory `path`, or None when someone else holds it (or it is gone)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True  # our own directories are locked while in use; an unlocked one may be about to be
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists but belongs to someone else
        return True
    return True


def _make_temp_dir(parent: str, prefix: str) -> tuple:
    """(path, fd holding its lock) of a new temporary directory named `<prefix><pid>-<random>`."""
    try:
        path = tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", dir=parent)
    except PermissionError:
        raise BridgeError(f"cannot write into {parent} (permission denied); choose a writable destination") from None
    fd = _try_lock(path)
    if fd is None:  # cannot happen for a directory just made, unless it was removed at once
        raise BridgeError(f"the temporary directory {path} vanished while being created; try again")
    return path, fd


def _exchange(a: str, b: str) -> bool:
    """Swap two paths in one atomic step (Linux renameat2); False where the system cannot do that."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False  # an old kernel or a file system without the flag
    raise OSError(err, os.strerror(err), b)


def _replace(tmp: str, dst: str) -> None:
    """Put the complete `tmp` at `dst`, which exists: swap them, then remove the old content."""
    if _exchange(tmp, dst):
        shutil.rmtree(tmp, ignore_errors=True)  # now holds the old destination
        return
    parent, base = os.path.split(dst)
    old, fd = _make_temp_dir(parent, temp_prefix(dst, OLD))
    try:
        os.rename(dst, os.path.join(old, base))
        os.rename(tmp, dst)
    finally:
        os.close(fd)
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def atomic_directory(dst: str, force: bool = False, protect=()) -> Iterator[str]:
    """Yield a temporary directory to fill; on success it becomes `dst`, on any error it is removed.

    Stale temporary directories of the same destination, left by killed writers, are removed first.
    """
    if not os.fspath(dst).strip():
        check_destination(dst, force)  # raises: an empty path would resolve to the working directory
    dst = os.path.abspath(os.fspath(dst))
    check_destination(dst, force, protect)
    parent = os.path.dirname(dst)
    tmp, fd = _make_temp_dir(parent, temp_prefix(dst, PARTIAL))
    try:
        yield tmp
        os.chmod(tmp, 0o755)
        if os.path.lexists(dst):
            check_destination(dst, force, protect)  # it appeared or changed while we were working
            _replace(tmp, dst)  # a model (force) or an empty directory
        else:
            os.rename(tmp, dst)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        os.close(fd)
