"""The rest of the shim's TF1 API: inspection, legacy errors, install(), eval_function_for_module, export, and
TF2 SavedModels that carry no bridge metadata (made by tests/bridge/tf2_models.py)."""

from __future__ import annotations

import os
import shutil
import sys

import numpy as np
import pytest
import tensorflow as tf

from legacy import hub
from legacy.errors import (DestinationExistsError, NotAModuleError, NotAnImageModuleError, UnknownSignatureError,
                           UnknownVariantError)
from tests.corpus import MODULES, checkpoint, golden_arrays, golden_json, module_path
from tests.legacy.hub.shim_scripts.support import run_script
from tests.tolerances import GENUINE_OUTPUTS, GENUINE_TRAINING, assert_close

NAME = "convnet_bn"


def _images(name: str = NAME) -> np.ndarray:
    return golden_arrays(name)["inputs/images"]


# -- inspection ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", MODULES)
def test_spec_answers_as_the_genuine_library(name):
    golden = golden_json(name)
    spec = hub.load_module_spec(module_path(name))
    assert sorted(sorted(t) for t in spec.get_tags()) == golden["tags"]
    for tags in spec.get_tags():
        label = "train" if tags else "infer"
        assert spec.get_signature_names(tags) == golden["signatures"][label]
        for signature in spec.get_signature_names(tags):
            for got, expected in ((spec.get_input_info_dict(signature, tags), golden["inputs"][label][signature]),
                                  (spec.get_output_info_dict(signature, tags), golden["outputs"][label][signature])):
                assert {k: _info_json(v) for k, v in got.items()} == expected
    for lookup in ("expected_image_size", "num_image_channels"):
        if golden[lookup] is None:
            with pytest.raises(ValueError):
                getattr(hub, "get_" + lookup)(spec)
        else:
            assert getattr(hub, "get_" + lookup)(spec) == golden[lookup]
    info = spec.get_attached_message("image_module_info", hub.ImageModuleInfo)
    assert (None if info is None else {"height": info.default_image_size.height,
                                       "width": info.default_image_size.width}) == golden["image_module_info"]


def test_module_answers_for_its_own_variant():
    module = hub.Module(module_path(NAME), tags={"train"})
    assert module.get_tags() == {"train"}
    assert module.get_signature_names() == golden_json(NAME)["signatures"]["train"]
    assert hub.get_expected_image_size(module) == golden_json(NAME)["expected_image_size"]
    assert hub.get_num_image_channels(module, signature="image_feature_vector") == 3
    assert sorted(module.get_output_info_dict("image_feature_vector")) == ["conv1", "default"]
    assert module.get_attached_message("nothing_here", hub.ImageModuleInfo) is None
    with pytest.raises(KeyError, match="nothing_here"):
        module.get_attached_message("nothing_here", hub.ImageModuleInfo, required=True)


def _info_json(info) -> dict:
    shape = info.get_shape()
    return {"dtype": info.dtype.name, "shape": shape.as_list() if shape.rank is not None else None}


def test_eager_module_inside_a_tf_function():
    module = hub.Module(module_path(NAME))
    features = tf.function(lambda images: module(images))(tf.constant(_images()))
    np.testing.assert_array_equal(features.numpy(), module(_images()).numpy())


# -- legacy errors -------------------------------------------------------------------------------------------------


def test_unknown_signature_lists_the_available_ones():
    module = hub.Module(module_path(NAME))
    with pytest.raises(UnknownSignatureError, match="default, image_classification, image_feature_vector"):
        module(_images(), signature="image_features")
    assert issubclass(UnknownSignatureError, ValueError)


def test_unknown_tags_list_the_variants():
    with pytest.raises(UnknownVariantError, match=r"No such graph variant.*\{\}, \{train\}"):
        hub.Module(module_path(NAME), tags={"serve"})
    with pytest.raises(UnknownVariantError, match="No such graph variant"):
        hub.Module(module_path("classifier_assets"), tags={"train"})


def test_wrong_input_keys_say_what_is_missing_and_extra():
    module = hub.Module(module_path(NAME))
    with pytest.raises(TypeError, match=r"missing \['images'\], extra given \['pictures'\]"):
        module(dict(pictures=_images()))


def test_incompatible_shape_and_dtype_say_how_to_fix_them():
    module = hub.Module(module_path(NAME))
    with pytest.raises(TypeError, match=r"incompatible.*hub.get_expected_image_size"):
        module(np.zeros([2, 16, 16, 3], np.float32))
    with pytest.raises(TypeError, match=r"got uint8, expected float32.*convert_image_dtype"):
        module(np.zeros([2, 32, 32, 3], np.uint8))


def test_not_a_module_directory(tmp_path):
    with pytest.raises(NotAModuleError, match="no such file"):
        hub.load_module_spec(str(tmp_path / "missing"))
    with pytest.raises(NotAModuleError, match="neither a TF1 Hub module"):
        hub.load_module_spec(str(tmp_path))
    tf.saved_model.save(tf.Module(), str(tmp_path / "plain"))
    with pytest.raises(NotAModuleError, match="neither a __call__ function nor a 'serving_default' signature"):
        hub.load_module_spec(str(tmp_path / "plain"))


def test_graph_module_is_bound_to_its_graph():
    with tf.Graph().as_default():
        module = hub.Module(module_path(NAME))
    with tf.Graph().as_default():
        with pytest.raises(RuntimeError, match="graph it was instantiated"):
            module(tf.compat.v1.placeholder(tf.float32, [None, 32, 32, 3]))


def test_removed_names_explain_the_replacement():
    with pytest.raises(NotImplementedError, match="feature columns feed tf.estimator, which TensorFlow 2.16 removed"):
        hub.text_embedding_column("text", "some/module")
    with pytest.raises(NotImplementedError, match="Module.export"):
        hub.LatestModuleExporter("exporter", None)


# -- install() --------------------------------------------------------------------------------------------------


def test_install_adds_the_tf1_names_to_tensorflow_hub_and_nothing_else():
    import legacy
    import tensorflow_hub
    from legacy.hub import installer

    installer.uninstall()
    with pytest.raises(AttributeError):  # what legacy code hits on tensorflow_hub 0.16
        exec("from tensorflow_hub import *", {})
    original = {name: getattr(tensorflow_hub, name) for name in hub.PASSED_THROUGH}
    try:
        assert legacy.install() is tensorflow_hub
        legacy.install()  # idempotent
        namespace = {}
        exec("from tensorflow_hub import *", namespace)
        assert namespace["Module"] is hub.Module and namespace["load_module_spec"] is hub.load_module_spec
        for name, value in original.items():
            assert getattr(tensorflow_hub, name) is value and namespace[name] is value
            assert getattr(hub, name) is value  # legacy.hub passes the real ones through
        with pytest.raises(NotImplementedError, match="feature columns"):
            tensorflow_hub.image_embedding_column("images", module_path(NAME))
    finally:
        installer.uninstall()
    assert not hasattr(tensorflow_hub, "Module")


def test_install_without_an_importable_tensorflow_hub_says_what_to_install(monkeypatch):
    import legacy
    from legacy.hub.installer import HubImportError

    monkeypatch.setitem(sys.modules, "tensorflow_hub", None)  # import now fails, as without tf-keras
    with pytest.raises(HubImportError, match=r"tf-keras.*from legacy import hub"):
        legacy.install()


def test_one_line_install_form():
    proc = run_script("one_line_install.py")
    assert proc.stdout.split() == ["legacy.hub.module.Module", "legacy.hub.loading.load_module_spec", "OK"]


# -- eval_function_for_module, export -----------------------------------------------------------------------------


def test_eval_function_for_module_gives_the_genuine_outputs(genuine):
    expected = genuine[NAME].arrays
    with hub.eval_function_for_module(module_path(NAME)) as f:
        assert_close(f(_images()), expected["outputs/infer/default/default"], GENUINE_OUTPUTS, "default")
        outputs = f(_images(), signature="image_feature_vector", as_dict=True)
        assert sorted(outputs) == sorted(golden_json(NAME)["outputs"]["infer"]["image_feature_vector"])
        for key, value in outputs.items():
            assert_close(value, expected[f"outputs/infer/image_feature_vector/{key}"], GENUINE_OUTPUTS, key)


def test_spec_export_from_a_tf1_training_checkpoint(tmp_path):
    """The classic TF1 flow: train under a scope, save with a Saver, export with a name transform."""
    spec = hub.load_module_spec(module_path(NAME))
    with tf.Graph().as_default():
        module = hub.Module(spec, name="encoder")
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            session.run(module.variable_map["logits/biases"].assign_add(tf.ones([10])))
            prefix = tf.compat.v1.train.Saver().save(session, str(tmp_path / "ckpt" / "model"))
    spec.export(str(tmp_path / "exported"), checkpoint_path=prefix, name_transform_fn=lambda n: "encoder/" + n)
    exported = hub.Module(str(tmp_path / "exported"))
    initial = checkpoint(NAME)
    assert sorted(initial) == sorted(exported.variable_map)
    for key, value in initial.items():
        expected = value + 1 if key == "logits/biases" else value
        np.testing.assert_array_equal(exported.variable_map[key].numpy(), expected, err_msg=key)


def test_eager_export_writes_the_current_weights(tmp_path, genuine):
    module = hub.Module(module_path(NAME), trainable=True, tags={"train"})
    module(_images())  # a trainable call in the train variant applies the batch-norm updates
    current = {key: var.numpy() for key, var in module.variable_map.items()}
    path = str(tmp_path / "exported")
    module.export(path)
    with pytest.raises(DestinationExistsError, match="already holds a module"):
        module.export(path)
    reloaded = hub.Module(path)
    assert sorted(reloaded.variable_map) == sorted(current)
    for key, value in current.items():  # written and read back: the same bits
        np.testing.assert_array_equal(reloaded.variable_map[key].numpy(), value, err_msg=key)
    expected = genuine[NAME].group("updated")  # one application = one run of UPDATE_OPS
    assert sorted(expected) == sorted(current)
    for key, value in expected.items():
        assert_close(current[key], value, GENUINE_TRAINING, f"updated/{key}")
    with_assets = str(tmp_path / "with_assets")
    hub.Module(module_path("classifier_assets")).export(with_assets)
    assert os.listdir(os.path.join(with_assets, "assets")) == golden_json("classifier_assets")["assets"]


@pytest.mark.parametrize("mode", ["eager", "graph"])
def test_export_replaces_an_empty_directory_and_nothing_else(tmp_path, mode):
    """`Module.export` into an existing empty directory (e.g. made by a job runner) writes the module there."""
    target = tmp_path / "empty"
    target.mkdir()
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "notes.txt").write_text("mine")
    if mode == "eager":
        module = hub.Module(module_path(NAME))
        expected = {key: var.numpy() for key, var in module.variable_map.items()}
        module.export(str(target))
        with pytest.raises(DestinationExistsError):
            module.export(str(occupied))
    else:
        with tf.Graph().as_default():
            module = hub.Module(module_path(NAME))
            with tf.compat.v1.Session() as session:
                session.run(tf.compat.v1.global_variables_initializer())
                expected = session.run(module.variable_map)
                module.export(str(target), session)
                with pytest.raises(DestinationExistsError):
                    module.export(str(occupied), session)
    assert sorted(os.listdir(target)) == ["assets", "saved_model.pb", "tfhub_module.pb", "variables"]
    assert os.listdir(occupied) == ["notes.txt"] and (occupied / "notes.txt").read_text() == "mine"
    assert sorted(os.listdir(tmp_path)) == ["empty", "occupied"]  # no temporary leftovers
    reloaded = hub.Module(str(target))
    assert sorted(reloaded.variable_map) == sorted(expected)
    for key, value in expected.items():
        np.testing.assert_array_equal(reloaded.variable_map[key].numpy(), value, err_msg=key)


# -- TF2 SavedModels without bridge metadata ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def keras3_model(tf2_model) -> str:
    return tf2_model("keras3_classifier")


def test_tf2_saved_model_is_a_module_with_a_default_signature(keras3_model):
    spec = hub.load_module_spec(keras3_model)
    assert spec.get_tags() == [set(), {"train"}]
    assert spec.get_signature_names() == ["default"]
    assert {k: v.get_shape().as_list() for k, v in spec.get_input_info_dict().items()} == {"images": [None, 24, 24, 3]}
    assert {k: v.get_shape().as_list() for k, v in spec.get_output_info_dict().items()} == {"default": [None, 5]}
    assert hub.get_expected_image_size(spec) == [24, 24]  # from the static shape: no metadata
    assert spec.get_attached_message("image_module_info", hub.ImageModuleInfo) is None

    images = np.random.default_rng(0).uniform(size=[4, 24, 24, 3]).astype(np.float32)
    obj = tf.saved_model.load(keras3_model)
    module = hub.Module(spec, trainable=True)
    np.testing.assert_array_equal(module(images).numpy(), obj(images, training=False).numpy())
    assert len(module.regularization_losses) == len(obj.regularization_losses) == 2
    assert len(module.variable_map) == len(obj.variables)  # Keras 3 repeats names: kept apart
    assert len(module.trainable_variables) == len(obj.trainable_variables)
    training_logits = obj(images, training=True).numpy()
    with tf.Graph().as_default():
        placeholder = tf.compat.v1.placeholder(tf.float32, [None, 24, 24, 3])
        graph_module = hub.Module(spec, trainable=True, tags={"train"})
        logits = graph_module(placeholder)
        assert len(tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.REGULARIZATION_LOSSES)) == 2
        assert len(tf.compat.v1.trainable_variables()) == len(obj.trainable_variables)
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            np.testing.assert_array_equal(session.run(logits, {placeholder: images}), training_logits)


def test_tf2_module_export_keeps_a_saved_model_with_the_new_weights(keras3_model, tmp_path):
    module = hub.Module(keras3_model)
    for var in module.variables:
        var.assign(var * 0.5)
    module.export(str(tmp_path / "eager"))
    images = np.random.default_rng(1).uniform(size=[2, 24, 24, 3]).astype(np.float32)
    reloaded = tf.saved_model.load(str(tmp_path / "eager"))
    np.testing.assert_array_equal(reloaded(images, training=False).numpy(), module(images).numpy())
    with tf.Graph().as_default():
        graph_module = hub.Module(keras3_model)
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            session.run([v.assign(v * 0.5) for v in graph_module.variables])
            graph_module.export(str(tmp_path / "graph"), session)
    again = hub.Module(str(tmp_path / "graph"))
    for key, var in again.variable_map.items():
        np.testing.assert_array_equal(var.numpy(), module.variable_map[key].numpy(), err_msg=key)


def test_tf2_saved_model_of_any_image_size_has_no_expected_size(tf2_model):
    spec = hub.load_module_spec(tf2_model("dynamic_size_classifier"))
    with pytest.raises(NotAnImageModuleError, match="known height and width"):
        hub.get_expected_image_size(spec)
    assert hub.get_num_image_channels(spec) == 3


def test_a_tf2_spec_is_loaded_once_while_its_files_stay_the_same(tmp_path):
    """Building a TF2 model's graph variants takes seconds: the spec is kept for the next load of the same files,
    and loaded again once any file changes (the model written again) or for another path."""
    class Scale(tf.Module):
        def __init__(self):
            super().__init__()
            self.w = tf.Variable(2.0)

        @tf.function
        def __call__(self, images, training=False):
            return images * self.w

    model = Scale()
    model.__call__.get_concrete_function(tf.TensorSpec([None, 4, 4, 3]), training=False)
    path = str(tmp_path / "model")
    tf.saved_model.save(model, path)
    first = hub.load_module_spec(path)
    assert hub.load_module_spec(path) is first
    assert hub.load_module_spec(os.path.join(str(tmp_path), ".", "model")) is first  # the same real path
    model.w.assign(3.0)
    tf.saved_model.save(model, path)  # rewritten in place: new files
    second = hub.load_module_spec(path)
    assert second is not first
    images = np.ones([1, 4, 4, 3], np.float32)
    np.testing.assert_array_equal(hub.Module(second)(images).numpy(), 3.0 * images)
    shutil.copytree(path, str(tmp_path / "copy"))
    assert hub.load_module_spec(str(tmp_path / "copy")) is not second
