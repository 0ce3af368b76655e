"""A TF1 Hub format module as a `ModuleSpec`, instantiated into a TF1 graph or eagerly.

The spec is either read from disk (`NativeModuleSpec.load`, weights in the module's checkpoint) or built in memory
by `create_module_spec` (weights from the variables' own initializers, as the genuine library did).

Graph mode (a `tf.compat.v1.Graph`, as `hub.Module` always worked): the module's variables become resource
variables under the module's scope, initialized by `global_variables_initializer()` from the checkpoint
(`tf.compat.v1.train.init_from_checkpoint` turns their initializers into restore ops: no weights are embedded in
the graph). Each application imports what the signature's outputs need (`graph_import.import_fetches`) onto those
variables, under `<name>_apply_<signature>`. Collections are filled as the genuine library did: TRAINABLE_VARIABLES
and REGULARIZATION_LOSSES when a trainable module is constructed, UPDATE_OPS each time a trainable module is
applied, nothing of the three when `trainable=False`.

Eager mode (which the genuine library never supported): `tf.Variable`s holding the weights and one concrete
function per (variant, signature) over them (`functions.ModuleFunctions`). A trainable module applied in a variant
that has update ops runs them once per call (as Keras batch normalization does with `training=True`), because
eager code has no UPDATE_OPS collection to run them from.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os

import tensorflow as tf

from legacy.engine import composites, graph_import
from legacy.format.graph_defs import op_name
from legacy.errors import BridgeError, CheckpointMismatchError, DestinationExistsError, ModuleFormatError
from legacy.engine.functions import ModuleFunctions, load_variables
from legacy.format.conventions import is_tf1_hub_module
from legacy.format.reader import VARIABLE_OPS, StoredModule, open_checkpoint, read_module, untrusted
from legacy.hub.spec import ModuleSpec, ParsedTensorInfo, signature_name
from legacy.format.writer import write_module
from legacy.hub.wrapped_graph import graph_variable, traced_by_wrap_function
from legacy.engine.native_log import start_devices


class NativeModuleSpec(ModuleSpec):
    """A TF1 Hub format module: graph variants with signatures, plus where its weights and assets come from."""

    def __init__(self, stored: StoredModule, checkpoint_prefix: str | None, asset_sources: dict,
                 description: str, checkpoint_keys: dict | None = None, tag_order: list | None = None):
        """checkpoint_prefix: the module's variables checkpoint, or None to use the variables' initializers.
        asset_sources: asset file name (as in the graphs' AssetFileDefs) -> path of the file to use.
        checkpoint_keys: variable name -> its key in the checkpoint, when the keys are not the names (the
        checkpoint of a TF2 SavedModel); None: the names are the keys, as in a TF1 Hub module.
        tag_order: the variants in the order `get_tags` lists them and `write` writes them (the order of
        create_module_spec's tags_and_args, as in the legacy library); None: the stored order."""
        self.stored = stored
        self.checkpoint_prefix = checkpoint_prefix
        self.checkpoint_keys = dict(checkpoint_keys) if checkpoint_keys is not None else None
        self.asset_sources = dict(asset_sources)
        self.description = description
        self._tag_order = [frozenset(t) for t in tag_order] if tag_order is not None else None

    @classmethod
    def load(cls, path: str) -> "NativeModuleSpec":
        stored = read_module(path)
        assets_dir = os.path.abspath(stored.assets_dir)
        return cls(stored, stored.variables_prefix if stored.variables() else None,
                   {name: os.path.join(assets_dir, name) for name in stored.asset_files()}, path,
                   tag_order=list(stored.variants))  # the file's order, as the legacy library listed them

    def __repr__(self) -> str:
        return f"<hub.ModuleSpec {self.description}>"

    # -- the ModuleSpec interface ----------------------------------------------------------------------------

    def get_tags(self) -> list:
        return [set(tags) for tags in self._tag_order or self.stored.tags]

    def get_signature_names(self, tags=None) -> list:
        return sorted(self.stored.variant(tags).signatures)

    def get_input_info_dict(self, signature=None, tags=None) -> dict:
        sig = self.stored.variant(tags).signature(signature_name(signature))
        return {key: ParsedTensorInfo(composites.type_spec(info)) for key, info in sig.inputs.items()}

    def get_output_info_dict(self, signature=None, tags=None) -> dict:
        sig = self.stored.variant(tags).signature(signature_name(signature))
        return {key: ParsedTensorInfo(composites.type_spec(info)) for key, info in sig.outputs.items()}

    def _get_attached_bytes(self, key, tags):
        return self.stored.variant(tags).attachments.get(key)

    def _create_impl(self, name, trainable, tags, graph_mode):
        if graph_mode:
            return GraphModuleImpl(self, name, trainable, tags)
        return EagerModuleImpl(self, name, trainable, tags)

    def _export_from_checkpoint(self, path, checkpoint_path, name_transform_fn):
        values = checkpoint_values(self.stored.variables(), checkpoint_path, name_transform_fn)
        self.write(path, values)  # only once every variable was found as it should be: nothing half-written

    # -- shared by the instantiations ------------------------------------------------------------------------

    def write(self, path: str, values: dict) -> None:
        """Write the module to `path` with these variable values (checkpoint name -> array)."""
        path = os.fspath(path)
        if is_tf1_hub_module(path):
            raise DestinationExistsError(f"{path} already holds a module; export to a new or empty directory")
        # The legacy exporter wrote into an existing directory; replacing an empty one is the safe equivalent.
        empty_dir = os.path.isdir(path) and not os.listdir(path)
        meta_graphs = [self.stored.variants[frozenset(tags)].meta_graph for tags in self.get_tags()]
        # The variants the spec has, as the legacy exporter wrote them: also none untagged (a SavedModel of {serve}).
        write_module(path, meta_graphs, variables=values or None, assets=self.asset_sources, force=empty_dir,
                     require_inference=False)

    def model_variable_names(self, tags) -> set:
        from tensorflow.core.framework import variable_pb2

        meta_graph = self.stored.variant(tags).meta_graph
        if "model_variables" not in meta_graph.collection_def:
            return set()
        return {op_name(variable_pb2.VariableDef.FromString(blob).variable_name)
                for blob in meta_graph.collection_def["model_variables"].bytes_list.value}

    def initial_value_names(self, tags) -> dict:
        """Variable name -> the tensor holding its initial value in the module graph (for specs without weights)."""
        from tensorflow.core.framework import variable_pb2

        meta_graph = self.stored.variant(tags).meta_graph
        nodes = {node.name: node for node in meta_graph.graph_def.node}
        result = {}
        blobs = meta_graph.collection_def["variables"].bytes_list.value if "variables" in meta_graph.collection_def \
            else []
        for blob in blobs:
            var_def = variable_pb2.VariableDef.FromString(blob)
            name = op_name(var_def.variable_name)
            if var_def.initial_value_name:
                result[name] = var_def.initial_value_name
            elif var_def.initializer_name in nodes and len(nodes[var_def.initializer_name].input) > 1:
                result[name] = nodes[var_def.initializer_name].input[1]  # the value its Assign op writes
            else:
                raise ModuleFormatError(f"variable {name!r} has no initializer in the module graph; give the "
                                        "module weights (export it with a checkpoint)")
        for info in self.stored.variant(tags).variables:
            if info.name not in result:
                raise ModuleFormatError(f"variable {info.name!r} is not in the variables collection, so its "
                                        "initializer is unknown; give the module weights (export it with a checkpoint)")
        return result

    def asset_inputs(self, tags, make_tensor) -> dict:
        """Asset path tensor name in the graph -> `make_tensor(path)` of the file to use."""
        inputs = {}
        for tensor_name, filename in self.stored.variant(tags).asset_files.items():
            if filename not in self.asset_sources:
                raise ModuleFormatError(f"{self.description}: asset file {filename!r} is missing from assets/; "
                                        "the module is incomplete: re-download or re-export it")
            inputs[tensor_name] = make_tensor(self.asset_sources[filename])
        return inputs


def checkpoint_values(infos, checkpoint_path: str, name_transform_fn) -> dict:
    """Module variable name -> its value in a training checkpoint, under `name_transform_fn(name)`.

    Checked as the legacy library's export did before writing anything: a name the checkpoint lacks or a shape it
    holds differently is a `CheckpointMismatchError` (a ValueError; "is not found in" and "doesn't match with shape
    of" are the legacy library's words, which legacy code and tests match on), another dtype an
    `InvalidArgumentError`, as its restore op raised.
    """
    reader = tf.train.load_checkpoint(checkpoint_path)
    shapes = reader.get_variable_to_shape_map()
    dtypes = reader.get_variable_to_dtype_map()
    values = {}
    for var in sorted(infos, key=lambda info: info.checkpoint_key):  # the first name missing, as before
        if var.checkpoint_key in values:
            continue  # another part of a partitioned variable: the checkpoint holds the whole one
        if var.is_part:
            var = dataclasses.replace(var, name=var.full_name, shape=var.full_shape, full_name=None,
                                      full_shape=None, offset=None)
        key = name_transform_fn(var.name)
        if key not in shapes:
            held = ", ".join(f"{k} {v}" for k, v in sorted(shapes.items())[:8])
            raise CheckpointMismatchError(
                f"Tensor {key} is not found in checkpoint {checkpoint_path} (module variable {var.name!r}), which "
                f"holds {held}{' ...' if len(shapes) > 8 else ''}; pass a name_transform_fn that maps module "
                "names to these names")
        if list(shapes[key]) != list(var.shape):
            raise CheckpointMismatchError(
                f"Shape of module variable {var.name!r} ({tuple(var.shape)}) doesn't match with shape of tensor "
                f"{key} ({shapes[key]}) in checkpoint {checkpoint_path}; export the checkpoint of a graph built "
                "like the module_fn, or fix name_transform_fn")
        if dtypes[key] != tf.as_dtype(var.dtype):
            raise CheckpointDtypeError(
                f"tensor_name = {key}; expected dtype {tf.as_dtype(var.dtype).name} does not equal original dtype "
                f"{dtypes[key].name} in checkpoint {checkpoint_path} (module variable {var.name!r}); export the "
                "checkpoint of a graph built like the module_fn, or fix name_transform_fn")
        values[var.name] = reader.get_tensor(key)
    return values


class CheckpointDtypeError(BridgeError, tf.errors.InvalidArgumentError):
    """A checkpoint value of another dtype than the module variable: an InvalidArgumentError, as the legacy
    library's restore op raised it."""

    def __init__(self, message: str):
        tf.errors.InvalidArgumentError.__init__(self, None, None, message)


def _safe_scope(signature: str) -> str:
    return signature.replace(":", "_")


class GraphModuleImpl:
    """The module's state (variables, lookup tables, asset paths, regularization losses) in the current TF1 graph."""

    def __init__(self, spec: NativeModuleSpec, scope: str, trainable: bool, tags: frozenset):
        self._spec = spec
        self._tags = tags
        self._variant = spec.stored.variant(tags)
        self._scope = scope  # absolute, with a trailing "/"
        self._name = scope.rstrip("/").split("/")[-1]
        self._trainable = trainable
        # Outside any control-flow context or control dependencies of the caller, as the genuine library did.
        with tf.control_dependencies(None), tf.compat.v1.name_scope(scope):
            self._asset_inputs, self._tables = self._create_assets_and_tables()
            self._variables = self._create_variables()
            self.variable_map = group_partitioned(self._variables, self._variant.variables)
            self.regularization_losses = self._add_regularization_losses() if trainable else []

    def _create_assets_and_tables(self) -> tuple:
        """The asset path constants and lookup tables, under the module's scope with their names in the module.

        As the genuine library did: tables are state created once per module, and their initializers (which read
        the vocabulary files) go to TABLE_INITIALIZERS, so `tf.compat.v1.tables_initializer()` and a
        `MonitoredSession` fill them.
        """
        paths = self._spec.asset_inputs(self._tags, lambda path: path)
        graph_def = graph_import.with_constant_values(self._variant.meta_graph.graph_def, paths)
        self._asset_names = sorted(paths)
        self._graph_def = graph_def  # the module graph with its asset paths: what each application imports
        tables = graph_import.state_node_names(graph_def)
        initializers = list(self._variant.table_initializers)
        asset_names = sorted(paths)
        if not asset_names and not tables:
            return {}, {}
        fetched = graph_import.import_fetches(graph_def, asset_names + [t + ":0" for t in tables] + initializers,
                                              {}, {}, name=self._scope, colocate=True,
                                              shared_name_prefix=self._scope)
        assets = dict(zip(asset_names, fetched[:len(asset_names)]))
        for tensor in assets.values():
            tf.compat.v1.add_to_collection(tf.compat.v1.GraphKeys.ASSET_FILEPATHS, tensor)
        for op in fetched[len(asset_names) + len(tables):]:
            tf.compat.v1.add_to_collection(tf.compat.v1.GraphKeys.TABLE_INITIALIZERS, op)
        return assets, dict(zip(tables, fetched[len(asset_names):len(asset_names) + len(tables)]))

    def _create_variables(self) -> dict:
        """One variable per variable of the module (per part of a partitioned one), of the same kind.

        A module exported with reference variables (`VariableV2`) gets reference variables, as with the genuine
        library; a variable colocated with another in the module is colocated with it here.
        """
        model_variables = self._spec.model_variable_names(self._tags)
        initial_values = None if self._spec.checkpoint_prefix else self._spec.initial_value_names(self._tags)
        graph_def = self._variant.meta_graph.graph_def
        nodes = {node.name: node for node in graph_def.node}
        colocated = {info.name: _colocation_target(nodes[info.name], nodes) for info in self._variant.variables}
        # Variables colocated with another one are created after it.
        order = sorted(self._variant.variables, key=lambda info: colocated[info.name] is not None)
        variables = {}
        traced = traced_by_wrap_function(tf.compat.v1.get_default_graph())
        for info in order:
            if initial_values is None:
                # Replaced by a restore op just below; a zeros fill is tiny in the graph, whatever the shape.
                def initial_value(info=info):
                    return tf.zeros(info.shape, info.dtype)
            else:
                def initial_value(info=info):
                    return graph_import.import_fetches(graph_def, [initial_values[info.name]], self._asset_inputs,
                                                       variables, name="import", states=self._tables)[0]
            collections = [tf.compat.v1.GraphKeys.GLOBAL_VARIABLES]
            if info.name in model_variables:
                collections.append(tf.compat.v1.GraphKeys.MODEL_VARIABLES)
            target = colocated[info.name]
            with tf.compat.v1.colocate_with(variables[target]) if target in variables else contextlib.nullcontext():
                if traced:
                    if self._trainable and info.trainable:
                        collections.append(tf.compat.v1.GraphKeys.TRAINABLE_VARIABLES)
                    var = graph_variable(initial_value, info.name, info.dtype, info.shape, info.trainable,
                                         collections, use_resource=not info.is_reference)
                else:
                    var = tf.compat.v1.Variable(initial_value, name=info.name, dtype=info.dtype, shape=info.shape,
                                                trainable=self._trainable and info.trainable, collections=collections,
                                                use_resource=not info.is_reference)
            if var.op.name != self._scope + info.name:
                raise RuntimeError(f"variable {self._scope + info.name!r} already exists in the graph; "
                                   f"instantiate the module under another name")
            if info.is_part:
                var._set_save_slice_info(tf.compat.v1.Variable.SaveSliceInfo(  # pylint: disable=protected-access
                    self._scope + info.full_name, list(info.full_shape), list(info.offset), list(info.shape)))
            variables[info.name] = var
        variables = {info.name: variables[info.name] for info in self._variant.variables}
        if variables and self._spec.checkpoint_prefix:
            keys = self._spec.checkpoint_keys or {}
            grouped = group_partitioned(variables, self._variant.variables)
            tf.compat.v1.train.init_from_checkpoint(self._spec.checkpoint_prefix,
                                                    {keys.get(name, name): var for name, var in grouped.items()})
        return variables

    def _add_regularization_losses(self) -> list:
        names = self._variant.regularization_losses
        if not names:
            return []
        losses = graph_import.import_fetches(self._variant.meta_graph.graph_def, names, self._asset_inputs,
                                             self._variables, name=self._scope, states=self._tables)
        for loss in losses:
            tf.compat.v1.add_to_collection(tf.compat.v1.GraphKeys.REGULARIZATION_LOSSES, loss)
        return losses

    def apply(self, signature: str, inputs: dict) -> dict:
        sig = self._variant.runnable_signature(signature)
        feeds = {}
        for key, value in inputs.items():
            feeds.update(zip(sig.inputs[key].component_names(), composites.flatten(sig.inputs[key], value)))
        fetches = sorted({name for info in sig.outputs.values() for name in info.component_names()
                          if name not in feeds})  # an output that is an input is returned as given
        # Each application has its own asset path constants, in ASSET_FILEPATHS as with the legacy library (which
        # imported the whole graph per application): a SavedModel exported from the graph copies the files.
        assets = [name for name in self._asset_names if name not in fetches and name not in feeds]
        updates = list(self._variant.update_ops) if self._trainable else []
        tensors = dict(feeds)
        if fetches or updates or assets:
            with tf.compat.v1.name_scope(f"{self._name}_apply_{_safe_scope(signature)}") as scope:
                fetched = graph_import.import_fetches(
                    self._graph_def, fetches + assets + updates, feeds, self._variables, name=scope,
                    states=self._tables, colocate=True, collections=self._variant.meta_graph.collection_def)
            tensors.update(zip(fetches + assets, fetched))
            for name in self._asset_names:
                tf.compat.v1.add_to_collection(tf.compat.v1.GraphKeys.ASSET_FILEPATHS, tensors[name])
            for update in fetched[len(fetches) + len(assets):]:
                tf.compat.v1.add_to_collection(tf.compat.v1.GraphKeys.UPDATE_OPS, update)
        return {key: composites.pack(info, [tensors[name] for name in info.component_names()])
                for key, info in sig.outputs.items()}

    def export(self, path: str, session) -> None:
        values = session.run(self._variables) if self._variables else {}
        self._spec.write(path, join_partitioned(values, self._variant.variables))


def _colocation_target(node, nodes: dict) -> str | None:
    """The other variable a variable node is colocated with in the module graph, if any."""
    if "_class" not in node.attr:
        return None
    for value in node.attr["_class"].list.s:
        target = value.decode()[len("loc:@"):] if value.startswith(b"loc:@") else None
        if target and target != node.name and target in nodes and nodes[target].op in VARIABLE_OPS:
            return target
    return None


def group_partitioned(variables: dict, infos) -> dict:
    """Variable name -> variable, with the parts of a partitioned variable as one entry: its name -> the list of
    parts in order (what `variable_map` returned in the genuine library)."""
    result = {}
    for info in sorted(infos, key=lambda i: (i.checkpoint_key, i.offset or ())):
        if info.name not in variables:
            continue
        if info.is_part:
            result.setdefault(info.full_name, []).append(variables[info.name])
        else:
            result[info.name] = variables[info.name]
    return result


def join_partitioned(values: dict, infos) -> dict:
    """Checkpoint key -> value: the parts of a partitioned variable joined into the whole one, as it is saved."""
    import numpy as np

    result = {}
    for info in infos:
        if info.name not in values:
            continue
        if not info.is_part:
            result[info.name] = values[info.name]
            continue
        whole = result.setdefault(info.full_name, np.zeros(info.full_shape, dtype=np.asarray(values[info.name]).dtype))
        whole[tuple(slice(o, o + n) for o, n in zip(info.offset, info.shape))] = values[info.name]
    return result


class EagerModuleImpl:
    """The module's weights as `tf.Variable`s and its signatures as concrete functions over them."""

    def __init__(self, spec: NativeModuleSpec, name: str, trainable: bool, tags: frozenset):
        self._spec = spec
        self._tags = tags
        variant = spec.stored.variant(tags)
        if spec.checkpoint_prefix and spec.checkpoint_keys is not None:
            self._variables = _keyed_variables(spec, name + "/", trainable)
        elif spec.checkpoint_prefix:
            # The variant's variables only, as tensorflow_hub 0.15 creates them: another variant may have more
            # (a zero-debiased moving average of a {"train"} variant), which the checkpoint may then lack.
            self._variables = load_variables(spec.stored, name_prefix=name + "/", trainable=trainable, tags=tags)
        else:
            self._variables = _initial_variables(spec, tags, name + "/", trainable)
        self._infos = spec.stored.variables()
        self.variable_map = group_partitioned(self._variables, self._infos)
        with tf.init_scope():
            asset_paths = {filename: tf.constant(path) for filename, path in spec.asset_sources.items()}
        self._fns = ModuleFunctions(spec.stored, self._variables, asset_paths, table_scope=name + "/")
        # No UPDATE_OPS collection in eager code: a trainable module applies the variant's updates on each call.
        self._with_updates = trainable and bool(variant.update_ops)
        self.regularization_losses = list(self._fns.regularization_losses(tags)) if trainable else []

    def apply(self, signature: str, inputs: dict) -> dict:
        return self._fns.signature(self._tags, signature, with_updates=self._with_updates)(**inputs)

    def export(self, path: str, session=None) -> None:
        self._spec.write(path, join_partitioned({name: var.numpy() for name, var in self._variables.items()},
                                                self._infos))


def _initial_variables(spec: NativeModuleSpec, tags, name_prefix: str, trainable: bool) -> dict:
    """tf.Variables holding what the module graph's own initializers compute (a spec built by a module_fn)."""
    variant = spec.stored.variant(tags)
    if not variant.variables:
        return {}
    start_devices()
    initial = spec.initial_value_names(tags)
    names = [info.name for info in variant.variables]

    def body():
        inputs = spec.asset_inputs(tags, tf.constant)
        return graph_import.import_fetches(variant.meta_graph.graph_def, [initial[n] for n in names], inputs, {})

    values = tf.compat.v1.wrap_function(body, [])()
    result = {}
    with tf.init_scope():
        for info, value in zip(variant.variables, values):
            result[info.name] = tf.Variable(value, trainable=trainable and info.trainable,
                                            name=name_prefix + info.name)
    return result


def _keyed_variables(spec: NativeModuleSpec, name_prefix: str, trainable: bool) -> dict:
    """tf.Variables holding the checkpoint's values, read under the spec's `checkpoint_keys`."""
    start_devices()
    reader = open_checkpoint(spec.checkpoint_prefix, spec.description)
    result = {}
    with tf.init_scope():
        for info in spec.stored.variables():
            with untrusted(spec.description, f"the checkpoint value of variable {info.name!r}"):
                value = reader.get_tensor(spec.checkpoint_keys[info.name])
            result[info.name] = tf.Variable(value, trainable=trainable and info.trainable,
                                            name=name_prefix + info.name)
    return result
