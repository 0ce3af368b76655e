"""Named tensors as parity inputs, for models whose inputs are neither images nor sentences (token ids, masks, ...).

    inputs = collect_tensors(specs, ["batch.npz"], random=8, seed=0)   # specs: {input key: tf.TensorSpec}
    for batch in inputs.batches():      # batch.images: {input key: array} (the harness's batch field)
        outputs = model({key: tensor for key, tensor in batch.images.items()})

Sources: `.npz` files holding one array per input key (the same number of examples in each), or dicts of arrays
given from Python; then `random` seeded examples drawn per input from its TensorSpec:
- integer inputs that index a table (token ids into an embedding, segment ids into a segment table; found in a
  TF1 module's graph) from [0, rows of that table); other integers from [0, `INT_HIGH`): valid masks, segment
  ids and token ids for any vocabulary;
- booleans fair coin flips, floats uniform in [0, 1), strings words of the models' vocabulary asset (plus a few
  no vocabulary holds), else of `text_inputs.WORDS`;
- dimensions the spec leaves unknown (besides the batch) have `DEFAULT_LENGTH` elements, the same in every input,
  so that e.g. ids, mask and segment ids of one example have one sequence length.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Iterator

import numpy as np

from bridge.parity.images import Batched
from legacy.errors import InvalidInputError

INT_HIGH = 2
DEFAULT_LENGTH = 8


@dataclasses.dataclass
class Batch:
    """One batch of named inputs (named `images` as the harness's image batches are), names and start index."""

    images: dict  # input key -> array [n, ...]
    names: list
    start: int


class TensorSet(Batched):
    """Named input arrays with the same number of examples, streamed in batches of at most `batch_size`."""

    def __init__(self, arrays: dict, names: list, random: dict | None, batch_size: int, files: int):
        super().__init__(batch_size)
        self._arrays, self._names, self._random, self._files = arrays, names, random, files

    def __len__(self) -> int:
        return len(self._names)

    def describe(self) -> dict:
        return {"examples": len(self), "images": len(self), "batches": self.num_batches,
                "batch_size": self.batch_size, "input_keys": sorted(self._arrays), "example_files": self._files,
                "array_examples": len(self) - self._files - (self._random["count"] if self._random else 0),
                "random_tensors": [self._random] if self._random else [], "random": [], "image_size": None,
                "image_files": 0, "array_images": 0, "random_images": 0, "resize": None, "skipped_files": []}

    def batches(self) -> Iterator[Batch]:
        for start in range(0, len(self), self.batch_size):
            stop = start + self.batch_size
            yield Batch({k: v[start:stop] for k, v in self._arrays.items()}, self._names[start:stop], start)


def collect_tensors(specs: dict, sources=None, *, random: int | None = None, seed: int = 0,
                    batch_size: int = 8, highs: dict | None = None, words=()) -> TensorSet:
    """A `TensorSet` for inputs `specs` ({key: tf.TensorSpec}): the examples of `sources` (.npz paths or dicts of
    arrays), then `random` seeded ones (integers of input `key` below `highs[key]` when given, see
    `random_tensors`)."""
    chunks, names, files = [], [], 0
    for item in _as_items(sources):
        if isinstance(item, dict):
            label, arrays = "dict", dict(item)
        else:
            label = os.fspath(item)
            arrays = read_tensors(label)
        checked = _checked(arrays, specs, label)
        count = len(next(iter(checked.values())))
        chunks.append(checked)
        names += [f"{label}[{i}]" for i in range(count)]
        files += count if label != "dict" else 0
    described = None
    if random:
        chunks.append(random_tensors(specs, int(random), seed, highs=highs, words=words))
        names += [f"random(seed={seed})[{i}]" for i in range(int(random))]
        described = {"count": int(random), "seed": int(seed), "int_range": [0, INT_HIGH],
                     "index_ranges": {k: [0, int(v)] for k, v in sorted((highs or {}).items()) if k in specs},
                     "unknown_length": DEFAULT_LENGTH}
    if not names:
        raise InvalidInputError(f"no inputs: pass an .npz file with arrays {', '.join(sorted(specs))}, or --random N")
    arrays = {key: _concatenate([chunk[key] for chunk in chunks], key) for key in specs}
    return TensorSet(arrays, names, described, batch_size, files)


def random_tensors(specs: dict, count: int, seed: int, salt: tuple = (), highs: dict | None = None,
                   words=()) -> dict:
    """{key: array [count, ...]} drawn for each input spec (see the module docstring), seeded by `seed` (and
    `salt`: e.g. a batch index, for values drawn anew per batch). `highs`: {key: n} for integer inputs that index
    a table of n rows (token ids into an embedding, see `legacy.format.graph_defs.index_bounds`), drawn from
    [0, n) so that every row can be reached. `words`: the models' vocabulary, which string inputs draw from
    (with a few words no vocabulary holds); without, `text_inputs.WORDS`."""
    from bridge.parity.text_inputs import OUT_OF_VOCABULARY, WORDS

    pool = np.array(list(words) + list(OUT_OF_VOCABULARY) if len(words) else list(WORDS), dtype=object)

    rng = np.random.default_rng([seed, 0x7E45, *salt])
    result = {}
    for key in sorted(specs):
        spec = specs[key]
        if spec.shape.rank is None:
            raise InvalidInputError(f"input {key!r} has an unknown rank, so no random value can be drawn for it; "
                                    "pass recorded inputs in an .npz file")
        dims = [count] + [DEFAULT_LENGTH if d is None else int(d) for d in spec.shape.as_list()[1:]]
        dtype = spec.dtype
        if dtype.is_integer:
            high = int((highs or {}).get(key) or INT_HIGH)
            value = rng.integers(0, high, dims).astype(dtype.as_numpy_dtype)
        elif dtype.is_bool:
            value = rng.integers(0, 2, dims).astype(bool)
        elif dtype.is_floating:
            value = rng.random(dims, dtype=np.float32).astype(dtype.as_numpy_dtype)
        elif dtype.name == "string":
            value = pool[rng.integers(0, len(pool), dims)]
        else:
            raise InvalidInputError(f"input {key!r} is {dtype.name}, for which no random value is drawn; pass "
                                    "recorded inputs in an .npz file")
        result[key] = value
    return result


def read_tensors(path: str) -> dict:
    """The arrays of an .npz file, by input name: one array per input, or the batches `--save-inputs` wrote
    (`batch_00000/input_ids`, ...), joined."""
    if not os.path.isfile(path) or not path.lower().endswith(".npz"):
        what = "does not exist" if not os.path.exists(path) else "is not an .npz file"
        raise InvalidInputError(f"{path} {what}: these models take named tensors; pass an .npz file with one "
                                "array per input (np.savez(path, input_ids=..., ...))")
    from bridge.parity.images import ARRAY_READ_ERRORS

    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except ARRAY_READ_ERRORS as e:
        raise InvalidInputError(f"{path} cannot be read as .npz ({' '.join(str(e).split())[:120]}); write it "
                                "with np.savez") from None
    batches = sorted({key.split("/")[0] for key in arrays if "/" in key})
    if batches and len(batches) == len({key.split("/")[0] for key in arrays}):  # as --save-inputs writes them
        names = sorted({key.split("/", 1)[1] for key in arrays})
        try:
            return {name: np.concatenate([arrays[f"{batch}/{name}"] for batch in batches]) for name in names}
        except (KeyError, ValueError):
            raise InvalidInputError(f"{path}: batches with different inputs or shapes; pass one array per input "
                                    "(np.savez(path, input_ids=..., ...))") from None
    return arrays


def _as_items(sources) -> list:
    if sources is None:
        return []
    if isinstance(sources, (str, os.PathLike, dict)):
        return [sources]
    return list(sources)


def _checked(arrays: dict, specs: dict, label: str) -> dict:
    missing = sorted(set(specs) - set(arrays))
    if missing:
        raise InvalidInputError(f"{label} has no array {missing[0]!r}; the models take {', '.join(sorted(specs))}")
    result, count = {}, None
    for key, spec in specs.items():
        value = np.asarray(arrays[key])
        if value.dtype == object or value.dtype.kind in "US":
            value = value.astype(object)
        if not spec.shape.is_compatible_with(value.shape):
            raise InvalidInputError(f"{label}: array {key!r} has shape {list(value.shape)}, but the models take "
                                    f"{spec.shape}; pass arrays of that shape")
        if count is not None and len(value) != count:
            raise InvalidInputError(f"{label}: array {key!r} holds {len(value)} examples, the others {count}; "
                                    "give every input the same number of examples")
        count = len(value)
        result[key] = value if value.dtype == object else value.astype(spec.dtype.as_numpy_dtype)
    return result


def _concatenate(parts: list, key: str) -> np.ndarray:
    try:
        return np.concatenate(parts, axis=0)
    except ValueError:
        raise InvalidInputError(f"input {key!r} has different shapes in different sources "
                                f"({', '.join(str(list(p.shape)) for p in parts)}); give the same shape "
                                "besides the number of examples") from None
