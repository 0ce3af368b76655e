"""Session-wide state of the zoo tier: one genuine oracle process, and each conversion done once.

The oracle (tests/zoo/zoo_oracle.py in the legacy environment) starts with the first test that needs it and gets
the questions about every original module at once, so it answers them while this process converts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import shutil
import subprocess
import threading

import numpy as np
import pytest

from tests.corpus import ROOT
from tests.oracle import runner
from tests.zoo.members import FULL, ZOO, Member

ORACLE = os.path.join(ROOT, "tests", "zoo", "zoo_oracle.py")
NUM_IMAGES = 4
MOMENTUM = 0.9  # fed to every batch_norm_momentum input (the modules' default is 0.997), so it visibly matters
RANDOM_OP_TYPES = ("RandomUniform", "RandomStandardNormal", "TruncatedNormal", "RandomUniformInt")
SEEDS = (1, 2)  # the seed attributes zoo_oracle.py gives every random op; seeded_copy gives the converted model the same


def images(size, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 1, (NUM_IMAGES, *size, 3)).astype(np.float32)


class Oracle:
    """The genuine library as a server: submit() returns at once, answers() waits for that job."""

    def __init__(self, workdir: str):
        self.workdir = workdir
        self.log = os.path.join(workdir, "oracle.log")
        with open(self.log, "w") as log:  # runner.start: only in tests marked `oracle`, versions checked
            self.process = runner.start(ORACLE, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True)
        self.proc = self.process.proc
        self.replies: dict = {}
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            reply = json.loads(line)
            with self.cond:
                self.replies[reply["id"]] = reply
                self.cond.notify_all()
        with self.cond:
            with open(self.log) as log:
                self.replies[None] = {"ok": False, "error": "the oracle exited:\n" + log.read()[-4000:]}
            self.cond.notify_all()

    def submit(self, job_id: str, module: str, inputs: dict) -> None:
        npz = os.path.join(self.workdir, job_id.replace("/", "_") + ".inputs.npz")
        np.savez(npz, **inputs)
        job = {"id": job_id, "module": module, "inputs": npz, "out": npz[:-len(".inputs.npz")] + ".answers.npz",
               "momentum": MOMENTUM}
        self.proc.stdin.write(json.dumps(job) + "\n")
        self.proc.stdin.flush()

    def answers(self, job_id: str, timeout: float = 600) -> tuple:
        with self.cond:
            self.cond.wait_for(lambda: job_id in self.replies or None in self.replies, timeout=timeout)
            reply = self.replies.get(job_id) or self.replies.get(None) or {"ok": False, "error": "timed out"}
        if not reply["ok"]:
            raise AssertionError(f"zoo oracle, {job_id}: {reply['error']}")
        self.process.check()  # launch.py wrote the versions before the oracle started, so before any answer
        out = os.path.join(self.workdir, job_id.replace("/", "_") + ".answers.npz")
        with open(out + ".json") as f:
            info = json.load(f)
        with np.load(out) as data:
            return info, {k: data[k] for k in data.files}

    def close(self) -> None:
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@dataclasses.dataclass
class Run:
    """One `bridge` command run in this process."""

    exit_code: int
    stdout: str
    stderr: str
    destination: str


def run_bridge(*argv: str) -> Run:
    from bridge.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return Run(code, out.getvalue(), err.getvalue(), argv[2] if len(argv) > 2 else "")


def member_inputs(member: Member) -> dict:
    size = tuple(member.facts["default_image_size"])
    inputs = {"images": images(size)}
    inputs["loss_weights"] = np.random.default_rng(1).standard_normal(
        (NUM_IMAGES, member_output_width(member))).astype(np.float32)
    if member.other_size:
        inputs["images_other"] = images(member.other_size, seed=2)
    return inputs


def member_output_width(member: Member) -> int:
    from legacy import hub

    spec = hub.load_module_spec(member.path)
    return int(spec.get_output_info_dict("default")["default"].get_shape()[-1])


class _Inputs(dict):
    """{member name: its inputs}, made on first use, when the genuine answers about the original are asked too."""

    def __init__(self, oracle: Oracle):
        super().__init__()
        self._oracle = oracle

    def __missing__(self, name: str) -> dict:
        member = next(m for m in ZOO + FULL if m.name == name)
        inputs = self[name] = member_inputs(member)
        self._oracle.submit(f"{name}/original", member.path, inputs)
        return inputs


class Zoo:
    """Conversions and oracle answers, each computed once per session on first use."""

    def __init__(self, root: str):
        self.root = root
        for sub in ("oracle", "tf2", "back", "seeded"):
            os.makedirs(os.path.join(root, sub))
        self.oracle = Oracle(os.path.join(root, "oracle"))
        self.inputs = _Inputs(self.oracle)
        for m in ZOO:  # the genuine answers about every original, computed while this process converts
            self.inputs[m.name]
        self._runs: dict = {}
        self._lock = threading.RLock()  # _once calls nest (seeded_tf2 -> to_tf2)

    def to_tf2(self, member: Member) -> Run:
        """`bridge convert MODULE DST` with default options (verification on)."""
        return self._once(("tf2", member.name), lambda: run_bridge(
            "convert", member.path, os.path.join(self.root, "tf2", member.name)))

    def back_to_tf1(self, member: Member) -> Run:
        """The TF2 conversion converted back with `bridge convert --no-verify`; its genuine answers are asked.

        Unverified because the round-trip test compares the genuine library's outputs, gradients and updates on it
        with the original's, bit for bit: a stronger check than verification (which tests/bridge/conversion/
        test_tf2_to_tf1.py covers), at a fraction of the time."""
        def convert() -> Run:
            tf2 = self.to_tf2(member)
            assert tf2.exit_code == 0, tf2.stderr
            run = run_bridge("convert", tf2.destination, os.path.join(self.root, "back", member.name), "--no-verify")
            if run.exit_code == 0:
                self.oracle.submit(f"{member.name}/round_trip", run.destination, self.inputs[member.name])
            return run

        return self._once(("back", member.name), convert)

    def genuine(self, member: Member) -> tuple:
        self.inputs[member.name]  # asked on first use (full-size members)
        return self._once(("genuine", member.name), lambda: self.oracle.answers(f"{member.name}/original"))

    def genuine_round_trip(self, member: Member) -> tuple:
        run = self.back_to_tf1(member)
        assert run.exit_code == 0, run.stderr
        return self._once(("genuine_back", member.name), lambda: self.oracle.answers(f"{member.name}/round_trip"))

    def seeded_tf2(self, member: Member) -> str:
        """The TF2 conversion with the oracle's seed attributes on its random ops (the conversion itself if none)."""
        def copy() -> str:
            run = self.to_tf2(member)
            assert run.exit_code == 0, run.stderr
            return seeded_copy(run.destination, os.path.join(self.root, "seeded", member.name))

        return self._once(("seeded", member.name), copy)

    def _once(self, key, compute):
        with self._lock:
            if key not in self._runs:
                self._runs[key] = compute()
            return self._runs[key]


def seeded_copy(saved_model_dir: str, dst: str) -> str:
    """A copy of a SavedModel whose stateful random ops carry SEEDS, or the directory itself when it has none."""
    from tensorflow.core.protobuf import saved_model_pb2

    with open(os.path.join(saved_model_dir, "saved_model.pb"), "rb") as f:
        saved = saved_model_pb2.SavedModel.FromString(f.read())
    count = 0
    for meta_graph in saved.meta_graphs:
        nodes = [list(meta_graph.graph_def.node)] + [list(f.node_def) for f in meta_graph.graph_def.library.function]
        for node in (n for group in nodes for n in group):
            if node.op in RANDOM_OP_TYPES:
                node.attr["seed"].i, node.attr["seed2"].i = SEEDS
                count += 1
    if not count:
        return saved_model_dir
    shutil.copytree(saved_model_dir, dst)
    with open(os.path.join(dst, "saved_model.pb"), "wb") as f:
        f.write(saved.SerializeToString())
    return dst


@pytest.fixture(scope="session")
def zoo(tmp_path_factory):
    state = Zoo(str(tmp_path_factory.mktemp("zoo")))
    yield state
    state.oracle.close()
