"""`KerasLayer`: what `hub.KerasLayer` is to Keras 2, for Keras 3 (TensorFlow backend), with fine-tuning.

    import keras
    from bridge.keras import KerasLayer            # was: from tensorflow_hub import KerasLayer (Keras 2 only)

    model = keras.Sequential([
        keras.Input((32, 32, 3)),
        KerasLayer("converted/", trainable=True),  # a TF2 SavedModel, a TF1 Hub module, a .tar.gz, a cached handle
        keras.layers.Dense(3),
    ])

The constructor is hub.KerasLayer's, so moving Keras 2 code over is a change of import. With `trainable=True` the
model's trainable variables are the layer's trainable weights (its other variables are non-trainable weights), its
`regularization_losses` are added to `layer.losses` on every call (so `model.fit` minimizes them), and Keras'
`training` flag reaches the model (batch norm updates its moving statistics, dropout is active). A TF1 Hub module is
adapted in memory (`bridge.adapt`): nothing is converted on disk.

Why not `keras.layers.TFSMLayer`: it drops the model's regularization losses, takes no `arguments`, and cannot
read TF1 modules. Why not `hub.KerasLayer`: it is a Keras 2 (tf-keras) layer, which Keras 3 models refuse.

Saving: `model.save("m.keras")` keeps the handle in the layer's config and the (fine-tuned) weights in the file.
Loading runs the model at the handle, so, as for `TFSMLayer`, Keras refuses it in safe mode: import `bridge.keras`
(which registers the class) and call `keras.saving.load_model("m.keras", safe_mode=False)`. The model's graphs are
scanned for ops that touch files, processes or the network before anything runs, in safe mode or not.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import os
import weakref
from typing import Callable

import keras
import tensorflow as tf

from legacy.errors import BridgeError, InvalidInputError, UnknownSignatureError
from legacy.format.conventions import unique_variable_names, variable_name

PACKAGE = "bridge"  # the name Keras records for the class in saved models: "bridge>KerasLayer"
DEFAULT_OUTPUT = "default"  # the output key of every TF1 image signature


class UnsafeDeserializationError(BridgeError, ValueError):
    """A saved Keras model holding a `KerasLayer` loaded in safe mode (the layer runs an external model)."""


@keras.saving.register_keras_serializable(package=PACKAGE)
class KerasLayer(keras.layers.Layer):
    """A Reusable SavedModel (TF2) or TF1 Hub module as a Keras 3 layer, fine-tunable with regularization losses.

    handle: a TF2 SavedModel directory, a TF1 Hub module directory, a `.tar.gz` of either, a TF Hub handle already
        in the TF Hub cache, or an object with the Reusable SavedModel API (`bridge.adapt(...)`,
        `tf.saved_model.load(...)`). Only a path can be saved in a `.keras` file.
    trainable: fine-tune the model's trainable variables; `training` is passed on only when True (as for
        `BatchNormalization`), and the regularization losses count only then.
    arguments: extra keyword arguments for every call of the model (e.g. hyperparameters its `__call__` takes).
    signature: call this signature instead of `__call__`: a TF1 signature of a TF1 module or of a model converted
        from one (fine-tunable; output `default` unless `output_key` or `signature_outputs_as_dict`), or a serving
        signature of a TF2 SavedModel (inference only; needs `output_key` or `signature_outputs_as_dict`).
    output_key: the output to return when the call returns a dict.
    signature_outputs_as_dict: return the signature's whole output dict.
    allow_unsafe_ops: load a model whose graphs have ops that touch files, processes or the network (refused by
        default, see `bridge.formats.open_model`); only for models you trust.
    """

    def __init__(self, handle, trainable: bool = False, arguments: dict | None = None, signature: str | None = None,
                 output_key: str | None = None, signature_outputs_as_dict: bool = False, *,
                 allow_unsafe_ops: bool = False, **kwargs):
        if keras.backend.backend() != "tensorflow":
            raise BridgeError(f"bridge.keras.KerasLayer runs TensorFlow models and needs Keras' TensorFlow backend, "
                              f"not {keras.backend.backend()!r}; set KERAS_BACKEND=tensorflow before importing keras")
        super().__init__(trainable=trainable, **kwargs)
        self._handle = handle
        self._arguments = dict(arguments or {})
        self._signature = signature
        self._given_output_key = output_key  # what get_config records; the resolved key may default to "default"
        self._signature_outputs_as_dict = bool(signature_outputs_as_dict)
        self._allow_unsafe_ops = bool(allow_unsafe_ops)
        label = os.fspath(handle) if isinstance(handle, (str, os.PathLike)) else type(handle).__name__
        resources = contextlib.ExitStack()
        try:
            obj = _load(handle, resources, self._allow_unsafe_ops)
            self._endpoint = _endpoint(obj, label, signature, output_key, self._signature_outputs_as_dict,
                                       trainable, self._arguments)
        except BaseException:
            resources.close()
            raise
        # An archive stays extracted while the layer lives: a model's assets are read from its directory.
        weakref.finalize(self, resources.close)
        self._obj = obj
        self._regularization_losses = list(getattr(obj, "regularization_losses", []))
        for loss in self._regularization_losses:
            if not callable(loss):
                raise InvalidInputError(f"{label}: regularization_losses must be zero-argument functions returning "
                                        "scalars (the Reusable SavedModel API); re-export the model with them")
        with keras.name_scope(self.name, caller=self):  # weight paths read "<layer>/<variable>", as add_weight's
            self._model_weights = _wrap_variables(obj)  # tracked by Keras as the layer's weights
        self.built = True  # nothing to build: the weights exist

    # -- Keras --------------------------------------------------------------------------------------------------

    def call(self, inputs, training=None):
        if self.trainable and self._regularization_losses and not self.losses:
            # Added once per forward pass (Keras clears a layer's losses when the outermost call starts), also when
            # the layer is called more than once in it, as Keras 2 counted a callable loss once.
            for loss in self._regularization_losses:
                self.add_loss(loss())
        endpoint = self._endpoint
        args, kwargs = [], dict(self._arguments)
        if endpoint.input_key is None and endpoint.named_inputs and isinstance(inputs, dict):
            kwargs.update(inputs)  # a TF1 signature of several inputs, called on a dict of them
        elif endpoint.input_key is None:
            args.append(inputs)
        elif isinstance(inputs, dict):  # a serving signature takes keyword arguments only
            kwargs.update(inputs)
        elif not endpoint.input_key:
            raise InvalidInputError(f"signature {self._signature!r} takes several inputs; call the layer on a dict "
                                    "of them, or give all but one in arguments")
        else:
            kwargs[endpoint.input_key] = inputs
        if not endpoint.takes_training:
            result = endpoint.fn(*args, **kwargs)
        else:
            # As BatchNormalization: training mode only for a trainable layer called in training.
            if not self.trainable or training is None:
                training = False
            elif not tf.is_tensor(training):
                training = bool(training)
            if tf.is_tensor(training):  # a symbolic flag: both modes traced, chosen at run time
                result = tf.cond(tf.cast(training, tf.bool), lambda: endpoint.fn(*args, training=True, **kwargs),
                                 lambda: endpoint.fn(*args, training=False, **kwargs))
            else:
                result = endpoint.fn(*args, training=training, **kwargs)
        if endpoint.output_key is not None:
            if not isinstance(result, dict) or endpoint.output_key not in result:
                available = ", ".join(sorted(result)) if isinstance(result, dict) else "none: it returns a tensor"
                raise InvalidInputError(f"{self._label()}: no output {endpoint.output_key!r} (outputs: {available}); "
                                        "pass another output_key")
            result = result[endpoint.output_key]
        return result

    def get_config(self) -> dict:
        if not isinstance(self._handle, (str, os.PathLike)):
            raise BridgeError(f"a KerasLayer built from an object ({type(self._handle).__name__}) cannot be saved in "
                              "a Keras config; build it from the model's path to save the Keras model")
        config = super().get_config()
        config.update(handle=os.fspath(self._handle), arguments=self._arguments or None, signature=self._signature,
                      output_key=self._given_output_key, signature_outputs_as_dict=self._signature_outputs_as_dict,
                      allow_unsafe_ops=self._allow_unsafe_ops)
        return config

    @classmethod
    def from_config(cls, config: dict) -> "KerasLayer":
        if _in_safe_mode():
            raise UnsafeDeserializationError(
                f"the Keras model holds a bridge KerasLayer, which runs the model at {config.get('handle')!r}, and "
                "Keras refuses that in safe mode; if you trust it, load with keras.saving.load_model(path, "
                "safe_mode=False)")
        return cls(**config)

    # -- what hub.KerasLayer also offers --------------------------------------------------------------------------

    @property
    def resolved_object(self):
        """The object the handle resolved to (a loaded SavedModel or a `bridge.adapt` adapter)."""
        return self._obj

    @property
    def handle(self):
        return self._handle

    def _label(self) -> str:
        return os.fspath(self._handle) if isinstance(self._handle, (str, os.PathLike)) else type(self._handle).__name__


def _in_safe_mode() -> bool:
    """Whether Keras is deserializing in safe mode (`load_model(..., safe_mode=True)`, the default)."""
    try:
        from keras.src.saving.serialization_lib import in_safe_mode
    except ImportError:  # a Keras without the function: assume the safe default
        return True
    return bool(in_safe_mode())


def _load(handle, resources: contextlib.ExitStack, allow_unsafe_ops: bool):
    """The Reusable SavedModel object `handle` names: a path is resolved, scanned and loaded (TF1 adapted)."""
    if not isinstance(handle, (str, os.PathLike)):
        if not (callable(handle) or hasattr(handle, "signatures")):
            raise InvalidInputError(
                f"handle must be a model path or an object with the Reusable SavedModel API (callable, with "
                f"variables), not {type(handle).__name__}; pass a directory, a .tar.gz or bridge.adapt(path)")
        return handle
    from bridge import formats

    opened = resources.enter_context(formats.open_model(handle, check_safety=True,
                                                        allow_unsafe_ops=allow_unsafe_ops))
    if opened.format.name == formats.TF1_HUB:
        import bridge

        return bridge.adapt(opened.path, allow_unsafe_ops=allow_unsafe_ops)
    return tf.saved_model.load(opened.path)


@dataclasses.dataclass(frozen=True)
class _Endpoint:
    """What the layer calls: `fn`, whether it takes `training`, where the input goes and which output comes back."""

    fn: Callable
    takes_training: bool
    # None: the layer's input is fn's first argument. Else a serving signature's keyword input the layer's input
    # feeds ("" when several are left open by `arguments`: the layer is then called on a dict of them).
    input_key: str | None = None
    output_key: str | None = None  # the output picked from a dict, None to return what fn returns
    named_inputs: bool = False  # fn takes a TF1 signature's inputs as keyword arguments (a dict input is spread)


def _endpoint(obj, label: str, signature, output_key, as_dict: bool, trainable: bool, arguments: dict) -> _Endpoint:
    """How hub.KerasLayer would call `obj`, with TF1 signatures fine-tunable (bridge.adapt / bridge convert)."""
    if output_key is not None and as_dict:
        raise InvalidInputError("pass output_key or signature_outputs_as_dict=True, not both")
    tf1_signatures = _tf1_signature_functions(obj)
    if tf1_signatures is not None:  # a TF1 module, adapted, or a model converted from one
        name = signature
        if name is None and (as_dict or output_key is not None):
            name = _primary_signature(obj, tf1_signatures)
        if name is None:
            return _Endpoint(obj, _takes_training(obj))
        if name not in tf1_signatures:
            raise UnknownSignatureError(f"{label} has no image signature {name!r}; pick one of "
                                        f"{', '.join(sorted(tf1_signatures))}")
        fn = tf1_signatures[name]
        key = None if as_dict else _check_output_key(output_key or DEFAULT_OUTPUT, fn, label, f"signature {name!r}")
        return _Endpoint(fn, True, output_key=key, named_inputs=True)
    if signature is None:
        if as_dict:
            raise InvalidInputError("signature_outputs_as_dict=True needs a signature (a TF2 model's __call__ has "
                                    "no signature outputs); pass signature=, or drop signature_outputs_as_dict")
        if not callable(obj):
            raise InvalidInputError(f"{label} has no __call__ (it is not a Reusable SavedModel); pass signature= one "
                                    f"of {', '.join(sorted(getattr(obj, 'signatures', {}))) or 'none'}")
        key = None if output_key is None else _check_output_key(output_key, obj, label, "__call__")
        return _Endpoint(obj, _takes_training(obj), output_key=key)
    serving = getattr(obj, "signatures", {})
    if signature not in serving:
        raise UnknownSignatureError(f"{label} has no signature {signature!r}; pick one of "
                                    f"{', '.join(sorted(serving)) or 'none (omit signature to use __call__)'}")
    fn = serving[signature]
    if trainable:
        raise InvalidInputError(f"signature {signature!r} of {label} is a serving signature, which has no training "
                                "mode; use trainable=False, or omit signature to fine-tune __call__")
    if not as_dict and output_key is None:
        raise InvalidInputError(f"signature {signature!r} returns a dict: pass output_key= one of "
                                f"{', '.join(_output_names(fn) or [])}, or signature_outputs_as_dict=True")
    key = None if as_dict else _check_output_key(output_key, fn, label, f"signature {signature!r}")
    open_inputs = [k for k in fn.structured_input_signature[1] if k not in arguments]
    return _Endpoint(fn, False, input_key=open_inputs[0] if len(open_inputs) == 1 else "", output_key=key)


def _check_output_key(key: str, fn, label: str, what: str) -> str:
    """`key`, refused now (one line) when fn's outputs are known and lack it; else checked at call time."""
    names = _output_names(fn)
    if names is not None and key not in names:
        available = f"its outputs are {', '.join(names)}" if names else "it returns a tensor, not a dict"
        raise InvalidInputError(f"{what} of {label} has no output {key!r}: {available}; pass another output_key "
                                "or none")
    return key


def _output_names(fn) -> list | None:
    """The sorted output keys of a traced function ([] for a tensor), or None when they are not known yet."""
    names = getattr(fn, "output_names", None)  # set by _bound_signature
    if names is not None:
        return list(names)
    concrete = [fn] if hasattr(fn, "structured_outputs") else list(
        getattr(fn, "concrete_functions", None) or getattr(getattr(fn, "__call__", None), "concrete_functions", None)
        or [])
    if not concrete:
        return None
    outputs = concrete[0].structured_outputs
    return sorted(outputs) if isinstance(outputs, dict) else []


def _tf1_signature_functions(obj) -> dict | None:
    """{TF1 signature: fn(images, training)} of an adapted TF1 module or a model converted from one, else None."""
    if hasattr(obj, "call_signature") and hasattr(obj, "signature_names"):  # bridge.adapt's object
        return {name: _bound_signature(obj, name) for name in obj.signature_names}
    functions = getattr(obj, "signature_functions", None)  # saved by bridge convert
    if functions is not None and hasattr(functions, "items"):
        return dict(functions.items())
    return None


def _bound_signature(adapter, name: str):
    def call(images=None, training=False, **kwargs):
        return adapter.call_signature(name, images, training=training, **kwargs)

    stored = getattr(adapter, "stored_module", None)
    if stored is not None:
        call.output_names = sorted(stored.variant(frozenset()).signature(name).outputs)
    return call


def _primary_signature(obj, signatures: dict) -> str:
    """The signature `__call__` serves: the adapter's first, else `default`, else the first that takes inputs
    (not BERT's input-less `tokenization_info`)."""
    names = getattr(obj, "signature_names", None)
    if names:
        return names[0]
    if DEFAULT_OUTPUT in signatures:
        return DEFAULT_OUTPUT
    taking = [name for name, fn in sorted(signatures.items()) if _takes_tensors(fn)]
    return (taking or sorted(signatures))[0]


def _takes_tensors(fn) -> bool:
    """Whether a restored function was traced with any tensor input (True when that cannot be told)."""
    traces = list(getattr(fn, "concrete_functions", None) or [])
    if not traces:
        return True
    return any(isinstance(spec, tf.TypeSpec) for cf in traces
               for spec in tf.nest.flatten(cf.structured_input_signature))


def _takes_training(fn) -> bool:
    """Whether `fn` accepts `training` (a loaded SavedModel's `__call__` is inspected through the object)."""
    for candidate in (fn, getattr(fn, "__call__", None)):
        if candidate is None:
            continue
        try:
            parameters = inspect.signature(candidate).parameters
        except (TypeError, ValueError):
            continue
        if "training" in parameters:
            return True
        if any(p.kind != p.VAR_POSITIONAL and p.kind != p.VAR_KEYWORD for p in parameters.values()):
            return False
    return False


def _wrap_variables(obj) -> list:
    """Keras variables over the model's own `tf.Variable`s (not copies): trainable ones first, as the model lists.

    A Keras 3 variable built from a `tf.Variable` keeps that variable as its value, so the optimizer updates, and
    the model's functions read, one and the same storage. The trainable flags follow `obj.trainable_variables`
    (the Reusable SavedModel API), not the variables' own flags, as in hub.KerasLayer.
    """
    variables = list(getattr(obj, "variables", []))
    trainable = list(getattr(obj, "trainable_variables", []))
    trainable_ids = {id(v) for v in trainable}
    ordered = [(v, True) for v in trainable] + [(v, False) for v in variables if id(v) not in trainable_ids]
    # Keras weight names cannot contain "/"; unique within the layer.
    names = unique_variable_names(variable_name(var).replace("/", "_") for var, _ in ordered)
    return [keras.Variable(var, trainable=is_trainable, dtype=var.dtype, name=name)
            for (var, is_trainable), name in zip(ordered, names)]
