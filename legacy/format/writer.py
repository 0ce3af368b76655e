"""Write TF1 Hub format module directories that the genuine tensorflow_hub 0.15 loads.

A module is: `saved_model.pb` (one MetaGraphDef per graph variant), `variables/variables.*` (a checkpoint keyed by
the variables' names inside the module graph), `assets/` (always present) and `tfhub_module.pb` (`08 03`), which
is written last, as the legacy exporter does. The whole directory is written atomically.

    write_module("out/", [inference_meta_graph, train_meta_graph], variables={"conv/kernel": kernel})
"""

from __future__ import annotations

import os
import shutil
from typing import Mapping, Sequence

import numpy as np

from legacy.format import protos
from legacy.format.atomic import atomic_directory
from legacy.errors import ModuleFormatError
from legacy.format.reader import (ASSETS_DIRNAME, ATTACHMENTS_COLLECTION, IMAGE_MODULE_INFO_KEY, KNOWN_COLLECTIONS,
                           MODULE_DEF_FILENAME, SAVED_MODEL_FILENAME, VARIABLES_DIRNAME, VARIABLES_PREFIX,
                           ATTACHMENT_KEY, tag_label)


def attach_message(meta_graph, key: str, message) -> None:
    """Attach a serialized message to one variant under `key` (replacing an earlier one with that key)."""
    if not ATTACHMENT_KEY.match(key):
        raise ModuleFormatError(f"attachment key {key!r} is invalid: use letters, digits and '_', starting "
                                "with a letter")
    collection = meta_graph.collection_def[ATTACHMENTS_COLLECTION].bytes_list
    kept = [b for b in collection.value if protos.ModuleAttachment.FromString(b).key != key]
    del collection.value[:]
    collection.value.extend(kept)
    collection.value.append(
        protos.ModuleAttachment(key=key, value=message.SerializeToString()).SerializeToString())


def image_module_info(height: int, width: int):
    """An `ImageModuleInfo` message for the given default image size."""
    info = protos.ImageModuleInfo()
    info.default_image_size.height = int(height)
    info.default_image_size.width = int(width)
    return info


def attach_image_size(meta_graph, height: int, width: int) -> None:
    attach_message(meta_graph, IMAGE_MODULE_INFO_KEY, image_module_info(height, width))


def write_checkpoint(prefix: str, variables: Mapping) -> None:
    """Write a TF2-format (V2) checkpoint with exactly the given keys, as the legacy loader reads them.

    variables: name -> value: a NumPy array (or anything `np.asarray` takes), a tensor or an eager `tf.Variable`
    (its value as it is now; in eager code the save reads the variable's buffer, without a copy of the weights).
    """
    import tensorflow as tf

    names = sorted(variables)
    if not tf.executing_eagerly():
        # In graph mode (a TF1 program exporting a module) an op would only be added to the caller's graph:
        # run the save in a graph and session of its own instead.
        _write_checkpoint_in_session(prefix, names, variables)
        return
    tensors = [tf.convert_to_tensor(variables[n]) for n in names]
    with tf.device("/cpu:0"):
        tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names, shape_and_slices=[""] * len(names), tensors=tensors)


def _write_checkpoint_in_session(prefix: str, names: list, variables: Mapping[str, np.ndarray]) -> None:
    import tensorflow as tf

    # Strings stay Python objects: a NumPy bytes array would drop their trailing NUL bytes. An eager variable or
    # tensor is read in the eager context that holds it (this code runs in the caller's graph mode).
    with tf.init_scope():
        values = [v if isinstance(v, (bytes, str)) else np.asarray(v) for v in (variables[n] for n in names)]
    graph = tf.Graph()
    with graph.as_default(), tf.device("/cpu:0"):
        feeds = [tf.compat.v1.placeholder(tf.string if isinstance(v, (bytes, str)) or v.dtype.kind in "SUO"
                                          else tf.as_dtype(v.dtype)) for v in values]
        save = tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names, shape_and_slices=[""] * len(names), tensors=feeds)
    with tf.compat.v1.Session(graph=graph) as session:
        session.run(save, dict(zip(feeds, values)))


def copy_checkpoint(src_prefix: str, dst_prefix: str) -> None:
    """Copy the files of an existing checkpoint (index and data shards) under a new prefix."""
    src_dir, src_base = os.path.split(src_prefix)
    dst_dir, dst_base = os.path.split(dst_prefix)
    copied = False
    for name in os.listdir(src_dir):
        if name.startswith(src_base + "."):
            shutil.copyfile(os.path.join(src_dir, name), os.path.join(dst_dir, dst_base + name[len(src_base):]))
            copied = True
    if not copied:
        raise ModuleFormatError(f"no checkpoint files at {src_prefix}; the module is incomplete")


def write_module(dst: str, meta_graphs: Sequence, variables: Mapping | str | None = None,
                 assets: Mapping[str, str] | None = None, force: bool = False, require_inference: bool = True) -> str:
    """Write a TF1 Hub module to `dst` atomically and return its path.

    meta_graphs: one MetaGraphDef per graph variant, tagged in `meta_info_def.tags` (the empty set is required
    unless `require_inference` is False: the shim's export of a module that has none, e.g. a TF1 SavedModel tagged
    {serve} only, writes the variants it has, as tensorflow_hub 0.15 did).
    variables: checkpoint name -> value (as `write_checkpoint` takes it), or the prefix of an existing checkpoint
    to copy.
    assets: file name under `assets/` -> path of the file to copy there.
    """
    from tensorflow.core.protobuf import saved_model_pb2

    saved_model = saved_model_pb2.SavedModel(saved_model_schema_version=0)
    seen = set()
    for meta_graph in meta_graphs:
        tags = frozenset(meta_graph.meta_info_def.tags)
        if tags in seen:
            raise ModuleFormatError(f"two graph variants share the tags {tag_label(tags)}")
        seen.add(tags)
        unknown = sorted(set(meta_graph.collection_def) - KNOWN_COLLECTIONS)
        if unknown:
            raise ModuleFormatError(f"graph variant {tag_label(tags)} has collections the legacy loader rejects: "
                                    f"{', '.join(unknown)}; drop them before writing")
        copy = saved_model.meta_graphs.add()
        copy.CopyFrom(meta_graph)
        copy.ClearField("saver_def")
        for sig in copy.signature_def.values():
            sig.method_name = ""
    if require_inference and frozenset() not in seen:
        raise ModuleFormatError("a module needs the inference graph variant (tags set()); none was given")

    with atomic_directory(dst, force=force) as tmp:
        os.makedirs(os.path.join(tmp, VARIABLES_DIRNAME))
        os.makedirs(os.path.join(tmp, ASSETS_DIRNAME))
        for name, src in sorted((assets or {}).items()):
            target = os.path.join(tmp, ASSETS_DIRNAME, name)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.copyfile(src, target)
        prefix = os.path.join(tmp, VARIABLES_PREFIX)
        if isinstance(variables, str):
            copy_checkpoint(variables, prefix)
        elif variables:
            write_checkpoint(prefix, variables)
        with open(os.path.join(tmp, SAVED_MODEL_FILENAME), "wb") as f:
            f.write(saved_model.SerializeToString())
        # Written last: a directory holding tfhub_module.pb is a module, so it must be complete by then.
        with open(os.path.join(tmp, MODULE_DEF_FILENAME), "wb") as f:
            f.write(protos.ModuleDef(format=protos.FORMAT_V3).SerializeToString())
    return dst


def rewrite_module(src, dst: str, force: bool = False) -> str:
    """Write a read module (`StoredModule`) back to disk: same graphs, weights and assets."""
    assets = {name: os.path.join(src.assets_dir, name) for name in src.asset_files()}
    meta_graphs = [src.variants[tags].meta_graph for tags in src.tags]
    variables = src.variables_prefix if src.variables() else None
    return write_module(dst, meta_graphs, variables=variables, assets=assets, force=force)
