"""TF1 Hub graph variants (MetaGraphDefs) built from a TF2 Reusable SavedModel.

    meta_graphs, values, assets = meta_graphs_from_saved_model("mobilenet_tf2/", kind="feature_vector")

Each graph variant is a TF1 graph built around the TF2 model's traced function: `__call__(images, training=False)`
becomes the inference variant (tags `set()`), `__call__(images, training=True)` the `{"train"}` variant. The
function is flattened (`legacy.engine.inline`) so that its variable assignments (batch-norm moving statistics) become the
variant's UPDATE_OPS instead of running with every forward pass, as TF1 training loops expect. Variables keep their
TF2 names (so `variable_map` keys are meaningful) and their trainable flags; regularization losses go into the
REGULARIZATION_LOSSES collection; the expected image size, when known, is attached as `image_module_info`.

Both `bridge convert` (which writes the variants to disk) and the import shim (which serves them as an in-memory
module spec, `legacy.hub.tf2_module`) use this, so a TF2 model behaves the same either way.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Callable

import tensorflow as tf

from legacy.errors import ConversionError, ModuleFormatError, spell
from legacy.engine.function_import import (export_variant, import_function, import_regularization_losses,
                                           tensor_info)
from legacy.engine.graph_variables import create_graph_variables
from legacy.engine.native_log import start_devices
from legacy.engine.partitions import recorded_parts, whole_values
from legacy.format.metadata import read_metadata
from legacy.format.conventions import (DEFAULT_SIGNATURE, IMAGE_INPUT_KEY, INFERENCE_TAGS, KINDS, SERVING_DEFAULT,
                                       TRAIN_TAGS, expected_image_size, kind_fix, tag_label, unique_variable_names,
                                       variable_name)
from legacy.format.graph_defs import name_functions_by_content
from legacy.format.reader import first_line, is_corrupt_data, untrusted
from legacy.format.writer import attach_image_size



@dataclasses.dataclass
class _Plan:
    """What to build: the signatures (name -> restored function and whether it returns a dict), size, names."""

    signatures: dict
    image_size: tuple | None
    input_shape: list
    has_training: bool
    variable_names: dict  # id(variable) -> checkpoint name
    variables: list  # the variables the module holds, in order
    trainable_ids: set  # id() of those that are trainable
    metadata: object  # the model's BridgeMetadata, None when it has none
    partitions: dict = dataclasses.field(default_factory=dict)  # part name -> its slice (see legacy.engine.partitions)
    loss_graphs: dict = dataclasses.field(default_factory=dict)  # the losses' flattened graphs, shared by the variants


def meta_graphs_from_saved_model(path: str, kind: str | None = None, image_size: tuple | None = None, *,
                                 require_kind: bool = False, require_image_size: bool = False,
                                 size_from_input_shape: bool = False, progress: Callable[[str], None] = lambda message: None,
                                 obj=None, partitioned: bool = False) -> tuple:
    """(meta_graphs, variable_values, asset_files) of the TF2 Reusable SavedModel at `path`, as a TF1 Hub module.

    variable_values: checkpoint name -> the model's tf.Variable (read when the checkpoint is written, so that the
    weights are not copied while the module is built); asset_files: file name under assets/ -> its path.
    require_kind / require_image_size: raise unless the kind (or its signatures) and the image size are known,
    as a TF1 image module file must declare them; without, the variants carry only what the model states.
    size_from_input_shape: attach the static height and width of the input as the image size when neither the
    arguments nor the model's metadata give one (readers fall back to the static shape anyway).
    obj: the model as `load_reusable(path)` returned it, when the caller has it already.
    partitioned: the parts of the TF1 variables that were partitioned (recorded in the bridge metadata) become one
    partitioned variable again, and `variable_values` holds the whole one under its full name (what a module file
    needs; the shim, which reads the SavedModel's own checkpoint, keeps the parts apart).
    Raises ConversionError when the model cannot be expressed as TF1 graph variants.
    """
    with _eager():  # the restored functions and values are read eagerly, whatever the caller's mode
        if obj is None:
            progress(f"loading TF2 SavedModel {path}")
            obj = load_reusable(path)
        from legacy.engine.text_variants import is_text_model

        if is_text_model(obj):  # strings, sparse or ragged inputs and lookup tables: see text_variants
            return _text_meta_graphs(path, obj, progress, partitioned)
        plan = _plan(path, obj, kind, image_size, require_kind, require_image_size, size_from_input_shape)
        variables, trainable_ids = plan.variables, plan.trainable_ids
        values = {plan.variable_names[id(v)]: v for v in variables}
        if partitioned:
            plan.partitions = recorded_parts(plan.metadata, plan.variable_names.values())
            values = whole_values(values, plan.partitions)
        meta_graphs = []
        variants = [(INFERENCE_TAGS, False)] + ([(TRAIN_TAGS, True)] if plan.has_training else [])
        for tags, training in variants:
            progress(f"building graph variant {tag_label(tags)} (training={training})")
            try:
                meta_graphs.append(_build_variant(obj, plan, variables, trainable_ids, tags, training))
            except Exception as e:  # noqa: BLE001 - narrowed just below
                # TensorFlow's own checks on the graph built from the model's functions (found by fuzzing: a
                # node attr `_output_shapes` where export_meta_graph asserts there is none; a function node
                # input dropped, refused by import_graph_def with ValueError).
                if not (isinstance(e, AssertionError) or is_corrupt_data(e)):
                    raise
                said = first_line(e)
                said = said if said == type(e).__name__ else f"{type(e).__name__}: {said}"
                raise ModuleFormatError(f"{path}: the SavedModel's functions do not form a valid graph ({said}); "
                                        "re-export it with tf.saved_model.save") from None
    assets = {}
    assets_dir = os.path.join(path, "assets")
    if os.path.isdir(assets_dir):
        for root, _, files in os.walk(assets_dir):
            for f in files:
                assets[os.path.relpath(os.path.join(root, f), assets_dir)] = os.path.join(root, f)
    return meta_graphs, values, assets


def load_reusable(path: str):
    """The TF2 SavedModel at `path`, loaded eagerly (whatever the caller's mode); its damage reported as the
    project's error, and its Reusable SavedModel attributes checked (see `check_reusable_attributes`)."""
    start_devices()  # the first device use logs cuInit's notice on a machine without a GPU: filtered
    with _eager():
        try:
            with untrusted(path, "the SavedModel"):
                obj = tf.saved_model.load(path)
        except OSError as e:  # not damage: a file that cannot be read (permissions, a directory in its place)
            raise ModuleFormatError(f"{path}: the SavedModel cannot be read ({type(e).__name__}: {first_line(e)}); "
                                    "check the files' permissions, or copy the model again") from None
        check_reusable_attributes(obj, path)
    return obj


def _text_meta_graphs(path: str, obj, progress, partitioned: bool = False) -> tuple:
    """(meta_graphs, variable_values, asset_files) of a text model: its inference variant, and its {"train"} one
    when its functions were traced for training (see text_variants); `partitioned` as for
    `meta_graphs_from_saved_model`."""
    from legacy.engine.text_variants import has_training_traces, text_meta_graph

    variables = list(getattr(obj, "variables", []))
    names = dict(zip((id(v) for v in variables), unique_variable_names(variable_name(v) for v in variables)))
    trainable_ids = {id(v) for v in getattr(obj, "trainable_variables", [])}
    metadata = read_metadata(path)
    partitions = recorded_parts(metadata, names.values()) if partitioned else {}
    meta_graphs, loss_graphs = [], {}
    for training in (False, True) if has_training_traces(obj, metadata) else (False,):
        progress(f"building graph variant {tag_label(TRAIN_TAGS if training else INFERENCE_TAGS)} (text, "
                 f"training={training})")
        meta_graph, assets = text_meta_graph(path, obj, metadata, names, trainable_ids, training=training,
                                             partitions=partitions, loss_graphs=loss_graphs)
        meta_graphs.append(meta_graph)
    return meta_graphs, whole_values({names[id(v)]: v for v in variables}, partitions), assets


def check_reusable_attributes(obj, path: str) -> None:
    """Refuse a loaded SavedModel whose `variables`, `trainable_variables` or `regularization_losses` are not lists
    of variables and functions (found by fuzzing: a damaged object graph made `trainable_variables` some other
    object, and the code iterating it raised TypeError)."""
    import collections.abc

    for name, kind in (("variables", "variables"), ("trainable_variables", "variables"),
                       ("regularization_losses", "functions")):
        if not hasattr(obj, name):
            continue
        value = getattr(obj, name)
        fits = isinstance(value, collections.abc.Sequence) and not isinstance(value, (str, bytes)) and all(
            isinstance(item, tf.Variable) if kind == "variables" else callable(item) for item in value)
        if not fits:
            raise ModuleFormatError(f"{path}: its {name} is not a list of {kind} (its object graph is damaged); "
                                    "re-export it with tf.saved_model.save")


def _eager():
    """A context that executes eagerly, also inside a TF1 graph or after disable_eager_execution()."""
    from tensorflow.python.eager import context

    return context.eager_mode()


def _plan(src: str, obj, kind: str | None, image_size: tuple | None, require_kind: bool,
          require_image_size: bool, size_from_input_shape: bool) -> _Plan:
    call = getattr(obj, "__call__", None)
    serving = None
    if call is None or not getattr(call, "concrete_functions", None):
        serving = _serving_function(src, obj)
        call, input_spec, trainings, described = serving.function, serving.input_spec, {False}, SERVING_DEFAULT
    else:
        input_spec, trainings = _call_input(src, call)
        described = "__call__"
    if input_spec.shape.rank != 4 or input_spec.dtype != tf.float32:
        raise ConversionError(f"{src}: {described} takes {input_spec.dtype.name}{input_spec.shape}, but an image "
                              "module takes float32 [batch, height, width, 3]")
    metadata = read_metadata(src)
    shape = input_spec.shape.as_list()
    if image_size is None:  # the recorded size, else the input shape's when the caller asks for it
        image_size = expected_image_size(metadata.image_size if metadata is not None else None,
                                         lambda: shape if size_from_input_shape or require_image_size else None)
    if image_size is None and require_image_size:
        raise ConversionError(f"{src} takes images of any size and records no expected size; pass "
                              f"{spell('image_size=(height, width)', '--image-size HEIGHTxWIDTH')}")
    for dim, size in zip(shape[1:3], image_size or ()):
        if dim is not None and dim != size:
            fits = "x".join("?" if d is None else str(d) for d in shape[1:3])
            raise ConversionError(f"image size {image_size[0]}x{image_size[1]} does not fit the model's input shape "
                                  f"{shape} (images of {fits}); leave the image size out, or pass one that fits")

    signatures = {}
    if metadata is not None and metadata.signatures:  # converted from TF1: every TF1 signature comes back
        for name in metadata.signatures:
            signatures[name] = (_listed_function(src, obj, name, "lists signature"), True)
        primary = _listed_function(src, obj, metadata.primary_signature, "names primary signature")
        signatures[DEFAULT_SIGNATURE] = (primary, True)
        kind = kind or metadata.kind
        if kind in KINDS and KINDS[kind] not in signatures:
            signatures[KINDS[kind]] = (call, False)
    else:
        if kind is None and require_kind:
            raise ConversionError(f"{src} does not say whether it is a feature vector or a classifier; pass "
                                  f"{kind_fix()}")
        signatures[DEFAULT_SIGNATURE] = (call, False)
    if kind is not None and kind not in KINDS:
        raise ConversionError(f"unknown kind {kind!r}; use {' or '.join(KINDS)}")
    if kind is not None and KINDS[kind] not in signatures:
        signatures[KINDS[kind]] = (call, False)

    model_variables = list(getattr(obj, "variables", []))
    trainable_ids = {id(v) for v in getattr(obj, "trainable_variables", [])}
    if serving is not None:
        model_variables, trainable_ids = serving.variables, {id(v) for v in serving.variables if v.trainable}
    unique = unique_variable_names(variable_name(var) for var in model_variables)
    names = {id(var): name for var, name in zip(model_variables, unique)}
    # A model converted from a TF1 module without a train variant gets none back (its training=True trace only
    # repeats the inference graph).
    had_train_variant = metadata is None or metadata.variants is None or sorted(TRAIN_TAGS) in metadata.variants
    return _Plan(signatures=signatures, image_size=tuple(image_size) if image_size else None,
                 input_shape=shape, has_training=True in trainings and had_train_variant,
                 variable_names=names, variables=model_variables, trainable_ids=trainable_ids, metadata=metadata)


def _call_input(src: str, call) -> tuple:
    """(the image input's TensorSpec, the values of `training` traced) of a Reusable SavedModel's `__call__`."""
    trainings, batches = set(), set()
    input_spec = None
    for fn in call.concrete_functions:
        args, kwargs = fn.structured_input_signature
        # Keyword tensors besides images are hyperparameters (see `_extra_inputs`), not the image input.
        tensors = [a for a in tf.nest.flatten((args, kwargs.get(IMAGE_INPUT_KEY))) if isinstance(a, tf.TensorSpec)]
        if len(tensors) != 1:
            raise ConversionError(f"{src}: __call__ takes {len(tensors)} input tensors, but an image module takes "
                                  "exactly one (a float32 [batch, height, width, 3] batch)")
        input_spec = tensors[0]
        batches.add(input_spec.shape[0] if input_spec.shape.rank else None)
        flags = [a for a in list(args[1:]) + list(kwargs.values()) if isinstance(a, bool)]
        trainings.update(flags or [False])
    # A static batch dimension is kept (the placeholder becomes [N, h, w, 3]) only when every trace has that one
    # (a model exported with a fixed batch size, e.g. converted from such a TF1 module, runs that batch only).
    if input_spec is not None and input_spec.shape.rank and len(batches) > 1:
        input_spec = tf.TensorSpec([None] + input_spec.shape.as_list()[1:], input_spec.dtype, input_spec.name)
    return input_spec, trainings


@dataclasses.dataclass
class _Serving:
    """A model with serving signatures only, as `__call__(images)` of its inference variant."""

    function: object  # tf.function(images) -> {output key: tensor}, its one output as `default`
    input_spec: tf.TensorSpec
    variables: list  # the variables the signature reads, in the order the model lists them


def _serving_function(src: str, obj) -> _Serving:
    """For a SavedModel without `__call__` (Keras 3's `model.export`, `tf.saved_model.save` of a Keras 3 model, a
    TensorFlow Serving export): its `serving_default` signature as the inference variant's function. It has no
    training mode, so the module gets no {"train"} variant; its one output becomes `default`."""
    signature = getattr(obj, "signatures", {}).get(SERVING_DEFAULT)
    if signature is None:
        raise ConversionError(f"{src} has neither a __call__ function nor a {SERVING_DEFAULT!r} signature, so "
                              "there is nothing to convert; re-export it with a tf.function "
                              "__call__(images, training=False)")
    kwargs = signature.structured_input_signature[1]
    tensors = {k: spec for k, spec in kwargs.items() if isinstance(spec, tf.TensorSpec)}
    if len(tensors) != 1:
        raise ConversionError(f"{src}: its {SERVING_DEFAULT!r} signature takes {len(tensors)} inputs "
                              f"({', '.join(sorted(tensors))}), but an image module takes exactly one (a float32 "
                              "[batch, height, width, 3] batch)")
    (key, input_spec), = tensors.items()
    outputs = sorted(signature.structured_outputs)
    if len(outputs) != 1 and DEFAULT_SIGNATURE not in outputs:
        raise ConversionError(f"{src}: its {SERVING_DEFAULT!r} signature returns {len(outputs)} outputs "
                              f"({', '.join(outputs)}) and none is named {DEFAULT_SIGNATURE!r}, which an image "
                              "module's signature needs; re-export it with one output or one named 'default'")

    def call(images):
        result = signature(**{key: images})
        return {DEFAULT_SIGNATURE: result[outputs[0]]} if len(outputs) == 1 else dict(result)

    # The variables are those the signature reads: a Keras export also tracks objects it never runs (a dropout's
    # seed generator) and may list a variable under two objects.
    captured = {id(t) for t in signature.captured_inputs}
    listed = list(getattr(obj, "variables", None) or []) + [
        d for d in tf.train.TrackableView(obj).descendants() if isinstance(d, tf.Variable)]
    variables, seen = [], set()
    for var in listed:
        if id(var.handle) in captured and id(var.handle) not in seen:
            seen.add(id(var.handle))
            variables.append(var)
    return _Serving(tf.function(call, autograph=False), input_spec, variables)


def _listed_function(src: str, obj, name: str, listed: str):
    """The function the bridge metadata names; a name the model does not hold is damaged metadata."""
    fn = getattr(obj, name, None)
    if fn is None or not getattr(fn, "concrete_functions", None):
        raise ConversionError(f"{src}: its metadata {listed} {name!r}, but the model has no such function; "
                              "re-convert it from the TF1 module")
    return fn


def _concrete(fn, spec, training: bool, extra: dict | None = None):
    extra = extra or {}
    try:
        return fn.get_concrete_function(spec, training=training, **extra)
    except (ValueError, TypeError):
        if training:
            raise
        return fn.get_concrete_function(spec, **extra)


def _extra_inputs(fn) -> dict:
    """The keyword tensor inputs besides images that a TF1 signature made from `fn` takes: key -> (TensorSpec,
    default). A keyword argument with a number (or bool) as its default becomes a placeholder_with_default of that
    value (how TF1 modules expose hyperparameters such as batch_norm_momentum); one every traced call takes (no
    default) a plain placeholder (default None here); one whose default is None (the model's own choice, with
    a trace without it) is left out, as the TF1 signature cannot state that default."""
    concrete = list(getattr(fn, "concrete_functions", None) or [])
    argspec = getattr(getattr(fn, "function_spec", None), "fullargspec", None)
    defaults = dict(getattr(argspec, "kwonlydefaults", None) or {})
    specs, count = {}, {}
    for cf in concrete:
        for key, spec in cf.structured_input_signature[1].items():
            if isinstance(spec, tf.TensorSpec) and key != IMAGE_INPUT_KEY:
                specs[key] = spec
                count[key] = count.get(key, 0) + 1
    result = {}
    for key, spec in sorted(specs.items()):
        default = defaults.get(key)
        if count[key] == len(concrete):
            result[key] = (spec, None)
        elif isinstance(default, (bool, int, float)):
            result[key] = (spec, default)
    return result


def _updates_with_hyperparameters(obj, spec, images, hyperparameters: dict, handles: dict) -> list | None:
    """The update ops of `__call__(images, training=True, **hyperparameters)` fed from the graph's inputs.

    In a TF1 module the UPDATE_OPS read the same hyperparameter inputs as the signatures (feeding
    batch_norm_momentum to a *_with_bn_hparams signature changes how far the moving statistics move), while the
    primary signature's own updates use the default. So when `__call__` was traced with some of these keyword
    hyperparameters, its updates, fed from the placeholders, become the variant's UPDATE_OPS (one more import of
    the training function). None when it was not."""
    call = getattr(obj, "__call__", None)
    best = {}
    for cf in list(getattr(call, "concrete_functions", None) or []):
        args, kwargs = cf.structured_input_signature
        keys = {k: s for k, s in kwargs.items() if isinstance(s, tf.TensorSpec) and k != IMAGE_INPUT_KEY}
        trained = True in list(args[1:]) or kwargs.get("training") is True
        if trained and keys and set(keys) <= set(hyperparameters) and len(keys) > len(best):
            best = keys
    if not best:
        return None
    concrete = call.get_concrete_function(spec, training=True, **best)
    args = _flat_arguments(concrete, images, {k: hyperparameters[k] for k in best})
    return import_function(concrete, args, handles, "update_apply")[1]


def _extra_placeholder(key: str, spec, default):
    if default is None:
        return tf.compat.v1.placeholder(spec.dtype, spec.shape, name=key)
    return tf.compat.v1.placeholder_with_default(tf.constant(default, dtype=spec.dtype), spec.shape, name=key)


def _flat_arguments(concrete, images, extra: dict) -> list:
    """The tensors to feed a concrete function's arguments, in its flat input order (nest order of its
    structured input signature)."""
    args, kwargs = concrete.structured_input_signature
    feeds = {**extra, IMAGE_INPUT_KEY: images}
    structured = ([images if isinstance(a, tf.TensorSpec) else a for a in args],
                  {k: feeds[k] if isinstance(v, tf.TensorSpec) else v for k, v in kwargs.items()})
    return [t for t in tf.nest.flatten(structured) if isinstance(t, tf.Tensor)]


def _build_variant(obj, plan: _Plan, variables: list, trainable_ids: set, tags: frozenset, training: bool):
    graph = tf.Graph()
    with graph.as_default():
        images = tf.compat.v1.placeholder(tf.float32, plan.input_shape, name=IMAGE_INPUT_KEY)
        graph_vars = create_graph_variables(variables, plan.variable_names, trainable_ids, plan.partitions)
        handles = {id(v.handle): graph_vars[id(v)] for v in variables}
        spec = tf.TensorSpec(plan.input_shape, tf.float32, name=IMAGE_INPUT_KEY)
        primary_updates = None
        signature_defs = {}
        placeholders = {}  # (key, dtype, shape, default) -> the graph's input tensor, shared by the signatures
        imported = {}  # (concrete function, its arguments) -> (outputs, updates): aliases are imported once
        for name, (fn, _) in plan.signatures.items():
            extra = {}
            for key, (extra_spec, default) in _extra_inputs(fn).items():
                shape = tuple(extra_spec.shape.as_list()) if extra_spec.shape.rank is not None else None
                ident = (key, extra_spec.dtype, shape, default)
                if ident not in placeholders:
                    placeholders[ident] = _extra_placeholder(key, extra_spec, default)
                extra[key] = (extra_spec, placeholders[ident])
            concrete = _concrete(fn, spec, training, {k: s for k, (s, _) in extra.items()})
            args = _flat_arguments(concrete, images, {k: t for k, (_, t) in extra.items()})
            # Signatures served by one function (`default` and `image_classification` of a classifier converted
            # by the bridge) share its import: the graph holds the network once for them.
            key = (id(concrete), tuple(id(a) for a in args))
            if key not in imported:
                imported[key] = (concrete, import_function(concrete, args, handles, f"{name}_apply"))
            outputs, updates = imported[key][1]
            if primary_updates is None or name == DEFAULT_SIGNATURE:
                primary_updates = updates
            structured = tf.nest.pack_sequence_as(concrete.structured_outputs, outputs)
            if not isinstance(structured, dict):
                structured = {DEFAULT_SIGNATURE: structured}
            signature_defs[name] = tf.compat.v1.saved_model.build_signature_def(
                inputs={IMAGE_INPUT_KEY: tensor_info(images),
                        **{k: tensor_info(t) for k, (_, t) in extra.items()}},
                outputs={k: tensor_info(v) for k, v in structured.items()})
        hyperparameters = {key: tensor for (key, _, _, default), tensor in placeholders.items() if default is not None}
        if training and hyperparameters:
            primary_updates = _updates_with_hyperparameters(obj, spec, images, hyperparameters, handles) \
                or primary_updates
        for update in primary_updates or []:
            tf.compat.v1.add_to_collection(tf.compat.v1.GraphKeys.UPDATE_OPS, update)
        import_regularization_losses(obj, handles, plan.loss_graphs)
        meta_graph = export_variant(graph)
    name_functions_by_content(meta_graph.graph_def)  # not the TF2 model's names: both may run in one process
    meta_graph.meta_info_def.ClearField("tags")
    meta_graph.meta_info_def.tags.extend(sorted(tags))
    for name, sig in signature_defs.items():
        meta_graph.signature_def[name].CopyFrom(sig)
    if plan.image_size:
        attach_image_size(meta_graph, *plan.image_size)
    return meta_graph
