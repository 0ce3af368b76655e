"""Publishing with the shim: `hub.create_module_spec` from a module_fn, `Module.export`, and loading back.

The reference for every value is the module_fn's own graph run in a plain TF1 session: the module built from the
spec must start from the same initial weights (its initializers) and compute the same outputs. Modules built
with tf.compat.v1.layers, and their loading by the genuine library, are checked in
shim_scripts/publish_layers.py (a subprocess, since those layers need TF_USE_LEGACY_KERAS=1 before TF loads).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf

from legacy import hub
from legacy.hub.publish import LegacyLayersUnavailableError, ModuleFnError
from legacy.format.reader import read_module
from tests.legacy.hub.shim_scripts.support import run_script
from tests.tolerances import GENUINE_OUTPUTS, assert_close

pytestmark = pytest.mark.numerics  # compares computed numbers: .ci/run repeats it under other kernels

SIZE = 8
UPDATE_OPS = tf.compat.v1.GraphKeys.UPDATE_OPS
REGULARIZATION_LOSSES = tf.compat.v1.GraphKeys.REGULARIZATION_LOSSES


def network(labels_path: str, is_training: bool = False) -> dict:
    """A small image network in plain tf.compat.v1 ops: conv, a moving mean updated in training, a classifier."""
    tf.compat.v1.set_random_seed(1)
    images = tf.compat.v1.placeholder(tf.float32, [None, SIZE, SIZE, 3], name="images")
    kernel = tf.compat.v1.get_variable("conv/kernel", [3, 3, 3, 4],
                                       initializer=tf.compat.v1.glorot_uniform_initializer())
    net = tf.nn.conv2d(images, kernel, 1, "SAME")
    moving_mean = tf.compat.v1.get_variable("conv/moving_mean", [4], trainable=False,
                                            initializer=tf.compat.v1.random_uniform_initializer(-0.1, 0.1))
    if is_training:
        mean = tf.reduce_mean(net, [0, 1, 2])
        tf.compat.v1.add_to_collection(UPDATE_OPS, moving_mean.assign_sub(0.1 * (moving_mean - mean)))
        net = net - mean
    else:
        net = net - moving_mean
    features = tf.reduce_mean(tf.nn.relu(net), [1, 2])
    dense = tf.compat.v1.get_variable("logits/kernel", [4, 5], initializer=tf.compat.v1.random_normal_initializer())
    logits = tf.matmul(features, dense)
    tf.compat.v1.add_to_collection(REGULARIZATION_LOSSES, 1e-3 * tf.nn.l2_loss(kernel))
    tf.compat.v1.add_to_collection(tf.compat.v1.GraphKeys.ASSET_FILEPATHS, tf.constant(labels_path, name="labels"))
    return {"images": images, "features": features, "logits": logits}


def module_fn(labels_path: str, is_training: bool = False) -> None:
    tensors = network(labels_path, is_training)
    images = tensors["images"]
    hub.add_signature(inputs=dict(images=images), outputs=tensors["features"])
    hub.add_signature("image_feature_vector", dict(images=images), dict(default=tensors["features"]))
    hub.add_signature("image_classification", dict(images=images), dict(default=tensors["logits"]))
    hub.add_signature("logits_only", dict(images=images), dict(logits=tensors["logits"]))
    info = hub.ImageModuleInfo()
    info.default_image_size.height = info.default_image_size.width = SIZE
    hub.attach_image_module_info(info)


@pytest.fixture(scope="module")
def labels(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("assets") / "labels.txt"
    path.write_text("a\nb\nc\nd\ne\n")
    return str(path)


@pytest.fixture(scope="module")
def spec(labels):
    return hub.create_module_spec(module_fn, tags_and_args=[
        (set(), {"labels_path": labels}), ({"train"}, {"labels_path": labels, "is_training": True})])


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(3).uniform(size=[5, SIZE, SIZE, 3]).astype(np.float32)


@pytest.fixture(scope="module")
def reference(labels, images) -> dict:
    """The module_fn's network run in a plain session: initial weights and outputs of both variants."""
    result = {}
    for training in (False, True):
        with tf.Graph().as_default():
            tensors = network(labels, training)
            updates = tf.compat.v1.get_collection(UPDATE_OPS)
            with tf.compat.v1.Session() as session:
                session.run(tf.compat.v1.global_variables_initializer())
                result["initial"] = {v.op.name: session.run(v) for v in tf.compat.v1.global_variables()}
                result["train" if training else "infer"] = session.run(
                    {"features": tensors["features"], "logits": tensors["logits"]}, {tensors["images"]: images})
                if updates:
                    session.run(updates, {tensors["images"]: images})
                    result["updated"] = {v.op.name: session.run(v) for v in tf.compat.v1.global_variables()}
    return result


def test_spec_describes_what_the_module_fn_declared(spec):
    assert spec.get_tags() == [set(), {"train"}]
    assert spec.get_signature_names() == ["default", "image_classification", "image_feature_vector", "logits_only"]
    assert hub.get_expected_image_size(spec) == [SIZE, SIZE]
    assert hub.get_num_image_channels(spec) == 3
    assert {k: v.get_shape().as_list() for k, v in spec.get_output_info_dict("logits_only").items()} == {
        "logits": [None, 5]}


def test_graph_module_starts_from_the_initializers_and_exports(spec, reference, images, labels, tmp_path):
    with tf.Graph().as_default():
        placeholder = tf.compat.v1.placeholder(tf.float32, [None, SIZE, SIZE, 3])
        module = hub.Module(spec)
        features = module(placeholder)
        logits = module(dict(images=placeholder), signature="image_classification", as_dict=True)["default"]
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            values = session.run(module.variable_map)
            outputs = session.run({"features": features, "logits": logits}, {placeholder: images})
            module.export(str(tmp_path / "exported"), session)
    assert sorted(values) == sorted(reference["initial"])
    for key, value in reference["initial"].items():
        np.testing.assert_array_equal(values[key], value, err_msg=key)
    for key, value in reference["infer"].items():
        np.testing.assert_array_equal(outputs[key], value, err_msg=key)

    stored = read_module(str(tmp_path / "exported"))  # the on-disk format, validated by the reader
    assert stored.asset_files() == ["labels.txt"]
    assert stored.expected_image_size() == (SIZE, SIZE)
    assert [sorted(t) for t in stored.tags] == [[], ["train"]]
    reloaded = hub.Module(str(tmp_path / "exported"))
    for key, value in values.items():
        np.testing.assert_array_equal(reloaded.variable_map[key].numpy(), value, err_msg=key)
    np.testing.assert_array_equal(reloaded(images).numpy(), reference["infer"]["features"])


def test_trainable_graph_module_fills_the_collections(spec, reference, images):
    with tf.Graph().as_default():
        placeholder = tf.compat.v1.placeholder(tf.float32, [None, SIZE, SIZE, 3])
        module = hub.Module(spec, trainable=True, tags={"train"})
        features = module(placeholder)
        assert len(tf.compat.v1.get_collection(UPDATE_OPS)) == 1
        assert len(tf.compat.v1.get_collection(REGULARIZATION_LOSSES)) == 1
        assert sorted(v.op.name for v in tf.compat.v1.trainable_variables()) == ["module/conv/kernel",
                                                                                  "module/logits/kernel"]
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            np.testing.assert_array_equal(session.run(features, {placeholder: images}), reference["train"]["features"])
            session.run(tf.compat.v1.get_collection(UPDATE_OPS), {placeholder: images})
            updated = session.run(module.variable_map)
    for key, value in reference["updated"].items():
        np.testing.assert_array_equal(updated[key], value, err_msg=key)


def test_eager_module_of_a_created_spec(spec, reference, images, tmp_path):
    module = hub.Module(spec)
    for key, value in reference["initial"].items():
        np.testing.assert_array_equal(module.variable_map[key].numpy(), value, err_msg=key)
    outputs = module(dict(images=images), signature="image_classification", as_dict=True)
    np.testing.assert_array_equal(outputs["default"].numpy(), reference["infer"]["logits"])
    module.variable_map["logits/kernel"].assign(tf.zeros([4, 5]))
    module.export(str(tmp_path / "eager"))
    np.testing.assert_array_equal(hub.Module(str(tmp_path / "eager")).variable_map["logits/kernel"].numpy(),
                                  np.zeros([4, 5], np.float32))


def test_signature_without_default_output_needs_as_dict(spec, images):
    module = hub.Module(spec)
    with pytest.raises(TypeError, match=r"no output named 'default'.*Use as_dict=True"):
        module(images, signature="logits_only")
    assert sorted(module(images, signature="logits_only", as_dict=True)) == ["logits"]


def test_module_fn_mistakes_are_explained(labels):
    with pytest.raises(ModuleFnError, match="inside the module_fn"):
        hub.add_signature(inputs=tf.constant(1.0), outputs=tf.constant(2.0))

    def no_signature():
        tf.compat.v1.placeholder(tf.float32, [None, 2])

    with pytest.raises(ModuleFnError, match="No signatures present"):  # the genuine library's words (see
        # tests/legacy/hub/test_shim_spec_genuine.py, which checks them against it)
        hub.create_module_spec(no_signature)

    def with_summary():
        x = tf.compat.v1.placeholder(tf.float32, [None, 2])
        tf.compat.v1.add_to_collection("my_summaries", x)
        hub.add_signature(inputs=x, outputs=2 * x)

    with pytest.raises(ModuleFnError, match=r"my_summaries; pass drop_collections=\['my_summaries'\]"):
        hub.create_module_spec(with_summary)
    spec = hub.create_module_spec(with_summary, drop_collections=["my_summaries"])
    assert sorted(spec.get_input_info_dict()) == ["default"]  # a lone tensor is keyed `default`, as before
    with pytest.raises(ValueError, match="Module is missing input 'images'"):
        hub.get_num_image_channels(spec)
    # No inference variant is accepted, as by the genuine library: hub.Module then needs tags= (compared with the
    # genuine library in tests/legacy/hub/test_shim_spec_genuine.py).
    train_only = hub.create_module_spec(with_summary, tags_and_args=[({"train"}, {})], drop_collections=["my_summaries"])
    assert train_only.get_tags() == [{"train"}]
    with pytest.raises(ModuleFnError, match="appear twice"):
        hub.create_module_spec(module_fn, tags_and_args=[(set(), {"labels_path": labels})] * 2)


def test_module_fn_with_v1_layers_exports_a_module_the_genuine_library_loads(tmp_path, oracle):
    """tf.compat.v1.layers with Keras 2, graph mode, export; then tensorflow_hub 0.15 on TF 2.15 loads it."""
    run_script("publish_layers.py", str(tmp_path), env={"TF_USE_LEGACY_KERAS": "1"})
    facts = json.loads((tmp_path / "facts.json").read_text())
    with np.load(tmp_path / "outputs.npz") as data:
        shim = {k: data[k] for k in data.files}
    # What the shim built equals the module_fn's own graph, run plainly (checked inside the script) ...
    assert facts["matches_reference"] == {"infer": True, "train": True, "updated": True}
    assert facts["update_ops"] == facts["reference_update_ops"] > 0
    assert facts["regularization_losses"] == facts["reference_regularization_losses"] > 0

    # ... and the genuine library reads the export as the shim does and computes the same outputs.
    exported = str(tmp_path / "exported")
    tag_sets = facts["describe"]["tags"]
    described, *genuine_outputs = oracle.ask([oracle.describe_question(exported)] + [
        oracle.run_question(exported, shim["images"], tags) for tags in tag_sets])
    for key in ("tags", "signatures", "inputs", "outputs", "expected_image_size", "num_image_channels",
                "image_module_info", "update_op_count", "regularization_loss_count"):
        assert described[key] == facts["describe"][key], key
    assert described["variables"] == facts["describe"]["variables"]
    assert described["tags"] == tag_sets == [[], ["train"]]
    for tags, genuine in zip(tag_sets, genuine_outputs):
        label = "train" if tags else "infer"
        assert genuine and sorted(genuine) == sorted(k for k in shim if k.startswith(f"outputs/{label}/"))
        for key, value in genuine.items():
            assert_close(shim[key], value, GENUINE_OUTPUTS, key)


def test_v1_layers_without_keras_2_say_what_to_install():
    proc = run_script("publish_layers.py", "--expect-keras3", env={"TF_USE_LEGACY_KERAS": None})
    assert proc.stdout.strip() == LegacyLayersUnavailableError.__name__
    assert "pip install tf-keras and set TF_USE_LEGACY_KERAS=1" in proc.stderr
