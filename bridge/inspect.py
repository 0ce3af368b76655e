"""Describe a model (TF1 Hub module or TF2 SavedModel) from its protos alone; nothing runs.

The model may be a directory, a `.tar.gz` archive of one, or a TF Hub handle already in the local cache. The
report includes the safety scan (`legacy.format.safety`): ops that would touch files, processes or the network or run
Python, by node name; inspect shows them and never refuses, since it runs nothing.

    report = inspect_model("testdata/modules/convnet_bn")
    print(format_report(report))
"""

from __future__ import annotations

import os

from bridge import formats
from legacy.format.archive import is_handle
from legacy.format.graph_defs import has_tf1_loops
from legacy.format.metadata import read_metadata
from legacy.errors import BridgeError, ModuleFormatError
from legacy.format.reader import read_module, read_saved_model_proto, read_signature, tag_label, untrusted
from legacy.format.safety import scan_model


def inspect_model(path: str) -> dict:
    """A JSON-ready description of the model at `path` (a directory, a .tar.gz archive or a cached handle)."""
    with formats.open_model(path) as model:
        if model.format.name == formats.TF1_HUB:
            report = _inspect_tf1(model.path)
        else:
            report = _inspect_tf2(model.path)
        if is_handle(model.source):
            report["resolved_path"] = model.path  # where the cached copy lives
    report["path"] = os.fspath(path)
    report["format"] = model.format.name
    report["format_label"] = model.format.label
    return report


def _signatures_json(signatures: dict) -> dict:
    return {name: {"inputs": {k: v.to_json() for k, v in sorted(sig.inputs.items())},
                   "outputs": {k: v.to_json() for k, v in sorted(sig.outputs.items())}}
            for name, sig in sorted(signatures.items())}


def _image_facts(lookup_size, lookup_channels) -> dict:
    facts = {}
    try:
        facts["expected_image_size"] = list(lookup_size())
    except BridgeError as e:
        facts["expected_image_size"] = None
        facts["expected_image_size_error"] = str(e)
    try:
        facts["num_image_channels"] = lookup_channels()
    except BridgeError as e:
        facts["num_image_channels"] = None
        facts["num_image_channels_error"] = str(e)
    return facts


def _tables_json(variant) -> list:
    """The lookup tables a variant fills from its assets: table node, key/value dtypes, vocabulary file."""
    from tensorflow.python.framework import dtypes

    from legacy.format.graph_defs import op_name

    nodes = {node.name: node for node in variant.meta_graph.graph_def.node}
    assets = {op_name(k): v for k, v in variant.asset_files.items()}
    tables = []
    for init_name in variant.table_initializers:
        init = nodes.get(op_name(init_name))
        if init is None or not init.input:
            continue
        table = nodes.get(op_name(init.input[0]))
        files = [assets[op_name(i)] for i in init.input[1:] if op_name(i) in assets]
        tables.append({
            "table": op_name(init.input[0]), "op": table.op if table is not None else None,
            "key_dtype": dtypes.as_dtype(table.attr["key_dtype"].type).name if table is not None else None,
            "value_dtype": dtypes.as_dtype(table.attr["value_dtype"].type).name if table is not None else None,
            "initializer": init.op, "vocabulary": files[0] if files else None})
    return tables


def _inspect_tf1(path: str) -> dict:
    module = read_module(path)
    variables = module.variables()
    report = {
        "safety": scan_model(module, label=path).to_json(),
        "variants": [{
            "tags": sorted(tags),
            "signatures": _signatures_json(module.variants[tags].signatures),
            "attached_messages": sorted(module.variants[tags].attachments),
            "update_ops": len(module.variants[tags].update_ops),
            "regularization_losses": len(module.variants[tags].regularization_losses),
            "tables": _tables_json(module.variants[tags]),
            "tf1_while_loop": has_tf1_loops(module.variants[tags].meta_graph.graph_def),
        } for tags in module.tags],
        "tags": [sorted(t) for t in module.tags],
        "variables": {
            "count": len(variables),
            "trainable": sum(v.trainable for v in variables),
            "bytes": sum(v.nbytes for v in variables),
            "kinds": sorted({"reference" if v.op_type != "VarHandleOp" else "resource" for v in variables}),
            "partitioned": {name: sum(v.full_name == name for v in variables)
                            for name in sorted({v.full_name for v in variables if v.is_part})},
        },
        "assets": module.asset_files(),
    }
    if frozenset() in module.variants:
        from bridge.conversion import text_adapter
        from bridge.conversion.tf1_to_tf2 import required_inputs, signatures_not_kept

        if text_adapter.is_text_module(module):
            report["input_kind"] = _input_kind([
                {"dtype": info.dtype, **({} if info.is_dense else {"kind": "composite"})}
                for sig in module.variant(frozenset()).signatures.values() for info in sig.inputs.values()])
            report["signatures_not_kept"] = text_adapter.signatures_not_kept(module)
            return report

        report["signatures_not_kept"] = signatures_not_kept(module)
        report["required_inputs"] = required_inputs(module)
        report.update(_image_facts(module.expected_image_size, module.num_image_channels))
        info = module.image_module_info()
        report["image_module_info"] = None if info is None else {
            "height": info.default_image_size.height, "width": info.default_image_size.width}
    return report


def _inspect_tf2(path: str) -> dict:
    from tensorflow.python.framework import dtypes

    saved_model = read_saved_model_proto(path)
    meta_graph = saved_model.meta_graphs[0]

    # __saved_model_init_op is TensorFlow's own bookkeeping entry, not a signature anyone can call.
    signatures = {name: read_signature(name, sig) for name, sig in meta_graph.signature_def.items()
                  if name != "__saved_model_init_op"}
    nodes = meta_graph.object_graph_def.nodes
    root_children = {c.local_name for c in nodes[0].children} if len(nodes) else set()
    variables = [n.variable for n in nodes if n.WhichOneof("kind") == "variable"]
    nbytes = 0
    for v in variables:
        count = 1
        for d in v.shape.dim:
            count *= max(d.size, 0)
        try:
            nbytes += count * dtypes.as_dtype(v.dtype).size
        except TypeError:  # found by fuzzing: a variable of the object graph whose dtype TensorFlow does not know
            raise ModuleFormatError(f"{path}: the SavedModel's object graph is corrupt or inconsistent (variable "
                                    f"{v.name or '?'} has data type {v.dtype}, which TensorFlow does not know); "
                                    "re-download or re-export the model") from None
    metadata = read_metadata(path)
    # The object graph's node references and type specs (decoded in TensorFlow's own code) may be damaged (found by
    # fuzzing: a child id past the end of the node list).
    with untrusted(path, "the SavedModel's object graph"):
        call = _call_function(meta_graph)
        functions = _other_functions(meta_graph)
        tables = _tables_tf2(meta_graph)
    report = {
        "safety": scan_model(saved_model, label=path).to_json(),
        "tags": [sorted(m.meta_info_def.tags) for m in saved_model.meta_graphs],
        "signatures": _signatures_json(signatures),
        "reusable": {"__call__": "__call__" in root_children,
                     "variables": "variables" in root_children,
                     "trainable_variables": "trainable_variables" in root_children,
                     "regularization_losses": "regularization_losses" in root_children},
        "variables": {"count": len(variables), "trainable": sum(v.trainable for v in variables), "bytes": nbytes},
        "assets": sorted(os.listdir(os.path.join(path, "assets"))) if os.path.isdir(os.path.join(path, "assets"))
        else [],
        "bridge_metadata": None if metadata is None else metadata.to_json(),
        "call": call,
        "functions": functions,
        "tables": tables,
    }
    if _takes_text(call, report["functions"]):
        report["input_kind"] = _input_kind(_all_inputs(call, report["functions"]))
        return report

    def size():
        if metadata is not None and metadata.image_size:
            return metadata.image_size
        shape = _image_input_shape(signatures, call)
        if shape is None or len(shape) != 4 or not shape[1] or not shape[2]:
            raise BridgeError("no expected image size recorded and the input's height/width are dynamic")
        return shape[1], shape[2]

    def channels():
        shape = _image_input_shape(signatures, call)
        if shape is None or len(shape) != 4 or not shape[3]:
            raise BridgeError("the input's channel count is not static")
        return shape[3]

    report.update(_image_facts(size, channels))
    return report


def saved_model_takes_text(path: str) -> bool:
    """Whether the TF2 SavedModel at `path` is a text model (see `_takes_text`), from its object graph alone."""
    meta_graph = read_saved_model_proto(path).meta_graphs[0]
    with untrusted(path, "the SavedModel's object graph"):
        return _takes_text(_call_function(meta_graph), _other_functions(meta_graph))


def _takes_text(call: dict | None, functions: dict) -> bool:
    """Whether no input of the model's functions can be an image batch (a float tensor of rank 4): it takes
    strings, sparse or ragged tensors, or named tensors such as token ids (see `_input_kind`), and the image
    facts (expected size, channels) do not apply."""
    inputs = _all_inputs(call, functions)
    return bool(inputs) and not any(spec["dtype"].startswith(("float", "bfloat")) and not spec.get("kind")
                                    and (spec["shape"] is None or len(spec["shape"]) == 4) for spec in inputs)


def _all_inputs(call: dict | None, functions: dict) -> list:
    return [spec for f in ([call] if call else []) + list(functions.values()) for spec in f["inputs"].values()]


def _input_kind(inputs: list) -> str:
    """"text" when every input is a string (plain, sparse or ragged), else "tensors" (named tensors)."""
    return "text" if all(spec["dtype"] == "string" or spec.get("kind") for spec in inputs) else "tensors"


def _call_function(meta_graph) -> dict | None:
    """`__call__` of a Reusable SavedModel from its object graph (nothing runs): the input and outputs of its
    traces (dimensions that differ between traces become unknown) and the `training` values it was traced for."""
    graph = meta_graph.object_graph_def
    if not len(graph.nodes):
        return None
    child = next((c for c in graph.nodes[0].children if c.local_name == "__call__"), None)
    if child is None or graph.nodes[child.node_id].WhichOneof("kind") != "function":
        return None
    return _function_specs(graph, child.node_id)


def _function_specs(graph, node_id: int) -> dict:
    """Inputs, outputs, `training` values and trace count of the saved function at object node `node_id`; sparse
    and ragged tensors carry a `kind`, as in TF1 signatures."""
    from tensorflow.python.saved_model import nested_structure_coder

    inputs, outputs, training = {}, {}, set()
    for name in graph.nodes[node_id].function.concrete_functions:
        if name not in graph.concrete_functions:
            continue
        function = graph.concrete_functions[name]
        args = nested_structure_coder.decode_proto(function.canonicalized_input_signature)
        flat = _flatten(args)
        specs = [x for x in flat if hasattr(x, "shape") and hasattr(x, "dtype")]
        training.update(x for x in flat if isinstance(x, bool))
        names = _argument_names(graph.nodes[node_id].function, args)
        for i, spec in enumerate(specs):
            _merge(inputs, getattr(spec, "name", None) or names.get(id(spec)) or f"input_{i}", spec)
        returned = nested_structure_coder.decode_proto(function.output_signature)
        items = returned.items() if isinstance(returned, dict) else [("default", returned)] \
            if hasattr(returned, "shape") else [(f"output_{i}", x) for i, x in enumerate(_flatten(returned))]
        for key, spec in items:
            if hasattr(spec, "shape"):
                _merge(outputs, key, spec)
    return {"inputs": dict(sorted(inputs.items())), "outputs": dict(sorted(outputs.items())),
            "training": sorted(training), "traces": len(graph.nodes[node_id].function.concrete_functions)}


def _argument_names(function, args) -> dict:
    """id(spec) -> argument name, from the saved function's argument list (sparse and ragged specs carry no name)."""
    from tensorflow.python.saved_model import nested_structure_coder

    try:
        names = list(nested_structure_coder.decode_proto(function.function_spec.fullargspec).args)
    except (ValueError, TypeError, AttributeError):
        return {}
    found = {}
    positional, keywords = (args if isinstance(args, (list, tuple)) and len(args) == 2 else ((), {}))
    for name, value in list(zip(names, positional)) + list((keywords or {}).items()):
        if hasattr(value, "shape"):
            found[id(value)] = name
    return found


def _other_functions(meta_graph) -> dict:
    """The root's saved functions besides `__call__` and the serving endpoints (e.g. a converted text model's
    `tokens`), by attribute name."""
    graph = meta_graph.object_graph_def
    if not len(graph.nodes):
        return {}
    return {c.local_name: _function_specs(graph, c.node_id) for c in graph.nodes[0].children
            if graph.nodes[c.node_id].WhichOneof("kind") == "function"
            and c.local_name not in ("__call__", "serve", "serve_training")}


def _tables_tf2(meta_graph) -> list:
    """The lookup tables a SavedModel creates (tracked resources whose creator makes a table), where they sit in
    the object graph, their key/value dtypes and the asset their initializer reads (nothing runs)."""
    from tensorflow.python.framework import dtypes

    from legacy.engine.tables import NAMED_TABLE_OPS
    from legacy.format.graph_defs import called_functions

    graph = meta_graph.object_graph_def
    library = {f.signature.name: f for f in meta_graph.graph_def.library.function}
    paths, stack = {0: ""}, [0]
    while stack:  # the first path to each object, from the root
        node_id = stack.pop(0)
        for child in graph.nodes[node_id].children:
            if child.node_id not in paths:
                paths[child.node_id] = f"{paths[node_id]}.{child.local_name}".lstrip(".")
                stack.append(child.node_id)

    def function_nodes(node_id: int) -> list:
        """The nodes of an object's concrete functions and of every function they call (roots first)."""
        roots = [name for name in graph.nodes[node_id].function.concrete_functions if name in library]
        called = called_functions((node for name in roots for node in library[name].node_def), library)
        names = roots + sorted(called - set(roots))
        return [node for name in names for node in library[name].node_def]

    tables = []
    for node_id, node in enumerate(graph.nodes):
        if node.WhichOneof("kind") != "resource":
            continue
        children = {c.local_name: c.node_id for c in node.children}
        created = [n for n in function_nodes(children.get("_create_resource", node_id))
                   if n.op in NAMED_TABLE_OPS] if "_create_resource" in children else []
        if not created:
            continue
        files, initializers = [], []
        if "_initialize" in children:
            init = graph.nodes[children["_initialize"]]
            for concrete in init.function.concrete_functions:
                for bound in graph.concrete_functions[concrete].bound_inputs if concrete in graph.concrete_functions \
                        else ():
                    if graph.nodes[bound].WhichOneof("kind") == "asset":
                        files.append(meta_graph.asset_file_def[graph.nodes[bound].asset.asset_file_def_index].filename)
            initializers = sorted({n.op for n in function_nodes(children["_initialize"])
                                   if n.op.startswith(("InitializeTable", "LookupTableImport"))})
        table = created[0]
        tables.append({"table": paths.get(node_id, str(node_id)), "op": table.op,
                       "key_dtype": dtypes.as_dtype(table.attr["key_dtype"].type).name,
                       "value_dtype": dtypes.as_dtype(table.attr["value_dtype"].type).name,
                       "initializer": "/".join(initializers) or None,
                       "vocabulary": sorted(set(files))[0] if files else None})
    return tables


def _flatten(value) -> list:
    if isinstance(value, dict):
        return [x for k in sorted(value) for x in _flatten(value[k])]
    if isinstance(value, (list, tuple)):
        return [x for v in value for x in _flatten(v)]
    return [value]


def _merge(table: dict, key: str, spec) -> None:
    shape = None if spec.shape.rank is None else list(spec.shape.as_list())
    entry = {"dtype": spec.dtype.name, "shape": shape}
    kind = {"SparseTensorSpec": "sparse", "RaggedTensorSpec": "ragged"}.get(type(spec).__name__)
    if kind:
        entry["kind"] = kind
    old = table.get(key)
    if old is not None and old != entry and old.get("kind") == entry.get("kind"):
        if old["shape"] is None or shape is None or len(old["shape"]) != len(shape):
            entry["shape"] = None
        else:
            entry["shape"] = [a if a == b else None for a, b in zip(old["shape"], shape)]
    table[key] = entry


def _image_input_shape(signatures: dict, call: dict | None):
    """The static shape of the one image input: of __call__'s traces (what `bridge convert` reads), else of the
    serving signature."""
    if call and len(call["inputs"]) == 1:
        shape = next(iter(call["inputs"].values()))["shape"]
        return None if shape is None else tuple(shape)
    sig = signatures.get("serving_default") or next(iter(signatures.values()), None)
    if sig is not None and len(sig.inputs) == 1:
        return next(iter(sig.inputs.values())).shape
    return None


def _fmt_shape(shape) -> str:
    return "<unknown rank>" if shape is None else "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"


def _fmt_bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _fmt_tensor(info: dict) -> str:
    kind = f" ({info['kind']})" if info.get("kind") else ""
    return f"{info['dtype']}{_fmt_shape(info['shape'])}{kind}"


def _signature_lines(signatures: dict, indent: str) -> list:
    lines = []
    for name, sig in signatures.items():
        ins = ", ".join(f"{k}: {_fmt_tensor(v)}" for k, v in sig["inputs"].items())
        outs = ", ".join(f"{k}: {_fmt_tensor(v)}" for k, v in sig["outputs"].items())
        lines.append(f"{indent}{name}({ins}) -> {outs}")
    return lines


def format_report(report: dict, width: int | None = None) -> str:
    """The human-readable table for `bridge inspect`, within `width` columns (default: the terminal's)."""
    from bridge.parity.report import wrap_lines

    lines = [f"{report['path']}: {report['format_label']}"]
    if report["format"] == formats.TF1_HUB:
        lines.append(f"  graph variants: {', '.join(tag_label(v['tags']) for v in report['variants'])}")
        for variant in report["variants"]:
            lines.append(f"  variant {tag_label(variant['tags'])}: {len(variant['signatures'])} signatures, "
                         f"{variant['update_ops']} update ops, {variant['regularization_losses']} regularization "
                         f"losses, attached: {', '.join(variant['attached_messages']) or '-'}")
            lines.extend(_signature_lines(variant["signatures"], "    "))
            for table in variant.get("tables", []):
                lines.append(f"    table {table['table']}: {table['key_dtype']} -> {table['value_dtype']}, from "
                             f"{table['vocabulary'] or '(not an asset)'} ({table['initializer']})")
            if variant.get("tf1_while_loop"):
                lines.append("    TF1 while loop: gradients through it in a tf.compat.v1 graph only (not in a "
                             "converted model)")
        for name, reason in report.get("signatures_not_kept", {}).items():
            lines.append(f"  signature {name} cannot be converted: {reason}")
        for name, keys in report.get("required_inputs", {}).items():
            lines.append(f"  signature {name} converts with required input{'s' if len(keys) > 1 else ''} "
                         f"{', '.join(keys)} (no default in the module; parity needs --input "
                         f"{keys[0]}=VALUE to compare it)")
    else:
        reusable = [k for k, v in report["reusable"].items() if v]
        lines.append(f"  reusable API: {', '.join(reusable) or 'none (signatures only)'}")
        call = report.get("call")
        if call:
            training = "/".join(str(t) for t in call["training"]) or "-"
            lines.append(f"  __call__ (training={training}):")
            lines.extend(_signature_lines({"__call__": call}, "    "))
        functions = {k: v for k, v in report.get("functions", {}).items() if _composite(v)}
        if functions:
            lines.append("  functions with sparse or ragged tensors:")
            lines.extend(_signature_lines(functions, "    "))
        lines.append(f"  signatures: {'' if report['signatures'] else 'none (serving signatures)'}".rstrip())
        lines.extend(_signature_lines(report["signatures"], "    "))
        for table in report.get("tables", []):
            lines.append(f"  table {table['table']}: {table['key_dtype']} -> {table['value_dtype']}, from "
                         f"{table['vocabulary'] or '(not an asset)'} ({table['initializer'] or 'no initializer'})")
    if report.get("input_kind") == "text":
        lines.append("  inputs: text (strings, sparse or ragged tensors; no image size applies)")
    elif report.get("input_kind") == "tensors":
        lines.append("  inputs: named tensors (e.g. token ids and masks; no image size applies)")
    else:
        size = report.get("expected_image_size")
        lines.append(f"  expected image size: {'x'.join(map(str, size)) if size else 'unknown'}"
                     + ("" if size else f" ({report.get('expected_image_size_error', '')})"))
        lines.append(f"  image channels: {report.get('num_image_channels') or 'unknown'}")
    variables = report["variables"]
    kinds = f", {'/'.join(variables['kinds'])} variables" if variables.get("kinds") else ""
    partitioned = "".join(f", {name} in {parts} parts" for name, parts in variables.get("partitioned", {}).items())
    lines.append(f"  variables: {variables['count']} ({variables['trainable']} trainable), "
                 f"{_fmt_bytes(variables['bytes'])}{kinds}{partitioned}")
    lines.append(f"  assets: {', '.join(report['assets']) or '-'}")
    if (report.get("bridge_metadata") or {}).get("optimized_inference"):
        lines.append("  optimized (--optimize): inference (training=False, the serving signatures) runs a frozen copy "
                     "of the weights taken at conversion time; fine-tuning changes training mode, not inference")
    if "safety" in report:
        lines.append(f"  safety: {_safety_line(report['safety'])}")
    return "\n".join(wrap_lines(lines, width))


def _composite(function: dict) -> bool:
    return any(v.get("kind") for part in ("inputs", "outputs") for v in function[part].values())


def _safety_line(safety: dict) -> str:
    from legacy.format.safety import Finding, ScanResult

    scanned = safety["scanned"]
    result = ScanResult(label="", findings=[Finding(**f) for f in safety["findings"]], graphs=scanned["graphs"],
                        functions=scanned["functions"], nodes=scanned["nodes"])
    return result.summary()
