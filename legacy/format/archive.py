"""Models given as a directory, a `.tar.gz` archive or a TF Hub handle, as a local directory to read.

    with resolve_model_path("mobilenet.tar.gz") as path:       # extracted into a temporary directory
        module = read_module(path)
    with resolve_model_path("https://tfhub.dev/google/imagenet/mobilenet_v2_100_224/feature_vector/4") as path:
        ...                                                      # the copy in TFHUB_CACHE_DIR, never downloaded

The TF Hub compressed format is a gzipped tar whose members are the model's files at the archive root
(`saved_model.pb`, `variables/...`); an archive holding one directory with the model is accepted too. Extraction
trusts nothing in the archive: absolute names, `..` components, links that leave their directory, device files,
FIFOs, repeated names, oversized extended headers and archives expanding beyond `BRIDGE_MAX_ARCHIVE_BYTES`
(default 16 GiB) are refused with one clear error, before anything is written outside a fresh temporary directory,
which is removed afterwards.

Handles (http(s):// URLs, gs://...tar.gz) resolve through `tensorflow_hub.resolve` exactly as `hub.load` would,
but only when the model is already in the TF Hub cache (TFHUB_CACHE_DIR, else <tmp>/tfhub_modules, under
sha1(handle)): the bridge does not download.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import lzma
import os
import shutil
import stat
import struct
import tarfile
import tempfile
import zlib
from typing import Iterator

from legacy.errors import BridgeError, ModelNotCachedError, ModuleFormatError, UnsafeArchiveError
from legacy.format.conventions import MODEL_FILENAMES, holds_model

MAX_BYTES_ENV = "BRIDGE_MAX_ARCHIVE_BYTES"
DEFAULT_MAX_BYTES = 16 * 1024 ** 3  # well above the largest TF Hub image models (a few GB)
MAX_MEMBERS = 100_000
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")
HANDLE_SCHEMES = ("http://", "https://", "gs://")
_CHUNK = 1 << 20
_MAX_METADATA = 1 << 20  # pax headers and GNU long names: tarfile reads each into memory whole
# What a corrupt or truncated compressed stream raises while tarfile reads it (a gzip header cut short makes
# tarfile call ord() on nothing: a TypeError).
_CORRUPT = (tarfile.ReadError, EOFError, zlib.error, gzip.BadGzipFile, lzma.LZMAError, TypeError, struct.error)


def max_archive_bytes() -> int:
    """The extraction size limit: BRIDGE_MAX_ARCHIVE_BYTES when set, else DEFAULT_MAX_BYTES."""
    text = os.environ.get(MAX_BYTES_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_BYTES
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value <= 0:
        raise BridgeError(f"{MAX_BYTES_ENV}={text!r} is not a positive number of bytes; set it to e.g. "
                          f"{DEFAULT_MAX_BYTES} or unset it")
    return value


def is_handle(text: str) -> bool:
    """Whether `text` is a TF Hub handle (a URL) rather than a local path."""
    return text.startswith(HANDLE_SCHEMES)


def is_archive(path: str) -> bool:
    """Whether `path` is a file that looks like a (compressed) tar: by its name or its leading bytes."""
    if not os.path.isfile(path):
        return False
    if path.lower().endswith(ARCHIVE_SUFFIXES):
        return True
    try:
        with open(path, "rb") as f:
            head = f.read(262)
    except OSError:
        return False
    return head.startswith(b"\x1f\x8b") or head[257:262] == b"ustar"


@contextlib.contextmanager
def resolve_model_path(model, max_bytes: int | None = None) -> Iterator:
    """Yield a local directory for `model`: a directory as it is, an archive extracted, a cached handle resolved.

    Anything else (a missing path, a plain file, an in-memory object) is yielded unchanged, so that the format
    check reports it; callers can pass whatever they were given. Extracted files are removed on exit.
    """
    if not isinstance(model, (str, os.PathLike)):
        yield model
        return
    path = os.fspath(model)
    if is_handle(path):
        yield resolve_cached_handle(path)
    elif is_archive(path):
        tmp = tempfile.mkdtemp(prefix="bridge-archive-")
        try:
            extract_archive(path, tmp, max_bytes=max_bytes)
            yield _model_root(path, tmp)
        except BridgeError as e:
            # Errors about the extracted files name the archive, not the temporary directory that is gone.
            message = str(e)
            if tmp not in message:
                raise
            message = message.replace(tmp + os.sep, f"{path}:").replace(tmp, path)
            raise type(e)(message).with_traceback(e.__traceback__) from None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    else:
        yield path


def _model_root(archive: str, root: str) -> str:
    """The directory inside an extracted archive that holds the model: its root, or its only subdirectory."""
    if holds_model(root):
        return root
    entries = os.listdir(root)
    if len(entries) == 1:
        inner = os.path.join(root, entries[0])
        if os.path.isdir(inner) and not os.path.islink(inner) and holds_model(inner):
            return inner
    raise ModuleFormatError(
        f"{archive} holds no model: neither {' nor '.join(MODEL_FILENAMES)} at its root; pack the model directory's "
        "contents, e.g. tar -czf model.tar.gz -C model_dir .")


# -- extraction ---------------------------------------------------------------------------------------------------


def extract_archive(archive: str, dst: str, max_bytes: int | None = None) -> None:
    """Extract a (gzipped) tar into the existing directory `dst`, refusing anything that could escape it.

    Regular files get mode 0644 (owner, setuid bits and times from the archive are ignored), directories 0755.
    Symbolic links are kept only when they point down into their own directory; hard links become copies.
    """
    limit = max_archive_bytes() if max_bytes is None else max_bytes
    root = os.path.realpath(dst)
    state = _Extraction(archive, root, limit)
    try:
        # A stream: each header is checked as it arrives, before its data is read.
        with tarfile.open(archive, mode="r|*", tarinfo=_GuardedTarInfo) as tar:
            for member in tar:
                state.add(tar, member)
    except UnsafeArchiveError:
        raise
    except _CORRUPT as e:
        raise ModuleFormatError(f"{archive} is not a readable tar or .tar.gz archive, or it is truncated "
                                f"({_reason(e)}); re-download it") from None
    except OSError as e:
        raise BridgeError(f"extracting {archive} into {dst} failed ({e.strerror or e}); free some space in "
                          f"{tempfile.gettempdir()} (or set TMPDIR to a larger disk)") from None


class _GuardedTarInfo(tarfile.TarInfo):
    """Refuses oversized metadata blocks, which tarfile would read into memory before any check of ours."""

    _METADATA_TYPES = (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE, tarfile.GNUTYPE_LONGNAME,
                       tarfile.GNUTYPE_LONGLINK)

    def _proc_member(self, tar):
        if self.type in self._METADATA_TYPES and self.size > _MAX_METADATA:
            raise UnsafeArchiveError(
                f"{tar.name}: an extended header of {self.size} bytes precedes member {self.name!r} (at most "
                f"{_MAX_METADATA} are accepted); refused before reading it: re-create the archive")
        return super()._proc_member(tar)


def _reason(e: Exception) -> str:
    text = " ".join(str(e).split())
    return text or type(e).__name__


class _Extraction:
    """The checks and bookkeeping of one extraction."""

    def __init__(self, archive: str, root: str, limit: int):
        self.archive = archive
        self.root = root
        self.limit = limit
        self.total = 0
        self.count = 0
        self.files = set()  # relative paths of extracted non-directories

    def refuse(self, name: str, problem: str, fix: str = "only extract archives from sources you trust, "
                                                           "re-created without it") -> None:
        raise UnsafeArchiveError(f"{self.archive}: member {name!r} {problem}; refused before extracting it: {fix}")

    def add(self, tar, member) -> None:
        self.count += 1
        if self.count > MAX_MEMBERS:
            self.refuse(member.name, f"is beyond the limit of {MAX_MEMBERS} archive entries",
                        "a model archive holds a few files; re-create it from the model directory")
        rel = self.relative_name(member.name)
        if rel is None:  # the archive root itself ("." or "./")
            return
        if member.isdir():
            self.make_parents(member.name, rel, include_self=True)
            return
        if rel in self.files:
            self.refuse(member.name, "appears twice in the archive", "re-create the archive")
        if member.ischr() or member.isblk():
            self.refuse(member.name, "is a device file")
        if member.isfifo():
            self.refuse(member.name, "is a FIFO")
        target = self.make_parents(member.name, rel)
        if os.path.lexists(target):
            self.refuse(member.name, "would replace an entry extracted before it", "re-create the archive")
        if member.isreg():
            self.count_bytes(member.name, member.size)
            with tar.extractfile(member) as src:
                self.write(member.name, target, src, member.size)
        elif member.issym():
            self.check_link(member.name, rel, member.linkname)
            os.symlink(member.linkname, target)
        elif member.islnk():  # a hard link names an earlier member: copy that file
            source_rel = self.relative_name(member.linkname)
            source = os.path.join(self.root, source_rel) if source_rel else None
            if source_rel not in self.files or source is None or not os.path.isfile(source) or \
                    os.path.islink(source):
                self.refuse(member.name, f"is a hard link to {member.linkname!r}, which is not a file extracted "
                                         "before it")
            size = os.path.getsize(source)
            self.count_bytes(member.name, size)
            with open(source, "rb") as src:
                self.write(member.name, target, src, size)
        else:
            self.refuse(member.name, f"has an unsupported type ({member.type!r})")
        self.files.add(rel)

    def relative_name(self, name: str) -> str | None:
        """The member's path relative to the root, or a refusal for absolute and `..` names."""
        if name.startswith("/"):
            self.refuse(name, "has an absolute path")
        parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
        if ".." in parts:
            self.refuse(name, "has '..' in its path, which would put it outside the extraction directory")
        if "\0" in name:
            self.refuse(name, "has a NUL byte in its name")
        return "/".join(parts) or None

    def make_parents(self, name: str, rel: str, include_self: bool = False) -> str:
        """Create the member's directories and check that they resolve inside the root; return its target path."""
        target = os.path.join(self.root, rel)
        directory = target if include_self else os.path.dirname(target)
        if os.path.lexists(directory) and not os.path.isdir(directory):
            self.refuse(name, "needs a directory where the archive has a file", "re-create the archive")
        os.makedirs(directory, mode=0o755, exist_ok=True)
        real = os.path.realpath(directory)
        if real != self.root and not real.startswith(self.root + os.sep):
            self.refuse(name, "would be written through a link to outside the extraction directory")
        return target

    def check_link(self, name: str, rel: str, link: str) -> None:
        # A link may only point down into its own directory: with no absolute targets and no '..', no chain of
        # links (whatever order they come in) can lead outside the root.
        if os.path.isabs(link) or ".." in link.replace("\\", "/").split("/"):
            self.refuse(name, f"is a link to {link!r}, outside its directory",
                        "re-create the archive without links (tar --dereference)")
        real = os.path.realpath(os.path.join(self.root, os.path.dirname(rel), link))
        if real != self.root and not real.startswith(self.root + os.sep):
            self.refuse(name, f"is a link to {link!r}, which resolves outside the extraction directory",
                        "re-create the archive without links (tar --dereference)")

    def count_bytes(self, name: str, size: int) -> None:
        self.total += size
        if self.total > self.limit:
            self.refuse(name, f"takes the archive beyond {self.limit} bytes when extracted",
                        f"if you trust the archive, raise the limit with {MAX_BYTES_ENV}=<bytes>")

    def write(self, name: str, target: str, src, size: int) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        fd = os.open(target, flags, stat.S_IRUSR | stat.S_IWUSR | stat.S_IRGRP | stat.S_IROTH)
        written = 0
        with os.fdopen(fd, "wb") as out:
            while True:
                chunk = src.read(_CHUNK)
                if not chunk:
                    break
                written += len(chunk)
                if written > size:  # never more than the header declared (and the limit counted)
                    self.refuse(name, "holds more data than its header declares", "re-download the archive")
                out.write(chunk)


# -- TF Hub handles ------------------------------------------------------------------------------------------------


def tfhub_cache_dir() -> str:
    """Where tensorflow_hub caches models: TFHUB_CACHE_DIR, else <tmp>/tfhub_modules (as `hub.resolve` does)."""
    return os.environ.get("TFHUB_CACHE_DIR") or os.path.join(tempfile.gettempdir(), "tfhub_modules")


def cached_handle_dir(handle: str) -> str:
    """The directory tensorflow_hub 0.16 keeps `handle` in: <cache>/sha1(handle)."""
    return os.path.join(tfhub_cache_dir(), hashlib.sha1(handle.encode("utf8")).hexdigest())


def resolve_cached_handle(handle: str) -> str:
    """The local directory of a handle already in the TF Hub cache, via `tensorflow_hub.resolve`, offline."""
    module_dir = cached_handle_dir(handle)
    fix = (f"fetch it once where downloads are allowed (python -c \"import tensorflow_hub as hub; "
           f"hub.resolve('{handle}')\" with the same TFHUB_CACHE_DIR), or pass the model directory or its .tar.gz")
    if handle.startswith("gs://") and not handle.lower().endswith(ARCHIVE_SUFFIXES):
        raise ModelNotCachedError(f"{handle} is a cloud storage directory, which is read over the network and never "
                                  "cached; copy it to a local directory and pass that")
    if os.environ.get("TFHUB_MODEL_LOAD_FORMAT", "").upper() == "UNCOMPRESSED" and handle.startswith("http"):
        raise ModelNotCachedError(f"TFHUB_MODEL_LOAD_FORMAT=UNCOMPRESSED makes tensorflow_hub read {handle} over the "
                                  "network instead of from its cache; unset it")
    if not os.path.isdir(module_dir) or not os.listdir(module_dir):
        raise ModelNotCachedError(f"{handle} is not in the TF Hub cache ({tfhub_cache_dir()}) and the bridge does "
                                  f"not download; {fix}")
    # tensorflow_hub finds a complete cache entry (a non-empty directory) before it would touch the network.
    try:
        import tensorflow_hub as hub
    except ImportError as e:
        raise BridgeError(f"resolving TF Hub handles needs tensorflow_hub ({e}); pip install tensorflow-hub, or "
                          f"pass the cached directory {module_dir}") from None
    resolved = hub.resolve(handle)
    if os.path.realpath(resolved) != os.path.realpath(module_dir):
        raise BridgeError(f"tensorflow_hub resolved {handle} to {resolved}, not to its cache entry {module_dir}; "
                          f"pass the model directory instead")
    return resolved
