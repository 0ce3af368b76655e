"""A model as a runner: its signatures, how to run them on a batch, its variables by name, its expected image size.

    runner = open_runner("testdata/modules/convnet_bn")   # or a TF2 SavedModel path, or an in-memory object
    runner.signature_names                                # ['default', 'image_classification', ...]
    runner.run("image_feature_vector", images, training=False)   # {'default': <tf.Tensor>, 'conv1': ...}

What a model exposes decides its signatures:
- a TF1 Hub module runs through `bridge.conversion.tf1_to_tf2` (every image signature, both graph variants, one set of variables;
  variable names are the module's checkpoint names);
- a TF2 SavedModel written by the bridge (it has `assets.extra/tf_hub_bridge.json`) has one attribute function per
  TF1 signature, `obj.<signature>(images, training=...)` returning a dict;
- any other Reusable SavedModel is its `__call__(images, training=...)`, shown as signature `default` with output
  `default` (or the keys of the dict it returns); one without `__call__` (Keras 3's `model.export`) is its
  `serving_default` signature, shown as signature `default` (its one output as `default`), with no training mode.
"""

from __future__ import annotations

import functools
import os

from bridge import formats, validate
from legacy.errors import BridgeError, InvalidInputError, ModuleFormatError, NotAnImageModuleError
from legacy.format.conventions import (SERVING_DEFAULT, expected_image_size, holds_saved_model, static_image_size,
                                       variable_name)
from legacy.format.reader import DEFAULT_SIGNATURE, IMAGE_INPUT_KEY, first_line


class Runner:
    """A model that parity can run; subclasses fill in the model-specific parts."""

    label = "model"
    format = "unknown"
    random = None  # bridge.parity.random_draws.RandomOps, None when unknown (an object loaded by the caller)
    _names: dict | None = None
    _trainable_names: list = []

    def _labelled(self, e: BridgeError) -> BridgeError:
        """`e` naming this model first (once: errors about the model's own files name it already)."""
        return e if str(e).startswith(f"{self.label}:") else type(e)(f"{self.label}: {e}")

    @property
    def signature_names(self) -> list:
        raise NotImplementedError

    @property
    def expected_image_size(self) -> tuple | None:
        return None

    @property
    def supports_training(self) -> bool:
        return False

    @property
    def takes_any_size(self) -> bool:
        """Whether the image input's height and width are dynamic ([?, ?, ?, 3])."""
        return False

    @property
    def fixed_batch_size(self) -> int | None:
        """The number of images per call when the model was exported with a static batch dimension (its image
        input is [N, height, width, 3]), None when it takes any batch (and for models not fed images)."""
        return None

    def is_logits(self, signature: str, key: str) -> bool:
        """Whether output `key` of `signature` holds classification logits (for top-k agreement)."""
        return signature == "image_classification" and key == DEFAULT_SIGNATURE

    def random_outputs(self, signature: str, training: bool) -> set | None:
        """The output keys of `signature` computed from random ops (None: unknown, any may be)."""
        if self.random is not None and not self.random.ops:
            return set()
        return None

    def signature_inputs(self, signature: str) -> dict:
        """Inputs of `signature` besides images: key -> (TensorSpec, required), required when the model has no
        default for it (the harness then needs a value, `inputs=`/`--input`)."""
        return {}

    @property
    def input_kind(self) -> str:
        """"images" (float32 image batches), "text" (signatures fed from sentences, see `parity.text_inputs`) or
        "tensors" (named tensors such as token ids and masks, see `parity.tensor_inputs`)."""
        return "images"

    def sentence_input(self, signature: str) -> str | None:
        """The input key of `signature` that a text model's sentences feed (what `--input KEY=@FILE` names)."""
        return None

    def tensor_inputs(self, signature: str) -> dict:
        """{key: TensorSpec} of the inputs of `signature` that each batch of a "tensors" model feeds (those
        without a default); {} for other kinds."""
        return {}

    def index_bounds(self, signature: str) -> dict:
        """{key: rows} of integer inputs of `signature` that index a table of that many rows (token ids into an
        embedding), as far as the model's graph tells; {} when unknown."""
        return {}

    def vocabulary(self) -> list:
        """Words of the model's vocabulary assets (random sentences draw from them); [] when it has none."""
        from bridge.parity.text_inputs import vocabulary_of

        return vocabulary_of(getattr(self, "directory", None))

    def _call(self, signature: str, images, training: bool, inputs: dict) -> dict:
        raise NotImplementedError

    def _variable_list(self) -> tuple:
        """(all variables, trainable variables) as lists of tf.Variable."""
        return [], []

    @property
    def has_tf1_loops(self) -> bool:
        """Whether the model's graphs hold a TF1 while loop (no gradients through it outside graph mode)."""
        from legacy.format.graph_defs import has_tf1_loops
        from legacy.format.reader import read_saved_model_proto

        directory = getattr(self, "directory", None)
        if directory is None or not holds_saved_model(directory):
            return False
        return any(has_tf1_loops(mg.graph_def) for mg in read_saved_model_proto(directory).meta_graphs)

    def run(self, signature: str, images, training: bool = False, inputs: dict | None = None) -> dict:
        """All outputs of `signature` on `images` (float32 NHWC) as a dict of tensors, so gradient tapes see them;
        `inputs`: values of its other inputs (those it takes; the rest keep the model's defaults)."""
        self._check(signature, training)
        self._check_batch(signature, images)
        import tensorflow as tf

        fed = self._feeds(signature, inputs)
        try:
            outputs = self._call(signature, images, training, fed)
        except BridgeError as e:
            raise self._labelled(e) from None
        except (ValueError, TypeError, tf.errors.InvalidArgumentError) as e:
            shape = list(getattr(images, "shape", []))
            raise InvalidInputError(
                f"{self.label}: signature {signature!r} failed on images of shape {shape} "
                f"({' '.join(str(e).split())[:300]}); check the image size (--image-size HxW)") from None
        except tf.errors.ResourceExhaustedError as e:
            raise InvalidInputError(f"{self.label}: signature {signature!r} ran out of memory ({first_line(e)}); "
                                    "pass a smaller --batch-size") from None
        except tf.errors.OpError as e:
            # Found by fuzzing: a damaged function that loads but cannot be instantiated ("invalid output index").
            raise ModuleFormatError(f"{self.label}: running signature {signature!r} failed ({first_line(e)}); "
                                    "the model is damaged: re-download or re-export it") from None
        if not isinstance(outputs, dict):
            outputs = {DEFAULT_SIGNATURE: outputs}
        elif self.serving_only and len(outputs) == 1:
            # A model with serving signatures only is its `serving_default`, shown as signature `default`; its one
            # output (`output_0` from Keras) is shown as `default` too, as a `__call__` returning a tensor is.
            outputs = {DEFAULT_SIGNATURE: next(iter(outputs.values()))}
        return dict(outputs)

    serving_only = False  # whether the model is run through its serving_default signature (no __call__)

    def _check(self, signature: str, training: bool) -> None:
        if signature not in self.signature_names:
            from legacy.errors import UnknownSignatureError
            raise UnknownSignatureError(f"{self.label}: no signature {signature!r}; available: "
                                        f"{', '.join(self.signature_names) or 'none'}")
        if training and not self.supports_training:
            raise InvalidInputError(f"{self.label} has no training mode (it exposes only serving signatures); "
                                    "drop --training and --gradients")

    def _check_batch(self, signature: str, images) -> None:
        """A batch of another size than a fixed-batch model takes is refused before it runs (the model's function
        would only say that no trace matches, or its graph would fail somewhere inside)."""
        batch = self.fixed_batch_size
        shape = getattr(images, "shape", None)
        if batch is None or self.input_kind != "images" or shape is None or len(shape) != 4 \
                or shape[0] in (None, batch):
            return
        raise InvalidInputError(f"{self.label}: signature {signature!r} takes batches of exactly {batch} images (the "
                                f"model was exported with a fixed batch size), got {shape[0]}; pass "
                                f"{validate.option('batch_size', str(batch))}")

    def run_many(self, signatures: list, images, training: bool = False, inputs: dict | None = None) -> dict:
        """Signature -> `run(signature, images, training, inputs[signature])`; a training call per signature, each
        from the current state (subclasses that compute all signatures in one call apply the updates once)."""
        inputs = inputs or {}
        return {sig: self.run(sig, images, training=training, inputs=inputs.get(sig)) for sig in signatures}

    def _feeds(self, signature: str, inputs: dict | None) -> dict:
        """The values of `inputs` that `signature` takes, as tensors; refused when a required one is missing."""
        specs = self.signature_inputs(signature)
        fed = {k: _input_tensor(signature, k, v, specs[k][0]) for k, v in (inputs or {}).items() if k in specs}
        missing = [k for k, (_, required) in specs.items() if required and k not in fed]
        if missing:
            raise InvalidInputError(f"{self.label}: signature {signature!r} needs input {missing[0]!r}, which has no "
                                    f"default; pass {validate.option('input', missing[0] + '=VALUE')}")
        return fed

    @property
    def computes_together(self) -> bool:
        """Whether `run_many` computes every signature in one call (then its training updates happen once)."""
        return False

    def output_aliases(self, signatures: list) -> dict:
        """Signature -> the signature computing exactly the same tensors under the same keys (e.g. `default` and
        `image_classification` of a TF1 classifier), for those that have an earlier one in `signatures`."""
        return {}

    def same_function(self, signature: str, other: str) -> bool:
        """Whether `signature` runs the very function `other` runs (so running one shows what the other returns)."""
        return False

    @property
    def variables(self) -> dict:
        """All variables by name (':0' stripped), named once and cached (see `unique_names`)."""
        if getattr(self, "_names", None) is None:
            variables, trainable = self._variable_list()
            known = {id(v) for v in variables}
            variables = list(variables) + [v for v in trainable if id(v) not in known]
            self._names = unique_names(variables)
            trainable_ids = {id(v) for v in trainable}
            self._trainable_names = [n for n, v in self._names.items() if id(v) in trainable_ids]
        return self._names

    @property
    def trainable_variables(self) -> dict:
        """The trainable variables, named as in `variables` (so a name means the same variable in both)."""
        variables = self.variables
        return {name: variables[name] for name in self._trainable_names}

    def snapshot(self, names=None) -> dict:
        """The current values of the variables (all, or those named), to restore later."""
        variables = self.variables
        return {name: variables[name].numpy() for name in (variables if names is None else names)}

    def restore(self, snapshot: dict) -> None:
        variables = self.variables
        for name, value in snapshot.items():
            variables[name].assign(value)

    def describe(self) -> dict:
        described = {"label": self.label, "format": self.format, "signatures": self.signature_names,
                     "expected_image_size": list(self.expected_image_size) if self.expected_image_size else None,
                     "training_mode": self.supports_training}
        if self.fixed_batch_size is not None:  # only then, so reports of other models keep their shape
            described["fixed_batch_size"] = self.fixed_batch_size
        return described


def unique_names(variables) -> dict:
    """name -> variable, ':0' stripped; a repeated name gets `_1`, `_2`, ... in order.

    The rule the converter uses for checkpoint names (`legacy.format.conventions.unique_variable_names`), so that
    variables of a TF2 model and of the TF1 module converted from it match by name.
    """
    from legacy.format.conventions import unique_variable_names

    variables = list(variables)
    return dict(zip(unique_variable_names(variable_name(var) for var in variables), variables))


class ModuleRunner(Runner):
    """A TF1 Hub module (through `bridge.conversion.tf1_to_tf2.ModuleAdapter`)."""

    format = formats.TF1_HUB

    def __init__(self, adapter, label: str | None = None, random=None, original=None):
        """random: the module's RandomOps; original: the StoredModule before its random ops were made stateless
        (what `random_outputs` reads), when `adapter` runs a rewritten copy."""
        self.adapter = adapter
        self.label = label or adapter.stored_module.path
        self.directory = adapter.stored_module.path
        self.random = random
        self._original = original or adapter.stored_module

    @property
    def has_tf1_loops(self) -> bool:
        """From the module's graph variants as read already (the base reads saved_model.pb)."""
        return self._original.has_tf1_loops

    def random_outputs(self, signature, training):
        from legacy.engine.random_ops import depends_on_random_ops

        if self.random is not None and not self.random.ops:
            return set()
        module = self._original
        tags = self.adapter._training_tags if training else frozenset()
        variant = module.variant(tags)
        sig = variant.signature(signature)
        return {key for key, info in sig.outputs.items()
                if depends_on_random_ops(variant.meta_graph.graph_def, [info.tensor_name])}

    @property
    def signature_names(self) -> list:
        return self.adapter.signature_names

    @property
    def expected_image_size(self):
        return self.adapter.expected_image_size

    @property
    def supports_training(self) -> bool:
        return True  # the {"train"} variant, or the inference graph when the module has none (as hub.Module)

    @property
    def input_kind(self) -> str:
        return getattr(self.adapter, "input_kind", "images")

    @property
    def takes_any_size(self) -> bool:
        if self.input_kind != "images":
            return False
        shape = self.adapter._image_spec(self.adapter.metadata.primary_signature).shape
        return shape.rank == 4 and shape[1] is None and shape[2] is None

    @property
    def fixed_batch_size(self):
        return getattr(self.adapter, "fixed_batch_size", None) if self.input_kind == "images" else None

    def is_logits(self, signature: str, key: str) -> bool:
        meta = self.adapter.metadata
        return super().is_logits(signature, key) or (
            signature == meta.primary_signature and key == DEFAULT_SIGNATURE and meta.kind == "classification")

    def sentence_input(self, signature):
        return self.adapter.batch_input(signature) if self.input_kind == "text" else None

    def tensor_inputs(self, signature):
        return self.adapter.tensor_inputs(signature) if self.input_kind == "tensors" else {}

    def index_bounds(self, signature):
        from legacy.format.graph_defs import index_bounds

        variant = self._original.variant(frozenset())
        if signature not in variant.signatures:
            return {}
        inputs = variant.signature(signature).inputs
        return index_bounds(variant.meta_graph.graph_def, {k: info.tensor_name for k, info in inputs.items()
                                                           if info.is_dense and "int" in info.dtype})

    def signature_inputs(self, signature):
        required = set(self.adapter.required_inputs.get(signature, ()))
        batch = {self.adapter.batch_input(signature)} if self.input_kind == "text" else set(
            self.tensor_inputs(signature))
        return {k: (spec, k in required) for k, spec in self.adapter.signature_inputs.get(signature, {}).items()
                if k not in batch}

    def _call(self, signature, images, training, inputs):
        if self.input_kind == "tensors":
            takes = self.adapter.signature_inputs.get(signature, {})
            fed = {k: v for k, v in images.items() if k in takes}  # a signature may take none of them
            return self.adapter.call_signature(signature, training=training, **fed, **inputs)
        if self.input_kind == "text":
            from bridge.parity.text_inputs import as_signature_input

            key = self.adapter.batch_input(signature)
            if key is None:  # no sentence input: none at all (BERT's tokenization_info), or drawn ones (ELMo's tokens)
                return self.adapter.call_signature(signature, training=training, **inputs)
            images = as_signature_input(self.adapter.signature_inputs[signature][key], images)
        return self.adapter.call_signature(signature, images, training=training, **inputs)

    @property
    def computes_together(self) -> bool:
        return self.input_kind == "images"

    def run_many(self, signatures, images, training=False, inputs=None):
        if self.input_kind != "images":
            return super().run_many(signatures, images, training=training, inputs=inputs)
        fed = {}  # the harness gives every signature the same value for a key (see signature_feeds)
        for signature in signatures:
            self._check(signature, training)
            self._check_batch(signature, images)
            fed.update(self._feeds(signature, (inputs or {}).get(signature)))
        try:
            outputs = self.adapter.call_signatures(list(signatures), images, training=training, **fed)
        except BridgeError as e:
            raise self._labelled(e) from None
        return {sig: dict(out) for sig, out in outputs.items()}

    def output_aliases(self, signatures):
        """From the module's graphs: same output keys naming the same tensors, in both variants."""
        module = self.adapter.stored_module
        variants = [module.variant(frozenset()), module.variant(self.adapter._training_tags)]

        def tensors(variant, sig):
            return {k: info.component_names() for k, info in variant.signature(sig).outputs.items()}

        aliases = {}
        for k, sig in enumerate(signatures):
            for earlier in signatures[:k]:
                if earlier not in aliases and all(tensors(v, sig) == tensors(v, earlier) for v in variants):
                    aliases[sig] = earlier
                    break
        return aliases

    def _variable_list(self):
        return self.adapter.variables, self.adapter.trainable_variables


class SavedModelRunner(Runner):
    """A loaded TF2 SavedModel: bridge signature functions, else `__call__`, else `serving_default`."""

    format = formats.TF2_SAVED_MODEL

    def __init__(self, obj, metadata=None, label: str | None = None):
        self.obj = obj
        self.metadata = metadata
        self.label = label or "in-memory TF2 object"
        self._functions = {}  # signature -> (callable, takes_training, input key or None)
        self._sentences = {}  # signature -> whether sentences feed it (see _takes_sentences)
        names = list(metadata.signatures) if metadata is not None and metadata.signatures else []
        if not names:
            # Without the metadata file (an object loaded in memory): a model converted by the bridge has one
            # serving signature per TF1 signature, each also an attribute function taking `training`. Not any
            # signature with an attribute of its name: Keras 3's `model.export` keeps its `serve` endpoint as
            # both, an inference-only function.
            names = [n for n in getattr(obj, "signatures", {})
                     if n != SERVING_DEFAULT and callable(getattr(obj, n, None)) and _takes_training(getattr(obj, n))]
        for name in names:
            fn = getattr(obj, name, None)
            if callable(fn):
                self._functions[name] = (fn, True, None)
            elif name in getattr(obj, "signatures", {}):
                self._functions[name] = (obj.signatures[name], False, _input_key(obj.signatures[name]))
        if not self._functions:
            if callable(obj):
                self._functions[DEFAULT_SIGNATURE] = (obj, _takes_training(obj), None)
            elif SERVING_DEFAULT in getattr(obj, "signatures", {}):
                fn = obj.signatures[SERVING_DEFAULT]
                self._functions[DEFAULT_SIGNATURE] = (fn, False, _input_key(fn))
                self.serving_only = True
            else:
                raise NotAnImageModuleError(
                    f"{self.label} has neither __call__ nor a {SERVING_DEFAULT!r} signature, so there is nothing "
                    "to run; export it as a Reusable SavedModel (tf.saved_model.save with a __call__)")

    @property
    def signature_names(self) -> list:
        return list(self._functions)

    @property
    def expected_image_size(self):
        recorded = self.metadata.image_size if self.metadata is not None else None
        return expected_image_size(recorded, self._static_image_shape)

    def _static_image_shape(self) -> list | None:
        """The first image input shape (of any function) with a static height and width, else None."""
        return next((shape for fn, _, _ in self._functions.values() for shape in _image_shapes(fn)
                     if static_image_size(shape)), None)

    @property
    def supports_training(self) -> bool:
        return all(takes for _, takes, _ in self._functions.values())

    @property
    def takes_any_size(self) -> bool:
        import tensorflow as tf

        specs = [spec for fn, _, _ in self._functions.values() for cf in _concrete_functions(fn)
                 for spec in tf.nest.flatten(cf.structured_input_signature)
                 if isinstance(spec, tf.TensorSpec) and spec.shape.rank == 4]
        return bool(specs) and all(spec.shape[1] is None and spec.shape[2] is None for spec in specs)

    @functools.cached_property
    def fixed_batch_size(self):
        """From the functions' traces: the static batch of their image inputs when every fixed one agrees (a
        model converted from a fixed-batch TF1 module is traced for that batch only). Decided once."""
        if self.input_kind != "images":
            return None
        batches = {_batch_dim(_batch_spec(fn)) for fn, _, _ in self._functions.values()}
        fixed = batches - {None}
        return fixed.pop() if len(fixed) == 1 else None

    def is_logits(self, signature: str, key: str) -> bool:
        meta = self.metadata
        return super().is_logits(signature, key) or (
            meta is not None and signature == meta.primary_signature and key == DEFAULT_SIGNATURE
            and meta.kind == "classification")

    def signature_inputs(self, signature):
        fn, _, input_key = self._functions[signature]
        if self.input_kind == "text" and not self._takes_sentences(signature):
            return _named_inputs(fn)  # fed by name (drawn per batch when they have no default)
        if self.input_kind == "tensors":
            return {k: (spec, False) for k, (spec, required) in _named_inputs(fn).items()
                    if not required and input_key is None}
        return _function_inputs(fn, serving=input_key is not None, image_key=input_key)

    def tensor_inputs(self, signature):
        if self.input_kind != "tensors":
            return {}
        fn, _, input_key = self._functions[signature]
        return {k: spec for k, (spec, required) in _named_inputs(fn).items() if required or input_key is not None}

    def sentence_input(self, signature):
        if self.input_kind != "text" or signature not in self._functions:
            return None
        fn, _, input_key = self._functions[signature]
        if not self._takes_sentences(signature):
            return None
        return input_key or _first_argument(fn)

    def _takes_sentences(self, signature: str) -> bool:
        """Whether a text model's function is fed the sentences: its one input takes strings (plain, sparse or
        ragged); not one of several named inputs (ELMo's `tokens`: padded words and their lengths). Decided
        once per signature: the harness asks on every call."""
        if signature not in self._sentences:
            from bridge.parity.text_inputs import is_text_spec

            fn, _, input_key = self._functions[signature]
            if input_key is not None:
                self._sentences[signature] = input_key != "" and is_text_spec(_batch_spec(fn))
            else:
                required = [k for k, (_, req) in _named_inputs(fn).items() if req]
                self._sentences[signature] = is_text_spec(_batch_spec(fn)) and len(required) <= 1
        return self._sentences[signature]

    @functools.cached_property
    def input_kind(self) -> str:
        """Decided once from the functions' traces (the harness asks on every call)."""
        from bridge.parity.text_inputs import is_text_spec

        # Functions without inputs (BERT's tokenization_info) say nothing about what the model is fed.
        specs = [_batch_spec(fn) for fn, _, _ in self._functions.values() if _takes_inputs(fn)] or \
            [_batch_spec(fn) for fn, _, _ in self._functions.values()]
        if specs and all(is_text_spec(s) for s in specs):
            return "text"
        if not specs or any(_may_be_images(s) for s in specs):
            return "images"
        # Sentences feed a model with any string function (ELMo: `default` on sentences, `tokens` by name).
        return "text" if any(is_text_spec(s) for s in specs) else "tensors"

    def _call(self, signature, images, training, inputs):
        fn, takes_training, input_key = self._functions[signature]
        if not _takes_inputs(fn):  # a function of no inputs (BERT's tokenization_info)
            return fn(training=training, **inputs) if takes_training and input_key is None else fn(**inputs)
        if self.input_kind == "tensors":
            import tensorflow as tf

            one_dict = isinstance(_batch_spec(fn), dict)  # one dict of named tensors, as TF2 text encoders take
            takes = None if one_dict else _named_inputs(fn)
            tensors = {k: tf.convert_to_tensor(v) for k, v in images.items() if takes is None or k in takes}
            if one_dict:
                args = [{**tensors, **inputs}]
                return fn(*args, training=training) if takes_training else fn(*args)
            if takes_training and input_key is None:
                return fn(**tensors, training=training, **inputs)
            return fn(**tensors, **inputs)
        if self.input_kind == "text":
            from bridge.parity.text_inputs import as_signature_input

            if not self._takes_sentences(signature):  # inputs by name only (drawn per batch)
                return fn(training=training, **inputs) if takes_training and input_key is None else fn(**inputs)
            images = as_signature_input(_batch_spec(fn), images)
        if input_key is not None:
            import tensorflow as tf
            return fn(**{input_key: tf.convert_to_tensor(images)}, **inputs)
        if takes_training:
            return fn(images, training=training, **inputs)
        return fn(images, **inputs)

    def same_function(self, signature, other):
        """Compared on the restored functions: both call the same functions with the same captured variables
        and differ in nothing but their names, for every traced input signature (e.g. training False/True)."""
        a, b = self._functions.get(signature), self._functions.get(other)
        if a is None or b is None or a[1:] != b[1:]:
            return False
        fa, fb = _concrete_functions(a[0]), _concrete_functions(b[0])
        if not fa or len(fa) != len(fb):
            return False
        fb_by_inputs = {repr(cf.structured_input_signature): cf for cf in fb}
        for cf in fa:
            twin = fb_by_inputs.get(repr(cf.structured_input_signature))
            if twin is None or _anonymous(cf) != _anonymous(twin) or \
                    [id(t) for t in cf.captured_inputs] != [id(t) for t in twin.captured_inputs]:
                return False
        return True

    def _variable_list(self):
        obj = self.obj
        if hasattr(obj, "variables"):
            variables = list(obj.variables)
            trainable = list(getattr(obj, "trainable_variables", [v for v in variables if v.trainable]))
            return variables, trainable
        import tensorflow as tf
        variables = [d for d in tf.train.TrackableView(obj).descendants() if isinstance(d, tf.Variable)]
        return variables, [v for v in variables if v.trainable]


def _function_inputs(fn, serving: bool, image_key: str | None = None) -> dict:
    """key -> (TensorSpec, required) of a function's tensor inputs besides images (`image_key`: what a serving
    signature names its image input, e.g. `inputs` or `keras_tensor`; default `images`): a serving signature's
    are all required; a function's keyword argument is required when every traced call takes it (a restored
    function runs only the calls it was traced for, so one with a default has a trace without it)."""
    import tensorflow as tf

    specs, traces = {}, _concrete_functions(fn)
    count = {}
    for cf in traces:
        for key, spec in cf.structured_input_signature[1].items():
            if isinstance(spec, tf.TensorSpec) and key not in (image_key or IMAGE_INPUT_KEY, "training"):
                specs[key] = spec
                count[key] = count.get(key, 0) + 1
    return {k: (spec, serving or count[k] == len(traces)) for k, spec in specs.items()}


def _input_tensor(signature: str, key: str, value, spec):
    """A value given for input `key` as a tensor of the input's dtype, refused when its shape cannot fit."""
    import numpy as np
    import tensorflow as tf

    array = np.asarray(value)
    if not spec.shape.is_compatible_with(array.shape):
        raise InvalidInputError(f"input {key!r} of signature {signature!r} has shape {spec.shape}, but the value "
                                f"given has shape {list(array.shape)}; pass a value of that shape")
    return tf.constant(array.astype(spec.dtype.as_numpy_dtype))


def _batch_spec(fn):
    """The TypeSpec of a function's first input (what the harness feeds: images, sentences, or a dict of named
    tensors), from its first trace that takes one; None for a function without inputs."""
    import tensorflow as tf

    for cf in _concrete_functions(fn):
        args, kwargs = cf.structured_input_signature
        first = [a for a in args if not isinstance(a, bool)][:1] or \
            [v for v in kwargs.values() if isinstance(v, (tf.TypeSpec, dict))][:1]
        if first:
            return first[0]
    return None


def _batch_dim(spec) -> int | None:
    """The static batch dimension of a function's image input (a float TensorSpec of rank 4), else None."""
    import tensorflow as tf

    if isinstance(spec, tf.TensorSpec) and spec.shape.rank == 4 and spec.dtype.is_floating:
        return spec.shape[0]
    return None


def _first_argument(fn) -> str | None:
    from legacy.engine.text_variants import argument_names

    names = argument_names(fn)
    return names[0] if names else None


def _input_key(fn) -> str:
    """The key a serving signature's batch is fed under: `images`, its only input, or "" when it takes several
    named tensors (fed as keyword arguments)."""
    kwargs = fn.structured_input_signature[1]
    if IMAGE_INPUT_KEY in kwargs:
        return IMAGE_INPUT_KEY
    if len(kwargs) != 1:
        return ""
    return next(iter(kwargs))


def _takes_inputs(fn) -> bool:
    """Whether a function takes a tensor (or a structure of them); assumed when it has no trace to tell."""
    return _batch_spec(fn) is not None or not _concrete_functions(fn)


def _may_be_images(spec) -> bool:
    """Whether a function's first input could be an image batch (a float tensor of rank 4 or unknown rank)."""
    import tensorflow as tf

    if spec is None or not isinstance(spec, tf.TensorSpec):
        return spec is None
    return spec.dtype.is_floating and spec.shape.rank in (None, 4)


def _named_inputs(fn) -> dict:
    """key -> (TensorSpec, required) of a function's tensor inputs by name: the keys of a dict first argument,
    else its arguments (a restored function keeps their names); required when every traced call takes it."""
    import tensorflow as tf

    from legacy.engine.text_variants import argument_names

    traces = _concrete_functions(fn)
    names = argument_names(fn)
    found, count = {}, {}
    for cf in traces:
        args, kwargs = cf.structured_input_signature
        if args and isinstance(args[0], dict):
            items = list(args[0].items())
        else:
            items = [(name or getattr(s, "name", None), s) for name, s in
                     zip(names + [None] * len(args), args)] + list(kwargs.items())
        for key, value in items:
            if isinstance(value, tf.TensorSpec) and key and key != "training":
                found[key] = value
                count[key] = count.get(key, 0) + 1
    return {k: (v, count[k] == len(traces)) for k, v in found.items()}


def _concrete_functions(fn) -> list:
    if hasattr(fn, "structured_input_signature"):
        return [fn]
    call = getattr(fn, "__call__", fn)
    return list(getattr(call, "concrete_functions", None) or getattr(fn, "concrete_functions", None) or [])


def _anonymous(cf) -> bytes:
    """A concrete function's FunctionDef without its own name: what it computes, from which functions."""
    from tensorflow.core.framework import function_pb2

    fdef = function_pb2.FunctionDef()
    fdef.CopyFrom(cf.function_def)
    fdef.signature.name = ""
    return fdef.SerializeToString(deterministic=True) + repr(cf.structured_outputs).encode()


def _takes_training(obj) -> bool:
    """Whether a restored `__call__` was traced with training=True (the Reusable SavedModel API)."""
    for cf in _concrete_functions(obj):
        args, kwargs = cf.structured_input_signature
        if any(a is True for a in args) or kwargs.get("training") is True:
            return True
    return False


def _image_shapes(fn) -> list:
    """The shapes of the 4-D tensor arguments of `fn`'s traces, as lists (None where unknown)."""
    import tensorflow as tf

    return [spec.shape.as_list() for cf in _concrete_functions(fn)
            for spec in list(cf.structured_input_signature[0]) + list(cf.structured_input_signature[1].values())
            if isinstance(spec, tf.TensorSpec) and spec.shape.rank == 4]


def open_runner(model, label: str | None = None, allow_unsafe_ops: bool = False,
                match_random: bool = True) -> Runner:
    """A runner for a path (TF1 Hub module or TF2 SavedModel), a `ModuleAdapter`, a loaded object or a Runner.

    A TF1 module's graphs are scanned before they run (refused unless `allow_unsafe_ops`, see `legacy.format.safety`).
    match_random: run a copy whose stateful random ops are stateless and seeded from their own attrs
    (`bridge.parity.random_draws`), so that two models compared draw the same numbers; possible for paths and
    `ModuleAdapter`s (an object loaded by the caller runs as it is).
    """
    if isinstance(model, Runner):
        if label:
            model.label = label
        return model
    if isinstance(model, (str, os.PathLike)):
        path = os.fspath(model)
        fmt = formats.detect(path)
        if fmt.name == formats.TF1_HUB:
            from legacy.format.reader import read_module

            module = read_module(path)
            seeded, random = _seeded(module, match_random)
            return ModuleRunner(_adapt(seeded, path, allow_unsafe_ops), label=label or path, random=random,
                                original=module)
        return saved_model_runner(path, label=label, match_random=match_random)
    from bridge.conversion.text_adapter import TextModuleAdapter
    from bridge.conversion.tf1_to_tf2 import ModuleAdapter

    if isinstance(model, (ModuleAdapter, TextModuleAdapter)):
        original = model.stored_module
        seeded, random = _seeded(original, match_random)
        if seeded is not original:  # a second adapter, on the checkpoint's values as the reference holds them
            model = type(model)(seeded, signature=model.metadata.primary_signature)
            model.trace()
        return ModuleRunner(model, label=label, random=random, original=original)
    from legacy.format.metadata import BridgeMetadata

    metadata = getattr(model, "metadata", None)
    return SavedModelRunner(model, metadata=metadata if isinstance(metadata, BridgeMetadata) else None, label=label)


def saved_model_runner(path: str, obj=None, label: str | None = None, match_random: bool = True) -> Runner:
    """A runner for the TF2 SavedModel at `path` (see `open_runner`). `obj`: the model already loaded from `path`,
    run instead of loading it again unless matching random draws needs a seeded copy of it."""
    from bridge.parity.random_draws import RandomOps, seeded_saved_model
    from legacy.engine.from_saved_model import load_reusable
    from legacy.format.metadata import read_metadata

    holder = _Holder()
    load_path, random = seeded_saved_model(path, holder) if match_random else (path, None)
    loaded = obj if obj is not None and load_path == path else load_reusable(load_path)
    runner = SavedModelRunner(loaded, metadata=read_metadata(path), label=label or path)
    runner.directory = path
    runner.random = random if random is not None else RandomOps(_saved_model_random_ops(path), False)
    runner._tmp_holder = holder  # keeps the rewritten copy until the runner goes
    return runner


class _Holder:
    """An object whose life decides how long a rewritten copy of a model stays on disk."""


def _seeded(module, match_random: bool) -> tuple:
    """(the module to run, its RandomOps): random ops made stateless when `match_random`."""
    from bridge.parity.random_draws import RandomOps
    from legacy.engine.random_ops import seeded_module

    seeded, found = seeded_module(module)
    ops = [(f"{'train' if tags else 'inference'} variant" + (f", function {fn}" if fn else ""), node, op)
           for tags, fn, node, op in found]
    if not match_random:
        return module, RandomOps(ops, False)
    return seeded, RandomOps(ops, True)


def _saved_model_random_ops(path: str) -> list:
    from legacy.engine.random_ops import random_ops
    from legacy.format.reader import read_saved_model_proto

    return [op for mg in read_saved_model_proto(path).meta_graphs for op in random_ops(mg.graph_def)]


def _adapt(module, path: str, allow_unsafe_ops: bool):
    """The module's adapter, primary signature `default` when it is an image signature, else the first one."""
    from bridge.conversion.tf1_to_tf2 import adapt

    try:
        return adapt(module, allow_unsafe_ops=allow_unsafe_ops)
    except NotAnImageModuleError:
        from bridge.conversion.text_adapter import is_text_module

        if is_text_module(module):
            raise  # the text adapter's reason names the signatures that can serve
        names = sorted(n for n, sig in module.variant(frozenset()).signatures.items()
                       if set(sig.inputs) == {IMAGE_INPUT_KEY})
        if not names:
            raise NotAnImageModuleError(f"{path} has no image signature (one whose only input is "
                                        f"{IMAGE_INPUT_KEY!r}); parity compares image models") from None
        return adapt(module, signature=names[0], allow_unsafe_ops=allow_unsafe_ops)
