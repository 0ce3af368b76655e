"""Read a TF1 Hub format module directory into plain Python objects, without running any graph.

A directory is a TF1 Hub module exactly when it holds `tfhub_module.pb` (a `ModuleDef`, format V3). Its
`saved_model.pb` holds one `MetaGraphDef` per graph variant, told apart by their tag sets; each variant carries its
signatures, attached messages and collections. Everything here reads protocol buffers only, so it is cheap and
safe on untrusted modules.

    module = read_module("testdata/modules/convnet_bn")
    module.tags                        # [frozenset(), frozenset({'train'})]
    module.expected_image_size()       # (32, 32)
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
from typing import Iterable, Iterator, Mapping

from google.protobuf.message import DecodeError

from legacy.format import protos
from legacy.format.graph_defs import has_tf1_loops, op_name
from legacy.format.conventions import (DEFAULT_SIGNATURE, IMAGE_INPUT_KEY, IMAGE_MODULE_INFO_KEY,  # noqa: F401
                                       MODULE_DEF_FILENAME, SAVED_MODEL_FILENAME, TRAIN_TAGS, attached_image_size,
                                       expected_image_size, is_tf1_hub_module, require_directory,
                                       static_num_channels, tag_label)
from legacy.errors import (BridgeError, ModuleFormatError, NotAModuleError, NotAnImageModuleError,
                           UnknownSignatureError, UnknownVariantError)

VARIABLES_DIRNAME = "variables"
VARIABLES_PREFIX = os.path.join(VARIABLES_DIRNAME, "variables")
ASSETS_DIRNAME = "assets"
ATTACHMENTS_COLLECTION = "hub_module_attachments"

# The legacy loader accepts exactly these collections and rejects a module carrying any other.
KNOWN_COLLECTIONS = frozenset({
    "variables", "trainable_variables", "model_variables", "update_ops", "regularization_losses",
    "table_initializer", "asset_filepaths", "cond_context", "while_context", ATTACHMENTS_COLLECTION,
    "saved_model_assets",  # written by the exporter itself, removed again on load
})
ATTACHMENT_KEY = re.compile(r"^[a-zA-Z][a-zA-Z0-9_]*$")
VARIABLE_OPS = frozenset({"VarHandleOp", "VariableV2", "Variable"})
REF_VARIABLE_OPS = frozenset({"VariableV2", "Variable"})

_DTYPE_SIZES = {"float16": 2, "bfloat16": 2, "float32": 4, "float64": 8, "int8": 1, "uint8": 1, "int16": 2,
                "uint16": 2, "int32": 4, "uint32": 4, "int64": 8, "uint64": 8, "bool": 1, "complex64": 8,
                "complex128": 16}

Shape = tuple  # tuple[int | None, ...] or None for unknown rank


DENSE, SPARSE, COMPOSITE = "dense", "sparse", "composite"


@dataclasses.dataclass(frozen=True)
class TensorInfo:
    """One signature input or output: graph tensor name, dtype name and static shape (None: unknown rank).

    A SparseTensor (`coo_sparse` encoding) or another composite tensor such as a RaggedTensor (`composite_tensor`
    encoding, with a serialized TypeSpecProto) has `kind` "sparse" or "composite" and lists the graph tensors of its
    components in `components` (for a SparseTensor: indices, values, dense_shape); `tensor_name` is then the first
    component, so code written for dense tensors fails loudly rather than silently.
    """

    tensor_name: str
    dtype: str
    shape: Shape | None
    kind: str = DENSE
    components: tuple = ()
    type_spec: bytes = b""  # serialized TypeSpecProto of a composite tensor

    @property
    def is_dense(self) -> bool:
        return self.kind == DENSE

    def component_names(self) -> tuple:
        return (self.tensor_name,) if self.kind == DENSE else self.components

    def to_json(self) -> dict:
        result = {"dtype": self.dtype, "shape": None if self.shape is None else list(self.shape)}
        if self.kind != DENSE:
            result["kind"] = self.kind
        return result


@dataclasses.dataclass(frozen=True)
class Signature:
    name: str
    inputs: Mapping[str, TensorInfo]
    outputs: Mapping[str, TensorInfo]


@dataclasses.dataclass(frozen=True)
class VariableInfo:
    """A module variable. `name` is its checkpoint key, which is also its op name inside the module graph."""

    name: str
    dtype: str
    shape: tuple
    trainable: bool
    op_type: str  # VarHandleOp (resource) or VariableV2 (reference, as TF 1.x exported)
    # A part of a partitioned variable (tf.compat.v1.fixed_size_partitioner): `name` is `<full_name>/part_N`, the
    # checkpoint holds the whole variable under `full_name` and this part is the slice at `offset`.
    full_name: str | None = None
    full_shape: tuple | None = None
    offset: tuple | None = None

    @property
    def checkpoint_key(self) -> str:
        return self.full_name or self.name

    @property
    def is_part(self) -> bool:
        return self.full_name is not None

    @property
    def is_reference(self) -> bool:
        return self.op_type in REF_VARIABLE_OPS

    def slice_of(self, full_value):
        """This part's slice of the whole variable's value."""
        if not self.is_part:
            return full_value
        return full_value[tuple(slice(o, o + s) for o, s in zip(self.offset, self.shape))]

    @property
    def nbytes(self) -> int:
        count = 1
        for dim in self.shape:
            count *= dim
        return count * _DTYPE_SIZES.get(self.dtype, 4)


@dataclasses.dataclass
class Variant:
    """One graph variant: a MetaGraphDef and what the legacy API reads from it."""

    tags: frozenset
    meta_graph: object  # tensorflow.core.protobuf.meta_graph_pb2.MetaGraphDef
    signatures: dict  # name -> Signature
    attachments: dict  # key -> serialized message bytes
    variables: list  # VariableInfo, in collection order
    update_ops: list  # op or tensor names
    regularization_losses: list  # tensor names
    asset_filepaths: list  # tensor names of the scalar string constants
    asset_files: dict  # tensor name of an asset path constant -> file name under assets/
    # signature name -> why it cannot run (a tensor it names is not in the graph). Like the legacy loader, which
    # looks the tensors up only when a signature is applied, this fails on use (`runnable_signature`), not on reading.
    broken_signatures: dict = dataclasses.field(default_factory=dict)
    table_initializers: list = dataclasses.field(default_factory=list)  # op names (tables filled from assets)

    def signature(self, name: str | None = None) -> Signature:
        name = DEFAULT_SIGNATURE if name is None else name
        if name not in self.signatures:
            raise UnknownSignatureError(
                f"signature {name!r} not found in graph variant {tag_label(self.tags)}; "
                f"available: {', '.join(sorted(self.signatures)) or 'none'}")
        return self.signatures[name]

    def runnable_signature(self, name: str | None = None) -> Signature:
        """`signature(name)`, refused when a tensor it names is not in the graph (what running it would need)."""
        sig = self.signature(name)
        if sig.name in self.broken_signatures:
            raise ModuleFormatError(self.broken_signatures[sig.name])
        return sig


@dataclasses.dataclass
class StoredModule:
    """A TF1 Hub format module on disk, read but not run."""

    path: str
    variants: dict  # frozenset(tags) -> Variant

    @property
    def tags(self) -> list:
        return sorted(self.variants, key=lambda t: (len(t), sorted(t)))

    def variant(self, tags: Iterable[str] | None = None) -> Variant:
        key = frozenset(tags or ())
        if key not in self.variants:
            existing = ", ".join(tag_label(t) for t in self.tags)
            if not key:  # the default every consumer asks for: no tags to pass can make up for it
                raise UnknownVariantError(
                    f"No such graph variant: tags={tag_label(key)}; this module has {existing} only, and no "
                    "inference variant (tags set()): pass one of those as tags, or re-export the module with an "
                    "inference variant")
            raise UnknownVariantError(
                f"No such graph variant: tags={tag_label(key)}; this module has {existing}: pass one of those as "
                "tags")
        return self.variants[key]

    @property
    def has_train_variant(self) -> bool:
        return TRAIN_TAGS in self.variants

    @property
    def variables_prefix(self) -> str:
        return os.path.join(self.path, VARIABLES_PREFIX)

    @property
    def assets_dir(self) -> str:
        return os.path.join(self.path, ASSETS_DIRNAME)

    def asset_files(self) -> list:
        """Relative paths of the files under `assets/`, sorted."""
        found = []
        for root, _, files in os.walk(self.assets_dir):
            for f in files:
                found.append(os.path.relpath(os.path.join(root, f), self.assets_dir))
        return sorted(found)

    def checkpoint_shapes(self) -> dict:
        """Checkpoint key -> shape: a partitioned variable is one whole tensor in the checkpoint."""
        return {var.checkpoint_key: tuple(var.full_shape if var.is_part else var.shape) for var in self.variables()}

    def variables(self) -> list:
        """The module's variables, taken from the inference variant (the variants share them)."""
        seen, result = set(), []
        for tags in self.tags:
            for var in self.variants[tags].variables:
                if var.name not in seen:
                    seen.add(var.name)
                    result.append(var)
        return result

    @property
    def has_tf1_loops(self) -> bool:
        """Whether a graph variant holds a TF1 while loop (TensorFlow differentiates it in a TF1 graph only)."""
        return any(has_tf1_loops(v.meta_graph.graph_def) for v in self.variants.values())

    def image_module_info(self, tags: Iterable[str] | None = None):
        """The attached `ImageModuleInfo`, or None."""
        blob = self.variant(tags).attachments.get(IMAGE_MODULE_INFO_KEY)
        return None if blob is None else _parse_image_module_info(blob, self.path)

    def expected_image_size(self, signature: str | None = None, input_name: str | None = None,
                            tags: Iterable[str] | None = None) -> tuple:
        """(height, width) the legacy way: the attachment when both sizes are set, else the static input shape."""
        size = expected_image_size(attached_image_size(self.image_module_info(tags)),
                                   lambda: self._image_input(signature, input_name, tags).shape)
        if size is None:
            raise NotAnImageModuleError(
                f"Shape of module input is {_shape_str(self._image_input(signature, input_name, tags).shape)}, "
                "expected [batch_size, height, width, num_channels] with known height and width; give the size "
                "explicitly (e.g. --image-size HEIGHTxWIDTH)")
        return size

    def num_image_channels(self, signature: str | None = None, input_name: str | None = None,
                           tags: Iterable[str] | None = None) -> int:
        """Number of channels from the static shape of the image input (the legacy lookup reads nothing else)."""
        shape = self._image_input(signature, input_name, tags).shape
        channels = static_num_channels(shape)
        if channels is None:
            raise NotAnImageModuleError(
                f"Shape of module input is {_shape_str(shape)}, expected [batch_size, height, width, "
                "num_channels] with known num_channels")
        return channels

    def _image_input(self, signature, input_name, tags) -> TensorInfo:
        sig = self.variant(tags).signature(signature)
        input_name = IMAGE_INPUT_KEY if input_name is None else input_name
        if input_name not in sig.inputs:
            raise NotAnImageModuleError(
                f"Module is missing input {input_name!r} in signature {sig.name!r} (it has "
                f"{', '.join(sorted(sig.inputs)) or 'no inputs'}): this operation needs an image signature")
        return sig.inputs[input_name]


def _shape_str(shape) -> str:
    return "<unknown rank>" if shape is None else "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"


# -- untrusted bytes --------------------------------------------------------------------------------------------
# A model file can parse and still not fit together (a signature naming a missing tensor, a node whose inputs do
# not match its op, an object graph pointing past its end); TensorFlow's own loaders then raise whatever their
# code happens to hit. These are the exceptions they raise on bad data, as seen by fuzzing them (a function
# node whose op was cleared makes tf.saved_model.load raise RuntimeError "Op type not registered ''"; a function
# spec missing a field makes it raise AttributeError "'FullArgSpec' object has no attribute 'args'"; a damaged
# checkpoint index makes the C++ reader allocate by a size read from it: std::bad_alloc, raised as MemoryError;
# an extreme integer in saved_model.pb leaves a variable of the object graph without its checkpoint value, and
# tf.saved_model.load's own check raises AssertionError "objects that were not bound to checkpointed values").
_CORRUPT_DATA = (DecodeError, RuntimeWarning, RuntimeError, ValueError, TypeError, KeyError, IndexError,
                 OverflowError, FileNotFoundError, AttributeError, MemoryError, AssertionError)


def is_corrupt_data(e: BaseException) -> bool:
    """Whether `e` is what TensorFlow's loaders raise on bad model data (not a project error, not an interrupt)."""
    if isinstance(e, BridgeError):
        return False
    if isinstance(e, _CORRUPT_DATA):
        return True
    import tensorflow as tf
    # Found by fuzzing TF2 SavedModels: a type spec in the object graph that does not decode (a bit flip); a
    # signature whose outputs need a placeholder it does not feed, once the object graph is gone and the model
    # loads as a TF1 SavedModel (a field cleared).
    from tensorflow.python.ops.op_selector import UnliftableError
    from tensorflow.python.saved_model.nested_structure_coder import NotEncodableError

    return isinstance(e, (tf.errors.OpError, NotEncodableError, UnliftableError))


def first_line(e: BaseException) -> str:
    """The first line of an exception's message (TensorFlow's carry pages of graph dumps), at most 200 chars."""
    text = (getattr(e, "message", None) or str(e)).strip()
    text = " ".join(text.splitlines()[0].split()) if text else type(e).__name__
    return text if len(text) <= 200 else text[:197] + "..."


@contextlib.contextmanager
def untrusted(path: str, what: str, fix: str = "re-download or re-export the model") -> Iterator[None]:
    """Turn what TensorFlow raises on bad model data into one `ModuleFormatError` naming `path` and the fix.

        with untrusted(path, "the variables checkpoint"):
            reader = tf.train.load_checkpoint(prefix)

    Project errors pass through unchanged; so does anything that is not a data error (KeyboardInterrupt, ...).
    """
    try:
        yield
    except Exception as e:  # noqa: BLE001 - narrowed by is_corrupt_data just below
        if not is_corrupt_data(e):
            raise
        raise ModuleFormatError(f"{path}: {what} is corrupt or inconsistent ({type(e).__name__}: {first_line(e)}); "
                                f"{fix}") from None


def open_checkpoint(prefix: str, label: str | None = None):
    """`tf.train.load_checkpoint(prefix)`, with a corrupt or unreadable checkpoint as one `ModuleFormatError`."""
    import tensorflow as tf

    with untrusted(label or prefix, "the variables checkpoint", "the model is incomplete or damaged: "
                                                                "re-download or re-export it"):
        return tf.train.load_checkpoint(prefix)


def read_module_def(path: str):
    """Parse and validate `tfhub_module.pb`: format V3 and no required features, as the legacy loader demands."""
    filename = os.path.join(path, MODULE_DEF_FILENAME)
    with open(filename, "rb") as f:
        data = f.read()
    try:
        module_def = protos.ModuleDef.FromString(data)
    except DecodeError as e:
        raise ModuleFormatError(f"{filename} is corrupt ({e}); re-download or re-export the module") from None
    if module_def.format != protos.FORMAT_V3:
        raise ModuleFormatError(
            f"{filename} declares format {module_def.format}, but only FORMAT_V3 (3) is supported; "
            "re-export the module with tensorflow_hub 0.15 or earlier")
    if module_def.required_features:
        raise ModuleFormatError(
            f"{filename} requires unknown features {list(module_def.required_features)}, which no TF1 Hub "
            "implementation supports (tensorflow_hub 0.15 refuses them too); re-export the module without them")
    return module_def


def read_saved_model_proto(path: str):
    """Parse `saved_model.pb`, turning protobuf failures into one clear error."""
    from tensorflow.core.protobuf import saved_model_pb2

    filename = os.path.join(path, SAVED_MODEL_FILENAME)
    if not os.path.isfile(filename):
        raise ModuleFormatError(f"{filename} is missing: the module is incomplete; re-download or re-export it")
    with open(filename, "rb") as f:
        data = f.read()
    try:
        saved_model = saved_model_pb2.SavedModel.FromString(data)
    except (DecodeError, RuntimeWarning) as e:
        raise ModuleFormatError(
            f"{filename} is corrupt or truncated ({type(e).__name__}); re-download or re-export the model") from None
    if not saved_model.meta_graphs:
        raise ModuleFormatError(
            f"{filename} holds no graphs (empty or truncated file); re-download or re-export the model")
    return saved_model


def read_module(path: str) -> StoredModule:
    """Read and validate a TF1 Hub module directory (protos only; nothing runs)."""
    path = require_directory(path, "a TF1 Hub module", MODULE_DEF_FILENAME)
    if not is_tf1_hub_module(path):
        raise NotAModuleError(f"{path} is not a TF1 Hub module (no {MODULE_DEF_FILENAME}); pass a module directory")
    read_module_def(path)
    return read_graph_variants(path, read_saved_model_proto(path))


def read_graph_variants(path: str, saved_model) -> StoredModule:
    """The graph variants of a parsed `saved_model.pb` in directory `path`, and its checkpoint files checked.

    `read_module` reads a TF1 Hub module with it; `hub.create_module_spec_from_saved_model` a TF1 SavedModel
    (no `tfhub_module.pb`), after dropping the collections a module may not hold.
    """
    variants = {}
    for meta_graph in saved_model.meta_graphs:
        tags = frozenset(meta_graph.meta_info_def.tags)
        if tags in variants:
            raise ModuleFormatError(f"{path}: two graph variants share the tags {tag_label(tags)}; re-export it")
        variants[tags] = read_variant(path, tags, meta_graph)
    module = StoredModule(path=path, variants=variants)
    if module.variables():
        _check_checkpoint_files(path)
    return module


_DATA_SHARD = re.compile(r"^variables\.data-(\d+)-of-(\d+)$")


def _check_checkpoint_files(path: str) -> None:
    """The checkpoint's index and every data shard exist (checked by name only: nothing is read)."""
    if not os.path.isfile(os.path.join(path, VARIABLES_PREFIX + ".index")):
        raise ModuleFormatError(
            f"{path}: {VARIABLES_PREFIX}.index is missing although the graph has variables; the module is "
            "incomplete: re-download or re-export it")
    directory = os.path.join(path, VARIABLES_DIRNAME)
    shards = [m for m in map(_DATA_SHARD.match, os.listdir(directory)) if m]
    if not shards:
        raise ModuleFormatError(
            f"{path}: {VARIABLES_PREFIX}.data-* is missing although the graph has variables; the module is "
            "incomplete: re-download or re-export it")
    count = int(shards[0].group(2))
    missing = sorted(set(range(count)) - {int(m.group(1)) for m in shards if int(m.group(2)) == count})
    if missing:
        raise ModuleFormatError(
            f"{path}: {VARIABLES_PREFIX}.data-{missing[0]:05d}-of-{count:05d} is missing (the checkpoint has "
            f"{count} data files); the module is incomplete: re-download or re-export it")


def read_variant(path: str, tags: frozenset, meta_graph) -> Variant:
    """One graph variant, checked so that what parses but does not fit together fails here, naming the file."""
    where = f"{os.path.join(path, SAVED_MODEL_FILENAME)}: graph variant {tag_label(tags)}"
    unknown = sorted(set(meta_graph.collection_def) - KNOWN_COLLECTIONS)
    if unknown:
        raise ModuleFormatError(
            f"{path}: graph variant {tag_label(tags)} has collections the TF1 Hub format does not allow: "
            f"{', '.join(unknown)}; re-export without them (drop_collections)")
    nodes = _graph_nodes(where, meta_graph.graph_def)
    signatures = {name: read_signature(name, sig, where=where) for name, sig in meta_graph.signature_def.items()}
    return Variant(
        tags=tags,
        meta_graph=meta_graph,
        signatures=signatures,
        broken_signatures={name: problem for name, problem in
                           ((name, _missing_tensor(sig, nodes, where)) for name, sig in signatures.items()) if problem},
        attachments=_read_attachments(path, meta_graph),
        variables=_read_variables(meta_graph, nodes, where),
        update_ops=_node_list(meta_graph, "update_ops", nodes, where),
        regularization_losses=_node_list(meta_graph, "regularization_losses", nodes, where),
        asset_filepaths=_node_list(meta_graph, "asset_filepaths", nodes, where),
        asset_files=_read_asset_files(meta_graph, where),
        table_initializers=_node_list(meta_graph, "table_initializer", nodes, where),
    )


_CORRUPT_FIX = "the file is damaged: re-download or re-export the module"
_MAX_RANK = 254  # TensorFlow's own limit on the number of dimensions (TensorShape kMaxDims)
_MAX_ELEMENTS = 1 << 62  # what a tensor's element count fits in (int64)


def _check_shape(dims: list, label: str) -> None:
    if len(dims) > _MAX_RANK:
        raise ModuleFormatError(f"{label} has {len(dims)} dimensions, more than TensorFlow's {_MAX_RANK}; "
                                f"{_CORRUPT_FIX}")
    count = 1
    for d in dims:
        count *= max(d, 1)
        if count > _MAX_ELEMENTS:
            raise ModuleFormatError(f"{label} has more elements than a tensor can hold; {_CORRUPT_FIX}")


def _graph_nodes(where: str, graph_def) -> dict:
    """Node name -> NodeDef, refusing repeated names and inputs that name no node of the graph."""
    nodes = {}
    for node in graph_def.node:
        if node.name in nodes or not node.name:
            problem = f"two nodes named {node.name!r}" if node.name else "a node without a name"
            raise ModuleFormatError(f"{where}: the graph has {problem}; {_CORRUPT_FIX}")
        nodes[node.name] = node
    for node in graph_def.node:
        for name in node.input:
            if op_name(name) not in nodes or not _valid_tensor_ref(name):
                raise ModuleFormatError(f"{where}: node {node.name!r} takes input {name!r}, which is not in the "
                                        f"graph; {_CORRUPT_FIX}")
    return nodes


def _valid_tensor_ref(name: str) -> bool:
    """`op`, `op:N` or `^op`."""
    if name.startswith("^"):
        return ":" not in name
    _, sep, index = name.partition(":")
    return not sep or index.isdigit()


def read_signature(name: str, sig, where: str | None = None) -> Signature:
    """A SignatureDef as a `Signature` (dense tensors of known dtypes and sane shapes, or a ModuleFormatError)."""
    where = where or "signature"
    return Signature(name=name,
                     inputs={k: _tensor_info(v, name, k, where) for k, v in sig.inputs.items()},
                     outputs={k: _tensor_info(v, name, k, where) for k, v in sig.outputs.items()})


def _tensor_info(info, signature: str = "", key: str = "", where: str = "signature") -> TensorInfo:
    label = f"{where}: signature {signature!r} tensor {key!r}"
    encoding = info.WhichOneof("encoding")
    if encoding == "composite_tensor":  # a RaggedTensor, say: its dtype and shape live in the type spec
        return _composite_tensor_info(info.composite_tensor, label)
    if encoding not in ("name", "coo_sparse"):
        raise ModuleFormatError(f"{label} names no tensor; {_CORRUPT_FIX}")
    if not info.dtype:  # DT_INVALID: TensorFlow always records a dense or sparse tensor's dtype
        raise ModuleFormatError(f"{label} has no data type; {_CORRUPT_FIX}")
    dtype = _dtype_name(info.dtype, label)
    if info.tensor_shape.unknown_rank:
        shape = None
    else:
        if any(d.size < -1 for d in info.tensor_shape.dim):
            raise ModuleFormatError(f"{label} has a negative dimension in its shape; {_CORRUPT_FIX}")
        _check_shape([d.size for d in info.tensor_shape.dim], label)
        shape = tuple(None if d.size < 0 else d.size for d in info.tensor_shape.dim)
    if encoding == "coo_sparse":
        sparse = info.coo_sparse
        return TensorInfo(tensor_name=sparse.indices_tensor_name, dtype=dtype, shape=shape, kind=SPARSE,
                          components=(sparse.indices_tensor_name, sparse.values_tensor_name,
                                      sparse.dense_shape_tensor_name))
    return TensorInfo(tensor_name=info.name, dtype=dtype, shape=shape)


def _composite_tensor_info(composite, label: str) -> TensorInfo:
    from tensorflow.core.protobuf import struct_pb2
    from tensorflow.python.saved_model import nested_structure_coder

    components = tuple(c.name for c in composite.components)
    if not components:
        raise ModuleFormatError(f"{label}: composite tensor {composite.type_spec.type_spec_class_name} has no "
                                f"components; {_CORRUPT_FIX}")
    value = struct_pb2.StructuredValue()
    value.type_spec_value.CopyFrom(composite.type_spec)
    try:
        spec = nested_structure_coder.decode_proto(value)
        shape = None if spec.shape.rank is None else tuple(spec.shape.as_list())
        dtype = spec.dtype.name
    except Exception as e:  # any damage in the nested type spec: the project's error, never a raw one
        raise ModuleFormatError(f"{label}: composite tensor of type {composite.type_spec.type_spec_class_name} "
                                f"cannot be decoded ({first_line(e)}); {_CORRUPT_FIX}") from None
    return TensorInfo(tensor_name=components[0], dtype=dtype, shape=shape, kind=COMPOSITE,
                      components=components, type_spec=composite.type_spec.SerializeToString())


def _missing_tensor(sig: Signature, nodes: Mapping, where: str) -> str | None:
    """Why `sig` cannot run (a tensor it names is not in the graph), or None."""
    for kind, infos in (("input", sig.inputs), ("output", sig.outputs)):
        for key, info in sorted(infos.items()):
            for name in info.component_names():
                if not name or name.startswith("^") or not _valid_tensor_ref(name) or op_name(name) not in nodes:
                    return (f"{where}: signature {sig.name!r} {kind} {key!r} names tensor {name!r}, which is not in "
                            f"the graph; {_CORRUPT_FIX}")
    return None


def _dtype_name(enum_value: int, label: str) -> str:
    from tensorflow.python.framework import dtypes

    try:
        return dtypes.as_dtype(enum_value).name
    except TypeError:
        raise ModuleFormatError(f"{label} has data type number {enum_value}, which TensorFlow does not know; "
                                f"{_CORRUPT_FIX}") from None


def _read_attachments(path: str, meta_graph) -> dict:
    if ATTACHMENTS_COLLECTION not in meta_graph.collection_def:
        return {}
    where = f"{os.path.join(path, SAVED_MODEL_FILENAME)}"
    attachments = {}
    for blob in meta_graph.collection_def[ATTACHMENTS_COLLECTION].bytes_list.value:
        try:
            attachment = protos.ModuleAttachment.FromString(blob)
        except DecodeError:
            raise ModuleFormatError(f"{where}: an attached message is corrupt; {_CORRUPT_FIX}") from None
        if not ATTACHMENT_KEY.match(attachment.key):
            raise ModuleFormatError(f"{where}: attached message key {attachment.key!r} is invalid; {_CORRUPT_FIX}")
        attachments[attachment.key] = attachment.value  # the last one wins, as in the legacy loader
    if IMAGE_MODULE_INFO_KEY in attachments:  # read by every image lookup: check it once, here
        _parse_image_module_info(attachments[IMAGE_MODULE_INFO_KEY], where)
    return attachments


_MAX_IMAGE_SIDE = 1 << 16


def _parse_image_module_info(blob: bytes, where: str):
    try:
        info = protos.ImageModuleInfo.FromString(blob)
    except DecodeError:
        raise ModuleFormatError(f"{where}: the attached image_module_info is corrupt; {_CORRUPT_FIX}") from None
    size = info.default_image_size
    if not (0 <= size.height <= _MAX_IMAGE_SIDE and 0 <= size.width <= _MAX_IMAGE_SIDE):
        raise ModuleFormatError(f"{where}: the attached image_module_info gives image size {size.height}x"
                                f"{size.width}, outside 0..{_MAX_IMAGE_SIDE}; {_CORRUPT_FIX}")
    return info


def _node_list(meta_graph, key: str, nodes: Mapping | None = None, where: str = "graph") -> list:
    if key not in meta_graph.collection_def:
        return []
    names = list(meta_graph.collection_def[key].node_list.value)
    if nodes is not None:
        for name in names:
            if op_name(name) not in nodes or not _valid_tensor_ref(name):
                raise ModuleFormatError(f"{where}: collection {key!r} names {name!r}, which is not in the graph; "
                                        f"{_CORRUPT_FIX}")
    return names


def _read_asset_files(meta_graph, where: str = "graph") -> dict:
    # On export an asset constant's value becomes SAVEDMODEL-ASSET and an AssetFileDef records its file name.
    from tensorflow.core.protobuf import meta_graph_pb2

    if "saved_model_assets" not in meta_graph.collection_def:
        return {}
    files = {}
    for any_proto in meta_graph.collection_def["saved_model_assets"].any_list.value:
        asset = meta_graph_pb2.AssetFileDef()
        try:
            unpacked = any_proto.Unpack(asset)
        except DecodeError:
            unpacked = False
        if not unpacked or not asset.filename or os.path.basename(asset.filename) != asset.filename:
            raise ModuleFormatError(f"{where}: an entry of collection 'saved_model_assets' is corrupt; "
                                    f"{_CORRUPT_FIX}")
        files[asset.tensor_info.name] = asset.filename
    return files


def _variable_defs(meta_graph, key: str, where: str) -> list:
    """The VariableDefs of a bytes_list collection, each parsed here (a corrupt one is a ModuleFormatError)."""
    from tensorflow.core.framework import variable_pb2

    if key not in meta_graph.collection_def:
        return []
    result = []
    for i, blob in enumerate(meta_graph.collection_def[key].bytes_list.value):
        try:
            result.append(variable_pb2.VariableDef.FromString(blob))
        except DecodeError as e:
            raise ModuleFormatError(f"{where}: entry {i} of collection {key!r} is corrupt ({first_line(e)}); "
                                    f"{_CORRUPT_FIX}") from None
    return result


def _read_variables(meta_graph, nodes: Mapping, where: str = "graph") -> list:
    trainable = {op_name(v.variable_name) for v in _variable_defs(meta_graph, "trainable_variables", where)}
    _variable_defs(meta_graph, "model_variables", where)  # read by the shim: check it now
    slices = {}
    if "variables" in meta_graph.collection_def:
        names = []
        for var_def in _variable_defs(meta_graph, "variables", where):
            names.append(op_name(var_def.variable_name))
            if var_def.HasField("save_slice_info_def"):
                info = var_def.save_slice_info_def
                slices[names[-1]] = dict(full_name=info.full_name, full_shape=tuple(info.full_shape),
                                         offset=tuple(info.var_offset))
    else:  # a graph without the collection: every variable op is a variable of the module
        names = [n.name for n in meta_graph.graph_def.node if n.op in VARIABLE_OPS]
    result = []
    for name in names:
        node = nodes.get(name)
        if node is None or node.op not in VARIABLE_OPS:
            raise ModuleFormatError(
                f"{where}: variable {name!r} is listed in the variables collection but its op is missing from the "
                "graph (a partitioned or unsupported variable, or a damaged file); re-download or re-export the "
                "module with plain variables")
        dtype, shape = _variable_dtype_shape(node, where)
        result.append(VariableInfo(name=name, dtype=dtype, shape=shape, trainable=name in trainable,
                                   op_type=node.op, **slices.get(name, {})))
    return result


def _variable_dtype_shape(node, where: str = "graph") -> tuple:
    label = f"{where}: variable {node.name!r}"
    dtype = _dtype_name(node.attr["dtype"].type, label)
    shape_proto = node.attr["shape"].shape
    if shape_proto.unknown_rank or any(d.size < 0 for d in shape_proto.dim):
        raise ModuleFormatError(f"{label} has no fully defined shape; {_CORRUPT_FIX}")
    shape = tuple(d.size for d in shape_proto.dim)
    _check_shape(list(shape), label)
    return dtype, shape
