"""A TF1 Hub module as an in-memory TF2 Reusable SavedModel object.

    obj = adapt("testdata/modules/convnet_bn")      # in memory, for use (bridge.adapt)
    features = obj(images)                          # inference variant (tags set())
    features = obj(images, training=True)           # {"train"} variant, batch-norm updates applied
    outputs = obj.image_feature_vector(images)      # every TF1 signature, with all its output keys
    obj.variables, obj.trainable_variables, obj.regularization_losses

Both graph variants run on one set of `tf.Variable`s (one per checkpoint name), so what training changes is what
inference sees. `build` traces the functions for saving and `write` saves them (what `bridge.convert` does); the
SavedModel written needs neither this project nor tensorflow_hub to load.
"""

from __future__ import annotations

import functools
import keyword
import os

import tensorflow as tf

from bridge.conversion.adapter_base import StoredModuleAdapter, save_options
from legacy.format.graph_saver import add_graph_saver
from legacy.format.metadata import BridgeMetadata, partitions_of, write_metadata
from legacy.errors import InvalidInputError, NotAnImageModuleError
from legacy.engine.functions import ModuleFunctions, checkpoint_values, input_defaults, load_variables
from legacy.format.conventions import (DEFAULT_SIGNATURE, IMAGE_INPUT_KEY, INFERENCE_TAGS, KINDS,
                                       SERVING_DEFAULT, TRAIN_TAGS, kind_of_signature, variable_name)
from legacy.format.reader import StoredModule, read_module
# The arguments every function of a converted model takes before a signature's other inputs.
_CALL_ARGUMENTS = (IMAGE_INPUT_KEY, "training")
# Attributes of the Reusable SavedModel API and of this class that a TF1 signature name must not shadow.
_RESERVED = frozenset({"variables", "trainable_variables", "regularization_losses", "signatures",
                       "expected_image_size", "metadata", "signature_names", "call_signature", "serve",
                       "serve_training"})


class SavedAdapter(tf.__internal__.tracking.AutoTrackable):
    """What a converted SavedModel holds: the tf.functions of the Reusable SavedModel API over shared variables.

    `bridge.conversion.converter` saves this object; `ModuleAdapter` wraps it for in-memory use and checks inputs first (a
    traced function sees only the shapes it was traced for, and `reduce_retracing` relaxes them).
    """

    def __init__(self, adapter: "ModuleAdapter", variables: list, regularization_losses: list, assets: list):
        self.variables = variables
        self.trainable_variables = [v for v in variables if v.trainable]
        self.regularization_losses = regularization_losses
        self._assets = assets
        primary = adapter._primary
        routes = adapter._call_routes

        def call(images, training=False, **hyperparameters):
            given = {k: v for k, v in hyperparameters.items() if v is not None}
            return adapter._run(adapter._route(given), images, training, given)[DEFAULT_SIGNATURE]

        keywords = sorted({k for keys, _ in routes for k in keys})
        self.__call__ = tf.function(_traced_alone(_with_keywords(call, keywords)), reduce_retracing=True,
                                    autograph=False)
        self.signature_functions = {}
        shared = {}  # what a signature computes -> its function: aliases share one (one function to save)
        for name in adapter._image_signatures:
            alias_of = shared.get(adapter._computes(name))
            if alias_of is not None:
                self.signature_functions[name] = alias_of
                if _attribute_name(name):
                    setattr(self, name, alias_of)
                continue

            call_signature = _signature_call(adapter, name)
            # The module's scalar defaults become the Python defaults (readable from the saved function, which
            # is how a TF2 -> TF1 conversion writes them back); an input without a default is required. One whose
            # default differs between the variants (a `scale` of 1.0 for inference and 0.5 for training) defaults
            # to None: each variant then feeds its own.
            defaults = {k: None if k in adapter._per_variant[name] else _python_default(v)
                        for k, v in adapter._defaults[name].items()}
            self.signature_functions[name] = tf.function(
                _traced_alone(_with_keywords(call_signature, sorted(adapter._extra[name]), defaults)),
                reduce_retracing=True, autograph=False)
            shared[adapter._computes(name)] = self.signature_functions[name]
            if _attribute_name(name):
                setattr(self, name, self.signature_functions[name])
        spec = adapter._image_spec(primary)
        self.serve = tf.function(lambda images: adapter._run(primary, images, False), input_signature=[spec],
                                 autograph=False)
        self.serve_training = tf.function(lambda images: adapter._run(primary, images, True),
                                          input_signature=[spec], autograph=False)


def _signature_call(adapter: "ModuleAdapter", name: str):
    """`fn(images, training=False, **inputs)` running signature `name`; the name is bound by this closure, not as a
    default argument, so that no input key (one may be called `name`) can replace it."""

    def call_signature(images, training=False, **extra):
        return adapter._run(name, images, training, {k: v for k, v in extra.items() if v is not None})

    call_signature.__name__ = name
    return call_signature


def _traced_alone(fn):
    """`fn` behind a `functools.partial` of its own, with its name and signature. TensorFlow counts traces per
    Python code object for its retracing warning, and these closures share one code across signatures and
    adapters: comparing two models (each signature traced for training=False and True) would otherwise print
    "triggered tf.function retracing" though each function is traced once per input signature."""
    wrapped = functools.partial(fn)
    wrapped.__name__ = fn.__name__
    wrapped.__signature__ = fn.__signature__
    return wrapped


def _with_keywords(fn, names, defaults=None):
    """`fn(images, training=False, **kwargs)` presented as taking exactly `names` as keyword arguments, so
    tf.function traces and saves them as named arguments. `defaults` (None: every name is optional with default
    None, the module's own default): name -> default; a name missing from it is a required argument."""
    import inspect

    params = [inspect.Parameter("images", inspect.Parameter.POSITIONAL_OR_KEYWORD),
              inspect.Parameter("training", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=False)]
    params += [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY,
                                 default=None if defaults is None else defaults.get(n, inspect.Parameter.empty))
               for n in names]
    fn.__signature__ = inspect.Signature(params)
    return fn


def _python_default(value):
    """A module default as the Python default of a keyword argument: a scalar as a Python number or bool (a
    function saves it with its signature), anything else None (the module's own default, fed by its graph)."""
    import numpy as np

    value = np.asarray(value)
    if value.ndim != 0 or value.dtype.kind not in "biuf":
        return None
    # float32 0.99 as 0.99, not 0.9900000095367432: the shortest text that gives the same float32 back
    return float(str(value[()])) if value.dtype.kind == "f" else value.item()


def _attribute_name(name: str) -> bool:
    """A TF1 signature name usable as `obj.<name>`: an identifier that shadows nothing of the API."""
    return name.isidentifier() and not keyword.iskeyword(name) and name not in _RESERVED


class ModuleAdapter(StoredModuleAdapter):
    """Implements the Reusable SavedModel API (`__call__(images, training)`, `variables`, ...) over a TF1 module.

    Inputs are checked in Python before any traced function runs, so a wrong batch is refused with one line
    that names the fix; `saveable` is the object `tf.saved_model.save` writes (see `bridge.conversion.converter`).
    """

    def __init__(self, module: StoredModule, signature: str | None = None, optimize: bool = False):
        """optimize: the inference path (`training=False`, the serving signatures) runs a frozen, pre-optimized copy
        of the inference graph with the weights as they are now (see `bridge.conversion.optimize`); training mode,
        the variables and the regularization losses are unchanged."""
        self._stored = module
        self._primary = DEFAULT_SIGNATURE if signature is None else signature
        inference = module.variant(INFERENCE_TAGS)
        self._extra, self._defaults, self.not_kept = {}, {}, {}
        self._per_variant = {}  # signature -> input keys whose default differs between the graph variants
        for name, sig in sorted(inference.signatures.items()):
            reason = _not_servable(module, sig)
            if reason:
                self.not_kept[name] = reason
            else:
                self._extra[name] = {key: tf.TensorSpec(_spec_shape(info.shape), tf.as_dtype(info.dtype), name=key)
                                     for key, info in sig.inputs.items() if key != IMAGE_INPUT_KEY}
                self._defaults[name] = {k: v for k, v in input_defaults(module, name).items()
                                        if k in self._extra[name]}
                self._per_variant[name] = _per_variant_defaults(module, name, self._defaults[name])
        self._image_signatures = sorted(self._extra)
        if not self._image_signatures:
            raise NotAnImageModuleError(
                f"{module.path} has no image signature (none takes an {IMAGE_INPUT_KEY!r} input whose other inputs "
                "have defaults): the bridge converts image models; pass an image module")
        inference.signature(self._primary)  # fails early, listing the signatures, when the name is unknown
        if self._primary not in self._image_signatures:
            raise NotAnImageModuleError(
                f"signature {self._primary!r} does not take a single {IMAGE_INPUT_KEY!r} input (with optional "
                f"others): {self.not_kept[self._primary]}; pick one of "
                f"{', '.join(self._image_signatures)} with --signature")
        self._call_routes = _call_routes(inference, self._primary, self._extra, self._defaults)
        self._training_tags = TRAIN_TAGS if module.has_train_variant else INFERENCE_TAGS

        variables = load_variables(module)
        assets = [tf.saved_model.Asset(os.path.join(module.assets_dir, name)) for name in module.asset_files()]
        self._fns = ModuleFunctions(module, variables, {
            name: asset.asset_path for name, asset in zip(module.asset_files(), assets)})
        self._inference = self._fns.outputs(INFERENCE_TAGS, self._image_signatures)
        if optimize:
            from bridge.conversion.optimize import freeze_and_optimize

            with tf.init_scope():  # freezing reads the variables' values
                self._inference = self._inference.with_functions(freeze_and_optimize)
        # One tf.function per loss, importing its graph when traced: a function calling a wrapped function would
        # save two functions per loss (ResNet V2 50 has 54 losses), each to trace, save and load. Each wraps its
        # own partial: TensorFlow counts traces by the Python function's code, and the losses' bodies share one, so
        # tracing the sixth loss would read as "retracing" and print TensorFlow's warning.
        regularization_losses = [tf.function(functools.partial(body), input_signature=[], autograph=False)
                                 for body in self._fns.regularization_loss_bodies(self._training_tags)]
        self._saved = SavedAdapter(self, list(variables.values()), regularization_losses, assets)
        self.variables = self._saved.variables
        self.trainable_variables = self._saved.trainable_variables
        self.regularization_losses = self._saved.regularization_losses
        for name in self._image_signatures:
            if _attribute_name(name):
                setattr(self, name, functools.partial(self.call_signature, name))

        size = None
        try:
            size = module.expected_image_size(self._primary)
        except NotAnImageModuleError:
            pass
        self._metadata = BridgeMetadata(image_size=size, signatures=[self._primary] + [
            s for s in self._image_signatures if s != self._primary], primary_signature=self._primary,
            kind=_kind(inference, self._primary), source_format="tf1_hub",
            variants=[sorted(tags) for tags in module.tags], optimized_inference=optimize,
            partitions=partitions_of(module))

    # -- the Reusable SavedModel API ---------------------------------------------------------------------------

    def __call__(self, images, training: bool = False, **hyperparameters):
        """The primary signature's `default` output; `training=True` runs the train variant and its updates.
        `hyperparameters` (e.g. `batch_norm_momentum` of a version-3 module) run the signature that takes them,
        as the converted model's `__call__` does."""
        _check_training(training)
        name = self._route({k: v for k, v in hyperparameters.items() if v is not None})
        images = self._check_images(name, images)
        return self._saved.__call__(images, training=training, **hyperparameters)

    def call_signature(self, name: str, images, /, training: bool = False, **inputs) -> dict:
        """All outputs of TF1 signature `name` (also reachable as `obj.<name>(images, training=...)`); its other
        inputs (e.g. `batch_norm_momentum`) as keyword arguments, the module's defaults when omitted; `name` and
        `images` are positional only, so that an input may have either name."""
        _check_training(training)
        if name not in self._image_signatures:
            self._stored.variant(INFERENCE_TAGS).signature(name)  # lists the signatures when unknown
            raise NotAnImageModuleError(f"signature {name!r} cannot be served: {self.not_kept[name]}; "
                                        f"pick one of {', '.join(self._image_signatures)}")
        unknown = sorted(set(inputs) - set(self._extra[name]))
        if unknown:
            raise InvalidInputError(f"signature {name!r} has no input {unknown[0]!r}; its inputs besides images: "
                                    f"{', '.join(sorted(self._extra[name])) or 'none'}")
        missing = [k for k in self.required_inputs[name] if inputs.get(k) is None]
        if missing:
            raise InvalidInputError(f"signature {name!r} needs input {missing[0]!r} (the module gives it no "
                                    f"default); pass {missing[0]}=...")
        images = self._check_images(name, images)
        return self._saved.signature_functions[name](images, training=training, **inputs)

    def call_signatures(self, names, images, /, training: bool = False, **inputs) -> dict:
        """Signature -> all its outputs, for every signature of `names`, computed together by one call of the
        variant's function (what a verification runs: each tensor once); `training=True` applies the updates once.
        `inputs`: values of other inputs, for the signatures that take them (the rest keep their defaults)."""
        _check_training(training)
        for name in names:
            if name not in self._image_signatures:
                return {name: self.call_signature(name, images, training=training,
                                                  **{k: v for k, v in inputs.items() if k in self._extra.get(name, {})})
                        for name in names}
            missing = [k for k in self.required_inputs[name] if inputs.get(k) is None]
            if missing:
                raise InvalidInputError(f"signature {name!r} needs input {missing[0]!r} (the module gives it no "
                                        f"default); pass {missing[0]}=...")
            images = self._check_images(name, images)
        fns = (self._fns.outputs(self._training_tags, self._image_signatures, with_updates=True) if training
               else self._fns.outputs(INFERENCE_TAGS, self._image_signatures))
        outputs = fns.call_all(images=images, **inputs)
        return {name: outputs[name] for name in names}

    @property
    def signature_inputs(self) -> dict:
        """Signature -> {input key: TensorSpec} of its inputs besides `images`."""
        return {name: dict(extra) for name, extra in self._extra.items()}

    @property
    def required_inputs(self) -> dict:
        """Signature -> sorted keys of its inputs that have no default in the module (callers must give them)."""
        return {name: sorted(set(extra) - set(self._defaults[name])) for name, extra in self._extra.items()}

    def _route(self, given: dict) -> str:
        """The signature `__call__` runs for these hyperparameters (the primary one when none is given)."""
        if not given:
            return self._primary
        for keys, name in self._call_routes:
            if set(given) <= keys:
                return name
        known = sorted({k for keys, _ in self._call_routes for k in keys})
        raise InvalidInputError(f"__call__ takes no argument {sorted(given)[0]!r}; it takes images, training"
                                + "".join(f", {k}" for k in known))

    # -- everything else -----------------------------------------------------------------------------------------

    @property
    def expected_image_size(self):
        """(height, width) of the images the module expects, or None when nothing records it."""
        return self._metadata.image_size

    def _run(self, name: str, images, training, extra: dict | None = None) -> dict:
        """Inside a traced function: the signature's outputs, with shapes enforced at run time too; `extra`: its
        other inputs that are given (the rest keep the module's defaults)."""
        _check_training(training)
        images = self._check_images(name, images)
        images = tf.ensure_shape(images, self._image_spec(name).shape)
        extra = {k: tf.cast(tf.ensure_shape(v, self._extra[name][k].shape), self._extra[name][k].dtype)
                 for k, v in (extra or {}).items()}
        # Every function of the converted model calls one import per graph variant (computing the outputs of all
        # its signatures) and picks what it returns: the SavedModel holds each variant's graph once.
        if training:
            return self._fns.outputs(self._training_tags, self._image_signatures, with_updates=True)(
                name, images=images, **extra)
        return self._inference(name, images=images, **extra)

    def _computes(self, name: str) -> tuple:
        """What signature `name`'s function computes, in every variant: its image spec, other inputs with their
        defaults, and output keys with their tensors. Signatures that compute the same (`default` and
        `image_classification` of a TF1 classifier) are served by one function, unless the module has random ops
        (dropout): one function's random op draws its numbers in turn for every signature calling it, where each
        signature's own function draws from the start, as each signature of a fresh TF1 module does."""
        from legacy.engine.graph_import import prune
        from legacy.engine.random_ops import random_ops

        # Only random ops the signature's outputs depend on count: variable initializers (TruncatedNormal in every
        # tf-slim module) never run in a converted model.
        for tags in self._stored.tags:
            variant = self._stored.variant(tags)
            if name in variant.signatures:
                fetches = [c for info in variant.signature(name).outputs.values() for c in info.component_names()]
                if random_ops(prune(variant.meta_graph.graph_def, fetches)):
                    return (name,)
        outputs = []
        for tags in sorted({INFERENCE_TAGS, self._training_tags}, key=sorted):
            sig = self._stored.variant(tags).signature(name)
            tensors = tuple(sorted((k, info.tensor_name) for k, info in sig.outputs.items()))
            outputs.append((tuple(sorted(tags)), tensors))
        image = self._stored.variant(INFERENCE_TAGS).signature(name).inputs[IMAGE_INPUT_KEY].tensor_name
        extra = tuple(sorted((k, repr(spec), repr(self._defaults[name].get(k)))
                             for k, spec in self._extra[name].items()))
        return repr(self._image_spec(name)), image, extra, tuple(outputs)

    @property
    def fixed_batch_size(self) -> int | None:
        """The number of images every call takes when the module was exported with a static batch dimension
        (`images` of shape [N, height, width, 3]), None when it takes any batch."""
        return _batch_dim(self._image_spec(self._primary))

    def _image_spec(self, name: str) -> tf.TensorSpec:
        """The signature's image input as the converted functions take it: its static batch dimension is kept (a
        graph exported for N images may compute for N only, e.g. a Reshape to [N, -1]; the genuine library refuses
        a tensor of another static batch), height and width as the module declares them."""
        info = self._stored.variant(INFERENCE_TAGS).signature(name).inputs[IMAGE_INPUT_KEY]
        shape = [None] * 4 if info.shape is None else list(info.shape)
        return tf.TensorSpec(shape, tf.as_dtype(info.dtype), name=IMAGE_INPUT_KEY)

    def _check_images(self, name: str, images):
        spec = self._image_spec(name)
        try:
            images = tf.convert_to_tensor(images)
        except (TypeError, ValueError) as e:
            raise InvalidInputError(f"images must be a float32 tensor of shape {spec.shape}: "
                                    f"{_one_line(str(e))}") from None
        if images.dtype != spec.dtype:
            raise InvalidInputError(
                f"images have dtype {images.dtype.name}, but signature {name!r} takes {spec.dtype.name} "
                "[batch, height, width, 3] with values in [0, 1]; convert with tf.image.convert_image_dtype")
        batch = _batch_dim(spec)
        if batch is not None and images.shape.rank == 4 and images.shape[0] not in (None, batch) \
                and spec.shape[1:].is_compatible_with(images.shape[1:]):
            raise InvalidInputError(
                f"signature {name!r} takes batches of exactly {batch} images (the module was exported with a fixed "
                f"batch size: images {spec.shape}), got {images.shape[0]}; feed {batch} images at a time")
        if not spec.shape.is_compatible_with(images.shape):
            raise InvalidInputError(
                f"images have shape {images.shape}, but signature {name!r} takes {spec.shape} "
                "([batch, height, width, channels]); resize or batch them to fit")
        return images

    def trace(self) -> None:
        """Trace `__call__` and every signature function for both values of `training`, for any batch size (or
        the module's fixed one; so that calls never retrace), without and with their extra inputs."""
        saved = self._saved
        spec = self._image_spec(self._primary)
        for training in (False, True):
            saved.__call__.get_concrete_function(spec, training=training)
            for keys, name in self._call_routes:
                saved.__call__.get_concrete_function(spec, training=training,
                                                     **{k: self._extra[name][k] for k in sorted(keys)})
        for name in self._image_signatures:
            sig_spec = self._image_spec(name)
            fn = saved.signature_functions[name]
            required = {k: self._extra[name][k] for k in self.required_inputs[name]}
            for training in (False, True):
                fn.get_concrete_function(sig_spec, training=training, **required)
                if len(self._extra[name]) > len(required):
                    fn.get_concrete_function(sig_spec, training=training, **self._extra[name])

    def trace_for_export(self) -> dict:
        """Trace every function for both values of `training` and return the serving signatures to save (each
        with all the TF1 signature's inputs)."""
        # tf.saved_model.save traces every function again unless it was traced in a save context with the
        # same options (the variable policy is part of tf.function's cache key): trace here as save will look.
        from tensorflow.python.saved_model import save_context

        with save_context.save_context(save_options()):
            return self._trace_for_export()

    def _trace_for_export(self) -> dict:
        saved = self._saved
        self.trace()
        # The serving signatures (each with all the TF1 signature's inputs) and `serve`/`serve_training` are traces
        # the signature functions already have: the SavedModel holds no extra function for them but the wrapper
        # tf.saved_model.save puts around each signature.
        if not self.required_inputs[self._primary]:
            spec = self._image_spec(self._primary)
            primary = saved.signature_functions[self._primary]
            saved.serve = primary.get_concrete_function(spec, training=False)
            saved.serve_training = primary.get_concrete_function(spec, training=True)
        else:
            saved.serve.get_concrete_function()
            saved.serve_training.get_concrete_function()
        signatures = {SERVING_DEFAULT: saved.serve}
        for name in self._image_signatures:
            signatures[name] = saved.signature_functions[name].get_concrete_function(
                self._image_spec(name), training=False, **self._extra[name])
        for loss in self.regularization_losses:
            loss.get_concrete_function()
        return signatures


def _per_variant_defaults(module: StoredModule, name: str, defaults: dict) -> frozenset:
    """Keys of `defaults` (signature `name`'s input defaults in the inference variant) whose default is another
    value, or none, in the module's other graph variants."""
    import numpy as np

    differ = set()
    for tags in module.tags:
        if tags == INFERENCE_TAGS or name not in module.variant(tags).signatures:
            continue
        other = input_defaults(module, name, tags)
        differ.update(k for k, v in defaults.items()
                      if k not in other or np.shape(other[k]) != np.shape(v) or not np.array_equal(other[k], v))
    return frozenset(differ)


def _batch_dim(spec) -> int | None:
    """The static batch dimension of an image TensorSpec, None when it takes any batch."""
    return spec.shape[0] if spec.shape.rank else None


def _spec_shape(shape):
    return None if shape is None else list(shape)


def _not_servable(module: StoredModule, sig) -> str | None:
    """Why TF1 signature `sig` cannot become a function of the converted model, or None when it can. Inputs
    besides images become keyword arguments (required ones when the module gives them no default)."""
    if IMAGE_INPUT_KEY not in sig.inputs:
        return (f"it has no {IMAGE_INPUT_KEY!r} input (it takes {', '.join(sorted(sig.inputs)) or 'nothing'}); the "
                "bridge serves image signatures")
    for key, info in sorted(sig.inputs.items()):
        if not info.is_dense:
            return f"its input {key!r} is a sparse or ragged tensor; the bridge serves dense image signatures"
        # Other inputs become keyword arguments of functions that already take `images` and `training` (which
        # picks the graph variant): a key that is no Python name, or is one of those two, cannot be one.
        if key != IMAGE_INPUT_KEY and (not key.isidentifier() or keyword.iskeyword(key) or key in _CALL_ARGUMENTS):
            return (f"its input {key!r} cannot be a keyword argument of the converted functions, which take "
                    f"{', '.join(_CALL_ARGUMENTS)} themselves; export the module with another input key to keep it")
    return None


def required_inputs(module: StoredModule) -> dict:
    """TF1 signature -> its inputs besides images that have no default in the module (a converted model takes
    them as required arguments; verification compares such a signature only when values are given)."""
    if frozenset() not in module.variants:
        return {}
    result = {}
    for name, sig in sorted(module.variant(INFERENCE_TAGS).signatures.items()):
        if _not_servable(module, sig) is None:
            missing = sorted(set(sig.inputs) - {IMAGE_INPUT_KEY} - set(input_defaults(module, name)))
            if missing:
                result[name] = missing
    return result


def signatures_not_kept(module: StoredModule) -> dict:
    """TF1 signature -> why a conversion cannot keep it (what `bridge inspect` and `bridge convert` print)."""
    if frozenset() not in module.variants:
        return {}
    signatures = module.variant(INFERENCE_TAGS).signatures
    reasons = {name: _not_servable(module, sig) for name, sig in sorted(signatures.items())}
    return {name: reason for name, reason in reasons.items() if reason}


def _call_routes(inference, primary: str, extra: dict, defaults: dict) -> list:
    """[(input keys, signature)]: signatures computing the primary signature's `default` output from images plus
    hyperparameters (e.g. `image_feature_vector_with_bn_hparams` for `default`), which `__call__` runs when it
    is given those hyperparameters as keyword arguments (only signatures whose extra inputs all have defaults)."""
    target = inference.signature(primary).outputs.get(DEFAULT_SIGNATURE)
    routes = []
    for name, keys in sorted(extra.items()):
        out = inference.signature(name).outputs.get(DEFAULT_SIGNATURE)
        if keys and set(keys) <= set(defaults.get(name, ())) and target is not None and out is not None \
                and out.tensor_name == target.tensor_name:
            routes.append((frozenset(keys), name))
    return routes


def _check_training(training) -> None:
    if not isinstance(training, bool):
        raise InvalidInputError("training must be a Python bool (True or False), as for any Reusable "
                                "SavedModel; use tf.cond or Keras to switch on a tensor")


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _kind(variant, primary: str) -> str | None:
    """"classification" or "feature_vector": which image signature the primary one's output is."""
    if kind_of_signature(primary):
        return kind_of_signature(primary)
    output = variant.signature(primary).outputs.get(DEFAULT_SIGNATURE)
    for kind, name in KINDS.items():
        other = variant.signatures.get(name)
        if output is not None and other is not None and DEFAULT_SIGNATURE in other.outputs \
                and other.outputs[DEFAULT_SIGNATURE].tensor_name == output.tensor_name:
            return kind
    return None


def build(module, signature: str | None = None, allow_unsafe_ops: bool = False, progress=None,
          optimize: bool = False) -> ModuleAdapter:
    """The converted model in memory: `adapt` with the functions traced for saving (what `write` saves);
    `optimize`: its inference path runs a frozen, pre-optimized graph (see `ModuleAdapter`)."""
    progress = progress or (lambda message: None)
    if optimize:
        progress("optimizing the inference graph (weights frozen as constants, batch norms folded)")
    adapter = adapt(module, signature=signature, allow_unsafe_ops=allow_unsafe_ops, optimize=optimize)
    for name, reason in adapter.not_kept.items():  # never dropped without a word
        progress(f"signature {name} is not kept: {reason}")
    for name, keys in adapter.required_inputs.items():
        if keys:
            progress(f"signature {name} is kept with required input{'s' if len(keys) > 1 else ''} "
                     f"{', '.join(keys)} (no default in the module)")
    progress("tracing the inference and training functions")
    adapter.export_signatures = adapter.trace_for_export()
    return adapter


def write(adapter: ModuleAdapter, path: str, progress=None) -> None:
    """Save a built adapter as a TF2 Reusable SavedModel at `path` (an empty or new directory), with its metadata."""
    (progress or (lambda message: None))("writing the TF2 SavedModel")
    # TensorFlow's own saver (two traced functions over every variable) is written only when the checkpoint holds
    # more than variables: otherwise the same saver_def as plain graph nodes, faster to write and to load.
    tf.saved_model.save(adapter.saveable, path, signatures=adapter.export_signatures,
                        options=save_options())
    if not add_graph_saver(path):
        tf.saved_model.save(adapter.saveable, path, signatures=adapter.export_signatures)
    write_metadata(path, adapter.metadata)


def as_stored(adapter: ModuleAdapter) -> ModuleAdapter:
    """The adapter with every variable back at the checkpoint's value: exactly the module on disk, without
    importing its graphs a second time (the reference a verification compares the written model with)."""
    if hasattr(adapter, "restore_stored"):  # a text module's adapter
        return adapter.restore_stored()
    if adapter.variables:
        by_name = {variable_name(var): var for var in adapter.variables}
        for name, value in checkpoint_values(adapter.stored_module):  # one value at a time
            by_name[name].assign(value)  # a part of a partitioned variable (`.../part_0`): a slice of the whole
    return adapter


def adapt(module, signature: str | None = None, allow_unsafe_ops: bool = False,
          optimize: bool = False) -> ModuleAdapter:
    """A Reusable SavedModel object over a TF1 Hub module (a path or a `StoredModule`), without writing to disk.

    The module's graphs are scanned first: ops that touch files, processes or the network are refused unless
    `allow_unsafe_ops` (see `legacy.format.safety`). `optimize`: see `ModuleAdapter` (image modules only).
    """
    from legacy.format.safety import check_graph_safe

    if not isinstance(module, StoredModule):
        module = read_module(module)
    check_graph_safe(module, allow_unsafe_ops=allow_unsafe_ops)
    from bridge.conversion.text_adapter import TextModuleAdapter, is_text_module

    if is_text_module(module):  # strings, sparse or ragged inputs, lookup tables: see text_adapter
        if optimize:
            raise InvalidInputError(f"{module.path} is a text module: optimize (--optimize) applies to image modules "
                                    "only; convert it without")
        return TextModuleAdapter(module, signature=signature)
    return ModuleAdapter(module, signature=signature, optimize=optimize)
