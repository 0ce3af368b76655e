"""Seeded mutation fuzzing of everything the bridge reads: the engine behind tests/test_fuzz.py and scripts/fuzz.py.

A `Case` says which seed file to damage (a file of a small genuine TF1 module, of a TF2 SavedModel converted from
one, of a `.tar.gz` archive of either, or an image/array for parity), how (a list of mutations: byte-level bit
flips, truncations, junk or zeroed ranges, duplicated bytes; structure-aware edits of the parsed protos and of the
bridge metadata JSON), and which entry point reads it (`bridge inspect`, `bridge convert --no-verify`,
`bridge parity`, `bridge.adapt`, the shim's `load_module_spec` / `hub.Module`, the parity image loader). Cases are
drawn by hypothesis (`case_strategy`), so a seed reproduces a run and a failure shrinks to a small case.

Every outcome must be success or the project's own error (`BridgeError`, for the CLI exit 2 with one line): any
other exception is an escape, a case over its time limit a hang, a worker that dies a crash; nothing may be written
at the destination on failure, no temporary directory left behind, and the source never changes. Cases run in
worker processes (`WorkerPool`) so that a hang or a crash of TensorFlow's C++ code cannot take the run with it;
`run_case` runs one in the current process.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import hashlib
import io
import json
import multiprocessing
import os
import random
import shutil
import tarfile
import tempfile
import threading
import time
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODULES_DIR = os.path.join(ROOT, "testdata", "modules")
IMAGES_DIR = os.path.join(ROOT, "testdata", "images")

TF1_SEEDS = ("classifier_assets", "convnet_bn", "convnet_refvars")
TF2_SEED = "tf2"  # classifier_assets converted to a TF2 SavedModel (with the bridge metadata)
# That SavedModel as committed (bridge.convert(testdata/modules/classifier_assets, dst, verify=False)): saved
# cases pick what to damage by position, so they reproduce only on the same bytes, whatever later converters write.
TF2_SEED_DIR = os.path.join(ROOT, "testdata", "fuzz", "seeds", "tf2")
ARCHIVE = "<archive>"  # the file of a case that damages the .tar.gz itself
METADATA = "assets.extra/tf_hub_bridge.json"
TF1_FILES = ("saved_model.pb", "tfhub_module.pb", "variables/variables.index")
TF2_FILES = ("saved_model.pb", "variables/variables.index", METADATA)
INPUT_FILES = ("image.png", "image.jpg", "images.npz")
TENSOR_FILES = ("tensors.npz",)  # named arrays (token ids and a mask), what parity reads for a BERT-style model

# What may happen to a case: anything else is a failure of the bridge.
OK_OUTCOMES = ("ok", "error", "mismatch")
BAD_OUTCOMES = ("escape", "hang", "crash", "write", "source_changed")
# Per-case time limits (seconds), generous for 2 shared cores: a hang is a case that never ends, not a slow one.
TIME_LIMITS = {"inspect": 60, "images": 60, "tensors": 60}
DEFAULT_TIME_LIMIT = 240
HUGE = 100_000  # elements a "huge repeated field" grows to
_PRISTINE: dict = {}  # seed path -> its tree_digest as built (prepare_seeds) or when first seen


@dataclasses.dataclass(frozen=True)
class Case:
    """One fuzz case: damage `file` of seed `seed` (packed as `container`) with `mutations`, run `target`."""

    seed: str  # a TF1_SEEDS name, TF2_SEED, or "inputs" (images and arrays for parity)
    container: str  # "dir" (a model directory), "tar.gz" (an archive of it) or "file" (an input file)
    file: str  # path inside the model, ARCHIVE, or an INPUT_FILES name
    mutations: tuple  # ((kind, params), ...), applied in order
    target: str

    def to_json(self) -> dict:
        return {"seed": self.seed, "container": self.container, "file": self.file,
                "mutations": [[kind, dict(params)] for kind, params in self.mutations], "target": self.target}

    @classmethod
    def from_json(cls, data: dict) -> "Case":
        return cls(data["seed"], data["container"], data["file"],
                   tuple((kind, tuple(sorted(params.items()))) for kind, params in data["mutations"]),
                   data["target"])

    def describe(self) -> str:
        return json.dumps(self.to_json(), sort_keys=True)


# -- mutations ---------------------------------------------------------------------------------------------------

BYTE_KINDS = ("bit_flip", "truncate", "junk", "zero", "duplicate", "insert")
PROTO_KINDS = ("clear_field", "enum_out_of_range", "extreme_int", "wrong_type", "huge_repeated",
               "dangling_input", "missing_tensor", "nested_bytes", "drop_element")
JSON_KINDS = ("json_value", "json_drop_key")


def mutate_bytes(data: bytes, kind: str, p: dict) -> bytes:
    """One byte-level mutation; positions and lengths are taken modulo the data's size."""
    n = len(data)
    if n == 0:
        return bytes(p.get("junk", b"\x00")) if kind in ("junk", "insert") else data
    at = p["at"] % n
    length = 1 + p.get("length", 0) % max(1, min(n - at, 4096))
    if kind == "bit_flip":
        buf = bytearray(data)
        buf[at] ^= 1 << (p.get("bit", 0) % 8)
        return bytes(buf)
    if kind == "truncate":
        return data[:at]
    if kind == "junk":
        junk = (bytes(p["junk"]) or b"\xff") * (length // max(1, len(p["junk"])) + 1)
        return data[:at] + junk[:length] + data[at + length:]
    if kind == "zero":
        return data[:at] + b"\x00" * length + data[at + length:]
    if kind == "duplicate":
        return data[:at + length] + data[at:at + length] + data[at + length:]
    if kind == "insert":
        return data[:at] + bytes(p["junk"]) + data[at:]
    raise ValueError(f"unknown byte mutation {kind!r}")


def _walk(message) -> list:
    """Every message in a proto tree with its set fields, parents first (map entries in key order, so the order
    is stable): [(message, message.ListFields()), ...].

    A loop over a stack rather than nested generators, and one `ListFields` per message: a tree grown by
    `huge_repeated` holds hundreds of thousands of messages, and walking it was half of a campaign's time.
    """
    found = []
    stack = [message]
    while stack:
        current = stack.pop()
        fields = current.ListFields()
        found.append((current, fields))
        children = []
        for field, value in fields:
            if field.type != _TYPE_MESSAGE:
                continue
            if field.is_repeated:
                if _is_map(field):
                    if _map_holds_messages(field):
                        children.extend(value[key] for key in sorted(value))
                else:
                    children.extend(value)
            else:
                children.append(value)
        stack.extend(reversed(children))
    return found


_TYPE_MESSAGE = 11  # FieldDescriptor.TYPE_MESSAGE
_MAP_ENTRY: dict = {}  # message descriptor full name -> (is a map entry, its values are messages)


def _map_kind(field) -> tuple:
    key = field.message_type.full_name
    if key not in _MAP_ENTRY:
        entry = field.message_type.GetOptions().map_entry
        _MAP_ENTRY[key] = (entry, entry and field.message_type.fields_by_name["value"].type == _TYPE_MESSAGE)
    return _MAP_ENTRY[key]


def _is_map(field) -> bool:
    return field.type == _TYPE_MESSAGE and _map_kind(field)[0]


def _map_holds_messages(field) -> bool:
    return _map_kind(field)[1]


def _set_fields(walked, want) -> list:
    return [(m, f) for m, fields in walked for f, _ in fields if want(f)]


def _pick(items: list, index: int):
    return items[index % len(items)] if items else None


_EXTREMES = {"int32": (-1, 2 ** 31 - 1, -2 ** 31), "int64": (-1, 2 ** 63 - 1, -2 ** 63, 2 ** 40),
             "uint32": (2 ** 32 - 1,), "uint64": (2 ** 64 - 1,)}


def _int_kind(field) -> str | None:
    t = field.type
    if t in (field.TYPE_INT32, field.TYPE_SINT32, field.TYPE_SFIXED32):
        return "int32"
    if t in (field.TYPE_INT64, field.TYPE_SINT64, field.TYPE_SFIXED64):
        return "int64"
    if t in (field.TYPE_UINT32, field.TYPE_FIXED32):
        return "uint32"
    if t in (field.TYPE_UINT64, field.TYPE_FIXED64):
        return "uint64"
    return None


def mutate_proto(message, kind: str, p: dict) -> None:
    """One structure-aware edit of a parsed proto, in place (a no-op when the tree has nothing of that kind)."""
    with _gc_paused():
        _mutate_proto(message, kind, p)


@contextlib.contextmanager
def _gc_paused():
    """No cyclic garbage collection while a proto tree is walked: the walk holds hundreds of thousands of small
    lists, nothing in it is cyclic (reference counting frees it), and the collections it triggered scanned every
    object of TensorFlow over and over (more time than the walk itself)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _mutate_proto(message, kind: str, p: dict) -> None:
    walked = _walk(message)
    messages = [m for m, _ in walked]
    pick = p.get("pick", 0)
    if kind == "clear_field":
        found = _pick(_set_fields(walked, lambda f: True), pick)
        if found:
            found[0].ClearField(found[1].name)
    elif kind == "enum_out_of_range":
        found = _pick([(m, f) for m in messages for f in m.DESCRIPTOR.fields
                       if f.type == f.TYPE_ENUM and not f.is_repeated], pick)
        if found:
            value = max(v.number for v in found[1].enum_type.values) + 1 + p.get("offset", 0) % 1000
            setattr(found[0], found[1].name, value)
    elif kind == "extreme_int":
        found = _pick(_set_fields(walked, lambda f: _int_kind(f) and not f.is_repeated), pick)
        if found:
            values = _EXTREMES[_int_kind(found[1])]
            setattr(found[0], found[1].name, values[p.get("which", 0) % len(values)])
    elif kind == "wrong_type":
        _wrong_type(messages, pick, p.get("which", 0))
    elif kind == "huge_repeated":
        found = _pick(_set_fields(walked, lambda f: f.is_repeated and not _is_map(f)), pick)
        if found:
            container = getattr(found[0], found[1].name)
            if len(container):
                first = container[p.get("which", 0) % len(container)]
                size = first.ByteSize() if found[1].type == found[1].TYPE_MESSAGE else 8
                target = min(HUGE, max(len(container) + 1, (8 << 20) // max(1, size)))
                if found[1].type == found[1].TYPE_MESSAGE:
                    for _ in range(target - len(container)):
                        container.add().CopyFrom(first)
                else:
                    container.extend([first] * (target - len(container)))
    elif kind == "drop_element":
        found = _pick(_set_fields(walked, lambda f: f.is_repeated and not _is_map(f)), pick)
        if found:
            container = getattr(found[0], found[1].name)
            del container[p.get("which", 0) % len(container)]
    elif kind == "dangling_input":
        nodes = [m for m in messages if m.DESCRIPTOR.full_name == "tensorflow.NodeDef"]
        node = _pick(nodes, pick)
        if node is not None:
            name = ("^" if p.get("which", 0) % 3 == 2 else "") + f"no_such_node_{p.get('which', 0) % 7}" + \
                   (":0" if p.get("which", 0) % 3 == 1 else "")
            if node.input and p.get("which", 0) % 2:
                node.input[p.get("which", 0) % len(node.input)] = name
            else:
                node.input.append(name)
    elif kind == "missing_tensor":
        infos = [m for m in messages if m.DESCRIPTOR.full_name == "tensorflow.TensorInfo"]
        info = _pick(infos, pick)
        if info is not None:
            info.name = ("missing_tensor:0", "", "images:7", ":0")[p.get("which", 0) % 4]
    elif kind == "nested_bytes":
        found = _pick(_set_fields(walked, lambda f: f.type == f.TYPE_BYTES), pick)
        if found:
            m, f = found
            ops = p["ops"]
            if f.is_repeated:
                container = getattr(m, f.name)
                i = p.get("which", 0) % len(container)
                container[i] = _apply_bytes(container[i], ops)
            else:
                setattr(m, f.name, _apply_bytes(getattr(m, f.name), ops))
    else:
        raise ValueError(f"unknown proto mutation {kind!r}")


def _wrong_type(messages, pick: int, which: int) -> None:
    """A value of the wrong kind: an attr holding another kind of value, or a tensor of another dtype."""
    attrs = [(m, key) for m in messages if m.DESCRIPTOR.full_name == "tensorflow.NodeDef" for key in sorted(m.attr)]
    infos = [m for m in messages if m.DESCRIPTOR.full_name in ("tensorflow.TensorInfo", "tensorflow.TensorProto")]
    if which % 2 and infos:
        info = _pick(infos, pick)
        info.dtype = (7, 1, 3, 9, 10, 20, 21)[which % 7]  # string, float, int32, int64, bool, resource, variant
    elif attrs:
        node, key = _pick(attrs, pick)
        value = node.attr[key]
        replacement = which % 5
        if replacement == 0:
            value.s = b"not-a-" + key.encode()
        elif replacement == 1:
            value.i = -7
        elif replacement == 2:
            value.type = 7  # DT_STRING
        elif replacement == 3:
            value.shape.dim.add(size=-5)
        else:
            value.list.i.extend([1, 2, 3])


def _apply_bytes(data: bytes, ops) -> bytes:
    for kind, params in ops:
        data = mutate_bytes(data, kind, dict(params))
    return data


def mutate_json(data: bytes, kind: str, p: dict) -> bytes:
    """A structure-aware edit of a JSON document: a value of another type, or a key removed."""
    try:
        doc = json.loads(data)
    except ValueError:
        return data  # already broken by an earlier byte mutation
    slots = []

    def walk(node):
        if isinstance(node, dict):
            for key in sorted(node):
                slots.append((node, key))
                walk(node[key])
        elif isinstance(node, list):
            for i in range(len(node)):
                slots.append((node, i))
                walk(node[i])

    walk(doc)
    slot = _pick(slots, p.get("pick", 0))
    if slot is None:
        doc = [doc]
    elif kind == "json_drop_key":
        del slot[0][slot[1]]
    else:
        replacements = (None, 0, -1, 10 ** 30, 1.5, "", "x" * 100, [], {}, [0] * HUGE, True, [[1, 2]], "\ud800",
                        float("nan"), {"a": {"b": {"c": [None]}}})
        slot[0][slot[1]] = replacements[p.get("which", 0) % len(replacements)]
    return json.dumps(doc).encode()


# -- seeds -------------------------------------------------------------------------------------------------------


def prepare_seeds(directory: str) -> dict:
    """The undamaged seeds under `directory` (built once, reused by every worker): name -> path."""
    seeds = {name: os.path.join(directory, name) for name in TF1_SEEDS + (TF2_SEED, "inputs")}
    done = os.path.join(directory, ".complete")  # the digest of each seed as built: what "unchanged" means
    if os.path.exists(done):
        with open(done) as f:
            _PRISTINE.update({seeds[name]: digest for name, digest in json.load(f).items()})
        _write_tensors(seeds["inputs"])  # seeds prepared before the named-tensor file existed
        return seeds
    import numpy as np
    import tensorflow as tf

    for name in TF1_SEEDS:
        if not os.path.isdir(seeds[name]):
            shutil.copytree(os.path.join(MODULES_DIR, name), seeds[name])
    if os.path.isdir(seeds[TF2_SEED]):
        shutil.rmtree(seeds[TF2_SEED])
    shutil.copytree(TF2_SEED_DIR, seeds[TF2_SEED])
    os.makedirs(seeds["inputs"], exist_ok=True)
    image = tf.io.decode_png(tf.io.read_file(os.path.join(IMAGES_DIR, "horse.png")), channels=3)
    image = tf.cast(tf.image.resize(image, [24, 20]), tf.uint8)
    tf.io.write_file(os.path.join(seeds["inputs"], "image.png"), tf.io.encode_png(image))
    tf.io.write_file(os.path.join(seeds["inputs"], "image.jpg"), tf.io.encode_jpeg(image))
    rng = np.random.default_rng(0)
    np.savez(os.path.join(seeds["inputs"], "images.npz"), batch=rng.uniform(size=(2, 32, 32, 3)).astype("float32"))
    _write_tensors(seeds["inputs"])
    for name in TF1_SEEDS + (TF2_SEED,):
        pack(seeds[name], seeds[name] + ".tar.gz")
    digests = {name: tree_digest(seeds[name]) for name in TF1_SEEDS + (TF2_SEED,)}
    with open(done, "w") as f:
        json.dump(digests, f)
    _PRISTINE.update({seeds[name]: digest for name, digest in digests.items()})
    return seeds


# The inputs the "tensors" target reads tensors.npz for: those of a BERT-style model's `tokens` signature.
TENSOR_SPECS = {"input_ids": ((None, None), "int32"), "input_mask": ((None, None), "int32")}


def _write_tensors(directory: str) -> None:
    import numpy as np

    path = os.path.join(directory, "tensors.npz")
    if not os.path.exists(path):
        rng = np.random.default_rng(1)
        np.savez(path, input_ids=rng.integers(0, 30, size=(3, 5), dtype=np.int32),
                 input_mask=np.ones((3, 5), np.int32))


def pack(directory: str, archive: str) -> str:
    """A .tar.gz of a model directory's contents (the TF Hub compressed format), reproducible byte for byte."""
    def reset(info):
        info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
        return info

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for root, dirs, files in os.walk(directory):
            dirs.sort()
            for name in sorted(dirs + files):
                full = os.path.join(root, name)
                tar.add(full, arcname=os.path.relpath(full, directory), recursive=False, filter=reset)
    import gzip

    with open(archive, "wb") as f:
        f.write(gzip.compress(buffer.getvalue(), mtime=0))
    return archive


def materialize(case: Case, seeds: dict, where: str) -> str:
    """Write the damaged input of `case` under `where`; return the path to hand to the target."""
    os.makedirs(where, exist_ok=True)
    if case.container == "file":
        path = os.path.join(where, case.file)
        with open(os.path.join(seeds["inputs"], case.file), "rb") as f:
            data = f.read()
        with open(path, "wb") as f:
            f.write(apply_mutations(data, case.file, case.mutations))
        return path
    model = os.path.join(where, "model")
    if case.container == "tar.gz" and case.file == ARCHIVE:
        with open(seeds[case.seed] + ".tar.gz", "rb") as f:
            data = f.read()
        path = model + ".tar.gz"
        with open(path, "wb") as f:
            f.write(apply_mutations(data, ARCHIVE, case.mutations))
        return path
    shutil.copytree(seeds[case.seed], model)
    target = os.path.join(model, case.file)
    with open(target, "rb") as f:
        data = f.read()
    with open(target, "wb") as f:
        f.write(apply_mutations(data, case.file, case.mutations))
    if case.container == "tar.gz":
        path = pack(model, model + ".tar.gz")
        shutil.rmtree(model)
        return path
    return model


def apply_mutations(data: bytes, file: str, mutations) -> bytes:
    for kind, params in mutations:
        params = dict(params)
        if kind in BYTE_KINDS:
            data = mutate_bytes(data, kind, params)
        elif kind in JSON_KINDS:
            data = mutate_json(data, kind, params)
        else:
            data = _mutate_proto_file(data, file, kind, params)
    return data


def _mutate_proto_file(data: bytes, file: str, kind: str, params: dict) -> bytes:
    from google.protobuf.message import DecodeError

    if file.endswith("tfhub_module.pb"):
        from legacy.format import protos

        cls = protos.ModuleDef
    else:
        from tensorflow.core.protobuf import saved_model_pb2

        cls = saved_model_pb2.SavedModel
    try:
        message = cls.FromString(data)
    except (DecodeError, RuntimeWarning):
        return data  # already broken by an earlier byte mutation
    mutate_proto(message, kind, params)
    return message.SerializeToString(deterministic=True)  # map entries in key order: a seed reproduces its bytes


# -- case generation (hypothesis) ------------------------------------------------------------------------------

TF1_TARGETS = ("inspect", "convert", "parity", "adapt", "shim", "saved_model_spec")
TF2_TARGETS = ("inspect", "convert", "parity", "shim")
ARCHIVE_TARGETS = ("inspect", "convert", "parity")
INPUT_TARGETS = ("images", "parity_images")
TENSOR_TARGETS = ("tensors",)


def case_strategy(targets: tuple | None = None):
    """Hypothesis strategy of `Case`s; `targets` limits the entry points (None: all)."""
    from hypothesis import strategies as st

    index = st.integers(min_value=0, max_value=2 ** 31)
    junk = st.binary(min_size=1, max_size=16)
    byte_op = st.tuples(st.sampled_from(BYTE_KINDS), st.fixed_dictionaries(
        {"at": index, "length": st.integers(0, 4096), "bit": st.integers(0, 7), "junk": junk}))

    def params_of(kind):
        base = {"pick": index, "which": st.integers(0, 100), "offset": st.integers(0, 1000)}
        if kind == "nested_bytes":
            base["ops"] = st.lists(byte_op, min_size=1, max_size=3).map(
                lambda ops: [[k, dict(p, junk=list(p["junk"]))] for k, p in ops])
        return st.fixed_dictionaries(base)

    def byte_mutation(op):
        kind, params = op
        return kind, dict(params, junk=list(params["junk"]))

    byte_mutations = byte_op.map(byte_mutation)
    proto_mutations = st.sampled_from(PROTO_KINDS).flatmap(lambda k: params_of(k).map(lambda p: (k, p)))
    json_mutations = st.tuples(st.sampled_from(JSON_KINDS), params_of("json"))

    def subject_cases(seed, container, file, allowed):
        allowed = tuple(t for t in allowed if targets is None or t in targets)
        if not allowed:
            return None
        if file.endswith(".pb"):
            kinds = st.one_of(byte_mutations, proto_mutations)
        elif file.endswith(".json"):
            kinds = st.one_of(byte_mutations, json_mutations)
        else:
            kinds = byte_mutations
        return st.builds(lambda muts, target: Case(seed, container, file, _freeze(muts), target),
                         st.lists(kinds, min_size=1, max_size=3), st.sampled_from(allowed))

    subjects = []
    for seed in TF1_SEEDS:
        for file in TF1_FILES:
            subjects.append(subject_cases(seed, "dir", file, TF1_TARGETS))
    for file in TF2_FILES:
        subjects.append(subject_cases(TF2_SEED, "dir", file, TF2_TARGETS))
    for seed in ("classifier_assets", TF2_SEED):
        subjects.append(subject_cases(seed, "tar.gz", ARCHIVE, ARCHIVE_TARGETS))
        subjects.append(subject_cases(seed, "tar.gz", "saved_model.pb", ARCHIVE_TARGETS))
    for file in INPUT_FILES:
        subjects.append(subject_cases("inputs", "file", file, INPUT_TARGETS))
    for file in TENSOR_FILES:
        subjects.append(subject_cases("inputs", "file", file, TENSOR_TARGETS))
    subjects = [s for s in subjects if s is not None]
    return st.one_of(subjects)


def _freeze(mutations) -> tuple:
    """Mutations as a hashable-looking, JSON-able tuple: ((kind, ((param, value), ...)), ...)."""
    return tuple((kind, tuple(sorted(params.items()))) for kind, params in mutations)


# -- running one case --------------------------------------------------------------------------------------------


def tree_digest(path: str) -> str:
    """A digest of a file or of everything under a directory: names, kinds and bytes."""
    digest = hashlib.sha256()
    if os.path.isfile(path):
        with open(path, "rb") as f:
            digest.update(f.read())
        return digest.hexdigest()
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(dirs + files):
            full = os.path.join(root, name)
            digest.update(f"{os.path.relpath(full, path)}\0{os.path.islink(full)}\0".encode())
            if os.path.isfile(full) and not os.path.islink(full):
                with open(full, "rb") as f:
                    digest.update(f.read())
    return digest.hexdigest()


def _pristine_digest(path: str) -> str:
    if path not in _PRISTINE:
        _PRISTINE[path] = tree_digest(path)
    return _PRISTINE[path]


def _cli(argv: list) -> tuple:
    """Run `bridge` in-process: (outcome, detail). Exit 0 ok, 1 mismatch, 2 with one error line: error."""
    from bridge.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    lines = err.getvalue().strip().splitlines()
    if code == 0:
        return "ok", ""
    if code == 1 and argv[0] in ("parity", "convert"):
        return "mismatch", lines[-1] if lines else ""
    prefix = f"bridge {argv[0]}: error: "
    # One error line, after nothing but the command's own progress lines (`bridge: ...`, `bridge parity: ...`;
    # a long one goes on over lines indented by 4 spaces, wrapped at the terminal's width).
    progress_only = all(line.startswith(("bridge: ", f"bridge {argv[0]}: ", "    ")) and not line.startswith(prefix)
                        for line in lines[:-1])
    if code == 2 and lines and lines[-1].startswith(prefix) and progress_only:
        return "error", lines[-1][len(prefix):]
    return "escape", f"exit {code}: {err.getvalue()[-2000:]}"


def _images_for(model) -> object:
    import numpy as np

    from legacy import hub

    try:
        height, width = hub.get_expected_image_size(model)
    except Exception:  # noqa: BLE001 - any size will do when the module records none
        height, width = 32, 32
    return np.full((1, min(height, 64), min(width, 64), 3), 0.5, dtype=np.float32)


def _run_target(case: Case, path: str, seeds: dict, out: str) -> tuple:
    target = case.target
    original = seeds["classifier_assets"] if case.seed == "inputs" else seeds[case.seed]
    if target == "inspect":
        return _cli(["inspect", "--json", path] if case.mutations and len(case.mutations) % 2 else ["inspect", path])
    if target == "convert":
        extra = []
        return _cli(["convert", path, os.path.join(out, "converted"), "--no-verify", *extra])
    if target == "parity":
        return _cli(["parity", path, original, "--random", "2", "--batch-size", "2", "--quiet"])
    if target == "parity_images":
        return _cli(["parity", original, original, "--images", path, "--quiet"])
    from legacy.errors import BridgeError

    try:
        if target == "adapt":
            import bridge

            obj = bridge.adapt(path)
            obj(_images_for_adapter(obj))
        elif target == "shim":
            from legacy import hub

            spec = hub.load_module_spec(path)
            module = hub.Module(spec)
            module(_images_for(spec))
        elif target == "saved_model_spec":  # a module's directory is a TF1 SavedModel too
            from legacy import hub

            spec = hub.create_module_spec_from_saved_model(path)
            module = hub.Module(spec)
            module(_images_for(spec))
        elif target == "_hang":  # checks of the pool itself (tests/test_fuzz.py), never drawn
            time.sleep(3600)
        elif target == "_crash":
            os.abort()
        elif target == "images":
            from bridge.parity.images import collect_inputs

            for _ in collect_inputs([path], image_size=(32, 32), batch_size=2).batches():
                pass
        elif target == "tensors":
            import tensorflow as tf

            from bridge.parity.tensor_inputs import collect_tensors

            specs = {k: tf.TensorSpec(shape, dtype) for k, (shape, dtype) in TENSOR_SPECS.items()}
            for _ in collect_tensors(specs, [path], batch_size=2).batches():
                pass
        else:
            raise ValueError(f"unknown target {target!r}")
    except BridgeError as e:
        return "error", " ".join(str(e).split())
    return "ok", ""


def _images_for_adapter(obj):
    import numpy as np

    size = getattr(obj, "expected_image_size", None) or (32, 32)
    height, width = size
    return np.full((1, min(height, 64), min(width, 64), 3), 0.5, dtype=np.float32)


def run_case(case: Case, seeds: dict, workdir: str, keep: bool = False) -> dict:
    """Run one case in this process: {"outcome", "detail", "seconds"}. `workdir` must be a fresh directory."""
    start = time.monotonic()
    path = materialize(case, seeds, os.path.join(workdir, "in"))
    before = tree_digest(path)
    # The undamaged model the target may also read (parity's reference): compared with its digest as built, so a
    # seed changed by any earlier case, in any worker, is caught too.
    original = seeds["classifier_assets"] if case.seed == "inputs" else seeds[case.seed]
    pristine = _pristine_digest(original)
    out = os.path.join(workdir, "out")
    tmp = os.path.join(workdir, "tmp")
    os.makedirs(out)
    os.makedirs(tmp)
    saved_tempdir = tempfile.tempdir
    tempfile.tempdir = tmp
    try:
        outcome, detail = _run_target(case, path, seeds, out)
    except Exception as e:  # noqa: BLE001 - this is what the fuzzer looks for
        outcome = "escape"
        detail = "".join(traceback.format_exception_only(type(e), e)).strip()[-2000:] + "\n" + \
            "".join(traceback.format_tb(e.__traceback__)[-4:])
    finally:
        tempfile.tempdir = saved_tempdir
    if outcome in OK_OUTCOMES:
        if tree_digest(path) != before or tree_digest(original) != pristine:
            outcome, detail = "source_changed", f"{case.target} changed its source ({detail})"
        else:
            left = [n for n in os.listdir(tmp) if not n.startswith("__autograph_generated_file")]
            written = os.listdir(out) if outcome != "ok" else []
            if left or written:
                outcome, detail = "write", f"left behind: tmp {left}, destination {written} ({detail})"
    if not keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return {"outcome": outcome, "detail": detail, "seconds": round(time.monotonic() - start, 3)}


# -- worker processes -------------------------------------------------------------------------------------------


def _worker_main(conn, seeds_dir: str) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import logging
    import resource

    logging.disable(logging.WARNING)  # the shim logs fallbacks; not what a fuzz run is about
    seeds = prepare_seeds(seeds_dir)
    _warm_up()
    conn.send({"ready": True})
    while True:
        request = conn.recv()
        if request is None:
            return
        case = Case.from_json(request["case"])
        result = run_case(case, seeds, request["workdir"], keep=request.get("keep", False))
        result["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024  # peak, in MiB (Linux: KiB)
        conn.send(result)


def _warm_up() -> None:
    """Import what the targets use, then move every object alive so far out of the garbage collector's reach.

    A worker runs thousands of cases; each full collection used to scan all of TensorFlow's objects again
    (`gc.freeze` leaves them out; what the cases themselves allocate is still collected).
    """
    import importlib

    import tensorflow  # noqa: F401

    for name in ("bridge", "bridge.cli", "bridge.cli.inspect", "bridge.cli.convert", "bridge.cli.parity",
                 "bridge.conversion.converter", "bridge.conversion.tf1_to_tf2", "bridge.conversion.tf2_to_tf1",
                 "bridge.parity.comparison", "bridge.parity.runners", "bridge.parity.images", "legacy.hub",
                 "tensorflow.core.protobuf.saved_model_pb2"):
        importlib.import_module(name)
    gc.collect()
    gc.freeze()


class WorkerPool:
    """Runs cases in worker processes with a time limit each; a hung or dead worker is replaced.

    One worker per slot, kept for many cases (starting one costs seconds: TensorFlow's import); each is
    restarted after `recycle` cases, or sooner once its peak memory passes `memory_limit_mb`, to keep memory
    bounded.
    """

    def __init__(self, workdir: str, processes: int = 1, recycle: int = 5000, startup_limit: float = 600,
                 memory_limit_mb: int = 3072):
        self.workdir = workdir
        self.seeds_dir = os.path.join(workdir, "seeds")
        os.makedirs(self.seeds_dir, exist_ok=True)
        self.recycle = recycle
        self.memory_limit_mb = memory_limit_mb
        self.startup_limit = startup_limit
        self._ctx = multiprocessing.get_context("spawn")
        self._slots = [None] * processes
        self._counter = 0
        # Workers start one at a time: the first builds the seeds, the others find them built (two building them
        # at once collided in the same directory).
        self._start_lock = threading.Lock()

    def _start(self, slot: int):
        with self._start_lock:
            return self._start_one(slot)

    def _start_one(self, slot: int):
        parent, child = self._ctx.Pipe()
        process = self._ctx.Process(target=_worker_main, args=(child, self.seeds_dir), daemon=True)
        process.start()
        child.close()
        if not parent.poll(self.startup_limit):
            self._kill(process)
            raise RuntimeError("a fuzz worker did not start")
        parent.recv()
        self._slots[slot] = {"process": process, "conn": parent, "cases": 0}
        return self._slots[slot]

    @staticmethod
    def _kill(process) -> None:
        if process.is_alive():
            process.kill()  # this worker's own pid
        process.join(10)

    def run(self, case: Case, slot: int = 0) -> dict:
        """Run `case` in worker `slot`; a failing case's input is kept under `result["input"]`."""
        worker = self._slots[slot] or self._start(slot)
        self._counter += 1  # slots run in threads of their own: the slot keeps their directories apart
        case_dir = os.path.join(self.workdir, f"case-{slot}-{self._counter}")
        limit = TIME_LIMITS.get(case.target, DEFAULT_TIME_LIMIT)
        try:
            worker["conn"].send({"case": case.to_json(), "workdir": case_dir, "keep": False})
            if worker["conn"].poll(limit):
                result = worker["conn"].recv()
            else:
                result = {"outcome": "hang", "detail": f"no answer within {limit} s", "seconds": limit}
        except (EOFError, BrokenPipeError, ConnectionResetError):
            result = None
        if result is None:
            worker["process"].join(5)
            result = {"outcome": "crash", "detail": f"worker died (exit code {worker['process'].exitcode})",
                      "seconds": None}
        if result["outcome"] in ("hang", "crash"):
            self._kill(worker["process"])
            self._slots[slot] = None
        else:
            worker["cases"] += 1
            if worker["cases"] >= self.recycle or result.get("rss_mb", 0) >= self.memory_limit_mb:
                self._stop(slot)
        shutil.rmtree(case_dir, ignore_errors=True)
        return result

    def _stop(self, slot: int) -> None:
        worker = self._slots[slot]
        if worker is None:
            return
        try:
            worker["conn"].send(None)
        except (BrokenPipeError, OSError):
            pass
        worker["process"].join(30)
        self._kill(worker["process"])
        self._slots[slot] = None

    def close(self) -> None:
        for slot in range(len(self._slots)):
            self._stop(slot)


def save_failure(case: Case, result: dict, seeds: dict, folder: str) -> str:
    """Keep a failing case: its description and outcome as case.json, and the damaged input beside it."""
    name = hashlib.sha256(case.describe().encode()).hexdigest()[:12]
    where = os.path.join(folder, f"{result['outcome']}-{case.target}-{name}")
    if os.path.exists(where):
        return where
    os.makedirs(where)
    with open(os.path.join(where, "case.json"), "w") as f:
        json.dump({"case": case.to_json(), "result": result}, f, indent=2, sort_keys=True)
        f.write("\n")
    materialize(case, seeds, os.path.join(where, "input"))
    return where


def random_seed() -> int:
    return random.SystemRandom().randrange(2 ** 32)
