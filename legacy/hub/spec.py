"""`ModuleSpec`: a module before it is instantiated, as `hub.load_module_spec` returned it in tensorflow_hub 0.15.

    spec = load_module_spec("testdata/modules/convnet_bn")
    spec.get_tags()                                   # [set(), {'train'}]
    spec.get_input_info_dict("image_feature_vector")  # {'images': <hub.ParsedTensorInfo shape=(None, 32, 32, 3) ...>}

Specs are loaded from paths by `legacy.hub.loading`. Each kind of spec (a TF1 Hub module: `native_module`; a TF2
SavedModel: `tf2_module`) implements `_create_impl` for the two ways of instantiating a module: into a TF1 graph,
or eagerly.
"""

from __future__ import annotations

import os
from typing import Callable, Iterable

import tensorflow as tf

from legacy.errors import UnknownVariantError
from legacy.format.conventions import DEFAULT_SIGNATURE, tag_label


class ParsedTensorInfo:
    """A signature input or output as the legacy API described it: `dtype`, `get_shape()`, `is_sparse`, ..."""

    def __init__(self, type_spec: tf.TypeSpec):
        self._type_spec = type_spec

    @classmethod
    def dense(cls, dtype, shape) -> "ParsedTensorInfo":
        """A dense tensor; `shape` is a sequence with None for unknown sizes, or None for an unknown rank."""
        return cls(tf.TensorSpec(tf.TensorShape(None if shape is None else list(shape)), tf.as_dtype(dtype)))

    @property
    def dtype(self) -> tf.DType:
        return self._type_spec.dtype

    def get_shape(self) -> tf.TensorShape:
        return self._type_spec.shape

    @property
    def is_sparse(self) -> bool:
        return isinstance(self._type_spec, tf.SparseTensorSpec)

    @property
    def is_composite(self) -> bool:
        return not isinstance(self._type_spec, tf.TensorSpec)

    @property
    def is_supported_type(self) -> bool:
        """Dense, sparse and other composite tensors (RaggedTensor) are all supported, as in tensorflow_hub 0.15."""
        return isinstance(self._type_spec, (tf.TensorSpec, tf.SparseTensorSpec, tf.TypeSpec))

    @property
    def type_spec(self) -> tf.TypeSpec:
        return self._type_spec

    def __repr__(self) -> str:
        return f"<hub.ParsedTensorInfo shape={self.get_shape()} dtype={self.dtype.name} is_sparse={self.is_sparse}>"


class ModuleSpec:
    """What every kind of module spec answers; subclasses hold the graphs and say where the weights come from.

    Do not instantiate directly: use `load_module_spec` or `create_module_spec`.
    """

    def get_tags(self) -> list:
        """The graph variants, as a list of tag sets, in the legacy library's order: a module's as its
        saved_model.pb holds them, a created spec's as its tags_and_args lists them."""
        raise NotImplementedError

    def get_signature_names(self, tags: Iterable[str] | None = None) -> list:
        raise NotImplementedError

    def get_input_info_dict(self, signature: str | None = None, tags: Iterable[str] | None = None) -> dict:
        """{input name: ParsedTensorInfo} of `signature` (None: `default`) in the variant `tags`."""
        raise NotImplementedError

    def get_output_info_dict(self, signature: str | None = None, tags: Iterable[str] | None = None) -> dict:
        """{output name: ParsedTensorInfo} of `signature` (None: `default`) in the variant `tags`."""
        raise NotImplementedError

    def get_attached_message(self, key: str, message_type, tags: Iterable[str] | None = None,
                             required: bool = False):
        """The message attached under `key` parsed as `message_type`, or None (a KeyError when `required`)."""
        blob = self._get_attached_bytes(key, self.check_tags(tags))
        if blob is None:
            if required:
                raise KeyError(f"No attached message for key {key!r} in graph variant {tag_label(tags or ())} of "
                               "the module; attach one with hub.attach_message inside the module_fn")
            return None
        message = message_type()
        message.ParseFromString(blob)
        return message

    def export(self, path: str, _sentinel=None, checkpoint_path: str | None = None,
               name_transform_fn: Callable[[str], str] | None = None) -> None:
        """Write this spec as a TF1 Hub module with the weights read from a training checkpoint.

        name_transform_fn maps a module variable name to its name in the checkpoint (e.g. adds a scope).
        """
        if _sentinel is not None:
            raise TypeError("ModuleSpec.export takes checkpoint_path and name_transform_fn by keyword only")
        if not checkpoint_path:
            raise ValueError("ModuleSpec.export needs checkpoint_path=...: the checkpoint holding the weights")
        if frozenset() not in {frozenset(tags) for tags in self.get_tags()}:
            # The legacy library instantiated the spec with tags=None to export it, which needs this variant.
            raise UnknownVariantError(
                f"No such graph variant: tags=None; ModuleSpec.export needs the inference variant (tags set()), "
                f"but this module has {', '.join(tag_label(t) for t in self.get_tags())} only: give it one (for a "
                "SavedModel: builder.add_meta_graph([], signature_def_map=...) before builder.save())")
        self._export_from_checkpoint(os.fspath(path), checkpoint_path, name_transform_fn or (lambda name: name))

    def check_tags(self, tags: Iterable[str] | None) -> frozenset:
        """`tags` as a frozenset, or the legacy "No such graph variant" error listing the variants."""
        key = frozenset(tags or ())
        variants = [frozenset(t) for t in self.get_tags()]
        if key not in variants:
            raise UnknownVariantError(
                f"No such graph variant: tags={tag_label(key)}; this module has "
                f"{', '.join(tag_label(t) for t in variants)}: pass one of those as tags")
        return key

    # -- what the subclasses implement --------------------------------------------------------------------------

    def _get_attached_bytes(self, key: str, tags: frozenset) -> bytes | None:
        raise NotImplementedError

    def _create_impl(self, name: str, trainable: bool, tags: frozenset, graph_mode: bool):
        """The state of one `hub.Module`: an object with `variable_map`, `regularization_losses`,
        `apply(signature, inputs) -> dict of outputs` and `export(path, session)`.

        name: graph mode: the absolute variable scope, with a trailing "/"; eager mode: a name prefix."""
        raise NotImplementedError

    def _export_from_checkpoint(self, path: str, checkpoint_path: str, name_transform_fn) -> None:
        raise NotImplementedError


def signature_name(signature: str | None) -> str:
    return DEFAULT_SIGNATURE if signature is None else signature
