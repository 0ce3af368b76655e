"""A SavedModel's TF1 saver as plain graph nodes, written without tracing anything.

`tf.saved_model.save` gives every SavedModel a `saver_def`: the ops that TF1 loaders (`tf.compat.v1.saved_model.load`,
TensorFlow Serving, `saved_model_cli run`) run to restore and save its variables. It builds them as two traced
functions over every variable, which for a 272-variable ResNet costs more than a third of the save, and
`tf.saved_model.load` (which restores through the object graph and never runs them) then imports both functions
(1,655 nodes) on every load.

`add_graph_saver` writes the same contract as a few plain nodes of the main graph, the way a TF1 `Saver` did: one
`RestoreV2` feeding one `AssignVariableOp` per variable, one `SaveV2` of every variable plus the checkpoint's
object graph (so a checkpoint saved from TF1 still restores into TF2 objects). It applies to a SavedModel written
with `SaveOptions(experimental_skip_saver=True)` whose checkpoint holds variables only, each named once in the
graph; anything else (lookup tables or other objects that checkpoint more than a variable value, two variables of
one name) is left to TensorFlow's own saver: `add_graph_saver` returns False and changes nothing.
"""

from __future__ import annotations

import os

from legacy.format.conventions import FINGERPRINT_FILENAME, OBJECT_GRAPH_KEY, SAVED_MODEL_FILENAME, VARIABLE_VALUE
from legacy.format.graph_defs import node_def
from legacy.format.reader import VARIABLES_PREFIX

SCOPE = "saver"  # name scope of the saver's nodes
_CPU = "/device:CPU:0"


def _variable_keys(meta_graph, object_graph) -> dict | None:
    """VarHandleOp node name -> checkpoint key, or None when the checkpoint holds anything else than variables
    or a variable cannot be told from another by its name."""
    handles = {}
    for node in meta_graph.graph_def.node:
        if node.op == "VarHandleOp":
            handles.setdefault(node.name, []).append(node)
    if any(len(nodes) > 1 for nodes in handles.values()):
        return None
    saved_nodes = meta_graph.object_graph_def.nodes
    if len(object_graph.nodes) != len(saved_nodes):
        return None
    keys = {}
    for saved, tracked in zip(saved_nodes, object_graph.nodes):
        attributes = list(tracked.attributes)
        if saved.WhichOneof("kind") != "variable":
            if attributes:
                return None  # a table, an iterator, ...: something only TensorFlow's saver knows to save
            continue
        name = saved.variable.name
        if (len(attributes) != 1 or attributes[0].name != VARIABLE_VALUE or name not in handles
                or name in keys):
            return None
        keys[name] = attributes[0].checkpoint_key
    if len(keys) != len(handles):
        return None
    return keys


def _unique(taken: set, name: str) -> str:
    candidate, n = name, 0
    while candidate in taken:
        n += 1
        candidate = f"{name}_{n}"
    taken.add(candidate)
    return candidate


def add_graph_saver(path: str) -> bool:
    """Give the SavedModel at `path` (saved without TensorFlow's saver) a `saver_def` over plain graph nodes;
    False, with nothing changed, when its checkpoint is not variables only (see the module docstring)."""
    import tensorflow as tf
    from tensorflow.core.protobuf import saved_model_pb2, saver_pb2, trackable_object_graph_pb2
    from tensorflow.python.framework import op_def_registry

    filename = os.path.join(path, SAVED_MODEL_FILENAME)
    with open(filename, "rb") as f:
        saved_model = saved_model_pb2.SavedModel.FromString(f.read())
    if len(saved_model.meta_graphs) != 1 or saved_model.meta_graphs[0].HasField("saver_def"):
        return False
    meta_graph = saved_model.meta_graphs[0]
    reader = tf.train.load_checkpoint(os.path.join(path, VARIABLES_PREFIX))
    object_graph_bytes = reader.get_tensor(OBJECT_GRAPH_KEY)
    object_graph = trackable_object_graph_pb2.TrackableObjectGraph.FromString(object_graph_bytes)
    keys = _variable_keys(meta_graph, object_graph)
    if keys is None:
        return False

    graph = meta_graph.graph_def
    handles = {node.name: node for node in graph.node if node.name in keys}
    names = sorted(keys)  # a stable order: the checkpoint key list and the restored tensors line up by index
    dtypes = [handles[name].attr["dtype"].type for name in names]
    shapes, stored_dtypes = reader.get_variable_to_shape_map(), reader.get_variable_to_dtype_map()
    for name, dtype in zip(names, dtypes):  # each handle must be the variable its name says
        shape = tf.TensorShape(handles[name].attr["shape"].shape)
        if (stored_dtypes.get(keys[name]) != tf.as_dtype(dtype)
                or not shape.is_compatible_with(shapes.get(keys[name], []))):
            return False
    taken = {node.name for node in graph.node}

    def node(op: str, name: str, inputs=(), device: str = "", **attrs):
        graph.node.append(node_def(op, _unique(taken, name), inputs, device, **attrs))
        return graph.node[-1]

    def strings(values) -> tf.compat.v1.AttrValue:
        return tf.compat.v1.AttrValue(tensor=tf.make_tensor_proto(values, dtype=tf.string))

    string_type = tf.compat.v1.AttrValue(type=tf.string.as_datatype_enum)
    filename_node = node("Placeholder", "saver_filename", dtype=string_type,
                         shape=tf.compat.v1.AttrValue(shape=tf.TensorShape([]).as_proto()))
    prefix = filename_node.name

    # Restore: the checkpoint's values into the variables (the object graph entry is TF2's, not restored here).
    assigns = []
    if names:  # RestoreV2 reads one tensor at least
        restore_names = node("Const", f"{SCOPE}/restore/tensor_names", dtype=string_type, value=strings(
            [keys[name] for name in names]), device=_CPU)
        restore_slices = node("Const", f"{SCOPE}/restore/shape_and_slices", dtype=string_type,
                              value=strings([""] * len(names)), device=_CPU)
        restore = node("RestoreV2", f"{SCOPE}/restore/RestoreV2",
                       [prefix, restore_names.name, restore_slices.name], device=_CPU,
                       dtypes=tf.compat.v1.AttrValue(list=tf.compat.v1.AttrValue.ListValue(type=dtypes)))
        assigns = [node("AssignVariableOp", f"{SCOPE}/restore/assign", [name, f"{restore.name}:{i}"],
                        dtype=tf.compat.v1.AttrValue(type=dtypes[i])).name for i, name in enumerate(names)]
    restore_all = node("NoOp", f"{SCOPE}/restore_all", [f"^{name}" for name in assigns])

    # Save: every variable and the object graph, so the checkpoint also restores into TF2 objects.
    save_names = node("Const", f"{SCOPE}/save/tensor_names", dtype=string_type,
                      value=strings([keys[name] for name in names] + [OBJECT_GRAPH_KEY]), device=_CPU)
    save_slices = node("Const", f"{SCOPE}/save/shape_and_slices", dtype=string_type,
                       value=strings([""] * (len(names) + 1)), device=_CPU)
    object_graph_const = node("Const", f"{SCOPE}/save/object_graph", dtype=string_type,
                              value=strings(object_graph_bytes), device=_CPU)
    reads = [node("ReadVariableOp", f"{SCOPE}/save/read", [name],
                  dtype=tf.compat.v1.AttrValue(type=dtypes[i])).name for i, name in enumerate(names)]
    save = node("SaveV2", f"{SCOPE}/save/SaveV2",
                [prefix, save_names.name, save_slices.name] + reads + [object_graph_const.name], device=_CPU,
                dtypes=tf.compat.v1.AttrValue(list=tf.compat.v1.AttrValue.ListValue(
                    type=dtypes + [tf.string.as_datatype_enum])))
    saved = node("Identity", f"{SCOPE}/save/control_dependency", [prefix, f"^{save.name}"], device=_CPU,
                 T=string_type)

    meta_graph.saver_def.CopyFrom(saver_pb2.SaverDef(
        filename_tensor_name=f"{prefix}:0", save_tensor_name=f"{saved.name}:0", restore_op_name=restore_all.name,
        version=saver_pb2.SaverDef.V2))
    listed = {op.name for op in meta_graph.meta_info_def.stripped_op_list.op}
    for op in ("Placeholder", "Const", "RestoreV2", "AssignVariableOp", "NoOp", "ReadVariableOp", "SaveV2",
               "Identity"):
        if op not in listed:
            meta_graph.meta_info_def.stripped_op_list.op.add().CopyFrom(op_def_registry.get(op))
    with open(filename, "wb") as f:
        f.write(saved_model.SerializeToString(deterministic=True))
    if os.path.exists(os.path.join(path, FINGERPRINT_FILENAME)):  # it hashes saved_model.pb: write it again
        from tensorflow.python.saved_model import fingerprinting_utils

        fingerprinting_utils.write_fingerprint(path)
    return True
