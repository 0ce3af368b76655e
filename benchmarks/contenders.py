"""The ways to run a TF1 Hub image module on modern TensorFlow that the benchmark compares, each as a callable.

Inference contenders take a float32 NHWC NumPy batch and return the primary output as a NumPy array, so every one
pays the same host-to-tensor and tensor-to-host copies:

- `session`: the original inference graph in a `tf.compat.v1.Session` (`import_meta_graph` of the module's
  MetaGraph for tags set(), checkpoint restored with the Saver it creates): the baseline, what a TF1 user keeps;
- `converted`: the bridge's TF2 SavedModel, `tf.saved_model.load(path)(images, training=False)`;
- `hub_load`: `hub.load(module).signatures["default"]` (tensorflow_hub 0.16 on the TF1 module);
- `shim_eager` / `shim_graph`: this project's `hub.Module` in eager code, and in a TF1 graph run by a Session.

Training contenders run one step (forward in training mode, backward, plain SGD update of the trainable variables,
batch-norm moving statistics updated) on loss = sum(output * W) + the module's regularization losses.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Callable

import numpy as np

SIGNATURE = "default"
IMAGES = "images"
LEARNING_RATE = 1e-6  # small: the weights are random and the logits large, and only the cost is measured
LABELS = {
    "session": "Session: original graph (import_meta_graph + restore)",
    "converted": "converted TF2 model: obj(images, training=False)",
    "optimized": "converted with --optimize: obj(images, training=False)",
    "hub_load": 'hub.load(module).signatures["default"]',
    "shim_eager": "shim hub.Module, eager",
    "shim_graph": "shim hub.Module, graph mode (Session)",
}


@dataclasses.dataclass
class Contender:
    """A named way to run the model: `fn(images)`; `close()` releases what it holds (sessions).

    `executed_graphs(images)` runs one call and returns the GraphDefs TensorFlow executed for it, after Grappler
    (for eager contenders it must be their first call: function graphs are captured when instantiated).
    `session`: the tf.compat.v1.Session a graph-mode contender runs in (None: it runs eagerly).
    """

    key: str
    label: str
    fn: Callable
    close: Callable[[], None] = lambda: None
    executed_graphs: Callable | None = None
    session: object = None


def _session_graphs(session, fetch, feed_tensor) -> Callable:
    def run(images) -> list:
        import tensorflow as tf

        options = tf.compat.v1.RunOptions(output_partition_graphs=True)
        metadata = tf.compat.v1.RunMetadata()
        session.run(fetch, {feed_tensor: images}, options=options, run_metadata=metadata)
        return list(metadata.partition_graphs)

    return run


def _eager_graphs(fn: Callable) -> Callable:
    def run(images) -> list:
        from tensorflow.python.eager import context  # run metadata has no public API in TF2

        context.enable_run_metadata()
        try:
            fn(images)
            metadata = context.export_run_metadata()
        finally:
            context.disable_run_metadata()
        return [graph for function in metadata.function_graphs for graph in function.partition_graphs]

    return run


def read_meta_graph(module_dir: str, tags=()):
    """The MetaGraphDef of one graph variant, straight from the module's saved_model.pb (plain TensorFlow)."""
    from tensorflow.core.protobuf import saved_model_pb2

    with open(os.path.join(module_dir, "saved_model.pb"), "rb") as f:
        saved_model = saved_model_pb2.SavedModel.FromString(f.read())
    for meta_graph in saved_model.meta_graphs:
        if set(meta_graph.meta_info_def.tags) == set(tags):
            return meta_graph
    raise ValueError(f"{module_dir} has no graph variant with tags {sorted(tags)}")


def _import_variant(module_dir: str, tags):
    """A new graph holding the variant as exported, its Session and the signature's input and output tensors."""
    import tensorflow as tf

    meta_graph = read_meta_graph(module_dir, tags)
    signature = meta_graph.signature_def[SIGNATURE]
    graph = tf.Graph()
    with graph.as_default():
        saver = tf.compat.v1.train.import_meta_graph(meta_graph, clear_devices=True)
        images = graph.get_tensor_by_name(signature.inputs[IMAGES].name)
        output = graph.get_tensor_by_name(signature.outputs[SIGNATURE].name)
    session = tf.compat.v1.Session(graph=graph)
    return graph, session, saver, images, output


def _restore(graph, session, saver, module_dir: str) -> None:
    """Load the module's checkpoint into the session (the Saver builds its restore ops in the graph)."""
    if saver is not None:
        with graph.as_default():
            saver.restore(session, os.path.join(module_dir, "variables", "variables"))


def session_inference(module_dir: str) -> Contender:
    graph, session, saver, images, output = _import_variant(module_dir, ())
    _restore(graph, session, saver, module_dir)
    return Contender("session", LABELS["session"],
                     lambda x: session.run(output, {images: x}), session.close,
                     _session_graphs(session, output, images), session)


def converted_inference(saved_model_dir: str) -> Contender:
    import tensorflow as tf

    obj = tf.saved_model.load(saved_model_dir)
    fn = lambda x: obj(x, training=False).numpy()  # noqa: E731
    return Contender("converted", LABELS["converted"], fn,
                     executed_graphs=_eager_graphs(fn))


def optimized_inference(saved_model_dir: str) -> Contender:
    """The same call on a `bridge convert --optimize` conversion (frozen, pre-optimized inference graph)."""
    contender = converted_inference(saved_model_dir)
    return dataclasses.replace(contender, key="optimized", label=LABELS["optimized"])


def hub_load_inference(module_dir: str) -> Contender:
    import tensorflow as tf
    import tensorflow_hub as hub

    signature = hub.load(module_dir).signatures[SIGNATURE]
    fn = lambda x: signature(**{IMAGES: tf.constant(x)})[SIGNATURE].numpy()  # noqa: E731
    return Contender("hub_load", LABELS["hub_load"], fn, executed_graphs=_eager_graphs(fn))


def shim_eager_inference(module_dir: str) -> Contender:
    from legacy import hub

    module = hub.Module(module_dir)
    fn = lambda x: module(x).numpy()  # noqa: E731
    return Contender("shim_eager", LABELS["shim_eager"], fn, executed_graphs=_eager_graphs(fn))


def shim_graph_inference(module_dir: str) -> Contender:
    import tensorflow as tf

    from legacy import hub

    graph = tf.Graph()
    with graph.as_default():
        module = hub.Module(module_dir)
        info = module.get_input_info_dict()[IMAGES]
        images = tf.compat.v1.placeholder(info.dtype, info.get_shape())
        output = module(images)
        init = tf.compat.v1.global_variables_initializer()
    session = tf.compat.v1.Session(graph=graph)
    session.run(init)
    return Contender("shim_graph", LABELS["shim_graph"],
                     lambda x: session.run(output, {images: x}), session.close,
                     _session_graphs(session, output, images), session)


INFERENCE = {
    "session": session_inference,
    "converted": converted_inference,
    "optimized": optimized_inference,
    "hub_load": hub_load_inference,
    "shim_eager": shim_eager_inference,
    "shim_graph": shim_graph_inference,
}


# -- training --------------------------------------------------------------------------------------------------


def session_training(module_dir: str, loss_weights: np.ndarray) -> Contender:
    """The train variant ({"train"}) as exported, with the classic TF1 recipe: minimize under UPDATE_OPS."""
    import tensorflow as tf

    from legacy.format.reader import read_module

    tags = ("train",) if read_module(module_dir).has_train_variant else ()
    graph, session, saver, images, output = _import_variant(module_dir, tags)
    with graph.as_default():
        weights = tf.constant(loss_weights)
        loss = tf.reduce_sum(output * weights)
        regularization = tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.REGULARIZATION_LOSSES)
        if regularization:
            loss += tf.add_n(regularization)
        with tf.control_dependencies(tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.UPDATE_OPS)):
            train_op = tf.compat.v1.train.GradientDescentOptimizer(LEARNING_RATE).minimize(
                loss, var_list=tf.compat.v1.trainable_variables())
    _restore(graph, session, saver, module_dir)
    return Contender("session_train", f"Session: train variant {list(tags)}, minimize under UPDATE_OPS",
                     lambda x: session.run([train_op, loss], {images: x})[1], session.close)


def converted_training(saved_model_dir: str, loss_weights: np.ndarray) -> Contender:
    """The converted model fine-tuned the TF2 way: one tf.function step with a GradientTape."""
    import tensorflow as tf

    obj = tf.saved_model.load(saved_model_dir)
    variables = list(obj.trainable_variables)
    regularization = list(obj.regularization_losses)
    weights = tf.constant(loss_weights)

    @tf.function(autograph=False)
    def step(images):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(obj(images, training=True) * weights)
            if regularization:
                loss += tf.add_n([fn() for fn in regularization])
        for var, grad in zip(variables, tape.gradient(loss, variables)):
            if grad is None:  # a variable the loss does not reach (minimize skips it too)
                continue
            # The same kernel as GradientDescentOptimizer's in the Session.
            tf.raw_ops.ResourceApplyGradientDescent(var=var.handle, alpha=tf.constant(LEARNING_RATE, var.dtype),
                                                    delta=grad)
        return loss

    return Contender("converted_train", "converted TF2 model: tf.function step, GradientTape, training=True",
                     lambda x: step(tf.constant(x)).numpy())


def training_contenders(module_dir: str, converted_dir: str, loss_weights: np.ndarray) -> list:
    return [session_training(module_dir, loss_weights), converted_training(converted_dir, loss_weights)]
