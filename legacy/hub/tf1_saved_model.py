"""`hub.create_module_spec_from_saved_model`: a TF1 SavedModel as a module spec, as in tensorflow_hub 0.15.

    spec = hub.create_module_spec_from_saved_model("export/1700000000", drop_collections=["losses"])
    spec.get_tags()                                       # [{'serve'}]
    module = hub.Module(spec, tags={"serve"})
    outputs = module(dict(x=x), signature="serving_default", as_dict=True)

A TF1 SavedModel (written by `tf.compat.v1.saved_model.Builder`, `simple_save` or an Estimator export) holds
`saved_model.pb` with one MetaGraphDef per tag set, the checkpoint `variables/variables` and maybe `assets/`: the
layout of a TF1 Hub module without `tfhub_module.pb`. The spec's graph variants are its meta graphs (tagged as
written), their signature_defs the signatures, the checkpoint the weights (keyed by the variables' names, as a
module's are) and `assets/` the assets. `Module.export(path, session)` and `spec.export(path, checkpoint_path=...)`
then write a TF1 Hub module.

As the genuine library did, the spec is built from a modified copy of `saved_model.pb` (the directory is only read):

- the collections `global_step`, `legacy_init_op` and `saved_model_main_op` are always dropped, with the caller's
  `drop_collections`. The init or main op (initialize variables, fill lookup tables) is what
  `global_variables_initializer()` and `tables_initializer()` do for a module; the global step variable stays a
  variable of the module when the `variables` collection lists it.
- any other collection the TF1 Hub format does not allow (`losses`, `summaries`, `saved_model_train_op`, ...) is
  refused with the genuine ValueError's first words, naming the collections to drop.
- each asset constant holds `SAVEDMODEL-ASSET` and an AssetFileDef in collection `saved_model_assets` names its file
  under `assets/`, as in a module. AssetFileDefs in the MetaGraphDef's `asset_file_def` field (written by newer
  builders) are moved into that collection: the genuine library ignored them and read such an asset from the path
  it had when the SavedModel was written, so a copied SavedModel lost its vocabulary.

A TF2 SavedModel (`tf.saved_model.save`) has no TF1 graph of its variables: the genuine library built a spec with no
variables that failed when run; here it is refused, naming `hub.load_module_spec`, which takes it.
"""

from __future__ import annotations

import os
from typing import Iterable

from google.protobuf.message import DecodeError

from legacy.errors import ModuleFormatError, NotAModuleError, UnsupportedCollectionsError
from legacy.format.conventions import SAVED_MODEL_TEXT_FILENAME
from legacy.format.graph_defs import op_name
from legacy.format.reader import (KNOWN_COLLECTIONS, SAVED_MODEL_FILENAME, read_graph_variants,
                                  read_saved_model_proto)
from legacy.hub.native_module import NativeModuleSpec

# What tensorflow_hub 0.15 always dropped: the step counter of Estimator exports, and the init and main ops of
# serving exports (see the module docstring).
ALWAYS_DROPPED_COLLECTIONS = frozenset({"global_step", "legacy_init_op", "saved_model_main_op"})
_ASSETS_COLLECTION = "saved_model_assets"
_ASSET_PLACEHOLDER = b"SAVEDMODEL-ASSET"  # an asset constant's value in a module on disk


def create_module_spec_from_saved_model(saved_model_path: str | os.PathLike,
                                        drop_collections: Iterable[str] | None = None) -> NativeModuleSpec:
    """The module spec of the TF1 SavedModel in directory `saved_model_path`.

    drop_collections: more graph collections to leave out, besides global_step, legacy_init_op and
    saved_model_main_op (the error for an unsupported collection lists what to pass).
    """
    path = _saved_model_directory(saved_model_path)
    saved_model = read_saved_model_proto(path)
    _refuse_tf2(path, saved_model)
    dropped = ALWAYS_DROPPED_COLLECTIONS | set(drop_collections or ())
    for meta_graph in saved_model.meta_graphs:
        for key in dropped & set(meta_graph.collection_def):
            del meta_graph.collection_def[key]
    unsupported = sorted({key for meta_graph in saved_model.meta_graphs for key in meta_graph.collection_def}
                         - KNOWN_COLLECTIONS)
    if unsupported:
        # The genuine message begins so (legacy code matches on it); its second line named create_module_spec.
        raise UnsupportedCollectionsError(
            f"Unsupported collections in graph: {unsupported!r}; pass "
            f"hub.create_module_spec_from_saved_model(path, drop_collections={unsupported!r}) to leave them out")
    for meta_graph in saved_model.meta_graphs:
        _package_assets(meta_graph)
    stored = read_graph_variants(path, saved_model)
    assets_dir = os.path.abspath(stored.assets_dir)
    return NativeModuleSpec(stored, stored.variables_prefix if stored.variables() else None,
                            {name: os.path.join(assets_dir, name) for name in stored.asset_files()}, path)


def _saved_model_directory(saved_model_path: str | os.PathLike) -> str:
    path = os.fspath(saved_model_path)
    expected = "pass the directory of a TF1 SavedModel (written by tf.compat.v1.saved_model.Builder or simple_save)"
    if not os.path.exists(path):
        raise NotAModuleError(f"{path}: no such file or directory; {expected}")
    if not os.path.isdir(path):
        raise NotAModuleError(f"{path} is a file, not a SavedModel directory; {expected}")
    if not os.path.isfile(os.path.join(path, SAVED_MODEL_FILENAME)):
        if os.path.isfile(os.path.join(path, SAVED_MODEL_TEXT_FILENAME)):
            raise NotAModuleError(f"{path} holds {SAVED_MODEL_TEXT_FILENAME} but no {SAVED_MODEL_FILENAME}; write "
                                  "the SavedModel in binary form (Builder.save(as_text=False))")
        raise NotAModuleError(f"{path} holds no {SAVED_MODEL_FILENAME}; {expected}")
    return path


def _refuse_tf2(path: str, saved_model) -> None:
    if any(meta_graph.object_graph_def.nodes for meta_graph in saved_model.meta_graphs):
        raise ModuleFormatError(
            f"{path} is a TF2 SavedModel (tf.saved_model.save): it has no TF1 graph to build a module from; load it "
            "with hub.load_module_spec(path) or hub.Module(path), which take TF2 SavedModels, or with hub.load")


def _package_assets(meta_graph) -> None:
    """Assets as a module on disk holds them (see the module docstring). A damaged AssetFileDef is left for the
    reader, which names it."""
    from tensorflow.core.protobuf import meta_graph_pb2

    asset_defs = []
    if _ASSETS_COLLECTION in meta_graph.collection_def:
        for any_proto in meta_graph.collection_def[_ASSETS_COLLECTION].any_list.value:
            asset = meta_graph_pb2.AssetFileDef()
            try:
                if any_proto.Unpack(asset):
                    asset_defs.append(asset)
            except DecodeError:
                pass
    listed = {asset.tensor_info.name for asset in asset_defs}
    for asset in meta_graph.asset_file_def:
        if asset.tensor_info.name not in listed:
            meta_graph.collection_def[_ASSETS_COLLECTION].any_list.value.add().Pack(asset)
            asset_defs.append(asset)
    meta_graph.ClearField("asset_file_def")
    constants = {op_name(asset.tensor_info.name) for asset in asset_defs}
    for node in meta_graph.graph_def.node:
        if node.name in constants and node.op == "Const" and len(node.attr["value"].tensor.string_val) == 1:
            node.attr["value"].tensor.string_val[:] = [_ASSET_PLACEHOLDER]
