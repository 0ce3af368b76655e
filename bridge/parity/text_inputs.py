"""Sentences as parity inputs for text models: read from files or arrays, or drawn from a seeded word list.

    inputs = collect_sentences(["sentences.txt"], random=8, seed=0, words=vocabulary_of("module/"))
    for batch in inputs.batches():      # batch.images: a 1-D str array of sentences (the harness's batch field)
        feed = as_signature_input(spec, batch.images)   # what a signature takes: strings, SparseTensor, RaggedTensor

Sources: a text file (one sentence per line, UTF-8), a `.json` file (a list of strings, or an object whose only
value is one), a `.npy`/`.npz` file of strings (every array of an .npz, in key order), or a Python list / numpy
array of strings. Random sentences draw 1-8 words from the models' vocabulary asset (its first column) plus a few
words no vocabulary holds, so out-of-vocabulary handling is compared too; without a vocabulary, from `WORDS`.
A signature whose input is a SparseTensor or RaggedTensor of strings gets the sentences split on whitespace.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Iterator, Sequence

import numpy as np

from bridge.parity.images import Batched
from legacy.errors import InvalidInputError

TEXT_EXTENSIONS = (".txt", ".text", ".tsv")
WORDS = ("the", "a", "cat", "dog", "sat", "ran", "on", "mat", "far", "quick", "brown", "fox", "jumps", "over",
         "lazy", "river", "stone", "light", "green", "house")
OUT_OF_VOCABULARY = ("zyzzyva", "qwertyuiop", "xylograph")  # words no vocabulary is expected to hold
MAX_WORDS = 8
_MAX_VOCABULARY = 100_000


@dataclasses.dataclass
class Batch:
    """One batch of sentences (named `images` as the harness's image batches are), names and start index."""

    images: np.ndarray  # str [n]
    names: list
    start: int


class SentenceSet(Batched):
    """A list of sentence sources, streamed in batches of at most `batch_size` sentences."""

    def __init__(self, sentences: list, names: list, random: dict | None, batch_size: int, sources: dict):
        super().__init__(batch_size)
        self._sentences, self._names = sentences, names
        self._random = random
        self._sources = sources

    def __len__(self) -> int:
        return len(self._sentences)

    def describe(self) -> dict:
        return {"sentences": len(self), "images": len(self), "batches": self.num_batches,
                "batch_size": self.batch_size, "text_files": self._sources.get("files", 0),
                "array_sentences": self._sources.get("arrays", 0),
                "random_sentences": self._random["count"] if self._random else 0,
                "random_text": [self._random] if self._random else [], "random": [], "image_size": None,
                "image_files": 0, "array_images": 0, "random_images": 0, "resize": None, "skipped_files": []}

    def batches(self) -> Iterator[Batch]:
        for start in range(0, len(self), self.batch_size):
            chunk = self._sentences[start:start + self.batch_size]
            yield Batch(np.array(chunk, dtype=str), self._names[start:start + self.batch_size], start)


def collect_sentences(sources=None, *, random: int | None = None, seed: int = 0, words: Sequence[str] = (),
                      batch_size: int = 8) -> SentenceSet:
    """A `SentenceSet` from `sources` (paths or lists/arrays of strings), then `random` seeded sentences."""
    sentences, names, counts = [], [], {"files": 0, "arrays": 0}
    for item in _as_items(sources):
        if isinstance(item, (str, os.PathLike)) and not isinstance(item, np.str_):
            path = os.fspath(item)
            found = read_sentences(path)
            counts["files"] += len(found)
            sentences += found
            names += [f"{path}[{i}]" for i in range(len(found))]
        else:
            found = _strings(item, "array")
            counts["arrays"] += len(found)
            sentences += found
            names += [f"array[{i}]" for i in range(len(found))]
    described = None
    if random:
        vocabulary = [w for w in words if w and not w.isspace()] or list(WORDS)
        drawn = random_sentences(random, seed, vocabulary)
        sentences += drawn
        names += [f"random(seed={seed})[{i}]" for i in range(len(drawn))]
        described = {"count": int(random), "seed": int(seed), "words": len(vocabulary),
                     "from": "the model's vocabulary" if words else "a built-in word list"}
    if not sentences:
        raise InvalidInputError("no input sentences: pass a text file (one sentence per line), a .json list, "
                                ".npy/.npz string arrays, or --random N")
    return SentenceSet(sentences, names, described, batch_size, counts)


def _as_items(sources) -> list:
    if sources is None:
        return []
    if isinstance(sources, (str, os.PathLike)):
        return [sources]
    if isinstance(sources, np.ndarray):
        return [sources]
    items = list(sources)
    if items and all(isinstance(x, (str, np.str_, bytes)) for x in items) and not any(
            isinstance(x, str) and os.path.exists(x) for x in items):
        return [np.array([x.decode() if isinstance(x, bytes) else str(x) for x in items], dtype=str)]
    return items


def random_sentences(count: int, seed: int, words: Sequence[str]) -> list:
    """`count` sentences of 1-`MAX_WORDS` words drawn (seeded) from `words` and `OUT_OF_VOCABULARY`."""
    rng = np.random.default_rng(seed)
    pool = list(words) + list(OUT_OF_VOCABULARY)
    return [" ".join(pool[i] for i in rng.integers(0, len(pool), rng.integers(1, MAX_WORDS + 1)))
            for _ in range(int(count))]


def read_sentences(path: str) -> list:
    """The sentences in a text, .json, .npy or .npz file (see the module docstring)."""
    if not os.path.isfile(path):
        raise InvalidInputError(f"{path} does not exist or is not a file; pass a text file of sentences")
    lower = path.lower()
    try:
        if lower.endswith(".json"):
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
            if isinstance(data, dict) and len(data) == 1:
                data = next(iter(data.values()))
            if not isinstance(data, list) or not all(isinstance(s, str) for s in data):
                raise InvalidInputError(f"{path} holds no list of strings; write a JSON list of sentences")
            return list(data)
        if lower.endswith(".npy"):
            return _strings(np.load(path, allow_pickle=False), path)
        if lower.endswith(".npz"):
            with np.load(path, allow_pickle=False) as data:
                return [s for key in sorted(data.files) for s in _strings(data[key], f"{path}:{key}")]
        with open(path, encoding="utf-8") as f:
            return [line.rstrip("\r\n") for line in f]
    except (UnicodeDecodeError, ValueError, OSError) as e:
        if isinstance(e, InvalidInputError):
            raise
        raise InvalidInputError(f"{path} cannot be read as sentences ({' '.join(str(e).split())[:120]}); pass a "
                                "UTF-8 text file (one sentence per line), a .json list or .npy/.npz strings") from None


def _strings(array, label: str) -> list:
    array = np.asarray(array)
    if array.dtype.kind == "S":
        array = np.char.decode(array, "utf-8")
    if array.dtype.kind != "U" or array.ndim != 1:
        raise InvalidInputError(f"{label} has dtype {array.dtype} and shape {list(array.shape)}; sentences are a "
                                "1-D array of strings")
    return [str(s) for s in array]


def vocabulary_of(directory: str | None) -> list:
    """Words of the text files under `directory`/assets (the first tab-separated field of each line): a model's
    vocabulary, for random sentences; [] when it has none."""
    if not directory:
        return []
    assets = os.path.join(directory, "assets")
    words = []
    for root, _, files in sorted(os.walk(assets)) if os.path.isdir(assets) else []:
        for name in sorted(files):
            try:
                with open(os.path.join(root, name), encoding="utf-8") as f:
                    for line in f:
                        word = line.rstrip("\r\n").split("\t")[0].strip()
                        if word and not any(c.isspace() for c in word):
                            words.append(word)
                        if len(words) >= _MAX_VOCABULARY:
                            break
            except (OSError, UnicodeDecodeError):
                continue
    return list(dict.fromkeys(words))


def as_signature_input(spec, sentences):
    """The sentences as what a signature input of TypeSpec `spec` takes: the strings themselves, or split on
    whitespace into a SparseTensor / RaggedTensor of words."""
    import tensorflow as tf

    strings = tf.constant(np.asarray(sentences, dtype=object), tf.string)
    if isinstance(spec, tf.SparseTensorSpec):
        return tf.strings.split(strings).to_sparse()
    if isinstance(spec, tf.RaggedTensorSpec):
        return tf.strings.split(strings)
    return strings


def is_text_spec(spec) -> bool:
    """Whether a TypeSpec is fed from sentences (a string tensor, or sparse/ragged strings)."""
    import tensorflow as tf

    return getattr(spec, "dtype", None) == tf.string
