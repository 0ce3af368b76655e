"""A TF2 Reusable SavedModel presented as a TF1 Hub module, so that `hub.Module(path)` works on it too.

The genuine library refused TF2 SavedModels (`NotFoundError: tfhub_module.pb`). Here one becomes a module with

- signature `default`: the `__call__` function; input `images` (a float32 [batch, height, width, channels] input;
  any other input is named `default`), output `default` (or the keys of the dict `__call__` returns);
- when the model carries the bridge metadata (`assets.extra/tf_hub_bridge.json`, as `bridge convert` writes it
  for a TF1 module): every TF1 signature it lists, each a function of the same name on the model returning all
  its outputs, and the expected image size as the `image_module_info` attachment, so
  `hub.get_expected_image_size` answers as it did for the TF1 module;
- graph variants: `set()` runs `training=False`, and `{"train"}` (`training=True`) exists when `__call__` was
  traced with `training=True` and, for a converted TF1 module, the module had that variant;
- a SavedModel with serving signatures only (Keras 3's `model.export`): `serving_default` as signature `default`
  of the inference variant, over the variables it reads (served as TF1 graph variants only).

Whenever the model can be written as TF1 graph variants (`legacy.engine.from_saved_model`: one float32 image input, only
variables captured), the spec is a `NativeModuleSpec` over those variants, built in memory when the spec is loaded,
with the weights read from the SavedModel's own checkpoint. `hub.Module` then behaves exactly as over the TF1 module
that `bridge convert` writes: the batch-norm assignments of the `{"train"}` variant are UPDATE_OPS (added only
when trainable=True), regularization losses go into REGULARIZATION_LOSSES, variables keep their TF2 names and
trainable flags, in graph mode as in eager mode (where a trainable module applies its updates on each call).

Other models (e.g. capturing a lookup table, or taking a non-image input) fall back to the model's own functions:
each `hub.Module` loads its own copy with `tf.saved_model.load`:

- eager mode: the model's `tf.Variable`s, and calls that return tensors;
- graph mode: TensorFlow's own loading into a TF1 graph. The variables are created under the module's scope
  (`module/conv1/weights`) with initializers that restore the SavedModel's values, so
  `global_variables_initializer()` loads the weights; each signature call is a function call op in the graph,
  which `tf.gradients` differentiates. The functions run as traced, which makes them exact. A TF2 model applies
  its batch-norm updates inside its training-mode call, so in this fallback they run whenever a `{"train"}` output
  is computed (also with trainable=False), and UPDATE_OPS stays empty.

Either way, `Module.export(path, session)` writes a copy of the SavedModel holding the module's current weights.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil

import tensorflow as tf

from legacy.engine.from_saved_model import check_reusable_attributes, meta_graphs_from_saved_model
from legacy.format.atomic import atomic_directory
from legacy.engine.native_log import start_devices
from legacy.errors import (ConversionError, DestinationExistsError, ModuleFormatError, NotAModuleError,
                           UnknownSignatureError)
from legacy.format.metadata import METADATA_PATH, read_metadata
from legacy.hub.native_module import NativeModuleSpec
from legacy.format.reader import (DEFAULT_SIGNATURE, IMAGE_INPUT_KEY, IMAGE_MODULE_INFO_KEY,
                           VARIABLES_DIRNAME, VARIABLES_PREFIX, StoredModule, open_checkpoint, read_saved_model_proto,
                           read_variant, tag_label, untrusted)
from legacy.format.conventions import (FINGERPRINT_FILENAME, OBJECT_GRAPH_KEY, SERVING_DEFAULT, TRAIN_TAGS,
                                       VARIABLE_VALUE, holds_saved_model, unique_variable_names)
from legacy.hub.spec import ModuleSpec, ParsedTensorInfo, signature_name
from legacy.format.writer import image_module_info, write_checkpoint

_CALL = "__call__"
_log = logging.getLogger(__name__)


def load_saved_model_spec(path: str):
    """The module spec of a TF2 SavedModel: its TF1 graph variants when it has them, else its own functions."""
    saved = SavedModelSpec.load(path)  # validates the SavedModel and names the variables as variable_map keys
    try:
        return GraphVariantsSpec.build(saved)
    except ConversionError as e:
        if saved.serving_only:  # nothing to fall back on: its signature is no attribute function to call
            reason = str(e).removeprefix(f"{path}: ")
            raise ModuleFormatError(f"{path} has serving signatures only and cannot be written as TF1 graph "
                                    f"variants ({reason}); load it with tf.saved_model.load and its .signatures"
                                    ) from None
        several = [e for e in saved._endpoints.values() if e.input_spec is None]
        if several:  # the fallback serves one input per signature
            raise ModuleFormatError(f"{path}: function {several[0].attribute} takes several tensors, and the model "
                                    f"cannot be written as TF1 graph variants ({e}); load it with "
                                    "tf.saved_model.load") from None
        _log.warning("%s is served through its own functions, not as TF1 graph variants (%s): its batch-norm "
                     "updates run inside its training-mode call and UPDATE_OPS stays empty", path, e)
        saved.fallback_reason = str(e)
        return saved


class GraphVariantsSpec(NativeModuleSpec):
    """A TF2 SavedModel as the TF1 graph variants `legacy.engine.from_saved_model` builds (weights from its checkpoint)."""

    def __init__(self, stored: StoredModule, checkpoint_keys: dict, asset_sources: dict, saved: "SavedModelSpec"):
        super().__init__(stored, stored.variables_prefix if checkpoint_keys else None, asset_sources, saved.path,
                         checkpoint_keys=checkpoint_keys)
        self.saved = saved

    @classmethod
    def build(cls, saved: "SavedModelSpec") -> "GraphVariantsSpec":
        """Raises ConversionError when the model cannot be expressed as TF1 graph variants."""
        meta_graphs, _, assets = meta_graphs_from_saved_model(saved.path)
        variants = {}
        for meta_graph in meta_graphs:
            tags = frozenset(meta_graph.meta_info_def.tags)
            variants[tags] = read_variant(saved.path, tags, meta_graph)
        stored = StoredModule(path=saved.path, variants=variants)
        names = [info.name for info in stored.variables()]
        if sorted(names) != sorted(saved.variable_names):
            raise ConversionError(f"the graph variants name the variables {sorted(names)}, the object graph "
                                  f"{sorted(saved.variable_names)}")
        keys = dict(zip(saved.variable_names, saved.variable_keys))
        if keys:  # repeated TF2 names are told apart by order: the checkpoint shapes confirm the pairing
            shapes = open_checkpoint(stored.variables_prefix, saved.path).get_variable_to_shape_map()
            for info in stored.variables():
                if list(shapes.get(keys[info.name], [])) != list(info.shape):
                    raise ConversionError(f"variable {info.name!r} of shape {list(info.shape)} does not match "
                                          f"checkpoint key {keys[info.name]!r}")
        return cls(stored, keys, assets, saved)

    def __repr__(self) -> str:
        return f"<hub.ModuleSpec {self.path} (TF2 SavedModel)>"

    @property
    def path(self) -> str:
        return self.saved.path

    def _export_from_checkpoint(self, path, checkpoint_path, name_transform_fn):
        self.saved._export_from_checkpoint(path, checkpoint_path, name_transform_fn)

    def write(self, path: str, values: dict) -> None:
        """Copy the SavedModel to `path` with these variable values (variable_map name -> array)."""
        self.saved.write(path, values)


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """A function of the loaded model that serves one signature."""

    attribute: str  # its name on the loaded object
    input_key: str
    input_spec: tf.TensorSpec | None  # None: it takes several tensors (served by graph variants only)
    outputs: dict  # output key -> tf.TensorSpec
    bare: bool  # returns a tensor, presented as the output `default`
    trainings: frozenset  # the values of `training` it was traced for; empty: it takes no `training`


class SavedModelSpec(ModuleSpec):
    """The signatures, variants and attachments of a TF2 SavedModel, read from its protos."""

    def __init__(self, path: str, endpoints: dict, has_train: bool, image_size, variable_names: list,
                 variable_keys: list):
        self.path = path
        self._endpoints = endpoints  # signature name -> Endpoint
        self._has_train = has_train
        self._image_size = image_size
        self.variable_names = variable_names  # names of obj.variables, in order (the variable_map keys)
        self.variable_keys = variable_keys  # their checkpoint keys, in the same order
        self.fallback_reason = None  # why the model is not served as TF1 graph variants, when it is not
        self.serving_only = False  # served from its serving_default signature (no __call__): graph variants only

    @classmethod
    def load(cls, path: str) -> "SavedModelSpec":
        from tensorflow.python.saved_model import nested_structure_coder

        saved_model = read_saved_model_proto(path)
        graph = saved_model.meta_graphs[0].object_graph_def
        if not graph.nodes:
            raise NotAModuleError(f"{path} is a TF1 SavedModel (no object graph), not a TF1 Hub module or TF2 "
                                  "Reusable SavedModel; load it with tf.compat.v1.saved_model.load")
        children = {child.local_name: child.node_id for child in graph.nodes[0].children}
        _check_node_ids(path, graph, children.values())
        functions = {name: node_id for name, node_id in children.items()
                     if graph.nodes[node_id].WhichOneof("kind") == "function"}
        if _CALL not in functions:
            return cls._load_serving(path, graph, children, nested_structure_coder)

        def endpoint(attribute: str) -> Endpoint:
            # The specs decode in TensorFlow's own code (found by fuzzing: an element dropped from one made it
            # raise ValueError "not enough values to unpack").
            with untrusted(path, "the SavedModel's object graph"):
                return _read_endpoint(path, attribute, graph, functions[attribute], nested_structure_coder)

        endpoints = {DEFAULT_SIGNATURE: endpoint(_CALL)}
        has_train = True in endpoints[DEFAULT_SIGNATURE].trainings
        metadata = read_metadata(path)
        image_size = None
        if metadata is not None:
            if metadata.variants is not None:  # converted from TF1: the variants the module had
                has_train = has_train and sorted(TRAIN_TAGS) in metadata.variants
            image_size = tuple(metadata.image_size) if metadata.image_size else None
            for name in metadata.signatures:
                if name not in functions:
                    raise ModuleFormatError(f"{path}: {METADATA_PATH} lists signature {name!r}, but the model has "
                                            "no function of that name; convert the model again")
                endpoints[name] = endpoint(name)
        names, keys = _variables(path, graph, children)
        return cls(path, endpoints, has_train, image_size, names, keys)

    @classmethod
    def _load_serving(cls, path: str, graph, children: dict, coder) -> "SavedModelSpec":
        """A SavedModel with serving signatures only (Keras 3's `model.export`, `tf.saved_model.save` of a Keras 3
        model): its `serving_default` as the `default` signature of an inference-only module, over the variables
        that signature reads (as `bridge convert` writes it; served as TF1 graph variants only)."""
        concrete = None
        if "signatures" in children:
            for child in graph.nodes[children["signatures"]].children:
                node = graph.nodes[child.node_id]
                if child.local_name == SERVING_DEFAULT and node.WhichOneof("kind") == "bare_concrete_function":
                    concrete = graph.concrete_functions.get(node.bare_concrete_function.concrete_function_name)
        if concrete is None:
            raise NotAModuleError(f"{path} is a TF2 SavedModel with neither a __call__ function nor a "
                                  f"{SERVING_DEFAULT!r} signature, so hub.Module has nothing to apply; re-export it "
                                  "with a tf.function __call__(images, training=False), or load it with "
                                  "tf.saved_model.load")
        with untrusted(path, "the SavedModel's object graph"):
            _, inputs = coder.decode_proto(concrete.canonicalized_input_signature)
            outputs = coder.decode_proto(concrete.output_signature)
        if len(inputs) != 1 or not isinstance(outputs, dict):
            raise NotAModuleError(f"{path}: its {SERVING_DEFAULT!r} signature takes {len(inputs)} inputs, but "
                                  "hub.Module serves one image input; load it with tf.saved_model.load")
        (input_spec,) = inputs.values()
        if len(outputs) == 1:
            outputs = {DEFAULT_SIGNATURE: next(iter(outputs.values()))}
        endpoint = Endpoint(attribute=SERVING_DEFAULT, input_key=IMAGE_INPUT_KEY, input_spec=input_spec,
                            outputs=dict(outputs), bare=False, trainings=frozenset())
        _check_node_ids(path, graph, concrete.bound_inputs)
        bound = {i for i in concrete.bound_inputs if graph.nodes[i].WhichOneof("kind") == "variable"}
        # The order `bridge convert` names them in: the model's `variables` list first, then the rest.
        listed = _listed_variable_ids(graph, children)
        ids = [i for i in dict.fromkeys(listed) if i in bound] + sorted(bound - set(listed))
        names, keys = _variable_entries(path, graph, ids)
        metadata = read_metadata(path)
        image_size = tuple(metadata.image_size) if metadata is not None and metadata.image_size else None
        spec = cls(path, {DEFAULT_SIGNATURE: endpoint}, False, image_size, names, keys)
        spec.serving_only = True
        return spec

    def __repr__(self) -> str:
        return f"<hub.ModuleSpec {self.path} (TF2 SavedModel)>"

    # -- the ModuleSpec interface ----------------------------------------------------------------------------

    def get_tags(self) -> list:
        return [set(), set(TRAIN_TAGS)] if self._has_train else [set()]

    def get_signature_names(self, tags=None) -> list:
        training = self.check_tags(tags) == TRAIN_TAGS
        # The train variant serves the functions traced with training=True, and those without a `training`.
        return sorted(name for name, e in self._endpoints.items()
                      if not training or not e.trainings or True in e.trainings)

    def endpoint(self, signature: str | None, tags) -> Endpoint:
        name = signature_name(signature)
        if name not in self.get_signature_names(tags):
            raise UnknownSignatureError(
                f"Signature {name!r} is missing from graph variant {tag_label(tags or ())} of the module; "
                f"available: {', '.join(self.get_signature_names(tags))}")
        return self._endpoints[name]

    def get_input_info_dict(self, signature=None, tags=None) -> dict:
        e = self.endpoint(signature, tags)
        return {e.input_key: ParsedTensorInfo(tf.TensorSpec(e.input_spec.shape, e.input_spec.dtype))}

    def get_output_info_dict(self, signature=None, tags=None) -> dict:
        return {key: ParsedTensorInfo(tf.TensorSpec(s.shape, s.dtype))
                for key, s in self.endpoint(signature, tags).outputs.items()}

    def _get_attached_bytes(self, key, tags):
        if key == IMAGE_MODULE_INFO_KEY and self._image_size:
            return image_module_info(*self._image_size).SerializeToString()
        return None

    def _create_impl(self, name, trainable, tags, graph_mode):
        return LoadedModel(self, name, trainable, tags, graph_mode)

    def _export_from_checkpoint(self, path, checkpoint_path, name_transform_fn):
        raise ModuleFormatError("ModuleSpec.export(checkpoint_path=...) writes TF1 Hub modules, but this spec is a "
                                "TF2 SavedModel; instantiate it with hub.Module and use Module.export")

    # -- writing ----------------------------------------------------------------------------------------------

    def write(self, path: str, values: dict) -> None:
        """Copy the SavedModel to `path` with these variable values (variable_map name -> array)."""
        path = os.fspath(path)
        if holds_saved_model(path):
            raise DestinationExistsError(f"{path} already holds a SavedModel; export to a new or empty directory")
        empty_dir = os.path.isdir(path) and not os.listdir(path)
        reader = open_checkpoint(os.path.join(self.path, VARIABLES_PREFIX), self.path)
        tensors = {key: reader.get_tensor(key) for key in reader.get_variable_to_dtype_map()}
        for name, key in zip(self.variable_names, self.variable_keys):
            tensors[key] = values[name]
        with atomic_directory(path, force=empty_dir) as tmp:
            for entry in os.listdir(self.path):
                src = os.path.join(self.path, entry)
                if entry in (VARIABLES_DIRNAME, FINGERPRINT_FILENAME):  # new weights: the old fingerprint is stale
                    continue
                if os.path.isdir(src):
                    shutil.copytree(src, os.path.join(tmp, entry))
                else:
                    shutil.copyfile(src, os.path.join(tmp, entry))
            os.makedirs(os.path.join(tmp, VARIABLES_DIRNAME))
            write_checkpoint(os.path.join(tmp, VARIABLES_PREFIX), tensors)


def _read_endpoint(path: str, attribute: str, graph, node_id: int, coder) -> Endpoint:
    """The input, outputs and `training` values of one saved function, from its traced concrete functions."""
    input_spec, outputs, bare, trainings, other_arity = None, None, False, set(), None
    for concrete_name in graph.nodes[node_id].function.concrete_functions:
        concrete = graph.concrete_functions[concrete_name]
        args, kwargs = coder.decode_proto(concrete.canonicalized_input_signature)
        tensors = [a for a in tf.nest.flatten((args, kwargs)) if isinstance(a, tf.TensorSpec)]
        if len(tensors) != 1:
            # A trace with hyperparameter tensors besides the images (`batch_norm_momentum=...` of a model
            # converted from a *_with_bn_hparams module): the image-only traces serve the module signature.
            other_arity = len(tensors)
            continue
        flags = [a for a in list(args[1:]) + list(kwargs.values()) if isinstance(a, bool)]
        trainings.update(flags[:1])
        if input_spec is None or flags[:1] == [False]:
            input_spec = tensors[0]
            structured = coder.decode_proto(concrete.output_signature)
            bare = isinstance(structured, tf.TensorSpec)
            outputs = {DEFAULT_SIGNATURE: structured} if bare else structured
            if not isinstance(outputs, dict) or not all(isinstance(v, tf.TensorSpec) for v in outputs.values()):
                raise ModuleFormatError(f"{path}: function {attribute} returns {type(structured).__name__}, but a "
                                        "module signature returns a tensor or a dict of tensors")
    if input_spec is None and other_arity is not None:
        # Several named tensors (token ids, masks, ...): served by the TF1 graph variants only (see
        # load_saved_model_spec); the endpoint records that it exists.
        return Endpoint(attribute=attribute, input_key="", input_spec=None, outputs={}, bare=False,
                        trainings=frozenset(trainings))
    if input_spec is None:
        raise ModuleFormatError(f"{path}: function {attribute} was saved without a traced signature; save it "
                                "after calling it (or get_concrete_function) with an image batch spec")
    is_image = input_spec.shape.rank == 4 and input_spec.dtype.is_floating
    return Endpoint(attribute=attribute, input_key=IMAGE_INPUT_KEY if is_image else DEFAULT_SIGNATURE,
                    input_spec=input_spec, outputs=dict(outputs), bare=bare, trainings=frozenset(trainings))


def _variables(path: str, graph, children: dict) -> tuple:
    """Names (unique, for variable_map) and checkpoint keys of the root's `variables`, in their saved order."""
    return _variable_entries(path, graph, _listed_variable_ids(graph, children))


def _listed_variable_ids(graph, children: dict) -> list:
    """Object graph nodes of the root's `variables` list, in its order (none without the list)."""
    if "variables" not in children:
        return []
    return [child.node_id for child in graph.nodes[children["variables"]].children]


def _check_node_ids(path: str, graph, ids) -> None:
    """Refuse references to objects the object graph does not hold (found by fuzzing: a root child's node id made
    out of range raised IndexError)."""
    for node_id in ids:
        if not 0 <= node_id < len(graph.nodes):
            raise ModuleFormatError(f"{path}: the SavedModel's object graph refers to object {node_id}, but it holds "
                                    f"{len(graph.nodes)}; the SavedModel is damaged: re-download or re-export it")


def _variable_entries(path: str, graph, ids: list) -> tuple:
    """Names (unique, for variable_map) and checkpoint keys of the variables at object graph nodes `ids`."""
    from tensorflow.core.protobuf import trackable_object_graph_pb2

    if not ids:
        return [], []
    _check_node_ids(path, graph, ids)
    names = unique_variable_names(graph.nodes[node_id].variable.name for node_id in ids)
    reader = open_checkpoint(os.path.join(path, VARIABLES_PREFIX), path)
    with untrusted(path, "the checkpoint's object graph"):
        object_graph = trackable_object_graph_pb2.TrackableObjectGraph.FromString(
            reader.get_tensor(OBJECT_GRAPH_KEY))
    keys = []
    for node_id, name in zip(ids, names):
        if node_id >= len(object_graph.nodes):
            raise ModuleFormatError(f"{path}: the checkpoint's object graph has no entry for variable {name!r}; "
                                    "the SavedModel is damaged: save it again")
        found = [a.checkpoint_key for a in object_graph.nodes[node_id].attributes if a.name == VARIABLE_VALUE]
        if not found:
            raise ModuleFormatError(f"{path}: the checkpoint holds no value for variable {name!r}; the SavedModel "
                                    "is incomplete: save it again")
        keys.append(found[0])
    return names, keys


class LoadedModel:
    """One `hub.Module`'s copy of the SavedModel, loaded into the current TF1 graph or eagerly."""

    def __init__(self, spec: SavedModelSpec, name: str, trainable: bool, tags: frozenset, graph_mode: bool):
        self._spec = spec
        self._tags = tags
        self._training = tags == TRAIN_TAGS
        self._graph_mode = graph_mode
        self._name = name.rstrip("/").split("/")[-1]
        start_devices()  # the first device use logs cuInit's notice on a machine without a GPU: filtered
        if graph_mode:
            # Outside the caller's control dependencies, under the module's scope (`name` ends with "/").
            with tf.control_dependencies(None), tf.compat.v1.name_scope(name), untrusted(spec.path, "the SavedModel"):
                self._obj = tf.saved_model.load(spec.path)
        else:
            with tf.init_scope(), untrusted(spec.path, "the SavedModel"):
                self._obj = tf.saved_model.load(spec.path)
        check_reusable_attributes(self._obj, spec.path)
        variables = list(getattr(self._obj, "variables", []))
        if len(variables) != len(spec.variable_names):
            raise ModuleFormatError(f"{spec.path}: the model has {len(variables)} variables but its object graph "
                                    f"lists {len(spec.variable_names)}; save it again")
        self.variable_map = dict(zip(spec.variable_names, variables))
        trainable_ids = {id(v) for v in getattr(self._obj, "trainable_variables", [])} if trainable else set()
        loss_fns = list(getattr(self._obj, "regularization_losses", [])) if trainable else []
        if graph_mode:
            self.regularization_losses = self._register_in_graph(name, variables, trainable_ids, loss_fns)
        else:
            self.regularization_losses = loss_fns

    def _register_in_graph(self, scope: str, variables: list, trainable_ids: set, loss_fns: list) -> list:
        """Fill the TF1 collections as for a TF1 module: global variables always, the rest when trainable."""
        keys = tf.compat.v1.GraphKeys
        known = {id(v) for v in tf.compat.v1.get_collection(keys.GLOBAL_VARIABLES)}
        trainable_known = {id(v) for v in tf.compat.v1.get_collection(keys.TRAINABLE_VARIABLES)}
        for var in variables:
            if id(var) not in known:
                tf.compat.v1.add_to_collection(keys.GLOBAL_VARIABLES, var)
            if id(var) in trainable_ids and id(var) not in trainable_known:
                tf.compat.v1.add_to_collection(keys.TRAINABLE_VARIABLES, var)
        losses = []
        with tf.control_dependencies(None), tf.compat.v1.name_scope(scope):
            for fn in loss_fns:
                loss = fn()
                tf.compat.v1.add_to_collection(keys.REGULARIZATION_LOSSES, loss)
                losses.append(loss)
        return losses

    def apply(self, signature: str, inputs: dict) -> dict:
        endpoint = self._spec.endpoint(signature, self._tags)
        fn = getattr(self._obj, endpoint.attribute)
        images = inputs[endpoint.input_key]
        if self._graph_mode:
            with tf.compat.v1.name_scope(f"{self._name}_apply_{signature.replace(':', '_')}"):
                result = self._call(fn, endpoint, images)
        else:
            result = self._call(fn, endpoint, images)
        return {DEFAULT_SIGNATURE: result} if endpoint.bare else dict(result)

    def _call(self, fn, endpoint: Endpoint, images):
        if endpoint.trainings:
            return fn(images, training=self._training)
        return fn(images)

    def export(self, path: str, session) -> None:
        if self._graph_mode:
            values = session.run(self.variable_map) if self.variable_map else {}
        else:
            values = {name: var.numpy() for name, var in self.variable_map.items()}
        self._spec.write(path, values)
