"""`hub.Module`: the TF1 module API of tensorflow_hub 0.15, in graph mode as before and, new, in eager mode.

    module = Module("testdata/modules/convnet_bn")           # or Module(load_module_spec(path))
    features = module(images)                               # the `default` signature's `default` output
    outputs = module(dict(images=images), signature="image_feature_vector", as_dict=True)

The mode is decided when the module is constructed: inside a TF1 graph (`tf.compat.v1.disable_eager_execution()`,
or `with tf.Graph().as_default():`) the module adds its variables and ops to that graph, as the genuine library
did; otherwise (TF2 eager code, also when the module is later called inside a `tf.function`) its variables are
`tf.Variable`s and a call returns tensors at once. `legacy.hub.native_module` and `legacy.hub.tf2_module` say what each
kind of spec does in each mode.
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterable

import tensorflow as tf

from legacy.errors import ModuleCallError
from legacy.format.reader import DEFAULT_SIGNATURE, tag_label
from legacy.hub.loading import as_module_spec
from legacy.hub.spec import signature_name
from legacy.hub.wrapped_graph import traced_by_wrap_function


def graph_mode() -> bool:
    """True inside a TF1 graph (where `hub.Module` always lived), also the graph `tf.compat.v1.wrap_function`
    traces in eager code (as with the genuine library); False in eager code and its tf.functions."""
    if not tf.compat.v1.executing_eagerly_outside_functions():
        return True
    return not tf.executing_eagerly() and traced_by_wrap_function(tf.compat.v1.get_default_graph())


class Module:
    """A module instantiated for use: in the current TF1 graph, or eagerly.

    Args:
      spec: a `ModuleSpec`, or the path of a TF1 Hub module or TF2 SavedModel.
      trainable: graph mode: add the module's trainable variables to TRAINABLE_VARIABLES, its regularization
        losses to REGULARIZATION_LOSSES, and each application's update ops to UPDATE_OPS. Eager mode: the
        variables are trainable, `regularization_losses` is filled, and each call in a variant with update ops
        applies them (eager code has no UPDATE_OPS collection to run them from).
      name: the variable scope (made unique in graph mode: `module`, `module_1`, ...).
      tags: the graph variant, e.g. {"train"}; None is the inference variant set().
    """

    def __init__(self, spec, trainable: bool = False, name: str = "module", tags: Iterable[str] | None = None):
        self._spec = as_module_spec(spec)
        self._trainable = bool(trainable)
        self._tags = set(self._spec.check_tags(tags))
        self._graph_mode = graph_mode()
        if self._graph_mode:
            self._graph = tf.compat.v1.get_default_graph()
            scope = _unique_state_scope(name)
            self._name = scope.rstrip("/").split("/")[-1]
        else:
            self._graph = None
            scope = self._name = name
        self._impl = self._spec._create_impl(scope, self._trainable, frozenset(self._tags), self._graph_mode)

    def __call__(self, inputs=None, _sentinel=None, signature: str | None = None, as_dict: bool | None = None):
        """Apply a signature: its `default` output, or with as_dict=True the dict of all its outputs.

        inputs: a dict keyed by the signature's input names, or a lone tensor when it has exactly one input.
        """
        if _sentinel is not None:
            raise ModuleCallError("Module.__call__ takes signature and as_dict by keyword only: "
                                  "module(inputs, signature=..., as_dict=...)")
        if self._graph_mode and self._graph is not tf.compat.v1.get_default_graph():
            raise RuntimeError("Module must be applied in the graph it was instantiated for; create another "
                               "hub.Module inside this graph")
        signature = signature_name(signature)
        input_infos = self._spec.get_input_info_dict(signature, self._tags)
        dict_inputs = convert_dict_inputs(inputs, input_infos, signature)
        outputs = self._impl.apply(signature, dict_inputs)
        return prepare_outputs(outputs, as_dict, signature)

    # -- inspection, as on the spec with this module's tags ---------------------------------------------------

    def get_signature_names(self) -> list:
        return self._spec.get_signature_names(tags=self._tags)

    def get_input_info_dict(self, signature: str | None = None) -> dict:
        return self._spec.get_input_info_dict(signature=signature, tags=self._tags)

    def get_output_info_dict(self, signature: str | None = None) -> dict:
        return self._spec.get_output_info_dict(signature=signature, tags=self._tags)

    def get_attached_message(self, key: str, message_type, required: bool = False):
        return self._spec.get_attached_message(key, message_type, tags=self._tags, required=required)

    def get_tags(self) -> set:
        """The tags of the graph variant this module runs."""
        return set(self._tags)

    # -- state ----------------------------------------------------------------------------------------------

    @property
    def variable_map(self) -> dict:
        """Checkpoint name (the variable's name inside the module) -> the variable created for it."""
        return dict(self._impl.variable_map)

    @property
    def variables(self) -> list:
        """The module's variables, sorted by checkpoint name (the parts of a partitioned variable in order)."""
        result = []
        for _, value in sorted(self._impl.variable_map.items()):
            result.extend(value if isinstance(value, list) else [value])
        return result

    @property
    def trainable_variables(self) -> list:
        """The variables training may change: the module's trainable ones when trainable=True, else none."""
        if not self._trainable:
            return []
        return [var for var in self.variables if var.trainable]

    @property
    def regularization_losses(self) -> list:
        """Graph mode: the loss tensors added to REGULARIZATION_LOSSES. Eager mode: zero-argument functions
        returning each loss (as on a TF2 Reusable SavedModel). Empty unless trainable=True."""
        return list(self._impl.regularization_losses)

    def export(self, path: str, session=None) -> None:
        """Write the module with its current variable values to `path`, in the format it was loaded from.

        Graph mode reads the values from `session`, as before; eager mode needs no session.
        """
        if self._graph_mode:
            if session is None:
                raise TypeError("Module.export(path, session): in graph mode pass the session that holds the "
                                "variable values")
            if self._graph is not tf.compat.v1.get_default_graph():
                raise RuntimeError("default graph differs from the graph where the module was instantiated; call "
                                   "export inside `with graph.as_default():`")
            if self._graph is not session.graph:
                raise RuntimeError("session graph differs from the graph where the module was instantiated; pass "
                                   "a session of that graph")
        self._impl.export(os.fspath(path), session)

    def __repr__(self) -> str:
        mode = "graph" if self._graph_mode else "eager"
        return (f"<hub.Module {self._name!r} spec={self._spec!r} tags={tag_label(self._tags)} "
                f"trainable={self._trainable} mode={mode}>")


def _unique_state_scope(name: str) -> str:
    """The absolute variable scope for a new module's state, `module/`, `module_1/`, ..., with a trailing "/".

    The variable scope and the name scope of that name must both be unused, so that the module's variables and
    its ops line up under one prefix; reserving both here makes the next module pick the next suffix.
    """
    outer = tf.compat.v1.get_variable_scope().name
    with tf.compat.v1.name_scope(outer + "/" if outer else None):
        with tf.compat.v1.variable_scope(None, default_name=name, auxiliary_name_scope=False) as scope:
            variable_scope = scope.name + "/"
        name_scope = tf.compat.v1.get_default_graph().unique_name(name, mark_as_used=True) + "/"
    if name_scope != variable_scope:
        raise RuntimeError(f"the variable scope {variable_scope} is free but the name scope {name_scope} is not; "
                           "pass another name= to hub.Module")
    return variable_scope


def convert_dict_inputs(inputs, input_infos: dict, signature: str) -> dict:
    """The caller's inputs as a dict of tensors matching the signature, or an error saying what differs."""
    if inputs is None:
        dict_inputs = {}
    elif isinstance(inputs, dict):
        dict_inputs = inputs
    elif len(input_infos) == 1:
        dict_inputs = {next(iter(input_infos)): inputs}
    elif not input_infos:
        raise ModuleCallError(f"Signature {signature!r} expects no inputs; call the module without inputs")
    else:
        raise ModuleCallError(f"Signature {signature!r} expects multiple inputs ({', '.join(sorted(input_infos))}); "
                              "pass a dict keyed by those names")
    missing = sorted(set(input_infos) - set(dict_inputs))
    extra = sorted(set(dict_inputs) - set(input_infos))
    if missing or extra:
        raise ModuleCallError(f"Cannot convert dict_inputs: missing {missing!r}, extra given {extra!r}; signature "
                              f"{signature!r} takes {sorted(input_infos)!r}")
    result = {}
    for key, value in sorted(dict_inputs.items()):
        target = input_infos[key]
        if target.is_composite:
            result[key] = _convert_composite(key, value, target)
            continue
        try:
            # Arrays and tensors keep their dtype (uint8 pixels must not pass as floats); lists take the target's.
            hint = None if hasattr(value, "dtype") else target.dtype
            tensor = tf.convert_to_tensor(value, dtype_hint=hint)
        except (TypeError, ValueError) as e:
            raise ModuleCallError(f"Can't convert {key!r}: {_first_line(e)}; pass a {target.dtype.name} tensor "
                                  f"of shape {target.get_shape()}") from None
        if tensor.dtype != target.dtype:
            raise ModuleCallError(f"Can't convert {key!r}: got {tensor.dtype.name}, expected {target.dtype.name}; "
                                  "images are float32 in [0, 1] (tf.image.convert_image_dtype converts them)")
        wanted = target.get_shape()
        if wanted.rank and tensor.shape.rank == wanted.rank and wanted[0] is not None \
                and tensor.shape[0] not in (None, wanted[0]) and tensor.shape[1:].is_compatible_with(wanted[1:]):
            # Only the batch differs: the module was exported with a static batch (the legacy library refuses
            # any other, and its graph may compute for that batch only).
            raise ModuleCallError(f"Can't convert {key!r}: shape {tensor.shape} is incompatible with {wanted}: "
                                  f"signature {signature!r} takes batches of exactly {wanted[0]} (the module was "
                                  f"exported with a fixed batch size); feed {wanted[0]} at a time")
        if not tensor.shape.is_compatible_with(target.get_shape()):
            raise ModuleCallError(f"Can't convert {key!r}: shape {tensor.shape} is incompatible with "
                                  f"{target.get_shape()}; resize or batch the images to fit "
                                  "(hub.get_expected_image_size gives the size)")
        result[key] = tensor
    return result


def _convert_composite(key: str, value, target):
    """A SparseTensor (or SparseTensorValue) or RaggedTensor input, checked against the signature's TypeSpec."""
    kind = "SparseTensor" if target.is_sparse else type(target.type_spec).__name__.replace("Spec", "")
    try:
        if target.is_sparse:
            tensor = tf.compat.v1.convert_to_tensor_or_sparse_tensor(value)
        elif isinstance(target.type_spec, tf.RaggedTensorSpec) and not isinstance(value, tf.RaggedTensor):
            tensor = tf.ragged.constant(value, dtype=target.dtype)
        else:
            tensor = value
        spec = tf.type_spec_from_value(tensor)
    except (TypeError, ValueError) as e:
        raise ModuleCallError(f"Can't convert {key!r}: {_first_line(e)}; pass a {kind}") from None
    if type(spec) is not type(target.type_spec):
        raise ModuleCallError(f"Can't convert {key!r}: got {type(spec).__name__}, expected a {kind} "
                              f"(signature input of type {type(target.type_spec).__name__})")
    if spec.dtype != target.dtype:
        raise ModuleCallError(f"Can't convert {key!r}: got {spec.dtype.name}, expected {target.dtype.name}")
    if not spec.shape.is_compatible_with(target.get_shape()):
        raise ModuleCallError(f"Can't convert {key!r}: shape {spec.shape} is incompatible with {target.get_shape()}")
    return tensor


def _first_line(e: Exception) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def prepare_outputs(outputs: dict, as_dict: bool | None, signature: str):
    """All outputs when `as_dict`, else the `default` one (the legacy rule)."""
    if as_dict:
        return outputs
    if DEFAULT_SIGNATURE in outputs:
        return outputs[DEFAULT_SIGNATURE]
    raise ModuleCallError(f"There is no output named 'default' in signature {signature!r} (it has "
                          f"{', '.join(sorted(outputs))}). Use as_dict=True.")


@contextlib.contextmanager
def eval_function_for_module(spec, tags: Iterable[str] | None = None):
    """Yield a function that evaluates the module's signatures on NumPy values, in a graph and session of its own.

        with eval_function_for_module(path) as f:
            features = f(images)                                   # a NumPy array
            outputs = f(images, signature="image_feature_vector", as_dict=True)
    """
    graph = tf.Graph()
    with graph.as_default():
        module = Module(spec, tags=tags)
        placeholders, outputs = {}, {}
        for signature in module.get_signature_names():
            with tf.compat.v1.name_scope("input_" + signature.replace(":", "_")):
                placeholders[signature] = {
                    key: tf.compat.v1.placeholder(info.dtype, info.get_shape(), name=key)
                    for key, info in module.get_input_info_dict(signature).items()}
            outputs[signature] = module(placeholders[signature], signature=signature, as_dict=True)
        init = [tf.compat.v1.global_variables_initializer(), tf.compat.v1.tables_initializer()]
    with tf.compat.v1.Session(graph=graph) as session:
        session.run(init)

        def evaluate(inputs=None, _sentinel=None, signature: str | None = None, as_dict: bool | None = None):
            if _sentinel is not None:
                raise ModuleCallError("the evaluation function takes signature and as_dict by keyword only")
            signature = signature_name(signature)
            if signature not in placeholders:
                module.get_input_info_dict(signature)  # raises, listing the signatures
            feeds = placeholders[signature]
            dict_inputs = _numpy_inputs(inputs, feeds, signature)
            fetches = prepare_outputs(outputs[signature], as_dict, signature)
            return session.run(fetches, {feeds[key]: value for key, value in dict_inputs.items()})

        yield evaluate


def _numpy_inputs(inputs, feeds: dict, signature: str) -> dict:
    if inputs is None:
        inputs = {}
    elif not isinstance(inputs, dict):
        if len(feeds) != 1:
            raise ModuleCallError(f"Signature {signature!r} expects inputs {sorted(feeds)}; pass a dict")
        inputs = {next(iter(feeds)): inputs}
    if set(inputs) != set(feeds):
        raise ModuleCallError(f"Cannot convert dict_inputs: missing {sorted(set(feeds) - set(inputs))!r}, extra "
                              f"given {sorted(set(inputs) - set(feeds))!r}")
    return inputs
