"""Both models of a comparison draw the same random numbers: dropout and other noise compared bit for bit.

A TF1 module's graphs, or a TF2 SavedModel's `saved_model.pb`, are rewritten before the model is opened for a
comparison: every stateful random op becomes its stateless counterpart, seeded from the op's own `seed`/`seed2`
attrs (see `legacy.engine.random_ops`). Conversion keeps those attrs, so a model and its conversion then draw identical
numbers op for op, on every call. Only the copy that parity runs is rewritten: the models on disk, and what
`bridge convert` writes, keep their stateful ops and draw fresh numbers in training.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import weakref

from legacy.engine.random_ops import UNMATCHED, describe_ops, random_ops, seeded_copy
from legacy.format.conventions import FINGERPRINT_FILENAME, SAVED_MODEL_FILENAME

METHOD = ("stateful random ops made stateless on both sides for the comparison, each seeded from its own "
          "seed/seed2 attrs (a fixed seed when both are 0), so both models draw the same numbers on every call")


@dataclasses.dataclass
class RandomOps:
    """The stateful random ops of one model and whether the comparison matched their draws."""

    ops: list  # (where, node name, op type); `where` is a function name, a variant label or ""
    matched: bool

    @property
    def unmatched(self) -> list:
        return [op for op in self.ops if op[-1] in UNMATCHED or not self.matched]

    def describe(self) -> str:
        if not self.ops:
            return "none"
        how = "draws matched" if not self.unmatched else (
            f"draws NOT matched for {describe_ops(self.unmatched)}")
        return f"{describe_ops(self.ops)} ({how})"

    def to_json(self) -> dict:
        return {"ops": [list(op) for op in self.ops], "matched": self.matched and not self.unmatched}


def seeded_saved_model(path: str, owner) -> tuple:
    """(a directory to load instead of `path`, RandomOps): a copy of `path` whose saved_model.pb has its random ops
    made stateless (variables and assets linked, not copied), removed when `owner` is garbage collected; `path`
    itself when the model has no random op."""
    from legacy.format.reader import read_saved_model_proto

    saved_model = read_saved_model_proto(path)
    found = [op for meta_graph in saved_model.meta_graphs for op in random_ops(meta_graph.graph_def)]
    if not found:
        return path, RandomOps([], True)
    for meta_graph in saved_model.meta_graphs:
        graph_def, _ = seeded_copy(meta_graph.graph_def)
        meta_graph.graph_def.CopyFrom(graph_def)
    tmp = tempfile.mkdtemp(prefix="bridge-parity-")
    weakref.finalize(owner, shutil.rmtree, tmp, True)
    for name in os.listdir(path):
        if name not in (SAVED_MODEL_FILENAME, FINGERPRINT_FILENAME):
            os.symlink(os.path.abspath(os.path.join(path, name)), os.path.join(tmp, name))
    with open(os.path.join(tmp, SAVED_MODEL_FILENAME), "wb") as f:
        f.write(saved_model.SerializeToString())
    return tmp, RandomOps(found, True)
