"""A TF1 Hub text module (string, sparse or ragged inputs, lookup tables) as a TF2 Reusable SavedModel object.

    obj = adapt("nnlm_module/")                        # bridge.conversion.tf1_to_tf2.adapt picks this for text
    embeddings = obj(["the cat sat", "a dog"])          # __call__: the primary signature's input
    outputs = obj.tokens(tf.SparseTensor(...))          # every TF1 signature, with all its output keys
    obj.variables, obj.trainable_variables, obj.regularization_losses

What differs from image modules (`bridge.conversion.tf1_to_tf2.ModuleAdapter`):
- inputs are the signature's own: a string batch, a `tf.SparseTensor` or `tf.RaggedTensor` (as the TF1 signature
  declares them); `__call__` takes the primary signature's only input; outputs may be sparse or ragged;
- lookup tables become tracked resources (`ModuleTable`) created by anonymous table ops and filled by the module's own
  initializer ops from its assets, which are `tf.saved_model.Asset`s: the SavedModel holds the vocabulary files
  under `assets/` and fills its tables from there wherever it is moved;
- partitioned variables stay one variable per part (`embeddings/part_0`, ...), as the module's graph reads them;
- a table defined alike in the inference and `{"train"}` variants (same node, kind, initializers and asset) is one
  table serving both, as the variables are; other tables stay one per variant.
Serving signatures (`serving_default`, one per TF1 signature) exist for the signatures whose inputs and outputs are
dense tensors; sparse and ragged ones are served by the attribute functions only (a SavedModel signature takes and
returns plain tensors).
"""

from __future__ import annotations

import inspect
import keyword
import os

import numpy as np
import tensorflow as tf

from bridge.conversion.adapter_base import StoredModuleAdapter, save_options
from legacy.engine import composites
from legacy.engine.functions import ModuleFunctions, input_defaults, load_variables
from legacy.engine.tables import create_anonymous, definition, initialize, module_tables
from legacy.errors import InvalidInputError, NotAnImageModuleError
from legacy.format.conventions import DEFAULT_SIGNATURE, IMAGE_INPUT_KEY, INFERENCE_TAGS, SERVING_DEFAULT, TRAIN_TAGS
from legacy.format.metadata import BridgeMetadata, partitions_of
from legacy.format.reader import StoredModule

INPUT_KIND = "text"
TENSORS_KIND = "tensors"
_RESERVED = frozenset({"variables", "trainable_variables", "regularization_losses", "signatures", "metadata",
                       "signature_names", "call_signature", "serve", "serve_training", "tables"})


def is_text_module(module: StoredModule) -> bool:
    """Whether no signature of the inference variant takes an image batch (a dense float32 `images` input): its
    signatures take strings, sparse or ragged tensors (a text module), which `TextModuleAdapter` serves."""
    if INFERENCE_TAGS not in module.variants:
        return False
    for sig in module.variant(INFERENCE_TAGS).signatures.values():
        image = sig.inputs.get(IMAGE_INPUT_KEY)
        if image is not None and image.is_dense and image.dtype == "float32":
            return False
    return True


class ModuleTable(tf.saved_model.experimental.TrackableResource):
    """One lookup table of the module, as a resource a SavedModel creates and fills again whenever it is loaded."""

    def __init__(self, fns: ModuleFunctions, tags: frozenset, table):
        self._fns, self._tags, self._table = fns, tags, table
        super().__init__()
        with tf.init_scope():
            self.resource_handle  # pylint: disable=pointless-statement  (created eagerly, not in the graph below)
            tf.compat.v1.wrap_function(self._initialize, [])()

    def _create_resource(self):
        return create_anonymous(self._table)

    def _initialize(self):
        variant = self._fns.module.variant(self._tags)
        # pylint: disable=protected-access
        return initialize(variant, self._table, self.resource_handle, self._fns._asset_inputs(variant),
                          self._fns.variables)


class _TableFunctions(ModuleFunctions):
    """ModuleFunctions whose tables are `ModuleTable`s (tracked, saved with the model) instead of named tables."""

    def __init__(self, module: StoredModule, variables, asset_paths):
        super().__init__(module, variables, asset_paths)
        self.table_resources: dict = {}  # tags -> {node: ModuleTable}
        self._by_definition: dict = {}  # tables.definition(...) -> ModuleTable, for immutable tables

    def tables(self, tags) -> dict:
        tags = frozenset(tags or ())
        if tags not in self.table_resources:
            variant = self.module.variant(tags)
            made = {}
            for table in module_tables(variant):
                key = definition(variant, table)
                if key is None or key not in self._by_definition:
                    made[table.node] = ModuleTable(self, tags, table)
                    if key is not None:
                        self._by_definition[key] = made[table.node]
                else:  # the same vocabulary table in another variant (e.g. {"train"}): one table serves both
                    made[table.node] = self._by_definition[key]
            self.table_resources[tags] = made
        return {node: table.resource_handle for node, table in self.table_resources[tags].items()}

    def all_tables(self) -> list:
        """Every table made so far, once each (variants may share one)."""
        found = {}
        for tables in self.table_resources.values():
            for table in tables.values():
                found.setdefault(id(table), table)
        return list(found.values())


class SavedTextAdapter(tf.__internal__.tracking.AutoTrackable):
    """What a converted text SavedModel holds: the Reusable SavedModel API's functions, variables, tables, assets."""

    def __init__(self, adapter: "TextModuleAdapter", variables: list, regularization_losses: list, assets: list,
                 tables: list):
        self.variables = variables
        self.trainable_variables = [v for v in variables if v.trainable]
        self.regularization_losses = regularization_losses
        self._assets = assets
        self.tables = tables
        primary, key = adapter._primary, adapter._primary_key

        def call(inputs, training=False):
            outputs = adapter._run(primary, dict(inputs) if key is None else {key: inputs}, training)
            return outputs[DEFAULT_SIGNATURE] if DEFAULT_SIGNATURE in outputs else outputs

        self.__call__ = tf.function(call, reduce_retracing=True, autograph=False)
        self.signature_functions = {}
        for name in adapter._specs:
            self.signature_functions[name] = tf.function(_signature_call(adapter, name), reduce_retracing=True,
                                                         autograph=False)
            if name.isidentifier() and name not in _RESERVED:
                setattr(self, name, self.signature_functions[name])
        # `serve`/`serve_training`: one input as a tensor, several as a dict of tensors (what TFSMLayer feeds).
        spec = adapter.call_spec
        if all(isinstance(s, tf.TensorSpec) for s in tf.nest.flatten(spec)):
            as_inputs = (lambda inputs: dict(inputs)) if key is None else (lambda inputs: {key: inputs})
            self.serve = tf.function(lambda inputs: adapter._run(primary, as_inputs(inputs), False),
                                     input_signature=[spec], autograph=False)
            self.serve_training = tf.function(lambda inputs: adapter._run(primary, as_inputs(inputs), True),
                                              input_signature=[spec], autograph=False)


def _argument_order(specs: dict, defaults) -> list:
    """The order of a signature function's arguments: its inputs without a default, then those with one (a
    Python signature lists required arguments first), each sorted by key."""
    return sorted(k for k in specs if k not in defaults) + sorted(k for k in specs if k in defaults)


def _signature_call(adapter: "TextModuleAdapter", name: str):
    """`fn(<the signature's inputs by key>, *, training=False)` running signature `name`. The signature name and
    its input keys are bound by this closure, not as default arguments, so that no input key (one may be called
    `name` or `keys`) can replace them; `training` is refused as an input key (see `_not_servable`)."""
    keys = _argument_order(adapter._specs[name], adapter._defaults[name])

    def call_signature(*args, **kwargs):
        training = kwargs.pop("training", False)
        given = dict(zip(keys, args), **kwargs)
        return adapter._run(name, {k: v for k, v in given.items() if v is not None}, training)

    call_signature.__signature__ = inspect.Signature(
        [inspect.Parameter(k, inspect.Parameter.POSITIONAL_OR_KEYWORD,
                           default=None if k in adapter._defaults[name] else inspect.Parameter.empty)
         for k in keys] + [inspect.Parameter("training", inspect.Parameter.KEYWORD_ONLY, default=False)])
    call_signature.__name__ = name
    return call_signature


class TextModuleAdapter(StoredModuleAdapter):
    """The Reusable SavedModel API over a TF1 module whose signatures take strings, sparse or ragged tensors.

    The interface is `ModuleAdapter`'s (what `bridge convert`, verification and parity use); inputs are checked
    in Python before any traced function runs."""

    expected_image_size = None

    def __init__(self, module: StoredModule, signature: str | None = None):
        self._stored = module
        inference = module.variant(INFERENCE_TAGS)
        self._specs, self._defaults, self.not_kept = {}, {}, {}
        for name, sig in sorted(inference.signatures.items()):
            reason = _not_servable(sig)
            if reason:
                self.not_kept[name] = reason
                continue
            self._specs[name] = {key: _relaxed(composites.type_spec(info), key) for key, info in sig.inputs.items()}
            self._defaults[name] = {k: v for k, v in input_defaults(module, name).items()}
        self._primary = primary_signature(inference.signatures, self._specs, signature)
        inference.signature(self._primary)  # fails early, listing the signatures, when the name is unknown
        if self._primary not in self._specs or not self._specs[self._primary]:
            reason = self.not_kept.get(self._primary, "it takes no input, and __call__ takes one")
            raise NotAnImageModuleError(f"signature {self._primary!r} cannot be served by __call__: {reason}; "
                                        "pick one of "
                                        f"{', '.join(n for n in sorted(self._specs) if self._specs[n]) or 'none'} "
                                        "with --signature")
        # __call__ takes the primary signature's input itself when it has one, else a dict of its inputs keyed
        # by name (as TF2 text encoders take {"input_word_ids": ..., "input_mask": ..., ...}).
        primary_specs = self._specs[self._primary]
        self._primary_key = next(iter(primary_specs)) if len(primary_specs) == 1 else None
        self._training_tags = TRAIN_TAGS if module.has_train_variant else INFERENCE_TAGS

        variables = load_variables(module)
        self._initial = {name: var.numpy() for name, var in variables.items()}
        self._variables_by_name = variables
        assets = [tf.saved_model.Asset(os.path.join(module.assets_dir, name)) for name in module.asset_files()]
        self._fns = _TableFunctions(module, variables, {
            name: asset.asset_path for name, asset in zip(module.asset_files(), assets)})
        for tags in dict.fromkeys([INFERENCE_TAGS, self._training_tags]):
            self._fns.tables(tags)
        tables = self._fns.all_tables()
        regularization_losses = [
            tf.function(fn, input_signature=[]) for fn in self._fns.regularization_losses(self._training_tags)]
        self._saved = SavedTextAdapter(self, list(variables.values()), regularization_losses, assets, tables)
        self.variables = self._saved.variables
        self.trainable_variables = self._saved.trainable_variables
        self.regularization_losses = self._saved.regularization_losses
        self._metadata = BridgeMetadata(
            image_size=None, signatures=[self._primary] + [s for s in sorted(self._specs) if s != self._primary],
            primary_signature=self._primary, kind=None, source_format="tf1_hub",
            variants=[sorted(tags) for tags in module.tags], partitions=partitions_of(module))

    # -- the Reusable SavedModel API ---------------------------------------------------------------------------

    def __call__(self, inputs, training: bool = False):
        """The primary signature's `default` output (all its outputs when it has no `default`) for its one input
        (e.g. a batch of sentences), or for a dict of its inputs when it takes several."""
        _check_training(training)
        if self._primary_key is None:
            if not isinstance(inputs, dict):
                raise InvalidInputError(f"__call__ takes a dict of the inputs of signature {self._primary!r} "
                                        f"({', '.join(sorted(self._specs[self._primary]))}), got "
                                        f"{type(inputs).__name__}; pass {{name: tensor, ...}}")
            value = self._given(self._primary, None, dict(inputs))
        else:
            value = self._check_input(self._primary, self._primary_key, inputs)
        return self._saved.__call__(value, training=training)

    @property
    def input_kind(self) -> str:
        """"text" when `__call__` takes sentences (strings, or sparse / ragged strings), else "tensors" (named
        tensors such as token ids and masks): what the parity harness feeds."""
        return INPUT_KIND if self.batch_input(self._primary) is not None and \
            self.call_spec.dtype == tf.string else TENSORS_KIND

    def tensor_inputs(self, name: str) -> dict:
        """{key: TensorSpec} of signature `name`'s inputs without a default (what a batch of named tensors feeds)."""
        return {k: spec for k, spec in self._specs[name].items() if k not in self._defaults[name]}

    @property
    def call_spec(self):
        """What `__call__` takes: the primary signature's one input's TypeSpec, or a dict of them by input name
        (its inputs without a default in the module)."""
        if self._primary_key is not None:
            return self._specs[self._primary][self._primary_key]
        return self.tensor_inputs(self._primary)

    def call_signature(self, name: str, inputs=None, /, training: bool = False, **named) -> dict:
        """All outputs of TF1 signature `name`; its inputs by key (`named`), its only input as `inputs`, or
        several as a dict `inputs`. `name` and `inputs` are positional only, so that an input may have either
        name."""
        _check_training(training)
        given = self._given(name, inputs, named)
        return self._saved.signature_functions[name](training=training, **given)

    def call_signatures(self, names, inputs=None, /, training: bool = False, **named) -> dict:
        """Signature -> its outputs, for each of `names` (each its own call; with training, updates run per call)."""
        return {name: self.call_signature(name, inputs, training=training,
                                          **{k: v for k, v in named.items() if k in self._specs.get(name, {})})
                for name in names}

    def _given(self, name: str, inputs, named: dict) -> dict:
        if name not in self._specs:
            self._stored.variant(INFERENCE_TAGS).signature(name)  # lists the signatures when unknown
            raise NotAnImageModuleError(f"signature {name!r} cannot be served: {self.not_kept[name]}; pick one of "
                                        f"{', '.join(sorted(self._specs))}")
        specs = self._specs[name]
        named = {k: v for k, v in named.items() if v is not None}
        if isinstance(inputs, dict) and len(specs) != 1:  # several inputs, given as a dict by name
            named, inputs = {**{k: v for k, v in inputs.items() if v is not None}, **named}, None
        if inputs is not None:
            if len(specs) != 1:
                raise InvalidInputError(f"signature {name!r} takes inputs {', '.join(sorted(specs))}; pass them by "
                                        "name")
            named[next(iter(specs))] = inputs
        unknown = sorted(set(named) - set(specs))
        if unknown:
            raise InvalidInputError(f"signature {name!r} has no input {unknown[0]!r}; its inputs: "
                                    f"{', '.join(sorted(specs))}")
        missing = sorted(set(specs) - set(named) - set(self._defaults[name]))
        if missing:
            raise InvalidInputError(f"signature {name!r} needs input {missing[0]!r}; pass {missing[0]}=...")
        return {k: self._check_input(name, k, v) for k, v in named.items()}

    def _check_input(self, name: str, key: str, value):
        return check_input(self._specs[name][key], value, f"input {key!r} of signature {name!r}")

    @property
    def signature_inputs(self) -> dict:
        """Signature -> {input key: TypeSpec} of every input (for text modules all inputs are the signature's own)."""
        return {name: dict(specs) for name, specs in self._specs.items()}

    @property
    def required_inputs(self) -> dict:
        """Signature -> its inputs without a default in the module, besides its only input (what every call
        gives): keys a caller must name."""
        return {name: sorted(set(specs) - set(self._defaults[name]) - {self.batch_input(name)})
                for name, specs in self._specs.items()}

    def batch_input(self, name: str) -> str | None:
        """The key of signature `name`'s only input (what `__call__` and parity feed), None when it takes several."""
        specs = self._specs[name]
        return next(iter(specs)) if len(specs) == 1 else None

    # -- everything else ---------------------------------------------------------------------------------------

    def restore_stored(self) -> "TextModuleAdapter":
        """Every variable back at the module's checkpoint value (what `tf1_to_tf2.as_stored` does for images)."""
        for name, var in self._variables_by_name.items():
            var.assign(self._initial[name])
        return self

    def _run(self, name: str, inputs: dict, training) -> dict:
        """Inside a traced function: signature `name`'s outputs for `inputs` (keys it takes; the others keep the
        module's defaults); training=True runs the training variant (the inference one when there is none)."""
        _check_training(training)
        specs = self._specs[name]
        fed = {k: _cast(specs[k], v) for k, v in inputs.items()}
        tags = self._training_tags if training else INFERENCE_TAGS
        return self._fns.signature(tags, name, with_updates=training, fed=tuple(sorted(fed)))(**fed)

    def trace(self) -> None:
        """Trace every function for both values of `training` (with and without optional inputs)."""
        saved = self._saved
        every_input = dict(self._specs[self._primary])
        for training in (False, True):
            saved.__call__.get_concrete_function(self.call_spec, training=training)
            if self._primary_key is None and len(every_input) > len(self.call_spec):
                saved.__call__.get_concrete_function(every_input, training=training)
        for name, specs in self._specs.items():
            fn = saved.signature_functions[name]
            required = self.tensor_inputs(name)
            for training in (False, True):
                fn.get_concrete_function(training=training, **required)
                if len(specs) > len(required):
                    fn.get_concrete_function(training=training, **specs)

    def trace_for_export(self) -> dict:
        """Trace every function as `tf.saved_model.save` will; return the serving signatures (dense ones only)."""
        from tensorflow.python.saved_model import save_context

        with save_context.save_context(save_options()):
            self.trace()
            saved = self._saved
            signatures = {}
            if hasattr(saved, "serve"):
                saved.serve_training.get_concrete_function()
                if self._primary_key is not None:
                    signatures[SERVING_DEFAULT] = saved.serve.get_concrete_function()
            inference = self._stored.variant(INFERENCE_TAGS)
            for name, specs in self._specs.items():
                sig = inference.signature(name)
                if not all(isinstance(s, tf.TensorSpec) for s in specs.values()) or \
                        not all(info.is_dense for info in sig.outputs.values()):
                    continue
                keys = sorted(specs)
                signatures[name] = tf.function(
                    lambda *args, name=name, keys=keys: self._run(name, dict(zip(keys, args)), False),
                    input_signature=[specs[k] for k in keys], autograph=False).get_concrete_function()
            if SERVING_DEFAULT not in signatures and self._primary in signatures:
                # Several inputs: serving signatures take them as keyword arguments, as the TF1 signature's.
                signatures[SERVING_DEFAULT] = signatures[self._primary]
            for loss in self.regularization_losses:
                loss.get_concrete_function()
            return signatures



def primary_signature(signatures, servable, chosen: str | None = None) -> str:
    """The signature `__call__` serves: the one chosen, else `default`, else the only one that can be served
    (e.g. `tokens` of a BERT-style module, beside its input-less `tokenization_info`)."""
    if chosen is not None:
        return chosen
    if DEFAULT_SIGNATURE in signatures:
        return DEFAULT_SIGNATURE
    servable = sorted(name for name, specs in servable.items() if specs)  # __call__ takes an input
    if len(servable) == 1:
        return servable[0]
    if servable:
        raise NotAnImageModuleError(f"the module has no {DEFAULT_SIGNATURE!r} signature; pick the one __call__ "
                                    f"serves with --signature: {', '.join(servable)}")
    return DEFAULT_SIGNATURE  # none to serve: looking it up lists the signatures


def signatures_not_kept(module: StoredModule) -> dict:
    """Signature -> why the converted text model cannot have it (what `bridge inspect` shows before converting)."""
    found = {}
    for name, sig in sorted(module.variant(INFERENCE_TAGS).signatures.items()):
        reason = _not_servable(sig)
        if reason:
            found[name] = reason
    return found


def _not_servable(sig) -> str | None:
    """Why a TF1 signature cannot be a function of the converted text model, None when it can (one without
    inputs, as BERT's `tokenization_info`, is a function of no arguments)."""
    for key in sig.inputs:
        # Inputs become arguments of functions that also take `training` (which picks the graph variant): a key
        # that is no Python name (`input-ids`, `class`), or is `training`, cannot be one.
        if not key.isidentifier() or keyword.iskeyword(key) or key == "training":
            return (f"its input {key!r} cannot be an argument of the converted functions, which take training "
                    "themselves and arguments named by Python identifiers; export the module with another input "
                    "key to keep it")
    return None


def _relaxed(spec, key: str):
    """A signature's TypeSpec with the batch dimension unknown (a traced function then fits any batch)."""
    if isinstance(spec, tf.TensorSpec):
        shape = spec.shape if spec.shape.rank in (None, 0) else tf.TensorShape([None] + spec.shape.as_list()[1:])
        return tf.TensorSpec(shape, spec.dtype, name=key)
    return spec


def _cast(spec, value):
    if isinstance(spec, tf.TensorSpec):
        return tf.ensure_shape(tf.convert_to_tensor(value, spec.dtype), spec.shape)
    return value


def check_input(spec, value, what: str):
    """`value` as the tensor, SparseTensor or RaggedTensor `spec` describes; InvalidInputError when it cannot be."""
    if isinstance(spec, tf.SparseTensorSpec):
        if isinstance(value, tf.compat.v1.SparseTensorValue):
            value = tf.SparseTensor(*value)
        if isinstance(value, tf.RaggedTensor):
            value = value.to_sparse()
        if not isinstance(value, tf.SparseTensor):
            raise InvalidInputError(f"{what} is a tf.SparseTensor of {spec.dtype.name}, got {type(value).__name__}; "
                                    "pass a tf.SparseTensor (e.g. tf.strings.split(sentences).to_sparse())")
    elif isinstance(spec, tf.RaggedTensorSpec):
        if not isinstance(value, tf.RaggedTensor):
            try:
                value = tf.ragged.constant(value, dtype=spec.dtype)
            except (TypeError, ValueError) as e:
                raise InvalidInputError(f"{what} is a tf.RaggedTensor of {spec.dtype.name}: {_one_line(e)}") from None
    elif isinstance(spec, tf.TensorSpec):
        if isinstance(value, np.ndarray) and value.dtype.kind in "OUS" and spec.dtype == tf.string:
            value = value.astype(object)
        try:
            value = tf.convert_to_tensor(value)
        except (TypeError, ValueError) as e:
            raise InvalidInputError(f"{what} must be a {spec.dtype.name} tensor of shape {spec.shape}: "
                                    f"{_one_line(e)}") from None
    if value.dtype != spec.dtype:
        raise InvalidInputError(f"{what} takes {spec.dtype.name}, got {value.dtype.name}"
                                + ("; pass strings (a list of sentences)" if spec.dtype == tf.string else ""))
    if not spec.shape.is_compatible_with(value.shape):
        raise InvalidInputError(f"{what} takes shape {spec.shape}, got {value.shape}; "
                                + ("pass a 1-D batch of sentences" if spec.shape.rank == 1 else "reshape it"))
    return value


def _check_training(training) -> None:
    if not isinstance(training, bool):
        raise InvalidInputError("training must be a Python bool (True or False), as for any Reusable "
                                "SavedModel; use tf.cond or Keras to switch on a tensor")


def _one_line(e) -> str:
    return " ".join(str(e).split())[:200]


__all__ = ["ModuleTable", "SavedTextAdapter", "TextModuleAdapter", "is_text_module", "check_input",
           "signatures_not_kept"]
