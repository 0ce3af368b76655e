"""TF2 concrete functions over a TF1 module's graph variants, all sharing one set of `tf.Variable`s.

    fns = ModuleFunctions(read_module(path))
    outputs = fns.signature(frozenset(), "default")(images=batch)      # {"default": <tf.Tensor ...>}
    outputs = fns.signature(frozenset({"train"}), "default", with_updates=True)(images=batch)

Each (variant, signature) is imported once into a `tf.compat.v1.wrap_function` graph (see `graph_import`), so
calling it is as fast as a concrete function, and it can be called from inside a `tf.function` that is saved.
"""

from __future__ import annotations

import os
from typing import Iterator, Mapping

from legacy.engine import composites, graph_import
from legacy.errors import ModuleFormatError
from legacy.format.conventions import INFERENCE_TAGS
from legacy.format.graph_defs import op_name
from legacy.format.reader import VARIABLE_OPS, StoredModule, VariableInfo, first_line, tag_label


_instances = 0  # module instances with tables so far: their tables' shared names stay apart


def load_variables(module: StoredModule, name_prefix: str = "", trainable: bool = True, tags=None) -> dict:
    """One `tf.Variable` per module variable (of graph variant `tags` only, when given), holding the checkpoint's
    value (`trainable` per the module).

    trainable=False makes every variable non-trainable (a `hub.Module(..., trainable=False)`), so that gradient
    tapes do not watch them.
    """
    import tensorflow as tf

    from legacy.engine.native_log import start_devices

    start_devices()
    infos = {var.name: var for var in module.variables()}
    result = {}
    for name, value in checkpoint_values(module, tags):
        with tf.init_scope():
            result[name] = tf.Variable(value, trainable=trainable and infos[name].trainable, name=name_prefix + name)
        del value  # one value at a time beside the variables: peak memory is the weights once, not twice
    return result


def checkpoint_values(module: StoredModule, tags=None) -> Iterator[tuple]:
    """(variable name, its value in the module's checkpoint) for every variable of the module's graphs, or of graph
    variant `tags` (a part of a partitioned variable under its own name, `.../part_0`, sliced from the whole
    variable the checkpoint holds). Every entry is checked before the first is read; values are read one at a
    time, as the caller asks for them, so that a caller copying them into variables never holds them all."""
    import tensorflow as tf

    variables = module.variables() if tags is None else module.variant(tags).variables
    if not variables:
        return iter(())
    try:
        reader = tf.train.load_checkpoint(module.variables_prefix)
    # A short index file raises IndexError; a damaged one can make the reader allocate by a size it read there
    # (found by fuzzing: std::bad_alloc, raised as MemoryError).
    except (tf.errors.OpError, ValueError, IndexError, MemoryError) as e:
        raise ModuleFormatError(f"{module.path}: the variables checkpoint cannot be read "
                                f"({_first_line(e)}); the module is incomplete: re-download or re-export it") from None
    shapes = reader.get_variable_to_shape_map()
    for var in variables:
        _check_entry(module, shapes, var)
    return ((var.name, _checkpoint_value(module, reader, var)) for var in variables)


def _check_entry(module: StoredModule, shapes: Mapping, var: VariableInfo) -> None:
    """Refuse a checkpoint without a value for `var`, or with one of another shape."""
    key = var.checkpoint_key  # a part of a partitioned variable is a slice of the whole one in the checkpoint
    if key not in shapes:
        users = [tags for tags, variant in sorted(module.variants.items(), key=lambda kv: sorted(kv[0]))
                 if any(v.name == var.name for v in variant.variables)]
        if INFERENCE_TAGS in module.variants and users and INFERENCE_TAGS not in users:
            only = " and ".join(tag_label(tags) for tags in users)
            raise ModuleFormatError(
                f"{module.path}: variable {key!r} of graph variant {only} has no value in the checkpoint (the module "
                "was exported from its inference variant, which lacks it; tensorflow_hub 0.15 cannot load that "
                "variant either): re-export the module with every variant's variables, or use its inference "
                "variant only (hub.Module without tags)")
        raise ModuleFormatError(f"{module.path}: the checkpoint has no value for variable {key!r}; the module "
                                "is incomplete: re-download or re-export it")
    expected = var.full_shape if var.is_part else var.shape
    if tuple(shapes[key]) != tuple(expected):
        raise ModuleFormatError(f"{module.path}: variable {key!r} has shape {list(expected)} in the graph but "
                                f"{shapes[key]} in the checkpoint; re-export the module")


def _checkpoint_value(module: StoredModule, reader, var: VariableInfo):
    import tensorflow as tf

    try:
        return var.slice_of(reader.get_tensor(var.checkpoint_key))
    except (tf.errors.OpError, IndexError, ValueError, MemoryError) as e:  # a short data file raises IndexError
        raise ModuleFormatError(f"{module.path}: reading variable {var.name!r} failed ({_first_line(e)}); the "
                                "checkpoint is corrupt: re-download or re-export the module") from None


def _first_line(e: Exception) -> str:
    text = getattr(e, "message", None) or str(e)
    return text.strip().splitlines()[0] if text.strip() else type(e).__name__


class ModuleFunctions:
    """Builds and caches the concrete functions of a module's signatures, regularization losses and updates."""

    def __init__(self, module: StoredModule, variables: Mapping | None = None,
                 asset_paths: Mapping | None = None, table_scope: str = ""):
        """variables: checkpoint name -> tf.Variable (loaded from the checkpoint when omitted).
        asset_paths: asset file name -> string tensor with its path (the files under assets/ when omitted).
        table_scope: a prefix for the shared names of the module's lookup tables (made unique per instance)."""
        import tensorflow as tf

        self.module = module
        self.variables = dict(variables) if variables is not None else load_variables(module)
        if asset_paths is None:
            asset_paths = {name: tf.constant(os.path.join(os.path.abspath(module.assets_dir), name))
                           for name in module.asset_files()}
        self.asset_paths = dict(asset_paths)
        self._table_scope = table_scope
        self._cache = {}

    def tables(self, tags) -> dict:
        """State node name -> handle of the lookup table created and filled for this module (once per variant).

        The tables are created by running the module's own table ops and initializers (which read the vocabulary
        assets) once, under shared names unique to this instance, so every signature function finds them filled.
        """
        import tensorflow as tf

        tags = frozenset(tags or ())
        key = ("tables", tags)
        if key not in self._cache:
            variant = self.module.variant(tags)
            graph_def = variant.meta_graph.graph_def
            names = graph_import.state_node_names(graph_def)
            handles = {}
            if names:
                global _instances
                _instances += 1
                prefix = f"{self._table_scope}{_instances}/"

                def body():
                    fetched = graph_import.import_fetches(
                        graph_def, [n + ":0" for n in names] + list(variant.table_initializers),
                        self._asset_inputs(variant), self.variables, shared_name_prefix=prefix)
                    inits = [op if isinstance(op, tf.Operation) else op.op for op in fetched[len(names):]]
                    with tf.control_dependencies(inits):
                        return [tf.identity(h) for h in fetched[:len(names)]]

                with tf.init_scope():
                    handles = dict(zip(names, tf.compat.v1.wrap_function(body, [])()))
            self._cache[key] = handles
        return self._cache[key]

    def _asset_inputs(self, variant) -> dict:
        inputs = {}
        for tensor_name, filename in variant.asset_files.items():
            if filename not in self.asset_paths:
                raise ModuleFormatError(f"{self.module.path}: asset file {filename!r} is missing from assets/; "
                                        "the module is incomplete: re-download or re-export it")
            inputs[tensor_name] = self.asset_paths[filename]
        return inputs

    def signature(self, tags, name: str | None = None, with_updates: bool = False, fed=None):
        """A concrete function taking the signature's inputs as keyword arguments, returning its outputs dict.

        with_updates: make every output depend on the variant's update ops (batch-norm moving statistics), so
        that calling the function applies them once, as running the TF1 UPDATE_OPS collection would.
        fed: the input keys the function takes (default: all); the others keep the value their
        placeholder_with_default gives in the graph (see `input_defaults`).
        """
        fed = None if fed is None else tuple(sorted(fed))
        key = ("signature", frozenset(tags or ()), name, with_updates, fed)
        if key not in self._cache:
            self._cache[key] = self._build_signature(frozenset(tags or ()), name, with_updates, fed)
        return self._cache[key]

    def _build_signature(self, tags, name, with_updates, fed=None):
        import tensorflow as tf

        variant = self.module.variant(tags)
        sig = variant.runnable_signature(name)
        input_keys = sorted(sig.inputs) if fed is None else list(fed)
        output_keys = sorted(sig.outputs)
        updates = list(variant.update_ops) if with_updates else []
        # Sparse and ragged tensors cross the function boundary as their component tensors.
        specs, input_names = [], []
        for k in input_keys:
            info = sig.inputs[k]
            for n, (spec, tensor_name) in enumerate(zip(composites.component_specs(info), info.component_names())):
                specs.append(tf.TensorSpec(spec.shape, spec.dtype, name=k if info.is_dense else f"{k}_{n}"))
                input_names.append(tensor_name)
        output_names = [n for k in output_keys for n in sig.outputs[k].component_names()]
        tables = self.tables(tags)

        def body(*args):
            inputs = dict(zip(input_names, args))
            inputs.update(self._asset_inputs(variant))
            return _import_outputs(variant, output_names, updates, inputs, self.variables, tables)

        fn = tf.compat.v1.wrap_function(body, specs)
        return _KeywordFunction(fn, input_keys, f"signature {sig.name!r} of variant {tag_label(tags)}",
                                [sig.inputs[k] for k in input_keys], {k: sig.outputs[k] for k in output_keys},
                                list(self.variables.values()), path=self.module.path)

    def outputs(self, tags, names, with_updates: bool = False) -> "VariantOutputs":
        """One function computing every output of signatures `names` of a variant, from one import of its graph.

        A converted model calls it from all its functions (`__call__`, each signature, both serving signatures), so
        the SavedModel holds each graph variant once instead of once per signature. Every input of the signatures
        is an argument: one a signature does not take is fed its default (see `input_defaults`), the value its
        placeholder_with_default would give. Signatures whose image inputs are different tensors, or that take
        sparse or ragged inputs, fall back to one function each (`signature`).
        """
        key = ("outputs", frozenset(tags or ()), tuple(sorted(names)), with_updates)
        if key not in self._cache:
            self._cache[key] = VariantOutputs(self, frozenset(tags or ()), sorted(names), with_updates)
        return self._cache[key]

    def regularization_losses(self, tags=None) -> list:
        """One zero-argument concrete function per entry of the variant's regularization_losses collection."""
        import tensorflow as tf

        tags = frozenset(tags or ())
        key = ("regularization", tags)
        if key not in self._cache:
            self._cache[key] = [tf.compat.v1.wrap_function(body, []) for body in self.regularization_loss_bodies(tags)]
        return self._cache[key]

    def regularization_loss_bodies(self, tags=None) -> list:
        """One zero-argument Python function per regularization loss, importing what it needs into the graph being
        built: for a caller that traces it itself (one `tf.function` per loss, not a function wrapping a function,
        so that a SavedModel holds one function per loss)."""
        tags = frozenset(tags or ())
        variant = self.module.variant(tags)
        if not variant.regularization_losses:
            return []
        # Pruned once to every loss (a few nodes per weight), so that each of the losses (54 in a ResNet) prunes
        # and imports from that instead of the whole graph: the same nodes, a hundredth of the walking.
        losses_graph = graph_import.prune(variant.meta_graph.graph_def, list(variant.regularization_losses))
        bodies = []
        for loss_name in variant.regularization_losses:
            def body(loss_name=loss_name):
                return graph_import.import_fetches(losses_graph, [loss_name], self._asset_inputs(variant),
                                                   self.variables, states=self.tables(tags))[0]
            bodies.append(body)
        return bodies


class VariantOutputs:
    """The outputs of several signatures of one variant, computed by one imported graph (`ModuleFunctions.outputs`).

        outputs = fns.outputs(frozenset(), ["default", "image_feature_vector"])
        outputs("image_feature_vector", images=batch)      # {"default": <tf.Tensor ...>}
    """

    def __init__(self, fns: ModuleFunctions, tags: frozenset, names: list, with_updates: bool):
        self._fns, self._tags, self._with_updates = fns, tags, with_updates
        variant = fns.module.variant(tags)
        self._path = fns.module.path
        self._signatures = {name: variant.runnable_signature(name) for name in names}
        # Signatures share an import when the same image tensor feeds them and their outputs reach the same
        # variables: a gradient tape then finds no gradient (None, as in TF1) for a variable the signature does not
        # use, where a shared import reaching more variables would give zeros.
        graph_def = variant.meta_graph.graph_def
        groups: dict = {}
        for name, sig in self._signatures.items():
            image = sig.inputs.get("images")
            dense = all(info.is_dense for info in sig.inputs.values())
            if image is None or not dense:
                key = ("alone", name)
            else:
                outputs = [c for info in sig.outputs.values() for c in info.component_names()]
                key = ("shared", image.tensor_name, _reachable_variables(graph_def, outputs))
            groups.setdefault(key, []).append(name)
        self._group_of = {}
        self._groups = []
        self._together: dict = {}  # image tensor -> the import computing all its signatures (`call_all`)
        for key, members in groups.items():
            index = len(self._groups)
            self._groups.append(_OutputsGroup(fns, tags, members, with_updates) if key[0] != "alone" else None)
            for name in members:
                self._group_of[name] = index

    def with_functions(self, transform) -> "VariantOutputs":
        """A copy in which the signatures fed by one image tensor share one import computing all their outputs,
        whose function is `transform(fn)` (a concrete function taking and returning the same flat tensors, e.g. a
        frozen copy), and which no longer tells gradient tapes it reads the variables. Signatures served alone
        (sparse or ragged inputs) keep their function."""
        import copy

        by_image: dict = {}
        for name, sig in self._signatures.items():
            if self._groups[self._group_of[name]] is not None:
                by_image.setdefault(sig.inputs["images"].tensor_name, []).append(name)
        result = copy.copy(self)
        result._groups, result._group_of, result._together = list(self._groups), dict(self._group_of), {}
        for members in by_image.values():
            group = _OutputsGroup(self._fns, self._tags, members, self._with_updates)
            result._groups.append(group.with_function(transform(group.function)))
            result._group_of.update({name: len(result._groups) - 1 for name in members})
        return result

    def functions(self) -> list:
        """The concrete functions computing the shared groups of signatures."""
        return [self._groups[i].function for i in sorted(set(self._group_of.values())) if self._groups[i] is not None]

    def __call__(self, name: str, /, **inputs) -> dict:
        """Signature `name`'s outputs for `inputs` (keys as the signature names them; any it does not take, or
        that are omitted, keep their defaults)."""
        group = self._groups[self._group_of[name]]
        if group is None:
            fed = tuple(sorted(inputs))
            return self._fns.signature(self._tags, name, with_updates=self._with_updates, fed=fed)(**inputs)
        return group(name, inputs)

    def call_all(self, **inputs) -> dict:
        """Every signature's outputs for `inputs` (keys as the signatures name them): signature -> outputs dict.

        For running, not saving: the signatures fed by one image tensor are computed by one more import of the
        variant holding all their outputs, so that each tensor is computed once (with updates: applied once).
        """
        by_image: dict = {}
        for name, sig in self._signatures.items():
            group = self._groups[self._group_of[name]]
            key = None if group is None else sig.inputs["images"].tensor_name
            by_image.setdefault(key, []).append(name)
        results = {}
        for image, members in by_image.items():
            if image is None:
                for name in members:
                    given = {k: v for k, v in inputs.items() if k in self._signatures[name].inputs}
                    results[name] = self(name, **given)
                continue
            if len(members) == 1:
                group = self._groups[self._group_of[members[0]]]
            else:
                group = self._together.get(image)
                if group is None:
                    group = self._together[image] = _OutputsGroup(self._fns, self._tags, members,
                                                                  self._with_updates)
            results.update(group.call_all(members, inputs))
        return results


class _OutputsGroup:
    """Signatures sharing their image input tensor: one wrapped function taking every input tensor of any of
    them, returning every output tensor of any of them."""

    def __init__(self, fns: ModuleFunctions, tags: frozenset, names: list, with_updates: bool):
        import tensorflow as tf

        variant = fns.module.variant(tags)
        self._path = fns.module.path
        self._signatures = {name: variant.runnable_signature(name) for name in names}
        inputs: dict = {}  # input tensor name -> TensorInfo
        outputs: dict = {}  # output component tensor name -> position
        self._defaults: dict = {}  # input tensor name -> the value fed when a call does not give it
        for name, sig in self._signatures.items():
            defaults = input_defaults(fns.module, name, tags)
            for key, info in sorted(sig.inputs.items()):
                inputs.setdefault(info.tensor_name, info)
                if key in defaults:
                    self._defaults.setdefault(info.tensor_name, defaults[key])
            for key, info in sorted(sig.outputs.items()):
                for component in info.component_names():
                    outputs.setdefault(component, len(outputs))
        self._input_names = sorted(inputs)
        self._input_infos = [inputs[n] for n in self._input_names]
        self._output_positions = outputs
        output_names = list(outputs)
        specs = [tf.TensorSpec(None if info.shape is None else list(info.shape), tf.as_dtype(info.dtype),
                               name=f"input_{k}") for k, info in enumerate(self._input_infos)]
        updates = list(variant.update_ops) if with_updates else []
        tables = fns.tables(tags)
        self._variables = list(fns.variables.values())

        def body(*args):
            feeds = dict(zip(self._input_names, args))
            feeds.update(fns._asset_inputs(variant))  # pylint: disable=protected-access
            return _import_outputs(variant, output_names, updates, feeds, fns.variables, tables)

        self._fn = tf.compat.v1.wrap_function(body, specs)

    @property
    def function(self):
        """The concrete function: every input tensor (sorted by name) in, every output component out."""
        return self._fn

    def with_function(self, fn) -> "_OutputsGroup":
        """A copy computing with `fn` instead (same arguments and results), reading no variables."""
        import copy

        result = copy.copy(self)
        result._fn, result._variables = fn, []
        return result

    def __call__(self, name: str, given: dict) -> dict:
        sig = self._signatures[name]
        unknown = sorted(set(given) - set(sig.inputs))
        missing = sorted(set(sig.inputs) - set(given) - {k for k, info in sig.inputs.items()
                                                         if info.tensor_name in self._defaults})
        if unknown or missing:
            from legacy.errors import InvalidInputError

            raise InvalidInputError(f"signature {name!r} takes inputs {sorted(sig.inputs)}, got {sorted(given)}")
        return self._outputs([name], {sig.inputs[k].tensor_name: v for k, v in given.items()})[name]

    def call_all(self, names: list, given: dict) -> dict:
        """Signatures `names`' outputs from one call; `given`: input key -> value, for the signatures taking it."""
        by_tensor = {}
        for name in names:
            sig = self._signatures[name]
            by_tensor.update({sig.inputs[k].tensor_name: v for k, v in given.items() if k in sig.inputs})
        return self._outputs(names, by_tensor)

    def _outputs(self, names: list, by_tensor: dict) -> dict:
        import numpy as np
        import tensorflow as tf
        from tensorflow.python.ops import resource_variable_ops

        args, absent = [], set()
        for tensor_name, info in zip(self._input_names, self._input_infos):
            value = by_tensor.get(tensor_name)
            if value is None and tensor_name not in self._defaults:
                # An input without a default (a plain placeholder) that this call does not give: only signatures
                # this call does not return take it (`__call__` checks), so a stand-in value feeds the one import
                # and the outputs computed from it are dropped below.
                absent.add(tensor_name)
                shape = [] if info.shape is None else [1 if d is None else d for d in info.shape]
                value = np.zeros(shape, tf.as_dtype(info.dtype).as_numpy_dtype)
            elif value is None:
                value = self._defaults[tensor_name]
            args.append(tf.cast(value, tf.as_dtype(info.dtype)) if isinstance(value, tf.Tensor)
                        else tf.constant(value, tf.as_dtype(info.dtype)))
        # As in _KeywordFunction: gradient tapes must know the variables are used.
        for var in self._variables:
            resource_variable_ops.variable_accessed(var)
        try:
            flat = list(self._fn(*args))
        except (ValueError, tf.errors.InvalidArgumentError) as e:
            # The inputs were checked against the signatures already: this is the graph contradicting itself (found
            # by fuzzing: a batch dimension of 2**40 in a recorded output shape, refused by TensorFlow's shape check
            # while the call is traced; a damaged constant, refused by a kernel while the call runs).
            raise ModuleFormatError(f"{self._path}: the module's graph cannot run ({_run_error(e)}); re-download or "
                                    "re-export the module") from None
        return {name: {key: composites.pack(info, [flat[self._output_positions[c]] for c in info.component_names()])
                       for key, info in self._signatures[name].outputs.items()} for name in names
                if not {i.tensor_name for i in self._signatures[name].inputs.values()} & absent}


def _run_error(e: Exception) -> str:
    """What a failed call says, without TensorFlow's framing ("Graph execution error:", "Detected at node ...")."""
    lines = [line.strip() for line in (getattr(e, "message", None) or str(e)).splitlines()]
    node = next((line[len("Detected at node "):].split()[0] for line in lines if line.startswith("Detected at node ")),
                None)
    text = next((line for line in lines if line and line != "Graph execution error:" and not line.startswith(
        ("Detected at node ", "<stack traces", "[[")) and not line.startswith("File ")), first_line(e))
    text = text if len(text) <= 200 else text[:197] + "..."
    return f"node {node}: {text}" if node else text


def _reachable_variables(graph_def, fetches) -> frozenset:
    """The variables the tensors `fetches` depend on."""
    pruned = graph_import.prune(graph_def, fetches)
    return frozenset(n.name for n in pruned.node if n.op in VARIABLE_OPS)


def input_defaults(module: StoredModule, name: str | None = None, tags=None) -> dict:
    """Input key -> numpy value, for the inputs of signature `name` fed by a `PlaceholderWithDefault` whose default
    is a constant (how published modules expose hyperparameters such as `batch_norm_momentum`)."""
    import tensorflow as tf

    variant = module.variant(tags)
    nodes = {n.name: n for n in variant.meta_graph.graph_def.node}
    result = {}
    for key, info in variant.signature(name).inputs.items():
        node = nodes.get(op_name(info.tensor_name))
        if node is None or node.op != "PlaceholderWithDefault" or not node.input:
            continue
        source = nodes.get(op_name(node.input[0]))
        while source is not None and source.op == "Identity" and source.input:
            source = nodes.get(op_name(source.input[0]))
        if source is not None and source.op == "Const":
            result[key] = tf.make_ndarray(source.attr["value"].tensor)
    return result


def _import_outputs(variant, output_names: list, updates: list, feeds: dict, variables: Mapping, tables) -> list:
    """Inside a function being traced: import what `output_names` need from the variant's graph (an output that is
    fed is returned as given), with every output depending on the `updates` ops, so that one call applies them."""
    import tensorflow as tf

    fetches = [n for n in output_names if n not in feeds]
    fetched = graph_import.import_fetches(variant.meta_graph.graph_def, fetches + updates, feeds, variables,
                                          states=tables, collections=variant.meta_graph.collection_def)
    tensors = dict(feeds)
    tensors.update(zip(fetches, fetched[:len(fetches)]))
    outputs = [tf.identity(tensors[n]) for n in output_names]
    update_ops = fetched[len(fetches):]
    if update_ops:
        deps = [u if isinstance(u, tf.Operation) else u.op for u in update_ops]
        with tf.control_dependencies(deps):
            outputs = [tf.identity(o) for o in outputs]
    return outputs


def _shape(shape):
    return None if shape is None else list(shape)


class _KeywordFunction:
    """Calls a wrapped function with the signature's inputs given by key, checking them first; sparse and ragged
    inputs and outputs are passed as their components and rebuilt."""

    def __init__(self, fn, input_keys, description, input_infos=None, output_infos=None, variables=(), path=""):
        self.fn = fn
        self._path = path
        self._variables = variables
        self.input_keys = input_keys
        self.description = description
        self._input_infos = input_infos
        self._output_infos = output_infos

    def __call__(self, **inputs):
        missing = sorted(set(self.input_keys) - set(inputs))
        extra = sorted(set(inputs) - set(self.input_keys))
        if missing or extra:
            from legacy.errors import InvalidInputError

            raise InvalidInputError(f"{self.description} takes inputs {self.input_keys}, got {sorted(inputs)}")
        from tensorflow.python.ops import resource_variable_ops

        # The function uses the variables through their captured handles; ops such as an embedding lookup
        # (ResourceGather) never read them whole, so tell the gradient tapes that they are used.
        for var in self._variables:
            resource_variable_ops.variable_accessed(var)
        args = []
        for key, info in zip(self.input_keys, self._input_infos):
            args.extend(composites.flatten(info, inputs[key]))
        import tensorflow as tf

        try:
            flat = list(self.fn(*args))
        except tf.errors.InvalidArgumentError as e:
            # The callers check the inputs against the signature first, so this is the graph contradicting itself
            # (found by fuzzing through the shim: a damaged constant refused by a kernel), as in _OutputsGroup.
            shapes = ", ".join(str(list(getattr(a, "shape", []))) for a in args)
            raise ModuleFormatError(f"{self._path}: {self.description} cannot run on inputs of shape {shapes} "
                                    f"({_run_error(e)}); if those shapes are right, the module is damaged: "
                                    "re-download or re-export it") from None
        outputs = {}
        for key, info in self._output_infos.items():
            count = len(info.component_names())
            outputs[key], flat = composites.pack(info, flat[:count]), flat[count:]
        return outputs
