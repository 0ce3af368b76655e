"""Publishing TF1 Hub modules from a `module_fn`, as with tensorflow_hub 0.15, on modern TensorFlow.

    def module_fn(is_training=False):
        images = tf.compat.v1.placeholder(tf.float32, [None, 32, 32, 3])
        features = ...  # tf.compat.v1 ops, variables from tf.compat.v1.get_variable
        hub.add_signature(inputs=dict(images=images), outputs=features)
        hub.attach_image_module_info(hub.ImageModuleInfo(default_image_size=dict(height=32, width=32)))

    spec = create_module_spec(module_fn, tags_and_args=[(set(), {}), ({"train"}, {"is_training": True})])
    with tf.Graph().as_default():
        module = hub.Module(spec)
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            module.export("out/", session)

Each (tags, args) runs `module_fn(**args)` in a fresh TF1 graph; the graph becomes one graph variant (a
MetaGraphDef) with the signatures and messages added inside it. The spec has no weights: a `hub.Module` of it
initializes its variables with the graph's own initializers, and `Module.export` writes the module with the values
in the session. `tf.compat.v1.layers` (and slim, built on them) need Keras 2 on TensorFlow 2.16+: install tf-keras
and set TF_USE_LEGACY_KERAS=1 before TensorFlow is imported.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Callable, Iterable, Mapping

import tensorflow as tf

from legacy.format import reader
from legacy.format.protos import ImageModuleInfo
from legacy.errors import LegacyLayersUnavailableError, ModuleFnError
from legacy.hub.native_module import NativeModuleSpec
from legacy.format.reader import (ATTACHMENT_KEY, DEFAULT_SIGNATURE, IMAGE_MODULE_INFO_KEY, KNOWN_COLLECTIONS,
                           StoredModule, tag_label)
from legacy.format.writer import attach_message as attach_to_meta_graph

_ASSETS_COLLECTION = "saved_model_assets"
_ASSET_PLACEHOLDER = b"SAVEDMODEL-ASSET"  # what the exporter writes in place of an asset's path
_KERAS3_LAYERS = "is not available with Keras 3"  # TF 2.16+ without Keras 2: tf.compat.v1.layers are stubs


@dataclasses.dataclass
class _Building:
    """What `add_signature` and `attach_message` record while one module_fn runs."""

    graph: tf.Graph
    signatures: dict = dataclasses.field(default_factory=dict)  # name -> (inputs dict, outputs dict)
    attachments: dict = dataclasses.field(default_factory=dict)  # key -> message


_building: list = []  # a stack: module_fns may build specs of their own


def _current(what: str) -> _Building:
    graph = tf.compat.v1.get_default_graph()
    for state in reversed(_building):
        if state.graph is graph:
            return state
    raise ModuleFnError(f"hub.{what} must be called inside the module_fn passed to hub.create_module_spec")


def _tensor_dict(value, what: str, signature: str, graph) -> dict:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        value = {DEFAULT_SIGNATURE: value}
    result = {}
    for key, tensor in value.items():
        if not isinstance(key, str) or not key:
            raise ModuleFnError(f"signature {signature!r}: {what} keys must be non-empty strings, got {key!r}")
        components = tf.nest.flatten(tensor, expand_composites=True) \
            if isinstance(tensor, tf.__internal__.CompositeTensor) else [tensor]
        if not isinstance(tensor, (tf.Tensor, tf.SparseTensor, tf.RaggedTensor)) or any(
                getattr(c, "graph", None) is not graph for c in components):
            # "should have one of the types": the legacy library's words, which legacy code and tests match on.
            raise ModuleFnError(f"The inputs and outputs declared in hub.add_signature() for signature "
                                f"{signature!r} should have one of the types Tensor, SparseTensor, RaggedTensor, "
                                f"created inside the module_fn: {what} {key!r} is {type(tensor).__name__}")
        result[key] = tensor
    return result


def _input_colocation_error(signature: str, inputs: dict) -> str | None:
    # Inputs are replaced on import: a constraint on them could not be rewritten (the legacy library's rule).
    for key, tensor in sorted(inputs.items()):
        for component in tf.nest.flatten(tensor, expand_composites=True):
            op = component.op
            if op.colocation_groups() != [("loc:@" + op.name).encode()]:
                return (f"A tensor x used as input in a signature must not be subject to a tf.colocate_with(y) "
                        f"constraint: input {key!r} of signature {signature!r} ({component.name}) has "
                        f"colocation groups {op.colocation_groups()}; create the input outside tf.colocate_with")
    return None


def _state_colocation_error(graph, tags: frozenset) -> str | None:
    # Variables and tables are created anew for each module instance: they may be colocated only with each other.
    from legacy.engine.graph_import import state_node_names

    graph_def = graph.as_graph_def()
    state = set(state_node_names(graph_def)) | {n.name for n in graph_def.node if n.op in reader.VARIABLE_OPS}
    for name in sorted(state):
        op = graph.get_operation_by_name(name)
        for group in op.colocation_groups():
            if not (group.startswith(b"loc:@") and group[5:].decode() in state):
                return (f"A state-holding node x of a module's graph (e.g., a Variable op) must not be subject to a "
                        f"tf.colocate_with(y) constraint unless y is also a state-holding node: in graph variant "
                        f"{tag_label(tags)} node {name!r} ({op.type}) has colocation groups "
                        f"{op.colocation_groups()}; create it outside tf.colocate_with")
    return None


def add_signature(name: str | None = None, inputs=None, outputs=None) -> None:
    """Inside a module_fn: declare a signature. A lone tensor for inputs or outputs is keyed `default`
    (for image modules pass dict(images=...) instead, which `get_num_image_channels` needs)."""
    state = _current("add_signature")
    name = DEFAULT_SIGNATURE if name is None else name
    if not isinstance(name, str) or not name:
        raise ModuleFnError(f"signature name must be a non-empty string, got {name!r}")
    if name in state.signatures:
        raise ModuleFnError(f"signature {name!r} is added twice; give each signature its own name")
    inputs = _tensor_dict(inputs, "input", name, state.graph)
    outputs = _tensor_dict(outputs, "output", name, state.graph)
    error = _input_colocation_error(name, inputs)
    if error:
        raise ModuleFnError(error)
    if not outputs:
        raise ModuleFnError(f"signature {name!r} has no outputs; pass outputs= (a tensor or a dict of tensors)")
    state.signatures[name] = (inputs, outputs)


def attach_message(key: str, message) -> None:
    """Inside a module_fn: attach a protocol message to the module under `key` (the last one wins)."""
    state = _current("attach_message")
    if not isinstance(key, str) or not ATTACHMENT_KEY.match(key):
        raise ModuleFnError(f"attachment key {key!r} is invalid: use letters, digits and '_', starting with a letter")
    if not hasattr(message, "SerializeToString"):
        raise ModuleFnError(f"attach_message({key!r}, ...) needs a protocol buffer message, got "
                            f"{type(message).__name__}")
    state.attachments[key] = message


def attach_image_module_info(image_module_info=None) -> None:
    """Inside a module_fn: attach an `ImageModuleInfo` (e.g. the default image size)."""
    attach_message(IMAGE_MODULE_INFO_KEY, image_module_info if image_module_info is not None else ImageModuleInfo())


def create_module_spec(module_fn: Callable, tags_and_args: Iterable | None = None,
                       drop_collections: Iterable[str] | None = None) -> NativeModuleSpec:
    """A module spec built by running `module_fn(**args)` once per graph variant.

    tags_and_args: [(tags, args)], default [(set(), {})]. Without an inference variant set() (e.g. only {"train"}
      and {"eval"}), as with the legacy library, `hub.Module(spec)` needs tags= naming one of them.
    drop_collections: graph collections to leave out (the format allows only a few; the error lists them).
    """
    tags_and_args = [(set(), {})] if tags_and_args is None else list(tags_and_args)
    drop = list(drop_collections or [])
    description = f"<module_fn {getattr(module_fn, '__name__', type(module_fn).__name__)}>"
    variants, asset_sources = {}, {}
    for entry in tags_and_args:
        try:
            tags, args = entry
        except (TypeError, ValueError):
            raise ModuleFnError(f"tags_and_args entries are (tags, args) pairs, got {entry!r}") from None
        tags = frozenset(tags or ())
        if tags in variants:
            raise ModuleFnError(f"tags {tag_label(tags)} appear twice in tags_and_args; give each variant its own")
        meta_graph, assets = _build_variant(module_fn, tags, dict(args or {}), drop)
        for filename, path in assets.items():
            if asset_sources.setdefault(filename, path) != path:
                raise ModuleFnError(f"two different asset files are named {filename!r}; give them distinct names")
        # The reader validates the variant as it would on disk (collections, attachments, variables).
        variants[tags] = reader.read_variant(description, tags, meta_graph)
    return NativeModuleSpec(StoredModule(path=description, variants=variants), checkpoint_prefix=None,
                            asset_sources=asset_sources, description=description, tag_order=list(variants))


def _build_variant(module_fn: Callable, tags: frozenset, args: dict, drop: list) -> tuple:
    """(MetaGraphDef, {asset file name: path}) of one graph variant."""
    graph = tf.Graph()
    state = _Building(graph)
    with graph.as_default():
        _building.append(state)
        try:
            module_fn(**args)
        except AttributeError as e:
            if _KERAS3_LAYERS in str(e):
                raise LegacyLayersUnavailableError(
                    f"module_fn uses tf.compat.v1.layers ({e}): on TensorFlow 2.16+ they need Keras 2: pip install "
                    "tf-keras and set TF_USE_LEGACY_KERAS=1 before TensorFlow is imported") from None
            raise
        finally:
            _building.pop()
    if not state.signatures:
        # "No signatures present": the legacy library's words, which legacy code and tests match on.
        raise ModuleFnError(f"No signatures present in graph variant {tag_label(tags)} built by the module_fn; "
                            "call hub.add_signature(inputs=..., outputs=...) inside it")
    error = _state_colocation_error(graph, tags)
    if error:
        raise ModuleFnError(error)
    for key in drop:
        graph.clear_collection(key)
    keys = sorted(graph.get_all_collection_keys())
    unsupported = [k for k in keys if k not in KNOWN_COLLECTIONS]
    if unsupported:
        raise ModuleFnError(f"module_fn created graph collections a TF1 Hub module cannot hold: "
                            f"{', '.join(unsupported)}; pass drop_collections={unsupported!r}")
    assets = _asset_paths(graph)
    with graph.as_default():
        meta_graph = tf.compat.v1.train.export_meta_graph(graph=graph, collection_list=keys, clear_devices=True,
                                                          strip_default_attrs=True)
    meta_graph.meta_info_def.ClearField("tags")
    meta_graph.meta_info_def.tags.extend(sorted(tags))
    for name, (inputs, outputs) in sorted(state.signatures.items()):
        signature = meta_graph.signature_def[name]  # method_name stays empty, as in the format
        for target, tensors in ((signature.inputs, inputs), (signature.outputs, outputs)):
            for key, tensor in tensors.items():
                _write_tensor_info(target[key], tensor)
    for key, message in sorted(state.attachments.items()):
        attach_to_meta_graph(meta_graph, key, message)
    _record_assets(meta_graph, assets)
    return meta_graph, {filename: path for filename, path in assets.values()}


def _write_tensor_info(info, tensor) -> None:
    """A signature TensorInfo as the format stores it: by name, `coo_sparse`, or `composite_tensor` components."""
    if isinstance(tensor, tf.SparseTensor):
        info.dtype = tensor.dtype.as_datatype_enum
        info.tensor_shape.CopyFrom(tensor.shape.as_proto())
        info.coo_sparse.indices_tensor_name = tensor.indices.name
        info.coo_sparse.values_tensor_name = tensor.values.name
        info.coo_sparse.dense_shape_tensor_name = tensor.dense_shape.name
    elif isinstance(tensor, tf.__internal__.CompositeTensor):
        from tensorflow.python.saved_model import nested_structure_coder

        spec = tf.type_spec_from_value(tensor)
        info.composite_tensor.type_spec.CopyFrom(nested_structure_coder.encode_structure(spec).type_spec_value)
        for component in tf.nest.flatten(tensor, expand_composites=True):
            entry = info.composite_tensor.components.add(name=component.name,
                                                         dtype=component.dtype.as_datatype_enum)
            entry.tensor_shape.CopyFrom(component.shape.as_proto())
    else:
        info.name = tensor.name
        info.dtype = tensor.dtype.as_datatype_enum
        info.tensor_shape.CopyFrom(tensor.shape.as_proto())


def _asset_paths(graph) -> dict:
    """{tensor name: (file name, path)} for the string constants in the ASSET_FILEPATHS collection."""
    assets, paths = {}, {}
    for tensor in graph.get_collection(tf.compat.v1.GraphKeys.ASSET_FILEPATHS):
        value = tf.make_ndarray(tensor.op.get_attr("value")) if tensor.op.type == "Const" else None
        value = value.item() if value is not None and value.shape == () else None
        if not isinstance(value, bytes):
            raise ModuleFnError(f"asset {tensor.name} must be a scalar string constant (tf.constant(path)) holding "
                                "the file's path")
        path = os.path.abspath(value.decode())
        if not os.path.isfile(path):
            raise ModuleFnError(f"asset file {path} does not exist; create it before building the module")
        filename = os.path.basename(path)
        if paths.setdefault(filename, path) != path:
            raise ModuleFnError(f"two different asset files are named {filename!r}; give them distinct names")
        assets[tensor.name] = (filename, path)
    return assets


def _record_assets(meta_graph, assets: dict) -> None:
    """As on disk: each asset constant holds SAVEDMODEL-ASSET and an AssetFileDef names its file."""
    from tensorflow.core.protobuf import meta_graph_pb2

    nodes = {node.name: node for node in meta_graph.graph_def.node}
    for tensor_name, (filename, _) in sorted(assets.items()):
        nodes[tensor_name.split(":")[0]].attr["value"].tensor.string_val[:] = [_ASSET_PLACEHOLDER]
        asset = meta_graph_pb2.AssetFileDef(filename=filename)
        asset.tensor_info.name = tensor_name
        meta_graph.collection_def[_ASSETS_COLLECTION].any_list.value.add().Pack(asset)
