"""The testdata corpus (modules made by the genuine legacy library) and its recorded golden answers."""

from __future__ import annotations

import functools
import json
import os

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTDATA = os.path.join(ROOT, "testdata")
MODULES = sorted(os.listdir(os.path.join(TESTDATA, "modules")))
IMAGES_DIR = os.path.join(TESTDATA, "images")


def module_path(name: str) -> str:
    return os.path.join(TESTDATA, "modules", name)


@functools.lru_cache(maxsize=None)
def golden_json(name: str) -> dict:
    with open(os.path.join(TESTDATA, "golden", name + ".json")) as f:
        return json.load(f)


@functools.lru_cache(maxsize=None)
def golden_arrays(name: str) -> dict:
    with np.load(os.path.join(TESTDATA, "golden", name + ".npz")) as data:
        return {k: data[k] for k in data.files}


@functools.lru_cache(maxsize=None)
def checkpoint(name: str) -> dict:
    """{checkpoint name: array}: the module's weights as stored in its variables/ (values read, not computed)."""
    import tensorflow as tf

    reader = tf.train.load_checkpoint(os.path.join(module_path(name), "variables", "variables"))
    return {key: reader.get_tensor(key) for key in reader.get_variable_to_shape_map()}


def variant_label(tags) -> str:
    return "train" if "train" in tags else "infer"


def golden_prefix(name: str, prefix: str) -> dict:
    """Arrays under `prefix/`, keyed by the rest of their name (e.g. checkpoint variable names)."""
    return {k[len(prefix) + 1:]: v for k, v in golden_arrays(name).items() if k.startswith(prefix + "/")}


class Answers:
    """The genuine library's answers on one module: the description (`info`) and the arrays, keyed as in golden/."""

    def __init__(self, info: dict, arrays: dict):
        self.info, self.arrays = info, arrays

    def group(self, prefix: str) -> dict:
        """Arrays under `prefix/`, keyed by the rest of their name (e.g. checkpoint variable names)."""
        return {k[len(prefix) + 1:]: v for k, v in self.arrays.items() if k.startswith(prefix + "/")}
