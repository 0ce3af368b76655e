"""TF2 concrete functions over a TF1 module's graph variants, all sharing one set of `tf.Variable`s.

    fns = ModuleFunctions(read_module(path))
    outputs = fns.signature(frozenset(), "default")(images=batch)      # {"default": <tf.Tensor ...>}
    outputs = fns.signature(frozenset({"train"}), "default", with_updates=True)(images=batch)

Each (variant, signature) is imported once into a `tf.compat.v1.wrap_function` graph (see `graph_import`), so
calling it is as fast as a concrete function, and it can be called from inside a `tf.function` that is saved.
"""

from __future__ import annotations

import os
from typing import Mapping

from legacy.engine import graph_import
from legacy.errors import ModuleFormatError
from legacy.format.reader import StoredModule, VariableInfo, tag_label


def load_variables(module: StoredModule, name_prefix: str = "", trainable: bool = True) -> dict:
    """One `tf.Variable` per module variable, holding the checkpoint's value (`trainable` per the module).

    trainable=False makes every variable non-trainable (a `hub.Module(..., trainable=False)`), so that gradient
    tapes do not watch them.
    """
    import tensorflow as tf

    variables = module.variables()
    if not variables:
        return {}
    try:
        reader = tf.train.load_checkpoint(module.variables_prefix)
    except (tf.errors.OpError, ValueError, IndexError) as e:  # a short index file raises IndexError
        raise ModuleFormatError(f"{module.path}: the variables checkpoint cannot be read "
                                f"({_first_line(e)}); the module is incomplete: re-download or re-export it") from None
    shapes = reader.get_variable_to_shape_map()
    result = {}
    for var in variables:
        value = _checkpoint_value(module, reader, shapes, var)
        with tf.init_scope():
            result[var.name] = tf.Variable(value, trainable=trainable and var.trainable,
                                          name=name_prefix + var.name)
    return result


def _checkpoint_value(module: StoredModule, reader, shapes: Mapping, var: VariableInfo):
    import tensorflow as tf

    if var.name not in shapes:
        raise ModuleFormatError(f"{module.path}: the checkpoint has no value for variable {var.name!r}; the module "
                                "is incomplete: re-download or re-export it")
    if tuple(shapes[var.name]) != tuple(var.shape):
        raise ModuleFormatError(f"{module.path}: variable {var.name!r} has shape {list(var.shape)} in the graph but "
                                f"{shapes[var.name]} in the checkpoint; re-export the module")
    try:
        return reader.get_tensor(var.name)
    except (tf.errors.OpError, IndexError, ValueError) as e:  # a short data file raises IndexError
        raise ModuleFormatError(f"{module.path}: reading variable {var.name!r} failed ({_first_line(e)}); the "
                                "checkpoint is corrupt: re-download or re-export the module") from None


def _first_line(e: Exception) -> str:
    text = getattr(e, "message", None) or str(e)
    return text.strip().splitlines()[0] if text.strip() else type(e).__name__


class ModuleFunctions:
    """Builds and caches the concrete functions of a module's signatures, regularization losses and updates."""

    def __init__(self, module: StoredModule, variables: Mapping | None = None,
                 asset_paths: Mapping | None = None):
        """variables: checkpoint name -> tf.Variable (loaded from the checkpoint when omitted).
        asset_paths: asset file name -> string tensor with its path (the files under assets/ when omitted)."""
        import tensorflow as tf

        self.module = module
        self.variables = dict(variables) if variables is not None else load_variables(module)
        if asset_paths is None:
            asset_paths = {name: tf.constant(os.path.join(os.path.abspath(module.assets_dir), name))
                           for name in module.asset_files()}
        self.asset_paths = dict(asset_paths)
        self._cache = {}

    def _asset_inputs(self, variant) -> dict:
        inputs = {}
        for tensor_name, filename in variant.asset_files.items():
            if filename not in self.asset_paths:
                raise ModuleFormatError(f"{self.module.path}: asset file {filename!r} is missing from assets/; "
                                        "the module is incomplete: re-download or re-export it")
            inputs[tensor_name] = self.asset_paths[filename]
        return inputs

    def signature(self, tags, name: str | None = None, with_updates: bool = False):
        """A concrete function taking the signature's inputs as keyword arguments, returning its outputs dict.

        with_updates: make every output depend on the variant's update ops (batch-norm moving statistics), so
        that calling the function applies them once, as running the TF1 UPDATE_OPS collection would.
        """
        key = ("signature", frozenset(tags or ()), name, with_updates)
        if key not in self._cache:
            self._cache[key] = self._build_signature(frozenset(tags or ()), name, with_updates)
        return self._cache[key]

    def _build_signature(self, tags, name, with_updates):
        import tensorflow as tf

        variant = self.module.variant(tags)
        sig = variant.runnable_signature(name)
        input_keys = sorted(sig.inputs)
        output_keys = sorted(sig.outputs)
        updates = list(variant.update_ops) if with_updates else []
        specs = [tf.TensorSpec(_shape(sig.inputs[k].shape), tf.as_dtype(sig.inputs[k].dtype), name=k)
                 for k in input_keys]

        def body(*args):
            inputs = {sig.inputs[k].tensor_name: arg for k, arg in zip(input_keys, args)}
            inputs.update(self._asset_inputs(variant))
            fetched = graph_import.import_fetches(
                variant.meta_graph.graph_def, [sig.outputs[k].tensor_name for k in output_keys] + updates,
                inputs, self.variables)
            outputs, update_ops = fetched[:len(output_keys)], fetched[len(output_keys):]
            if update_ops:
                deps = [u if isinstance(u, tf.Operation) else u.op for u in update_ops]
                with tf.control_dependencies(deps):
                    outputs = [tf.identity(o) for o in outputs]
            return dict(zip(output_keys, outputs))

        fn = tf.compat.v1.wrap_function(body, specs)
        return _KeywordFunction(fn, input_keys, f"signature {sig.name!r} of variant {tag_label(tags)}")

    def regularization_losses(self, tags=None) -> list:
        """One zero-argument concrete function per entry of the variant's regularization_losses collection."""
        import tensorflow as tf

        tags = frozenset(tags or ())
        key = ("regularization", tags)
        if key not in self._cache:
            variant = self.module.variant(tags)
            fns = []
            for loss_name in variant.regularization_losses:
                def body(loss_name=loss_name):
                    return graph_import.import_fetches(variant.meta_graph.graph_def, [loss_name],
                                                       self._asset_inputs(variant), self.variables)[0]
                fns.append(tf.compat.v1.wrap_function(body, []))
            self._cache[key] = fns
        return self._cache[key]


def _shape(shape):
    return None if shape is None else list(shape)


class _KeywordFunction:
    """Calls a wrapped function with the signature's inputs given by key, checking them first."""

    def __init__(self, fn, input_keys, description):
        self.fn = fn
        self.input_keys = input_keys
        self.description = description

    def __call__(self, **inputs):
        missing = sorted(set(self.input_keys) - set(inputs))
        extra = sorted(set(inputs) - set(self.input_keys))
        if missing or extra:
            from legacy.errors import InvalidInputError

            raise InvalidInputError(f"{self.description} takes inputs {self.input_keys}, got {sorted(inputs)}")
        return self.fn(*[inputs[k] for k in self.input_keys])
