"""A TF2 concrete function imported into the current TF1 graph, flattened: its calls inlined, its arguments and
captured variables mapped to the graph's tensors and variables. Both ways of building TF1 graph variants from a
SavedModel use it (`from_saved_model` for image models, `text_variants` for text models)."""

from __future__ import annotations

import tensorflow as tf

from legacy.engine.inline import detach_updates, inline_function_calls
from legacy.engine.native_log import quiet_native_log
from legacy.errors import ConversionError


def flattened_graph(concrete):
    """A concrete function's graph with every function call inlined, without placement: what `import_function`
    imports (the same for every graph variant that imports the function)."""
    graph_def = inline_function_calls(concrete.graph.as_graph_def())
    for node in graph_def.node:
        node.device = ""
        if "_class" in node.attr:
            del node.attr["_class"]
        if "_gradient_op_type" in node.attr:
            # A tf.custom_gradient (Keras' swish, say) marks an IdentityN with a gradient function that exists only
            # in the process that registered it; a TF1 graph loaded elsewhere fails with "No gradient defined".
            # Without the mark, gradients flow through the forward ops the function computes, which gives the
            # mathematical gradient (custom gradients that change it on purpose are listed in the README).
            del node.attr["_gradient_op_type"]
    return graph_def


def import_function(concrete, args: list, handles: dict, scope: str, flattened=None) -> tuple:
    """Import a concrete function's flattened graph into the current graph: (outputs, update ops). `flattened`:
    its `flattened_graph`, when the caller has it already (it is not changed)."""
    if flattened is None:
        graph_def = flattened_graph(concrete)
    else:
        graph_def = type(flattened)()
        graph_def.CopyFrom(flattened)  # detach_updates below edits it
    inputs = concrete.graph.inputs
    input_map = {}
    arg_inputs, captured = inputs[:len(inputs) - len(concrete.captured_inputs)], inputs[
        len(inputs) - len(concrete.captured_inputs):]
    if len(arg_inputs) != len(args):
        raise ConversionError(f"function {concrete.name} takes {len(arg_inputs)} inputs, expected {len(args)}")
    for placeholder, tensor in zip(arg_inputs, args):
        input_map[placeholder.name] = tensor
    variable_inputs = set()
    for placeholder, value in zip(captured, concrete.captured_inputs):
        var = handles.get(id(value))
        if var is not None:
            input_map[placeholder.name] = var.handle
            variable_inputs.add(placeholder.op.name)
        elif value.dtype == tf.resource:
            raise ConversionError("the model's function captures a resource that is not one of its variables (a "
                                  "lookup table or dataset); such models cannot be written as TF1 Hub modules")
        else:
            input_map[placeholder.name] = tf.constant(value.numpy())
    updates = detach_updates(graph_def, variable_inputs)
    output_names = [t.name for t in concrete.graph.outputs]
    with quiet_native_log():
        imported = tf.compat.v1.import_graph_def(graph_def, input_map=input_map,
                                                 return_elements=output_names + updates, name=scope)
    return imported[:len(output_names)], imported[len(output_names):]


def import_regularization_losses(obj, handles: dict, flattened: dict | None = None) -> None:
    """Each of the model's regularization losses imported and added to REGULARIZATION_LOSSES. `flattened`: a dict
    the caller keeps across graph variants, which traces and flattens each loss once for all of them."""
    flattened = {} if flattened is None else flattened
    for index, loss_fn in enumerate(getattr(obj, "regularization_losses", [])):
        if index not in flattened:  # the trace and its graph: a trace in another variant's graph names its inputs anew
            concrete = loss_fn.get_concrete_function()
            flattened[index] = concrete, flattened_graph(concrete)
        concrete, graph_def = flattened[index]
        loss, _ = import_function(concrete, [], handles, "regularization_loss", flattened=graph_def)
        tf.compat.v1.add_to_collection(tf.compat.v1.GraphKeys.REGULARIZATION_LOSSES, loss[0])


def export_variant(graph):
    """The MetaGraphDef of a graph variant built in `graph`: its variables, updates and regularization losses as
    collections, default-valued attributes stripped, no device placement."""
    # Not clear_devices=True: TensorFlow then copies the graph node by node in Python (half of the time it takes to
    # build a ResNet's variant). The devices are cleared in the exported proto.
    keys = tf.compat.v1.GraphKeys
    meta_graph = tf.compat.v1.train.export_meta_graph(
        graph=graph, strip_default_attrs=True,
        collection_list=[keys.GLOBAL_VARIABLES, keys.TRAINABLE_VARIABLES, keys.UPDATE_OPS, keys.REGULARIZATION_LOSSES])
    for node in meta_graph.graph_def.node:
        if node.device:
            node.device = ""
    return meta_graph


def tensor_info(tensor):
    """The TensorInfo of a tensor (dense, sparse or ragged) for a TF1 SignatureDef, without TensorFlow's warning that
    its TF1 API (`build_tensor_info`) is deprecated: writing TF1 signatures is what this project does."""
    from tensorflow.python.util import deprecation

    with deprecation.silence():
        return tf.compat.v1.saved_model.build_tensor_info(tensor)
