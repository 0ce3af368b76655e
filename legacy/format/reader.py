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

import dataclasses
import os
import re
from typing import Iterable, Mapping

from google.protobuf.message import DecodeError

from legacy.format import protos
from legacy.format.graph_defs import op_name
from legacy.format.conventions import (DEFAULT_SIGNATURE, IMAGE_INPUT_KEY, IMAGE_MODULE_INFO_KEY,  # noqa: F401
                                       MODULE_DEF_FILENAME, SAVED_MODEL_FILENAME, TRAIN_TAGS, is_tf1_hub_module,
                                       require_directory, tag_label)
from legacy.errors import (ModuleFormatError, NotAModuleError, NotAnImageModuleError, UnknownSignatureError,
                           UnknownVariantError)

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


@dataclasses.dataclass(frozen=True)
class TensorInfo:
    """One signature input or output: graph tensor name, dtype name and static shape (None: unknown rank)."""

    tensor_name: str
    dtype: str
    shape: Shape | None

    def to_json(self) -> dict:
        return {"dtype": self.dtype, "shape": None if self.shape is None else list(self.shape)}


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

    def signature(self, name: str | None = None) -> Signature:
        name = DEFAULT_SIGNATURE if name is None else name
        if name not in self.signatures:
            raise UnknownSignatureError(
                f"signature {name!r} not found in graph variant {tag_label(self.tags)}; "
                f"available: {', '.join(sorted(self.signatures)) or 'none'}")
        return self.signatures[name]


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

    def variables(self) -> list:
        """The module's variables, taken from the inference variant (the variants share them)."""
        seen, result = set(), []
        for tags in self.tags:
            for var in self.variants[tags].variables:
                if var.name not in seen:
                    seen.add(var.name)
                    result.append(var)
        return result

    def image_module_info(self, tags: Iterable[str] | None = None):
        """The attached `ImageModuleInfo`, or None."""
        blob = self.variant(tags).attachments.get(IMAGE_MODULE_INFO_KEY)
        return None if blob is None else protos.ImageModuleInfo.FromString(blob)

    def expected_image_size(self, signature: str | None = None, input_name: str | None = None,
                            tags: Iterable[str] | None = None) -> tuple:
        """(height, width) the legacy way: the attachment when both sizes are set, else the static input shape."""
        info = self.image_module_info(tags)
        if info is not None and info.default_image_size.height and info.default_image_size.width:
            return info.default_image_size.height, info.default_image_size.width
        shape = self._image_input(signature, input_name, tags).shape
        if shape is None or len(shape) != 4 or not shape[1] or not shape[2]:
            raise NotAnImageModuleError(
                f"Shape of module input is {_shape_str(shape)}, expected [batch_size, height, width, num_channels] "
                "with known height and width; give the size explicitly (e.g. --image-size HEIGHTxWIDTH)")
        return shape[1], shape[2]

    def num_image_channels(self, signature: str | None = None, input_name: str | None = None,
                           tags: Iterable[str] | None = None) -> int:
        """Number of channels from the static shape of the image input (the legacy lookup reads nothing else)."""
        shape = self._image_input(signature, input_name, tags).shape
        if shape is None or len(shape) != 4 or not shape[3]:
            raise NotAnImageModuleError(
                f"Shape of module input is {_shape_str(shape)}, expected [batch_size, height, width, "
                "num_channels] with known num_channels")
        return shape[3]

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
    saved_model = read_saved_model_proto(path)
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
    unknown = sorted(set(meta_graph.collection_def) - KNOWN_COLLECTIONS)
    if unknown:
        raise ModuleFormatError(
            f"{path}: graph variant {tag_label(tags)} has collections the TF1 Hub format does not allow: "
            f"{', '.join(unknown)}; re-export without them (drop_collections)")
    nodes = {node.name: node for node in meta_graph.graph_def.node}
    return Variant(
        tags=tags,
        meta_graph=meta_graph,
        signatures={name: read_signature(name, sig) for name, sig in meta_graph.signature_def.items()},
        attachments=_read_attachments(path, meta_graph),
        variables=_read_variables(meta_graph, nodes),
        update_ops=_node_list(meta_graph, "update_ops"),
        regularization_losses=_node_list(meta_graph, "regularization_losses"),
        asset_filepaths=_node_list(meta_graph, "asset_filepaths"),
        asset_files=_read_asset_files(meta_graph),
    )


def read_signature(name: str, sig) -> Signature:
    return Signature(name=name,
                     inputs={k: _tensor_info(v) for k, v in sig.inputs.items()},
                     outputs={k: _tensor_info(v) for k, v in sig.outputs.items()})


def _tensor_info(info) -> TensorInfo:
    from tensorflow.python.framework import dtypes

    dtype = dtypes.as_dtype(info.dtype).name if info.dtype else "invalid"
    if info.tensor_shape.unknown_rank:
        shape = None
    else:
        shape = tuple(None if d.size < 0 else d.size for d in info.tensor_shape.dim)
    if info.WhichOneof("encoding") != "name":
        raise ModuleFormatError(f"signature tensor {info} is sparse or composite; only dense tensors are supported")
    return TensorInfo(tensor_name=info.name, dtype=dtype, shape=shape)


def _read_attachments(path: str, meta_graph) -> dict:
    if ATTACHMENTS_COLLECTION not in meta_graph.collection_def:
        return {}
    attachments = {}
    for blob in meta_graph.collection_def[ATTACHMENTS_COLLECTION].bytes_list.value:
        try:
            attachment = protos.ModuleAttachment.FromString(blob)
        except DecodeError:
            raise ModuleFormatError(f"{path}: an attached message is corrupt; re-export the module") from None
        if not ATTACHMENT_KEY.match(attachment.key):
            raise ModuleFormatError(f"{path}: attached message key {attachment.key!r} is invalid")
        attachments[attachment.key] = attachment.value  # the last one wins, as in the legacy loader
    return attachments


def _node_list(meta_graph, key: str) -> list:
    if key not in meta_graph.collection_def:
        return []
    return list(meta_graph.collection_def[key].node_list.value)


def _read_asset_files(meta_graph) -> dict:
    # On export an asset constant's value becomes SAVEDMODEL-ASSET and an AssetFileDef records its file name.
    from tensorflow.core.protobuf import meta_graph_pb2

    if "saved_model_assets" not in meta_graph.collection_def:
        return {}
    files = {}
    for any_proto in meta_graph.collection_def["saved_model_assets"].any_list.value:
        asset = meta_graph_pb2.AssetFileDef()
        any_proto.Unpack(asset)
        files[asset.tensor_info.name] = asset.filename
    return files


def _read_variables(meta_graph, nodes: Mapping) -> list:
    from tensorflow.core.framework import variable_pb2

    trainable = set()
    if "trainable_variables" in meta_graph.collection_def:
        for blob in meta_graph.collection_def["trainable_variables"].bytes_list.value:
            trainable.add(op_name(variable_pb2.VariableDef.FromString(blob).variable_name))
    if "variables" in meta_graph.collection_def:
        names = [op_name(variable_pb2.VariableDef.FromString(blob).variable_name)
                 for blob in meta_graph.collection_def["variables"].bytes_list.value]
    else:  # a graph without the collection: every variable op is a variable of the module
        names = [n.name for n in meta_graph.graph_def.node if n.op in VARIABLE_OPS]
    result = []
    for name in names:
        node = nodes.get(name)
        if node is None or node.op not in VARIABLE_OPS:
            raise ModuleFormatError(
                f"variable {name!r} is listed in the variables collection but its op is missing from the graph "
                "(a partitioned or unsupported variable); re-export the module with plain variables")
        dtype, shape = _variable_dtype_shape(node)
        result.append(VariableInfo(name=name, dtype=dtype, shape=shape, trainable=name in trainable,
                                   op_type=node.op))
    return result


def _variable_dtype_shape(node) -> tuple:
    from tensorflow.python.framework import dtypes

    dtype = dtypes.as_dtype(node.attr["dtype"].type).name
    shape_proto = node.attr["shape"].shape
    shape = tuple(d.size for d in shape_proto.dim)
    return dtype, shape
