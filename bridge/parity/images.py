"""Inputs for a parity run: image files and folders, `.npy`/`.npz` arrays, seeded random images, as streamed batches.

    inputs = collect_inputs(["photos/", "extra.npy"], random=8, seed=0, image_size=(224, 224), batch_size=16)
    for batch in inputs.batches():     # float32 [n, 224, 224, 3] in [0, 1], one batch in memory at a time
        ...

The image input convention of TF Hub image models (TF1 and TF2 alike): RGB float32 NHWC with values in [0, 1].
Image files are decoded with `tf.io.decode_image(expand_animations=False)` (a GIF gives its first frame; 16-bit
PNGs with `tf.io.decode_png(dtype=tf.uint16)`, as decode_image would reduce them to 8 bits), grayscale
is repeated to RGB, alpha is dropped, values are scaled to [0, 1] with `tf.image.convert_image_dtype`, and the image
is resized to the model's expected size with `tf.image.resize(method="bilinear", antialias=False)`: no crop, the
aspect ratio is not kept. This is how the corpus' golden inputs were made (testdata/README.md), bit for bit.
Arrays are taken as they are (float, [N, H, W, 3] or one [H, W, 3] image), never resized.

`InputSet.batches()` can be called again for a second pass: files are re-read, the random stream restarts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import tokenize
import zipfile
import zlib
from typing import Iterable, Iterator, Sequence

import numpy as np

from legacy.errors import InvalidInputError
from legacy.format.conventions import parse_image_size  # noqa: F401  (the one image-size grammar)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp")
ARRAY_EXTENSIONS = (".npy", ".npz")
RESIZE_METHOD = "bilinear"
RESIZE_DESCRIPTION = "tf.image.resize(method='bilinear', antialias=False) to the expected size, aspect ratio not kept"
DEFAULT_BATCH_SIZE = 8
DEFAULT_VAL_RANGE = (0.0, 1.0)
# Leading bytes of the formats tf.io.decode_image reads, to refuse a non-image before any model runs.
_MAGIC = ((b"\xff\xd8\xff", "JPEG"), (b"\x89PNG\r\n\x1a\n", "PNG"), (b"GIF87a", "GIF"), (b"GIF89a", "GIF"),
          (b"BM", "BMP"))
_FIX = "remove it or replace it with a JPEG, PNG, GIF or BMP image"


@dataclasses.dataclass
class Batch:
    """One batch: the images, where each came from, and the index of the first image in the whole run."""

    images: np.ndarray  # float32 [n, height, width, 3]
    names: list
    start: int


@dataclasses.dataclass(frozen=True)
class ImageFile:
    """An image file among the inputs (one image)."""

    path: str
    count: int = 1


@dataclasses.dataclass(frozen=True)
class ArrayFile:
    """An .npy, or one array of an .npz, among the inputs: read in slices, never whole."""

    path: str
    key: str | None  # the array inside an .npz, None for an .npy
    shape: tuple  # [N, H, W, 3] (a single [H, W, 3] image is read as N = 1)

    @property
    def count(self) -> int:
        return self.shape[0]


@dataclasses.dataclass(frozen=True)
class InMemoryArray:
    """An array given in memory (Python API), with the label reports show for it."""

    array: np.ndarray
    label: str

    @property
    def count(self) -> int:
        return self.array.shape[0]


@dataclasses.dataclass(frozen=True)
class _Random:
    count: int
    seed: int
    val_range: tuple


class Batched:
    """Inputs streamed in batches of at most `batch_size` (images, sentences or named tensors): the batch size
    every input set checks, and the number of batches; subclasses give `__len__`."""

    def __init__(self, batch_size: int):
        if batch_size < 1:
            raise InvalidInputError(f"batch size must be at least 1, got {batch_size}; pass --batch-size 1 or more")
        self.batch_size = batch_size

    def __len__(self) -> int:
        raise NotImplementedError

    @property
    def num_batches(self) -> int:
        return -(-len(self) // self.batch_size)


class InputSet(Batched):
    """A re-iterable list of input sources, streamed as float32 NHWC batches of at most `batch_size` images."""

    def __init__(self, sources: list, image_size: tuple | None, batch_size: int, skipped: list | None = None):
        super().__init__(batch_size)
        self._sources = sources
        self.image_size = image_size
        self.skipped = list(skipped or [])  # files in folders left out because their extension is not an image's

    def __len__(self) -> int:
        return sum(s.count for s in self._sources)

    def fill_last_batch(self, seed: int, val_range: Sequence[float] = DEFAULT_VAL_RANGE) -> int:
        """Make the number of images a multiple of the batch size (for a model that takes batches of exactly that
        many) with more seeded random images: the random images' count grows (those asked for stay as they were,
        the stream just goes on), or random images are added after the others. Nothing is dropped; returns how
        many were added."""
        missing = -len(self) % self.batch_size
        if not missing:
            return 0
        for i in reversed(range(len(self._sources))):
            if isinstance(self._sources[i], _Random):
                self._sources[i] = dataclasses.replace(self._sources[i], count=self._sources[i].count + missing)
                return missing
        self._sources.append(_Random(missing, int(seed), tuple(float(v) for v in val_range)))
        return missing

    def describe(self) -> dict:
        """What was fed, for the report."""
        kinds = {"image files": 0, "array images": 0, "random images": 0}
        for s in self._sources:
            key = ("image files" if isinstance(s, ImageFile) else "random images" if isinstance(s, _Random)
                   else "array images")
            kinds[key] += s.count
        randoms = [s for s in self._sources if isinstance(s, _Random)]
        return {
            "images": len(self),
            "batches": self.num_batches,
            "batch_size": self.batch_size,
            "image_size": list(self.image_size) if self.image_size else None,
            "image_files": kinds["image files"],
            "array_images": kinds["array images"],
            "random_images": kinds["random images"],
            "random": [{"count": r.count, "seed": r.seed, "val_range": list(r.val_range)} for r in randoms],
            "resize": RESIZE_DESCRIPTION if kinds["image files"] else None,
            "skipped_files": self.skipped,
        }

    def batches(self) -> Iterator[Batch]:
        """Yield the inputs batch by batch; only the current batch (and one array chunk) is held in memory."""
        pending, names, start = [], [], 0
        for images, labels in self._chunks():
            offset = 0
            while offset < len(images):
                take = min(self.batch_size - sum(len(p) for p in pending), len(images) - offset)
                pending.append(images[offset:offset + take])
                names.extend(labels[offset:offset + take])
                offset += take
                if sum(len(p) for p in pending) == self.batch_size:
                    yield self._make_batch(pending, names, start)
                    start += self.batch_size
                    pending, names = [], []
        if pending:
            yield self._make_batch(pending, names, start)

    def _make_batch(self, pending: list, names: list, start: int) -> Batch:
        shapes = {p.shape[1:] for p in pending}
        if len(shapes) > 1:
            raise InvalidInputError(
                f"images {names[0]} ... {names[-1]} have different sizes "
                f"({', '.join(sorted('x'.join(map(str, s[:2])) for s in shapes))}) and cannot share a batch; "
                "pass --image-size HxW (image files are resized to it) or arrays of one size")
        return Batch(np.ascontiguousarray(np.concatenate(pending), dtype=np.float32), list(names), start)

    def _chunks(self) -> Iterator[tuple]:
        for source in self._sources:
            if isinstance(source, ImageFile):
                yield load_image(source.path, self.image_size)[None], [source.path]
            elif isinstance(source, ArrayFile):
                yield from self._array_file_chunks(source)
            elif isinstance(source, InMemoryArray):
                yield source.array, [f"{source.label}[{i}]" for i in range(source.count)]
            else:
                yield from self._random_chunks(source)

    def _array_file_chunks(self, source: ArrayFile) -> Iterator[tuple]:
        label = source.path if source.key is None else f"{source.path}:{source.key}"
        if source.key is None:
            array = np.load(source.path, mmap_mode="r", allow_pickle=False)  # memory-mapped: read per chunk
            if array.ndim == 3:
                array = array[None]
            for offset in range(0, len(array), self.batch_size):
                chunk = np.asarray(array[offset:offset + self.batch_size], dtype=np.float32)
                yield chunk, [f"{label}[{i}]" for i in range(offset, offset + len(chunk))]
            return
        offset = 0
        for chunk in read_npz_member(source.path, source.key, self.batch_size):
            yield chunk, [f"{label}[{i}]" for i in range(offset, offset + len(chunk))]
            offset += len(chunk)

    def _random_chunks(self, source: _Random) -> Iterator[tuple]:
        if self.image_size is None:
            raise InvalidInputError("random images need an image size and neither model records one; "
                                    "pass --image-size HxW")
        rng = np.random.default_rng(source.seed)
        low, high = source.val_range
        height, width = self.image_size
        for offset in range(0, source.count, self.batch_size):
            n = min(self.batch_size, source.count - offset)
            chunk = rng.uniform(low, high, size=(n, height, width, 3)).astype(np.float32)
            yield chunk, [f"random(seed={source.seed})[{i}]" for i in range(offset, offset + n)]


def collect_inputs(images=None, *, random: int | None = None, seed: int = 0,
                   val_range: Sequence[float] = DEFAULT_VAL_RANGE, image_size: tuple | None = None,
                   batch_size: int = DEFAULT_BATCH_SIZE) -> InputSet:
    """An `InputSet` from paths (files, folders, .npy, .npz) or arrays, then `random` seeded uniform images.

    Everything is checked before any model runs (paths exist, files look like images, arrays have an image shape),
    except the decoding itself, which happens batch by batch.
    """
    sources, skipped = [], []
    if images is not None:
        for item in _as_items(images):
            if isinstance(item, np.ndarray):
                sources.append(InMemoryArray(_check_array(item, "array", image_size), "array"))
            else:
                found, left_out = _sources_for_path(os.fspath(item), image_size)
                sources.extend(found)
                skipped.extend(left_out)
    if random is not None:
        if random < 0:
            raise InvalidInputError(f"--random takes a number of images (0 or more), got {random}")
        low, high = (float(v) for v in val_range)
        if not low < high:
            raise InvalidInputError(f"value range {low},{high} is empty; pass --val-range LOW,HIGH with LOW < HIGH")
        if random:
            sources.append(_Random(int(random), int(seed), (low, high)))
    inputs = InputSet(sources, image_size, batch_size, skipped)
    if not len(inputs):
        raise InvalidInputError("no input images: pass image files or folders, .npy/.npz arrays, or --random N")
    return inputs


def _as_items(images) -> list:
    """The input sources as a list of paths and numpy arrays (a tensor becomes an array)."""
    if isinstance(images, (str, os.PathLike, np.ndarray)) or hasattr(images, "numpy"):
        images = [images]
    if isinstance(images, Iterable):
        return [np.asarray(item.numpy()) if hasattr(item, "numpy") else item for item in images]
    raise InvalidInputError(f"images must be paths or numpy arrays, got {type(images).__name__}")


def _sources_for_path(path: str, image_size) -> tuple:
    if not os.path.exists(path):
        raise InvalidInputError(f"{path}: no such file or directory; check the input path")
    if os.path.isdir(path):
        files, skipped = list_image_files(path)
        if not files:
            raise InvalidInputError(f"{path}: no image files (JPEG, PNG, GIF or BMP) in this folder; "
                                    "pass a folder of images, image files, or --random N")
        return [ImageFile(f) for f in files], skipped
    extension = os.path.splitext(path)[1].lower()
    if extension == ".npy":
        return [_array_file(path, None, image_size)], []
    if extension == ".npz":
        return _npz_sources(path, image_size), []
    sniff_image(path)
    return [ImageFile(path)], []


def list_image_files(folder: str) -> tuple:
    """(image files, skipped files) under `folder`, recursively, sorted; images are chosen by their extension.

    A file with an image extension is checked by its leading bytes here and decoded later; anything else (a
    README, SOURCES.md, .DS_Store) is skipped and listed in the report.
    """
    files, skipped = [], []
    for root, dirs, names in os.walk(folder):
        dirs.sort()
        for name in sorted(names):
            path = os.path.join(root, name)
            if os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS:
                sniff_image(path)
                files.append(path)
            else:
                skipped.append(path)
    return files, skipped


def sniff_image(path: str) -> str:
    """The format of an image file from its leading bytes, or a one-line error naming the file."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as e:
        raise InvalidInputError(f"{path}: cannot read ({e.strerror}); check the file's permissions") from None
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    raise InvalidInputError(f"{path}: not a JPEG, PNG, GIF or BMP image (unrecognised leading bytes); {_FIX}, "
                            "or pass arrays as .npy/.npz")


def load_image(path: str, size: tuple | None) -> np.ndarray:
    """One image file as float32 [height, width, 3] in [0, 1], resized to `size` (height, width) when given."""
    import tensorflow as tf

    from legacy.engine.native_log import quiet_native_log

    kind = sniff_image(path)
    # libpng warns on stderr about some colour profiles (iCCP chunks): filtered for the PNGs that have one only,
    # since the filter holds a process-wide lock and image files are decoded by parallel workers under Beam.
    filtered = quiet_native_log() if kind == "PNG" and _has_color_profile(path) else contextlib.nullcontext()
    try:
        data = tf.io.read_file(path)
        with filtered:
            if kind == "PNG" and _png_bit_depth(path) == 16:
                # decode_image would cut 16-bit samples to 8 bits: keep them, convert_image_dtype scales by 65535.
                image = tf.io.decode_png(data, dtype=tf.uint16)
            else:
                image = tf.io.decode_image(data, expand_animations=False)  # uint8; a GIF gives its first frame
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError, tf.errors.NotFoundError) as e:
        raise InvalidInputError(f"{path}: cannot decode the image ({_tf_message(e)}); {_FIX}") from None
    channels = image.shape[-1]
    if channels not in (1, 2, 3, 4):
        raise InvalidInputError(f"{path}: image has {channels} channels; {_FIX} (grayscale, RGB or RGBA)")
    image = tf.image.convert_image_dtype(image, tf.float32)  # value / 255 (or / 65535 for 16-bit PNGs)
    if channels in (1, 2):  # grayscale (with alpha): repeat the gray channel
        image = tf.tile(image[:, :, :1], [1, 1, 3])
    elif channels == 4:  # RGBA: drop alpha
        image = image[:, :, :3]
    if size is not None and tuple(image.shape[:2]) != tuple(size):
        image = tf.image.resize(image, list(size), method=RESIZE_METHOD, antialias=False)
    return image.numpy().astype(np.float32, copy=False)


def _has_color_profile(path: str) -> bool:
    """Whether a PNG has an iCCP chunk (it comes before the image data, so within the first bytes)."""
    with open(path, "rb") as f:
        return b"iCCP" in f.read(1 << 16)


def _png_bit_depth(path: str) -> int:
    """The bit depth in a PNG's IHDR chunk (the byte after the 8-byte signature, chunk header, width, height)."""
    with open(path, "rb") as f:
        head = f.read(25)
    return head[24] if len(head) == 25 and head[12:16] == b"IHDR" else 8


def _tf_message(error) -> str:
    """The useful part of a TensorFlow op error, without the function-node and op decorations."""
    text = re.sub(r"\{\{[^}]*\}\}", "", getattr(error, "message", str(error)))
    text = re.sub(r"\[Op:\w+\]", "", text)
    return " ".join(text.split()).rstrip(".") or type(error).__name__


# What zipfile and numpy raise on a damaged .npz or .npy. The .npy header is a Python literal that numpy tokenizes
# and evaluates: a damaged one can also end in tokenize.TokenError (found by fuzzing: a zeroed range in the
# header), SyntaxError or RecursionError. A damaged member header can name a compression method zipfile lacks
# (NotImplementedError, found by fuzzing) or flag the member as encrypted (RuntimeError): both are RuntimeErrors.
ARRAY_READ_ERRORS = (OSError, EOFError, ValueError, KeyError, TypeError, SyntaxError, RuntimeError,
                      tokenize.TokenError, zipfile.BadZipFile, zlib.error)


def _npz_sources(path: str, image_size) -> list:
    try:
        with zipfile.ZipFile(path) as archive:
            keys = [n[:-len(".npy")] for n in archive.namelist() if n.endswith(".npy")]
    except ARRAY_READ_ERRORS as e:
        raise InvalidInputError(f"{path}: not a readable .npz file ({e}); save arrays with numpy.savez") from None
    if not keys:
        raise InvalidInputError(f"{path}: the .npz file holds no arrays; pass one with image batches")
    return [_array_file(path, key, image_size) for key in keys]


def _npz_header(stream) -> tuple:
    """(shape, dtype, fortran_order) of one .npz member, read from its .npy header only."""
    version = np.lib.format.read_magic(stream)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(stream)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(stream)
    else:
        raise ValueError(f".npy format version {version[0]}.{version[1]} is not supported; save it with numpy.savez")
    if dtype.hasobject:
        raise ValueError("it holds Python objects")
    return shape, dtype, fortran


def read_npz_member(path: str, key: str, rows: int) -> Iterator[np.ndarray]:
    """One array of an .npz as float32 chunks of `rows` images, read from the zip stream: never whole in memory."""
    try:
        yield from _npz_member_chunks(path, key, rows)
    except ARRAY_READ_ERRORS as e:
        # A damaged member shows only while it is read (a CRC mismatch at its end, a truncated deflate stream).
        raise InvalidInputError(f"{path}:{key}: the array data is damaged ({' '.join(str(e).split())[:120]}); save "
                                "it again with numpy.savez") from None


def _npz_member_chunks(path: str, key: str, rows: int) -> Iterator[np.ndarray]:
    with zipfile.ZipFile(path) as archive, archive.open(key + ".npy") as stream:
        shape, dtype, fortran = _npz_header(stream)
        if fortran:  # column-major data cannot be cut into images while streaming: read it whole (rare)
            with np.load(path, allow_pickle=False) as data:
                array = data[key]
            array = array[None] if array.ndim == 3 else array
            for offset in range(0, len(array), rows):
                yield np.asarray(array[offset:offset + rows], dtype=np.float32)
            return
        shape = (1,) + tuple(shape) if len(shape) == 3 else tuple(shape)
        row_bytes = int(np.prod(shape[1:])) * dtype.itemsize
        for offset in range(0, shape[0], rows):
            n = min(rows, shape[0] - offset)
            data = stream.read(n * row_bytes)
            if len(data) != n * row_bytes:
                raise InvalidInputError(f"{path}:{key}: the array data is truncated; save it again with numpy.savez")
            yield np.frombuffer(data, dtype=dtype).reshape((n,) + shape[1:]).astype(np.float32)


def _array_file(path: str, key: str | None, image_size) -> ArrayFile:
    """Check an .npy file or .npz member from its header (the data is read batch by batch later)."""
    label = path if key is None else f"{path}:{key}"
    try:
        if key is None:
            header = np.load(path, mmap_mode="r", allow_pickle=False)  # maps, reads nothing yet
            shape, dtype = header.shape, header.dtype
        else:
            with zipfile.ZipFile(path) as archive, archive.open(key + ".npy") as stream:
                shape, dtype, _ = _npz_header(stream)
    except ARRAY_READ_ERRORS as e:
        raise InvalidInputError(f"{label}: not a readable numpy array ({e}); save arrays with numpy.save "
                                "(numeric dtype, no pickled objects)") from None
    _check_shape(tuple(shape), dtype, label, image_size)
    shape = tuple(shape) if len(shape) == 4 else (1,) + tuple(shape)
    return ArrayFile(path, key, shape)


def _check_array(array: np.ndarray, label: str, image_size) -> np.ndarray:
    """An in-memory array as [N, H, W, 3], once `_check_shape` accepts it."""
    _check_shape(tuple(array.shape), array.dtype, label, image_size)
    return array[None] if array.ndim == 3 else array


def _check_shape(shape: tuple, dtype, label: str, image_size) -> None:
    """Refuse anything but float [N, H, W, 3] (or one [H, W, 3] image) at `image_size`, naming the fix."""
    if len(shape) == 3:
        shape = (1,) + shape
    if len(shape) != 4 or shape[-1] != 3:
        raise InvalidInputError(f"{label}: array of shape {list(shape)} is not a batch of RGB images; "
                                "pass float32 [N, height, width, 3] (or one [height, width, 3] image)")
    if not np.issubdtype(dtype, np.floating):
        raise InvalidInputError(f"{label}: array has dtype {dtype}, but models take float32 in [0, 1]; "
                                "convert it first (e.g. uint8 images: array.astype('float32') / 255)")
    if image_size is not None and tuple(shape[1:3]) != tuple(image_size):
        raise InvalidInputError(
            f"{label}: holds {shape[1]}x{shape[2]} images, but the models expect "
            f"{image_size[0]}x{image_size[1]}; arrays are never resized: resize them, or pass --image-size "
            f"{shape[1]}x{shape[2]} if the models accept that size")


def parse_val_range(text: str) -> tuple:
    """'0,1' -> (0.0, 1.0)."""
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError:
        raise InvalidInputError(f"value range {text!r} is not LOW,HIGH; pass e.g. --val-range 0,1") from None
    return low, high
