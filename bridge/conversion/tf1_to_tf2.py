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

from legacy.format.metadata import BridgeMetadata, write_metadata
from legacy.errors import InvalidInputError, NotAnImageModuleError
from legacy.engine.functions import ModuleFunctions, load_variables
from legacy.format.conventions import (DEFAULT_SIGNATURE, IMAGE_INPUT_KEY, INFERENCE_TAGS, KINDS, TRAIN_TAGS,
                                       kind_of_signature, tag_label)
from legacy.format.reader import StoredModule, read_module
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

        def call(images, training=False):
            return adapter._run(primary, images, training)[DEFAULT_SIGNATURE]

        self.__call__ = tf.function(call, reduce_retracing=True, autograph=False)
        self.signature_functions = {}
        for name in adapter._image_signatures:
            def call_signature(images, training=False, name=name):
                return adapter._run(name, images, training)

            call_signature.__name__ = name
            self.signature_functions[name] = tf.function(call_signature, reduce_retracing=True, autograph=False)
            if _attribute_name(name):
                setattr(self, name, self.signature_functions[name])
        spec = adapter._image_spec(primary)
        self.serve = tf.function(lambda images: adapter._run(primary, images, False), input_signature=[spec],
                                 autograph=False)
        self.serve_training = tf.function(lambda images: adapter._run(primary, images, True),
                                          input_signature=[spec], autograph=False)


def _attribute_name(name: str) -> bool:
    """A TF1 signature name usable as `obj.<name>`: an identifier that shadows nothing of the API."""
    return name.isidentifier() and not keyword.iskeyword(name) and name not in _RESERVED


class ModuleAdapter:
    """Implements the Reusable SavedModel API (`__call__(images, training)`, `variables`, ...) over a TF1 module.

    Inputs are checked in Python before any traced function runs, so a wrong batch is refused with one line
    that names the fix; `saveable` is the object `tf.saved_model.save` writes (see `bridge.conversion.converter`).
    """

    def __init__(self, module: StoredModule, signature: str | None = None):
        self._stored = module
        self._primary = DEFAULT_SIGNATURE if signature is None else signature
        inference = module.variant(INFERENCE_TAGS)
        self._image_signatures = sorted(name for name, sig in inference.signatures.items()
                                        if set(sig.inputs) == {IMAGE_INPUT_KEY})
        if not self._image_signatures:
            raise NotAnImageModuleError(
                f"{module.path} has no image signature (none takes a single {IMAGE_INPUT_KEY!r} input): the bridge "
                "converts image models; pass an image module")
        inference.signature(self._primary)  # fails early, listing the signatures, when the name is unknown
        if self._primary not in self._image_signatures:
            raise NotAnImageModuleError(
                f"signature {self._primary!r} does not take a single {IMAGE_INPUT_KEY!r} input (it takes "
                f"{', '.join(sorted(inference.signature(self._primary).inputs))}); the adapter serves image "
                f"signatures: pick one of {', '.join(self._image_signatures)} with --signature")
        self._training_tags = TRAIN_TAGS if module.has_train_variant else INFERENCE_TAGS

        variables = load_variables(module)
        assets = [tf.saved_model.Asset(os.path.join(module.assets_dir, name)) for name in module.asset_files()]
        self._fns = ModuleFunctions(module, variables, {
            name: asset.asset_path for name, asset in zip(module.asset_files(), assets)})
        regularization_losses = [
            tf.function(fn, input_signature=[]) for fn in self._fns.regularization_losses(self._training_tags)]
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
            variants=[sorted(tags) for tags in module.tags])

    # -- the Reusable SavedModel API ---------------------------------------------------------------------------

    def __call__(self, images, training: bool = False):
        """The primary signature's `default` output; `training=True` runs the train variant and its updates."""
        _check_training(training)
        images = self._check_images(self._primary, images)
        return self._saved.__call__(images, training=training)

    def call_signature(self, name: str, images, training: bool = False) -> dict:
        """All outputs of TF1 signature `name` (also reachable as `obj.<name>(images, training=...)`)."""
        _check_training(training)
        if name not in self._image_signatures:
            self._stored.variant(INFERENCE_TAGS).signature(name)  # lists the signatures when unknown
            raise NotAnImageModuleError(f"signature {name!r} does not take a single {IMAGE_INPUT_KEY!r} input; "
                                        f"pick one of {', '.join(self._image_signatures)}")
        images = self._check_images(name, images)
        return self._saved.signature_functions[name](images, training=training)

    # -- everything else -----------------------------------------------------------------------------------------

    @property
    def saveable(self) -> SavedAdapter:
        """The trackable object to pass to `tf.saved_model.save` (after `trace_for_export`)."""
        return self._saved

    @property
    def metadata(self) -> BridgeMetadata:
        return self._metadata

    @property
    def expected_image_size(self):
        """(height, width) of the images the module expects, or None when nothing records it."""
        return self._metadata.image_size

    @property
    def signature_names(self) -> list:
        """The TF1 image signatures this object serves, primary first."""
        return list(self._metadata.signatures)

    @property
    def stored_module(self) -> StoredModule:
        return self._stored

    def _run(self, name: str, images, training) -> dict:
        """Inside a traced function: the signature's outputs, with shapes enforced at run time too."""
        _check_training(training)
        images = self._check_images(name, images)
        images = tf.ensure_shape(images, self._image_spec(name).shape)
        if training:
            return self._fns.signature(self._training_tags, name, with_updates=True)(images=images)
        return self._fns.signature(INFERENCE_TAGS, name)(images=images)

    def _image_spec(self, name: str) -> tf.TensorSpec:
        info = self._stored.variant(INFERENCE_TAGS).signature(name).inputs[IMAGE_INPUT_KEY]
        shape = [None] * 4 if info.shape is None else [None] + list(info.shape[1:])
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
        if not spec.shape.is_compatible_with(images.shape):
            raise InvalidInputError(
                f"images have shape {images.shape}, but signature {name!r} takes {spec.shape} "
                "([batch, height, width, channels]); resize or batch them to fit")
        return images

    def trace(self) -> None:
        """Trace `__call__` and every signature function for both values of `training`, for any batch size (so
        that calls never retrace)."""
        saved = self._saved
        spec = self._image_spec(self._primary)
        saved.__call__.get_concrete_function(spec, training=False)
        saved.__call__.get_concrete_function(spec, training=True)
        for name in self._image_signatures:
            sig_spec = self._image_spec(name)
            fn = saved.signature_functions[name]
            fn.get_concrete_function(sig_spec, training=False)
            fn.get_concrete_function(sig_spec, training=True)

    def trace_for_export(self) -> dict:
        """Trace every function for both values of `training` and return the serving signatures to save."""
        saved = self._saved
        self.trace()
        signatures = {"serving_default": saved.serve.get_concrete_function()}
        for name in self._image_signatures:
            sig_spec = self._image_spec(name)
            signatures[name] = tf.function(
                lambda images, name=name: self._run(name, images, False),
                input_signature=[sig_spec], autograph=False).get_concrete_function()
        for loss in self.regularization_losses:
            loss.get_concrete_function()
        saved.serve_training.get_concrete_function()
        return signatures

    def __repr__(self) -> str:
        return (f"<ModuleAdapter {self._stored.path} signature={self._primary!r} "
                f"variants={', '.join(tag_label(t) for t in self._stored.tags)}>")


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


def build(module, signature: str | None = None, allow_unsafe_ops: bool = False, progress=None) -> ModuleAdapter:
    """The converted model in memory: `adapt` with the functions traced for saving (what `write` saves)."""
    adapter = adapt(module, signature=signature, allow_unsafe_ops=allow_unsafe_ops)
    (progress or (lambda message: None))("tracing the inference and training functions")
    adapter.export_signatures = adapter.trace_for_export()
    return adapter


def write(adapter: ModuleAdapter, path: str, progress=None) -> None:
    """Save a built adapter as a TF2 Reusable SavedModel at `path` (an empty or new directory), with its metadata."""
    (progress or (lambda message: None))("writing the TF2 SavedModel")
    tf.saved_model.save(adapter.saveable, path, signatures=adapter.export_signatures)
    write_metadata(path, adapter.metadata)


def as_stored(adapter: ModuleAdapter) -> ModuleAdapter:
    """The adapter with every variable back at the checkpoint's value: exactly the module on disk, without
    importing its graphs a second time (the reference a verification compares the written model with)."""
    reader = tf.train.load_checkpoint(adapter.stored_module.variables_prefix) if adapter.variables else None
    for var in adapter.variables:
        var.assign(reader.get_tensor(var.name.split(":")[0]))
    return adapter


def adapt(module, signature: str | None = None, allow_unsafe_ops: bool = False) -> ModuleAdapter:
    """A Reusable SavedModel object over a TF1 Hub module (a path or a `StoredModule`), without writing to disk.

    The module's graphs are scanned first: ops that touch files, processes or the network are refused unless
    `allow_unsafe_ops` (see `legacy.format.safety`).
    """
    from legacy.format.safety import check_graph_safe

    if not isinstance(module, StoredModule):
        module = read_module(module)
    check_graph_safe(module, allow_unsafe_ops=allow_unsafe_ops)
    return ModuleAdapter(module, signature=signature)
