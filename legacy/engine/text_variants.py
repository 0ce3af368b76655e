"""The TF1 graph variants of a TF2 model that takes text or named tensors (string, sparse or ragged inputs, or a
dict of tensors such as token ids and masks; lookup tables; assets).

    if is_text_model(obj):
        meta_graph, assets = text_meta_graph(src, obj, metadata, names, trainable_ids, training=False)

The counterpart of `bridge.conversion.text_adapter`: each TF1 signature the model's bridge metadata lists comes
back from its function `obj.<signature>(inputs, training=False)` (a model saved by TensorFlow itself, without the
metadata, has one: `default`, from its `__call__`); the {"train"} variant from the `training=True` traces, when
every such function has one. Inputs become TF1 placeholders of the function's
own types (`tf.compat.v1.sparse_placeholder` for a SparseTensor, a ragged placeholder for a RaggedTensor; a dict
argument becomes one input per key, as a TF1 BERT-style `tokens` signature takes them). Each of
the model's tables becomes a named `HashTableV2` (node-name sharing: one table per module instance) filled by the
model's own initializer function, imported into the graph and listed in the `table_initializer` collection; the
files it reads become the module's assets (`asset_filepaths`, `saved_model_assets`), as the TF1 exporter writes them.
"""

from __future__ import annotations

import dataclasses
import os

import tensorflow as tf

from legacy.engine.function_import import (export_variant, import_function, import_regularization_losses,
                                           tensor_info)
from legacy.engine.graph_variables import create_graph_variables
from legacy.engine.tables import NAMED_TABLE_OPS
from legacy.errors import ConversionError
from legacy.format.conventions import DEFAULT_SIGNATURE, TRAIN_TAGS
from legacy.format.graph_defs import name_functions_by_content


def is_text_model(obj) -> bool:
    """Whether the model's `__call__` takes strings (plain, sparse or ragged) or a dict of named tensors (token
    ids, masks, ...) rather than an image batch."""
    call = getattr(obj, "__call__", None)
    for cf in list(getattr(call, "concrete_functions", None) or []):
        args, kwargs = cf.structured_input_signature
        first = list(args[:1]) or list(kwargs.values())[:1]
        if first and (isinstance(first[0], dict) or getattr(first[0], "dtype", None) == tf.string):
            return True
    return False


@dataclasses.dataclass
class _Handle:
    handle: object  # what `import_function` maps a captured tensor to


def text_functions(obj, metadata) -> tuple:
    """({TF1 signature: the model's function name}, primary signature): the signatures its bridge metadata lists,
    or for a model without, its `__call__` as the `default` signature."""
    if metadata is not None and metadata.signatures:
        return {name: name for name in metadata.signatures}, metadata.primary_signature
    return {DEFAULT_SIGNATURE: "__call__"}, DEFAULT_SIGNATURE


def has_training_traces(obj, metadata) -> bool:
    """Whether every function the TF1 signatures come from was traced with training=True (a Reusable SavedModel's
    training mode), so that a {"train"} graph variant can be written."""
    functions, _ = text_functions(obj, metadata)
    for attribute in functions.values():
        fn = getattr(obj, attribute, None)
        if fn is None or _trace(fn, True, required=False) is None:
            return False
    return True


def text_meta_graph(src: str, obj, metadata, variable_names: dict, trainable_ids: set,
                    training: bool = False, partitions: dict | None = None, loss_graphs: dict | None = None) -> tuple:
    """(MetaGraphDef, {asset file name: path}) of a text model (see the module docstring): the inference graph
    variant, or with `training` the {"train"} one (the functions' training=True traces; what they assign, e.g.
    batch-norm statistics, is UPDATE_OPS). `partitions`: part name -> its slice of a partitioned variable (see
    `legacy.engine.partitions`); `loss_graphs`: kept by the caller across variants (see
    `import_regularization_losses`)."""
    functions, primary = text_functions(obj, metadata)
    variables = list(getattr(obj, "variables", []))
    graph = tf.Graph()
    assets, asset_nodes, initializers = {}, [], []
    with graph.as_default():
        graph_vars = create_graph_variables(variables, variable_names, trainable_ids, partitions)
        handles = {id(var.handle): graph_vars[id(var)] for var in variables}
        for asset in _descendants(obj, tf.saved_model.Asset):
            path = asset.asset_path.numpy().decode()
            name = os.path.basename(path)
            node = tf.constant(name, name="asset_path" if not asset_nodes else f"asset_path_{len(asset_nodes)}")
            assets[name] = path
            asset_nodes.append((node, name))
            handles[id(asset.asset_path)] = _Handle(node)
        for k, resource in enumerate(_descendants(obj, tf.saved_model.experimental.TrackableResource)):
            table = _named_table(resource, f"hash_table_{k}" if k else "hash_table")
            handles[id(resource.resource_handle)] = _Handle(table)
            init = getattr(resource, "_initialize", None)
            if init is not None:
                outputs, _ = import_function(_concrete(init), [], handles, f"table_init_{k}" if k else "table_init")
                initializers += [t.op for t in outputs]
        signature_defs = {}
        for name, attribute in functions.items():
            fn = getattr(obj, attribute, None)
            if fn is None:
                raise ConversionError(f"{src}: its metadata lists signature {name!r}, but the model has no such "
                                      "function; re-convert it from the TF1 module")
            concrete = _trace(fn, training)
            args, _ = concrete.structured_input_signature
            if args and isinstance(args[0], dict):  # one dict of named tensors: one TF1 input per key
                placeholders = {key: _placeholder(spec, key) for key, spec in args[0].items()}
                flat = tf.nest.flatten(placeholders, expand_composites=True)  # the dict's order: sorted keys
            else:
                keys = (argument_names(fn) or ["inputs"])[:len(args)]
                if attribute == "__call__" and len(keys) == 1:
                    keys = [DEFAULT_SIGNATURE]  # TF1 text modules' single input is named `default`
                placeholders = {key: _placeholder(spec, key) for key, spec in zip(keys, args)}
                flat = [t for key in keys for t in tf.nest.flatten(placeholders[key], expand_composites=True)]
            outputs, updates = import_function(concrete, flat, handles, f"{name}_apply")
            if training and name == primary:
                for update in updates:
                    tf.compat.v1.add_to_collection(tf.compat.v1.GraphKeys.UPDATE_OPS, update)
            structured = tf.nest.pack_sequence_as(concrete.structured_outputs, list(outputs), expand_composites=True)
            if not isinstance(structured, dict):
                structured = {DEFAULT_SIGNATURE: structured}
            signature_defs[name] = tf.compat.v1.saved_model.build_signature_def(
                inputs={k: tensor_info(v) for k, v in placeholders.items()},
                outputs={k: tensor_info(v) for k, v in structured.items()})
        if primary != DEFAULT_SIGNATURE:
            signature_defs[DEFAULT_SIGNATURE] = signature_defs[primary]
        import_regularization_losses(obj, handles, loss_graphs)
        meta_graph = export_variant(graph)
    meta_graph.meta_info_def.ClearField("tags")
    meta_graph.meta_info_def.tags.extend(sorted(TRAIN_TAGS) if training else [])
    for name, sig in signature_defs.items():
        meta_graph.signature_def[name].CopyFrom(sig)
    name_functions_by_content(meta_graph.graph_def)  # not the TF2 model's names: both may run in one process
    from tensorflow.core.protobuf import meta_graph_pb2

    for op in initializers:
        meta_graph.collection_def["table_initializer"].node_list.value.append(op.name)
    for node, name in asset_nodes:
        meta_graph.collection_def["asset_filepaths"].node_list.value.append(node.name)
        asset_def = meta_graph_pb2.AssetFileDef(filename=name)
        asset_def.tensor_info.name = node.name
        meta_graph.collection_def["saved_model_assets"].any_list.value.add().Pack(asset_def)
    return meta_graph, assets


def _descendants(obj, kind) -> list:
    return [d for d in tf.train.TrackableView(obj).descendants() if isinstance(d, kind)]


def _concrete(fn):
    if hasattr(fn, "concrete_functions") and fn.concrete_functions:
        return fn.concrete_functions[0]
    return fn.get_concrete_function()


def _named_table(resource, name: str):
    """The TF1 table op for a TF2 table resource: its creator function's table op, under a name of this graph."""
    from tensorflow.python.ops import gen_lookup_ops

    create = _concrete(resource._create_resource)  # pylint: disable=protected-access
    for op in create.graph.get_operations():
        if op.type in NAMED_TABLE_OPS:
            kind = NAMED_TABLE_OPS[op.type]
            attrs = {"key_dtype": op.get_attr("key_dtype"), "value_dtype": op.get_attr("value_dtype")}
            if kind == "MutableHashTableOfTensorsV2":
                attrs["value_shape"] = op.get_attr("value_shape")
            fn = {"HashTableV2": gen_lookup_ops.hash_table_v2,
                  "MutableHashTableV2": gen_lookup_ops.mutable_hash_table_v2,
                  "MutableHashTableOfTensorsV2": gen_lookup_ops.mutable_hash_table_of_tensors_v2}[kind]
            return fn(shared_name="", use_node_name_sharing=True, name=name, **attrs)
    raise ConversionError(f"the model holds a resource ({type(resource).__name__}) that is not a lookup table of "
                          f"kind {', '.join(sorted(set(NAMED_TABLE_OPS.values())))}; it cannot be written as TF1")


def _trace(fn, training: bool, required: bool = True):
    """The restored function's trace with training=False (or without a training argument), or with
    training=True; None (required=False) or ConversionError when it has none."""
    traces = list(getattr(fn, "concrete_functions", None) or [])
    for cf in traces:
        args, kwargs = cf.structured_input_signature
        flags = [a for a in args[1:] if isinstance(a, bool)] + [kwargs.get("training", False)]
        if (any(f is True for f in flags)) == training:
            return cf
    if not required:
        return None
    raise ConversionError(f"the model's function has no {'training' if training else 'inference'} trace "
                          f"(training={training}); re-convert it")


def argument_names(fn) -> list:
    """A tf.function's argument names (a restored one keeps its Python argument names); [] when it tells none."""
    spec = getattr(fn, "function_spec", None)
    return [a for a in getattr(getattr(spec, "fullargspec", None), "args", None) or () if a != "self"]


def _placeholder(spec, key: str):
    if isinstance(spec, tf.SparseTensorSpec):
        return tf.compat.v1.sparse_placeholder(spec.dtype, spec.shape, name=key)
    if isinstance(spec, tf.RaggedTensorSpec):
        return tf.compat.v1.ragged.placeholder(spec.dtype, spec.ragged_rank, spec.shape[spec.ragged_rank + 1:],
                                               name=key)
    return tf.compat.v1.placeholder(spec.dtype, spec.shape, name=key)
