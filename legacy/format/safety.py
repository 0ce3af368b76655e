"""Scan a model's graphs for ops that touch files, processes or the network or run Python, before running any.

A SavedModel or TF1 Hub module is a program: besides convolutions its graph may read or write files (`ReadFile`,
`WriteFile`, checkpoint and dataset ops), memory-map them (`ImmutableConst`), run Python (`PyFunc`), or talk to
other machines (tf.data service, collectives, RPC). Nothing here runs a graph: the scan reads protocol buffers,
every node of every graph variant and every function of their libraries, and reports each such op by node name.

The ordinary checkpoint functions of a TF2 SavedModel (`SaveV2`/`RestoreV2`/`MergeV2Checkpoints`, reached only
from the ops its `saver_def` names) are not findings; the same ops anywhere else are. Nor is a vocabulary table
read from one of the model's own asset files: a path constant with an `AssetFileDef`, which loaders replace with
the file's place under `assets/` (a bare entry in the `asset_filepaths` collection is not enough: nothing
replaces its value).

    result = scan_model("untrusted_module/")
    result.safe, result.findings                            # [Finding(node='read', op='ReadFile', ...)]
    check_graph_safe("untrusted_module/")                   # raises UnsafeModelError unless allow_unsafe_ops=True
"""

from __future__ import annotations

import dataclasses
import os
from typing import Iterable

from legacy.errors import NotAModuleError, UnsafeModelError
from legacy.format.graph_defs import called_functions, input_closure, op_name
from legacy.format.reader import StoredModule, is_tf1_hub_module, read_module, read_saved_model_proto, tag_label

FILES = "reads or writes files"
PYTHON = "runs Python code"
NETWORK = "talks to the network or other processes"
UNKNOWN = "is no TensorFlow op (it needs a custom kernel library), so it cannot be checked"

_FILE_OPS = (
    # Plain file access and memory-mapping.
    "ReadFile", "WriteFile", "MatchingFiles", "ImmutableConst", "FileSystemSetConfiguration",
    # Checkpoints (allowed only inside the SavedModel's own save/restore functions, see CHECKPOINT_OPS).
    "Save", "SaveV2", "SaveSlices", "Restore", "RestoreV2", "RestoreSlice", "MergeV2Checkpoints",
    "LoadAndRemapMatrix", "GenerateVocabRemapping",
    # TF1 queue readers.
    "WholeFileReader", "WholeFileReaderV2", "TextLineReader", "TextLineReaderV2", "FixedLengthRecordReader",
    "FixedLengthRecordReaderV2", "TFRecordReader", "TFRecordReaderV2", "LMDBReader",
    # tf.data sources and sinks that open files or databases.
    "TFRecordDataset", "TFRecordDatasetV2", "TextLineDataset", "FixedLengthRecordDataset",
    "FixedLengthRecordDatasetV2", "CSVDataset", "CSVDatasetV2", "ExperimentalCSVDataset", "SqlDataset",
    "ExperimentalSqlDataset", "LMDBDataset", "ExperimentalLMDBDataset", "MatchingFilesDataset",
    "ExperimentalMatchingFilesDataset", "SnapshotDataset", "SnapshotDatasetV2", "SnapshotDatasetReader",
    "SnapshotNestedDatasetReader", "SaveDataset", "SaveDatasetV2", "LoadDataset", "DatasetToTFRecord",
    "ExperimentalDatasetToTFRecord", "CacheDataset", "CacheDatasetV2",
    # Lookup tables filled from a text file (allowed in TF1 modules when the file is one of the module's assets).
    "InitializeTableFromTextFile", "InitializeTableFromTextFileV2",
    # Summary writers create event files or databases.
    "CreateSummaryFileWriter", "CreateSummaryDbWriter",
)
_PYTHON_OPS = ("PyFunc", "PyFuncStateless", "EagerPyFunc")
_NETWORK_OPS = (
    "DataServiceDataset", "DataServiceDatasetV2", "DataServiceDatasetV3", "DataServiceDatasetV4",
    "RegisterDataset", "RegisterDatasetV2", "DistributedSave",
    "RpcClient", "RpcServer", "RpcServerStart", "RpcServerRegister", "RpcCall", "RpcCheckStatus", "RpcGetValue",
    "CollectiveReduce", "CollectiveReduceV2", "CollectiveReduceV3", "CollectiveGather", "CollectiveGatherV2",
    "CollectiveBcastSend", "CollectiveBcastRecv", "CollectiveBcastSendV2", "CollectiveBcastRecvV2",
    "CollectiveAllToAllV2", "CollectiveAllToAllV3", "CollectiveInitializeCommunicator",
    "GcsConfigureCredentials", "GcsConfigureBlockCache", "BigQueryReader",
)
_VERBS = {FILES: "touch files", PYTHON: "run Python", NETWORK: "talk to the network", UNKNOWN: "cannot be checked"}
UNSAFE_OPS = {**{op: FILES for op in _FILE_OPS}, **{op: PYTHON for op in _PYTHON_OPS},
              **{op: NETWORK for op in _NETWORK_OPS}}
CHECKPOINT_OPS = frozenset({"Save", "SaveV2", "SaveSlices", "Restore", "RestoreV2", "RestoreSlice",
                            "MergeV2Checkpoints"})
_TEXT_FILE_TABLE_OPS = frozenset({"InitializeTableFromTextFile", "InitializeTableFromTextFileV2"})
# Ops that are harmless unless an attribute sends their data to a file or a debugger server.
_DEBUG_OPS = frozenset({"DebugIdentity", "DebugIdentityV2", "DebugIdentityV3", "DebugNanCount",
                        "DebugNumericSummary", "DebugNumericSummaryV2"})
_PROTO_OPS = frozenset({"DecodeProtoV2", "EncodeProto"})
_LISTED = 5  # findings named in an error message; the rest are counted


@dataclasses.dataclass(frozen=True)
class Finding:
    """One op that touches files, processes or the network or runs Python."""

    node: str
    op: str
    reason: str
    location: str  # "graph variant {}", "graph", "function <name> (graph variant {train})", ...

    def describe(self) -> str:
        return f"{self.node!r} ({self.op or 'no op type'}, {self.reason}) in {self.location}"

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class ScanResult:
    """What a scan found, and how much it looked at."""

    label: str
    findings: list
    graphs: int = 0
    functions: int = 0
    nodes: int = 0

    @property
    def safe(self) -> bool:
        return not self.findings

    def summary(self) -> str:
        """One line for `bridge inspect`."""
        scanned = (f"scanned {_count(self.graphs, 'graph')}, {_count(self.functions, 'function')}, "
                   f"{_count(self.nodes, 'node')}")
        if self.safe:
            return f"no ops that touch files, processes or the network or run Python ({scanned})"
        return (f"{_count(len(self.findings), 'unsafe op')}, refused unless --allow-unsafe-ops: "
                f"{_listing(self.findings)} ({scanned})")

    def to_json(self) -> dict:
        return {"safe": self.safe, "findings": [f.to_json() for f in self.findings],
                "scanned": {"graphs": self.graphs, "functions": self.functions, "nodes": self.nodes}}


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _listing(findings: list) -> str:
    text = ", ".join(f.describe() for f in findings[:_LISTED])
    return text + (f" and {len(findings) - _LISTED} more" if len(findings) > _LISTED else "")


# -- the scan ----------------------------------------------------------------------------------------------------


def scan_model(model, label: str | None = None) -> ScanResult:
    """Scan a model without running it: a path (TF1 Hub module or TF2 SavedModel), a read `StoredModule`, a
    `SavedModel` or `MetaGraphDef` proto, or a `GraphDef`."""
    from tensorflow.core.framework import graph_pb2
    from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2

    if isinstance(model, (str, os.PathLike)):
        path = os.fspath(model)
        label = label or path
        if is_tf1_hub_module(path):
            model = read_module(path)
        elif os.path.isdir(path):
            model = read_saved_model_proto(path)
        else:
            raise NotAModuleError(f"{path} is not a model directory; pass a TF1 Hub module or TF2 SavedModel")
    if isinstance(model, StoredModule):
        label = label or model.path
    result = ScanResult(label=label or "the model", findings=[])
    if isinstance(model, StoredModule):
        for tags in model.tags:
            variant = model.variants[tags]
            # No saver excuses anything here: TF1 Hub modules have none, and their loader never runs one.
            _scan_meta_graph(variant.meta_graph, f"graph variant {tag_label(tags)}", result,
                             asset_tensors=set(variant.asset_files), use_saver=False)
    elif isinstance(model, saved_model_pb2.SavedModel):
        several = len(model.meta_graphs) > 1
        for meta_graph in model.meta_graphs:
            where = f"graph {tag_label(meta_graph.meta_info_def.tags)}" if several else "graph"
            _scan_meta_graph(meta_graph, where, result)
    elif isinstance(model, meta_graph_pb2.MetaGraphDef):
        _scan_meta_graph(model, "graph", result)
    elif isinstance(model, graph_pb2.GraphDef):
        _scan_graph_def(model, "graph", result, saver_roots=(), model_roots=(), asset_tensors=set())
    else:
        raise TypeError(f"cannot scan a {type(model).__name__}; pass a path, StoredModule, SavedModel, "
                        "MetaGraphDef or GraphDef")
    return result


def check_graph_safe(model, *, allow_unsafe_ops: bool = False, label: str | None = None) -> ScanResult:
    """Scan `model` (see `scan_model`) and raise `UnsafeModelError` on any finding, unless allowed.

    Call it before a model's graph runs (loading a SavedModel, importing a module's graph), on anything that came
    from outside.
    """
    result = scan_model(model, label=label)
    if result.findings and not allow_unsafe_ops:
        verbs = [_VERBS[r] for r in (FILES, PYTHON, NETWORK, UNKNOWN) if any(f.reason == r for f in result.findings)]
        raise UnsafeModelError(
            f"{result.label} has {_count(len(result.findings), 'op')} that {' or '.join(verbs)}: "
            f"{_listing(result.findings)}; refused before running anything: check them with `bridge inspect`, and "
            "pass --allow-unsafe-ops (allow_unsafe_ops=True) only if you trust where the model comes from")
    return result


def _scan_meta_graph(meta_graph, where: str, result: ScanResult, asset_tensors: set | None = None,
                     use_saver: bool = True) -> None:
    saver_roots = ()
    if use_saver and meta_graph.HasField("saver_def"):
        saver = meta_graph.saver_def
        saver_roots = tuple(op_name(n) for n in (saver.save_tensor_name, saver.restore_op_name) if n)
    model_roots = {op_name(t.name) for sig in meta_graph.signature_def.values()
                   for t in list(sig.inputs.values()) + list(sig.outputs.values())}
    assets = set(asset_tensors or ())
    for asset in meta_graph.asset_file_def:  # TF2 SavedModels and TF1 SavedModels record assets here
        assets.add(asset.tensor_info.name)
    _scan_graph_def(meta_graph.graph_def, where, result, saver_roots=saver_roots, model_roots=model_roots,
                    asset_tensors={op_name(t) for t in assets}, asset_arguments=_asset_arguments(meta_graph))


def _asset_arguments(meta_graph) -> dict:
    """Function name -> its argument names that a TF2 SavedModel binds to one of its assets (a table's initializer
    function captures the vocabulary file's path: the object graph binds that capture to a `SavedAsset`)."""
    if not meta_graph.HasField("object_graph_def"):
        return {}
    objects = meta_graph.object_graph_def
    functions = {f.signature.name: f for f in meta_graph.graph_def.library.function}
    result = {}
    for name, concrete in objects.concrete_functions.items():
        fdef = functions.get(name)
        bound = list(concrete.bound_inputs)
        if fdef is None or not bound or len(bound) > len(fdef.signature.input_arg):
            continue
        args = fdef.signature.input_arg[len(fdef.signature.input_arg) - len(bound):]
        assets = {arg.name for arg, node in zip(args, bound)
                  if 0 <= node < len(objects.nodes) and objects.nodes[node].WhichOneof("kind") == "asset"}
        if assets:
            result[name] = assets
    return result


def _function_source(fdef, name: str) -> str:
    """What a function body's input `name` comes from, through Identity nodes: an argument or node name."""
    nodes = {n.name: n for n in fdef.node_def}
    source = name.split(":")[0]
    seen = set()
    while source in nodes and nodes[source].op == "Identity" and nodes[source].input and source not in seen:
        seen.add(source)
        source = nodes[source].input[0].split(":")[0]
    return source


def _scan_graph_def(graph_def, where: str, result: ScanResult, saver_roots: Iterable[str],
                    model_roots: Iterable[str], asset_tensors: set, asset_arguments: dict | None = None) -> None:
    from tensorflow.python.framework import op_def_registry

    functions = {f.signature.name: f for f in graph_def.library.function}
    nodes = {n.name: n for n in graph_def.node}
    # Checkpoint ops are excused only where nothing but the saver reaches them: not from a signature, not from
    # any function the model's objects call.
    saver_nodes = input_closure(nodes, saver_roots) - input_closure(nodes, model_roots)
    saver_functions = called_functions((nodes[n] for n in saver_nodes), functions)
    other_roots = [n for name, n in nodes.items() if name not in saver_nodes]
    other_roots += [node for name, fn in functions.items() if name not in saver_functions for node in fn.node_def]
    # A function the model itself can reach is not a checkpoint function, even if the saver calls it too.
    checkpoint_only = saver_functions - called_functions(other_roots, functions)

    result.graphs += 1
    result.functions += len(functions)

    asset_arguments = asset_arguments or {}

    def check(node, location: str, allowed_checkpoint: bool, function: str | None = None) -> None:
        result.nodes += 1
        reason = _unsafe_reason(node, functions, op_def_registry)
        if reason is None:
            return
        if allowed_checkpoint and node.op in CHECKPOINT_OPS:
            return
        if node.op in _TEXT_FILE_TABLE_OPS and len(node.input) > 1 and op_name(node.input[1]) in asset_tensors:
            return  # a vocabulary table read from the module's own asset file
        if node.op in _TEXT_FILE_TABLE_OPS and len(node.input) > 1 and function in asset_arguments and \
                _function_source(functions[function], node.input[1]) in asset_arguments[function]:
            return  # the same in a TF2 SavedModel: the file is an argument bound to one of its assets
        result.findings.append(Finding(node=node.name, op=node.op, reason=reason, location=location))

    for node in graph_def.node:
        check(node, where, node.name in saver_nodes)
    for name in sorted(functions):
        for node in functions[name].node_def:
            check(node, f"function {name} ({where})", name in checkpoint_only, name)


def _unsafe_reason(node, functions: dict, registry) -> str | None:
    op = node.op
    if op in UNSAFE_OPS:
        return UNSAFE_OPS[op]
    if op in _DEBUG_OPS and list(node.attr["debug_urls"].list.s):
        return NETWORK if any(u.startswith(b"grpc://") for u in node.attr["debug_urls"].list.s) else FILES
    if op in _PROTO_OPS:
        source = node.attr["descriptor_source"].s if "descriptor_source" in node.attr else b"local://"
        if source not in (b"local://", b"") and not source.startswith(b"bytes://"):
            return FILES  # a path to a FileDescriptorSet to read
    if op == "PrintV2" and node.attr["output_stream"].s.startswith(b"file://"):
        return FILES
    if op not in functions and registry.get(op) is None:
        return UNKNOWN
    return None
