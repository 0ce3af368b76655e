"""`--optimize`: a frozen, pre-optimized copy of a converted model's inference graph.

    frozen = freeze_and_optimize(concrete_fn)      # same inputs and outputs, weights baked in as constants

The inference function of a converted model reads its weights from variables, so TensorFlow's run-time graph
optimizer cannot fold anything that involves them. Freezing copies the variables' current values into the graph as
constants (`convert_variables_to_constants_v2`), then runs once, at conversion time:

- Grappler's device-independent passes (constant folding, arithmetic simplification, dependency pruning), which
  remove the variable reads and precompute whatever depends on weights only;
- batch-norm folding (`_fold_batch_norms`): a convolution or matmul with constant weights followed by an
  inference-mode batch norm becomes one convolution with rescaled weights plus a bias.

Device-specific rewrites (op fusion, oneDNN layouts) are left to the run-time optimizer of the machine that runs
the model. The result computes the same function up to float rounding (the folded weights are products), so
a conversion with it is verified like any other. The frozen copy never sees later changes of the variables.
"""

from __future__ import annotations

# Grappler passes applied at conversion time: those that do not depend on the machine that will run the model.
GRAPPLER_PASSES = ("constfold", "arithmetic", "dependency")


def freeze_and_optimize(fn):
    """A concrete function computing `fn` (a concrete function over variables) with the variables' current values
    as constants, constant-folded and with batch norms folded into the weights before them. It takes the same
    positional tensor arguments and returns the same flat list of outputs."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    from legacy.engine.graph_import import prune

    frozen = convert_variables_to_constants_v2(fn)
    graph_def = frozen.graph.as_graph_def()
    inputs = [t.name for t in frozen.inputs]
    outputs = [t.name for t in frozen.outputs]
    graph_def = _grappler(graph_def, inputs, outputs)
    graph_def = _fold_batch_norms(graph_def)
    # Folding leaves the replaced weights behind: keep only what the outputs need (the weights are stored once more).
    graph_def = prune(graph_def, outputs)
    specs = [tf.TensorSpec(t.shape, t.dtype, name=_op(t.name)) for t in frozen.inputs]

    def body(*args):
        return tf.graph_util.import_graph_def(graph_def, input_map=dict(zip(inputs, args)), return_elements=outputs,
                                              name="frozen")

    return tf.compat.v1.wrap_function(body, specs)


def _op(tensor_name: str) -> str:
    return tensor_name.split(":")[0]


def _grappler(graph_def, inputs: list, outputs: list):
    """`graph_def` after Grappler's `GRAPPLER_PASSES`, keeping the fed placeholders and the fetched tensors."""
    import tensorflow as tf
    from tensorflow.core.protobuf import config_pb2
    from tensorflow.python.grappler import tf_optimizer

    graph = tf.Graph()
    with graph.as_default():
        tf.graph_util.import_graph_def(graph_def, name="")
        meta_graph = tf.compat.v1.train.export_meta_graph(graph=graph)
    # Grappler keeps what the "train_op" collection names (its fetch nodes); the placeholders stay as they are fed.
    fetch = meta_graph.collection_def["train_op"]
    for name in outputs + inputs:
        fetch.node_list.value.append(name)
    config = config_pb2.ConfigProto()
    rewrite = config.graph_options.rewrite_options
    rewrite.optimizers.extend(GRAPPLER_PASSES)
    rewrite.min_graph_nodes = -1  # also for small graphs
    return tf_optimizer.OptimizeGraph(config, meta_graph)


_BATCH_NORMS = frozenset({"FusedBatchNorm", "FusedBatchNormV3"})
_FOLDABLE = frozenset({"Conv2D", "MatMul"})


def _fold_batch_norms(graph_def):
    """Inference batch norms whose input is a Conv2D or MatMul with constant weights, folded into those weights.

    y = (conv(x, w) - mean) * gamma / sqrt(var + eps) + beta  becomes  conv(x, w * s) + (beta - mean * s)  with
    s = gamma / sqrt(var + eps) per output channel: the batch norm node turns into a BiasAdd of the same name, so
    its consumers are unchanged. A batch norm stays when its convolution has other consumers, its statistics
    outputs are used, or any of its parameters is not a constant.
    """
    import numpy as np
    import tensorflow as tf

    nodes = {n.name: n for n in graph_def.node}
    consumers: dict = {}
    for n in graph_def.node:
        for name in n.input:
            consumers.setdefault(name.lstrip("^").split(":")[0], []).append((n.name, name))
    result = tf.compat.v1.GraphDef()
    result.CopyFrom(graph_def)
    by_name = {n.name: n for n in result.node}

    def const(name):
        node = nodes.get(name.split(":")[0])
        return tf.make_ndarray(node.attr["value"].tensor) if node is not None and node.op == "Const" else None

    for bn in graph_def.node:
        if bn.op not in _BATCH_NORMS or bn.attr["is_training"].b or bn.attr["data_format"].s not in (b"", b"NHWC"):
            continue
        conv = nodes.get(bn.input[0].split(":")[0])
        if conv is None or conv.op not in _FOLDABLE or len(consumers.get(conv.name, [])) != 1:
            continue
        if conv.op == "Conv2D" and conv.attr["data_format"].s not in (b"", b"NHWC"):
            continue
        if conv.op == "MatMul" and conv.attr["transpose_b"].b:
            continue
        if any(ref.split(":")[1:] not in ([], ["0"]) for _, ref in consumers.get(bn.name, [])):
            continue  # the batch statistics outputs are used
        weights, params = const(conv.input[1]), [const(name) for name in bn.input[1:5]]
        if weights is None or any(p is None for p in params):
            continue
        gamma, beta, mean, variance = (p.astype(np.float64) for p in params)
        scale = gamma / np.sqrt(variance + bn.attr["epsilon"].f)
        folded_weights = (weights * scale).astype(weights.dtype)  # the output channel is the last axis
        bias = (beta - mean * scale).astype(weights.dtype)
        weights_node = result.node.add()
        weights_node.CopyFrom(tf.compat.v1.NodeDef(name=conv.name + "/folded_weights", op="Const"))
        weights_node.attr["dtype"].type = tf.as_dtype(weights.dtype).as_datatype_enum
        weights_node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(folded_weights))
        bias_node = result.node.add()
        bias_node.CopyFrom(tf.compat.v1.NodeDef(name=bn.name + "/folded_bias", op="Const"))
        bias_node.attr["dtype"].type = weights_node.attr["dtype"].type
        bias_node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(bias))
        by_name[conv.name].input[1] = weights_node.name
        new = by_name[bn.name]
        device = new.device
        new.Clear()
        new.name, new.op, new.device = bn.name, "BiasAdd", device
        new.input.extend([bn.input[0], bias_node.name])
        new.attr["T"].type = weights_node.attr["dtype"].type
        new.attr["data_format"].s = b"NHWC"
    return result
