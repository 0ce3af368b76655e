"""bridge.keras.KerasLayer: in Keras 3, what tf-keras + hub.KerasLayer computes in Keras 2, fine-tuning included.

The reference is the genuine `hub.KerasLayer` (tensorflow_hub 0.16.1 on tf-keras, run in this process) on the model
`bridge convert` writes from testdata/modules/convnet_bn. The Keras 3 layer, on that SavedModel and on the TF1 module
itself (adapted in memory), must give the same outputs, gradients, regularization losses and weights after `fit`.

Equality is exact, so no tolerance constant is needed: both sides run the same TensorFlow kernels in the same
process (the model's graph functions; the Dense head is MatMul plus one elementwise add, BiasAdd in tf-keras and
AddV2 in Keras 3, each a single correctly rounded float addition; the same SGD update). Measured: under
ONEDNN_MAX_CPU_ISA=SSE41, TF_ENABLE_ONEDNN_OPTS=0 and TF_NUM_INTRAOP_THREADS=1 the layer's outputs and gradients
move by up to 7e-7 and 6e-4 from the default setting's, yet this file passes under each of them and under
ONEDNN_MAX_CPU_ISA=AVX2: a CPU changes the bits of both sides alike. Only the loss `fit` reports is compared with
a tolerance (REPORTED_LOSS_RTOL): Keras 3 sums its loss terms in another order (the gradients do not change).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import warnings

import numpy as np
import pytest
import tensorflow as tf

from legacy.errors import BridgeError
from tests.corpus import ROOT, golden_arrays, golden_json, module_path
from tests.tolerances import RECORDED_OUTPUTS, assert_close

NAME = "convnet_bn"  # both graph variants, batch norm, regularization losses: the whole fine-tuning story
CLASSES = 3
FIT_STEPS = 3
LEARNING_RATE = 0.1
# The loss `fit` reports, Keras 3 against tf-keras: measured 1.1e-7 relative (one float32 ulp of a loss of 1.1).
REPORTED_LOSS_RTOL = 1e-6


def _images():
    return golden_arrays(NAME)["inputs/images"]


def _labels():
    return np.arange(len(_images())) % CLASSES


def _head_kernel():
    features = golden_arrays(NAME)["outputs/infer/default/default"].shape[-1]
    return np.random.default_rng(0).normal(size=(features, CLASSES)).astype(np.float32)


@pytest.fixture(scope="module")
def converted_path(tmp_path_factory):
    import bridge

    return bridge.convert(module_path(NAME), str(tmp_path_factory.mktemp("keras3") / NAME),
                          verify=False, progress=lambda m: None).destination  # verification: test_convert_verify


def _answers(K, model, layer) -> dict:
    """Everything compared, computed the same way for tf-keras (K = tf_keras) and Keras 3 (K = keras).

    Order matters (the training-mode call updates the moving statistics): inference outputs, then gradients of
    cross-entropy plus the model's losses in training mode, then `fit` with SGD on one full batch per step.
    """
    images, labels = _images(), _labels()
    answers = {"names": [w.name for w in layer.weights], "trainable": len(layer.trainable_weights),
               "outputs": np.asarray(model(images, training=False))}
    with tf.GradientTape() as tape:
        logits = model(images, training=True)
        regularization = [tf.convert_to_tensor(loss) for loss in model.losses]
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)) + tf.add_n(regularization)
    answers["regularization"] = [float(r) for r in regularization]
    answers["gradients"] = [None if g is None else np.asarray(g)
                            for g in tape.gradient(loss, model.trainable_weights)]
    answers["before_fit"] = [np.asarray(w.numpy()) for w in model.weights]
    model.compile(optimizer=K.optimizers.SGD(LEARNING_RATE),
                  loss=K.losses.SparseCategoricalCrossentropy(from_logits=True))
    with warnings.catch_warnings():  # the logits/* variables of the module are not on the feature-vector path
        warnings.filterwarnings("ignore", "Gradients do not exist")
        answers["history"] = model.fit(images, labels, epochs=FIT_STEPS, batch_size=len(images), shuffle=False,
                                       verbose=0).history["loss"]
    answers["after_fit"] = [np.asarray(w.numpy()) for w in model.weights]
    return answers


@pytest.fixture(scope="module")
def reference(converted_path) -> dict:
    """What tf-keras + hub.KerasLayer computes on the converted model (Keras 2, the behaviour to keep)."""
    import tensorflow_hub as hub
    import tf_keras

    layer = hub.KerasLayer(converted_path, trainable=True)
    model = tf_keras.Sequential([tf_keras.Input((32, 32, 3)), layer, tf_keras.layers.Dense(
        CLASSES, kernel_initializer=tf_keras.initializers.Constant(_head_kernel()))])
    return _answers(tf_keras, model, layer)


def _keras3_model(layer, style: str):
    import keras

    head = keras.layers.Dense(CLASSES, kernel_initializer=keras.initializers.Constant(_head_kernel()))
    if style == "sequential":
        return keras.Sequential([keras.Input((32, 32, 3)), layer, head])
    inputs = keras.Input((32, 32, 3))
    return keras.Model(inputs, head(layer(inputs)))


@pytest.mark.numerics  # the regularization loss sum against testdata/golden
@pytest.mark.parametrize("source, style", [("converted", "sequential"), ("tf1", "functional")])
def test_fine_tuning_matches_hub_keras_layer(converted_path, reference, source, style):
    import keras

    from bridge.keras import KerasLayer

    layer = KerasLayer(converted_path if source == "converted" else module_path(NAME), trainable=True)
    ours = _answers(keras, _keras3_model(layer, style), layer)

    # The same weights in the same order; Keras 3 names cannot hold "/".
    assert ours["names"] == [n.split(":")[0].replace("/", "_") for n in reference["names"]]
    assert ours["trainable"] == reference["trainable"] == sum(
        v["trainable"] for v in golden_json(NAME)["variables"].values())
    np.testing.assert_array_equal(ours["outputs"], reference["outputs"])
    # The module's regularization losses are the layer's losses, with the values the genuine library recorded.
    assert ours["regularization"] == reference["regularization"]
    assert len(ours["regularization"]) == golden_json(NAME)["regularization_loss_count"]
    assert_close(sum(ours["regularization"]), golden_json(NAME)["regularization_loss_sum"], RECORDED_OUTPUTS,
                 "regularization loss sum against the recorded one")
    assert [g is None for g in ours["gradients"]] == [g is None for g in reference["gradients"]]
    for got, want in zip(ours["gradients"], reference["gradients"]):
        if want is not None:
            np.testing.assert_array_equal(got, want)
    for got, want in zip(ours["after_fit"], reference["after_fit"]):
        np.testing.assert_array_equal(got, want)
    # fit trained the module: its weights and (training reached it) its moving statistics changed.
    moved = [not np.array_equal(a, b) for a, b in zip(reference["before_fit"], reference["after_fit"])]
    moving = [i for i, n in enumerate(reference["names"]) if "moving" in n]
    assert len(moving) == golden_json(NAME)["update_op_count"] and all(moved[i] for i in moving)
    assert sum(moved) >= len(moved) - 1  # all but logits/biases, which nothing depends on
    # The loss fit reports sums the same terms in another order (Keras 3 adds its losses with one reduce_sum).
    np.testing.assert_allclose(ours["history"], reference["history"], rtol=REPORTED_LOSS_RTOL)


class Scaled(tf.__internal__.tracking.AutoTrackable):
    """A Reusable SavedModel whose `__call__` takes an extra keyword (`scale`) and behaves differently in training.

    (Not a tf.Module: its `variables` properties are not saved, and the Reusable SavedModel API needs them.)

    Training mode applies dropout (stateless, so both Keras versions draw the same mask) and counts its calls in a
    non-trainable variable, as batch-norm statistics would change.
    """

    def __init__(self):
        self.kernel = tf.Variable(tf.random.stateless_normal([4, 3], seed=[1, 2]), name="kernel")
        self.calls_in_training = tf.Variable(0.0, trainable=False, name="calls_in_training")
        self.variables = [self.kernel, self.calls_in_training]
        self.trainable_variables = [self.kernel]
        self.regularization_losses = [
            tf.function(lambda: 0.01 * tf.reduce_sum(tf.square(self.kernel)), input_signature=[])]

    @tf.function
    def __call__(self, x, training=False, scale=1.0):
        y = tf.matmul(x, self.kernel) * scale
        if training:
            self.calls_in_training.assign_add(1.0)
            y = tf.nn.experimental.stateless_dropout(y, rate=0.5, seed=[3, 4])
        return y


@pytest.fixture(scope="module")
def scaled(tmp_path_factory) -> str:
    module = Scaled()
    spec, scale = tf.TensorSpec([None, 4], tf.float32), tf.TensorSpec([], tf.float32, name="scale")
    for training in (False, True):
        module.__call__.get_concrete_function(spec, training=training, scale=scale)
    serve = module.__call__.get_concrete_function(tf.TensorSpec([None, 4], tf.float32, name="x"), training=False,
                                                  scale=scale)
    path = str(tmp_path_factory.mktemp("scaled") / "scaled")
    tf.saved_model.save(module, path, signatures={"serving_default": serve})
    return path


def _features():
    return np.random.default_rng(1).uniform(size=(8, 4)).astype(np.float32)


def test_arguments_and_training_reach_call(scaled):
    import keras
    import tensorflow_hub as hub
    import tf_keras

    from bridge.keras import KerasLayer

    x, targets = _features(), np.zeros((8, 3), np.float32)
    results = {}
    for K, make in ((tf_keras, hub.KerasLayer), (keras, KerasLayer)):
        layer = make(scaled, trainable=True, arguments={"scale": 2.0})
        model = K.Sequential([K.Input((4,)), layer])
        plain = make(scaled)
        result = {"inference": np.asarray(model(x)), "unscaled": np.asarray(plain(x)),
                  "training": np.asarray(model(x, training=True))}
        model.compile(optimizer=K.optimizers.SGD(LEARNING_RATE), loss=K.losses.MeanSquaredError())
        model.fit(x, targets, epochs=2, batch_size=8, shuffle=False, verbose=0)
        result["weights"] = [np.asarray(w.numpy()) for w in layer.weights]
        result["trainable"] = [w.name for w in layer.trainable_weights]
        results[K.__name__] = result
    ours, reference = results["keras"], results["tf_keras"]
    np.testing.assert_array_equal(ours["inference"], 2 * ours["unscaled"])  # the argument reached __call__
    assert np.count_nonzero(ours["training"] == 0) > 0 and np.count_nonzero(ours["inference"] == 0) == 0  # dropout
    for key in ("inference", "unscaled", "training"):
        np.testing.assert_array_equal(ours[key], reference[key])
    assert ours["trainable"] == ["kernel"] and reference["trainable"] == ["kernel:0"]
    kernel, calls = ours["weights"]
    assert calls == 3.0  # one training call, then one per fit step
    for got, want in zip(ours["weights"], reference["weights"]):
        np.testing.assert_array_equal(got, want)


def test_arguments_reach_a_tf1_module_with_bn_hparams():
    """`arguments=dict(batch_norm_momentum=...)` on a version-3-style TF1 module (adapted in memory) runs the
    `*_with_bn_hparams` signature: the same outputs and moving statistics as that signature called directly."""
    import keras

    import bridge
    from bridge.keras import KerasLayer

    path = os.path.join(ROOT, "testdata", "zoo", "modules", "mobilenet_v2")
    images = np.random.default_rng(3).uniform(size=(2, 32, 32, 3)).astype(np.float32)

    def moving(variables):
        return {v.name.split(":")[0].replace("/", "_"): v.numpy() for v in variables if "moving_mean" in v.name}

    results = {}
    for momentum in (0.0, 0.5):
        layer = KerasLayer(path, trainable=True, arguments={"batch_norm_momentum": momentum})
        model = keras.Sequential([keras.Input((32, 32, 3)), layer])
        direct = bridge.adapt(path)
        # Training mode draws dropout noise (the module's train variant has dropout), so what is compared is what
        # it leaves: the moving statistics, and the inference outputs computed from them.
        model(images, training=True)
        direct.call_signature("image_classification_with_bn_hparams", images, training=True,
                              batch_norm_momentum=momentum)
        np.testing.assert_array_equal(np.asarray(model(images, training=False)), direct(images).numpy())
        ours, theirs = moving(layer.weights), moving(direct.variables)
        assert ours and sorted(ours) == sorted(theirs)  # Keras 3 names hold "_" for "/"
        for key, got in ours.items():
            np.testing.assert_array_equal(got, theirs[key])
        results[momentum] = ours
    # The argument matters: momentum 0 takes the batch's statistics, 0.5 half of them.
    assert any(not np.allclose(results[0.0][k], results[0.5][k]) for k in results[0.0])
    with pytest.raises(BridgeError, match="takes no argument 'momentum'"):
        KerasLayer(path, arguments={"momentum": 0.5})(images)


def test_trainable_false_freezes_the_model(converted_path):
    import keras

    from bridge.keras import KerasLayer

    layer = KerasLayer(converted_path)
    model = keras.Sequential([keras.Input((32, 32, 3)), layer])
    assert layer.trainable_weights == [] and len(layer.non_trainable_weights) == len(golden_json(NAME)["variables"])
    before = [w.numpy() for w in layer.weights]
    # A frozen layer runs in inference mode even when Keras trains (as BatchNormalization does, and hub.KerasLayer).
    np.testing.assert_array_equal(np.asarray(model(_images(), training=True)), np.asarray(model(_images())))
    assert model.losses == []
    for w, b in zip(layer.weights, before):
        np.testing.assert_array_equal(w.numpy(), b)
    # The weights are the model's own variables, not copies: what Keras assigns, the model computes with.
    outputs = np.asarray(model(_images()))
    kernel = layer.weights[0]
    kernel.assign(np.zeros(kernel.shape, np.float32))
    np.testing.assert_array_equal(layer.resolved_object.trainable_variables[0].numpy(), np.zeros(kernel.shape))
    assert not np.array_equal(np.asarray(model(_images())), outputs)


def test_symbolic_training_flag(converted_path):
    from bridge.keras import KerasLayer

    layer = KerasLayer(converted_path, trainable=True)
    run = tf.function(lambda images, flag: layer(images, training=flag))
    inference = np.asarray(run(_images(), tf.constant(False)))
    np.testing.assert_array_equal(inference, np.asarray(layer(_images(), training=False)))
    moving = [w for w in layer.weights if "moving" in w.name]
    before = [w.numpy() for w in moving]
    run(_images(), tf.constant(True))  # training mode: batch norm updates its statistics
    assert all(not np.array_equal(w.numpy(), b) for w, b in zip(moving, before))


def test_signatures_and_output_keys_as_in_hub_keras_layer(converted_path):
    import tensorflow_hub as hub

    from bridge.keras import KerasLayer

    # hub.KerasLayer serves a TF1 module's signatures in inference mode (and refuses trainable=True): the reference.
    reference = hub.KerasLayer(module_path(NAME), signature="image_feature_vector",
                               signature_outputs_as_dict=True)(_images())
    assert sorted(reference) == ["conv1", "default"]
    for handle in (module_path(NAME), converted_path):
        outputs = KerasLayer(handle, signature="image_feature_vector", signature_outputs_as_dict=True)(_images())
        assert sorted(outputs) == sorted(reference)
        for key in reference:
            np.testing.assert_array_equal(np.asarray(outputs[key]), reference[key].numpy())
        conv1 = KerasLayer(handle, signature="image_feature_vector", output_key="conv1", trainable=True)
        np.testing.assert_array_equal(np.asarray(conv1(_images())), reference["conv1"].numpy())
        assert len(conv1.trainable_weights) == sum(v["trainable"] for v in golden_json(NAME)["variables"].values())
        # Without output_key a TF1 signature gives its "default" output, as hub.KerasLayer does.
        np.testing.assert_array_equal(np.asarray(KerasLayer(handle, signature="image_feature_vector")(_images())),
                                      reference["default"].numpy())


def test_serving_signature_of_a_tf2_model(scaled):
    import tensorflow_hub as hub

    from bridge.keras import KerasLayer

    # hub.KerasLayer feeds a signature (keyword inputs only) from a dict; the layer also takes the one open input.
    reference = hub.KerasLayer(scaled, signature="serving_default", output_key="output_0",
                               arguments={"scale": 3.0})({"x": _features()})
    ours = KerasLayer(scaled, signature="serving_default", output_key="output_0", arguments={"scale": 3.0})
    np.testing.assert_array_equal(np.asarray(ours({"x": _features()})), reference.numpy())
    np.testing.assert_array_equal(np.asarray(ours(_features())), reference.numpy())
    as_dict = KerasLayer(scaled, signature="serving_default", signature_outputs_as_dict=True)
    outputs = as_dict({"x": _features(), "scale": np.float32(3.0)})
    np.testing.assert_array_equal(np.asarray(outputs["output_0"]), reference.numpy())


def _one_line(error: BaseException) -> str:
    message = str(error)
    assert message and "\n" not in message, message
    return message


def test_save_and_load_keep_the_handle_and_the_fine_tuned_weights(converted_path, scaled, tmp_path):
    import keras

    from bridge.keras import KerasLayer, UnsafeDeserializationError

    images, labels = _images(), _labels()
    layer = KerasLayer(converted_path, trainable=True)
    model = _keras3_model(layer, "functional")
    model.compile(optimizer=keras.optimizers.SGD(LEARNING_RATE),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Gradients do not exist")
        model.fit(images, labels, epochs=1, batch_size=len(images), verbose=0)
    path = str(tmp_path / "fine_tuned.keras")
    model.save(path)

    # Loading runs the model at the handle: refused in safe mode (Keras' default), as keras.layers.TFSMLayer is.
    with pytest.raises(UnsafeDeserializationError) as refused:
        keras.saving.load_model(path)
    assert "safe_mode=False" in _one_line(refused.value)

    loaded = keras.saving.load_model(path, safe_mode=False)
    loaded_layer = [lay for lay in loaded.layers if isinstance(lay, KerasLayer)][0]
    assert loaded_layer.get_config()["handle"] == converted_path and loaded_layer.trainable
    for got, want in zip(loaded.weights, model.weights):  # the fine-tuned weights, not those at the handle
        np.testing.assert_array_equal(got.numpy(), want.numpy())
    np.testing.assert_array_equal(np.asarray(loaded(images)), np.asarray(model(images)))
    assert len(loaded.losses) == golden_json(NAME)["regularization_loss_count"]

    # A Sequential model, and arguments kept in the config.
    sequential = keras.Sequential([keras.Input((4,)), KerasLayer(scaled, arguments={"scale": 2.0})])
    sequential.save(str(tmp_path / "scaled.keras"))
    reloaded = keras.saving.load_model(str(tmp_path / "scaled.keras"), safe_mode=False)
    assert reloaded.layers[0].get_config()["arguments"] == {"scale": 2.0}
    np.testing.assert_array_equal(np.asarray(reloaded(_features())), np.asarray(sequential(_features())))


HANDLE = "https://tfhub.dev/example/imagenet/convnet_bn/feature_vector/1"


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An empty TF Hub cache laid out as tensorflow_hub 0.16 writes it (<cache>/<sha1(handle)>/)."""
    root = tmp_path / "hub_cache"
    root.mkdir()
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(root))
    monkeypatch.delenv("TFHUB_MODEL_LOAD_FORMAT", raising=False)
    return root


def test_archives_cached_handles_and_objects(reference, converted_path, hub_cache, tmp_path):
    import bridge
    from bridge.keras import KerasLayer

    archive = str(tmp_path / f"{NAME}.tar.gz")
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(module_path(NAME), arcname=".")
    tf2_archive = str(tmp_path / f"{NAME}_tf2.tar.gz")
    with tarfile.open(tf2_archive, "w:gz") as tar:
        tar.add(converted_path, arcname=".")
    entry = hub_cache / hashlib.sha1(HANDLE.encode("utf8")).hexdigest()
    shutil.copytree(converted_path, entry)
    (hub_cache / (entry.name + ".descriptor.txt")).write_text(f"Module: {HANDLE}\n")

    for handle in (archive, tf2_archive, HANDLE, bridge.adapt(module_path(NAME)), tf.saved_model.load(converted_path)):
        layer = KerasLayer(handle, trainable=True)
        np.testing.assert_array_equal(np.asarray(_keras3_model(layer, "sequential")(_images())), reference["outputs"])
        assert len(layer.trainable_weights) == reference["trainable"]
    # Only a path can go into a Keras config.
    with pytest.raises(BridgeError) as error:
        layer.get_config()
    assert "path" in _one_line(error.value)


def _a_file(tmp):
    (tmp / "notes.txt").write_text("not a model")
    return str(tmp / "notes.txt")


@pytest.mark.parametrize("make, problem", [
    (lambda tmp: str(tmp / "missing"), "no such file or directory"),
    (lambda tmp: str(tmp), "empty directory"),
    (_a_file, "is a file"),
    (lambda tmp: HANDLE, "not in the TF Hub cache"),
    (lambda tmp: object(), "Reusable SavedModel API"),
])
def test_bad_handles(make, problem, tmp_path, hub_cache):
    from bridge.keras import KerasLayer

    (tmp_path / "case").mkdir()
    with pytest.raises(BridgeError) as error:
        KerasLayer(make(tmp_path / "case"))
    assert problem in _one_line(error.value)


@pytest.mark.parametrize("kwargs, problem", [
    (dict(signature="image_classifier"), "pick one of default, image_classification, image_feature_vector"),
    (dict(signature="default", output_key="default", signature_outputs_as_dict=True), "not both"),
    (dict(signature="image_feature_vector", output_key="logits"), "its outputs are conv1, default"),
    (dict(output_key="conv1"), "signature 'default' of"),
])
def test_bad_options_for_a_tf1_module(kwargs, problem):
    from bridge.keras import KerasLayer

    with pytest.raises(BridgeError) as error:
        KerasLayer(module_path(NAME), **kwargs)
    assert problem in _one_line(error.value)


@pytest.mark.parametrize("kwargs, problem", [
    (dict(signature="serving_default", output_key="output_0", trainable=True), "use trainable=False"),
    (dict(signature="serving_default"), "pass output_key= one of output_0"),
    (dict(signature="serve"), "pick one of serving_default"),
    (dict(signature="serving_default", output_key="y"), "its outputs are output_0"),
    (dict(output_key="y"), "it returns a tensor, not a dict"),
    (dict(signature_outputs_as_dict=True), "needs a signature"),
])
def test_bad_options_for_a_tf2_model(scaled, kwargs, problem):
    from bridge.keras import KerasLayer

    with pytest.raises(BridgeError) as error:
        KerasLayer(scaled, **kwargs)
    assert problem in _one_line(error.value)


def test_readme_keras3_section_runs(tmp_path, monkeypatch):
    """The README's "Keras 3" examples, run as written (from a directory where testdata/ is where they expect)."""
    import re

    from bridge.keras import KerasLayer
    from tests.corpus import ROOT, TESTDATA

    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    section = readme.split("\n## Keras 3\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert blocks
    (tmp_path / "testdata").symlink_to(TESTDATA)
    monkeypatch.chdir(tmp_path)
    namespace = {}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Gradients do not exist")
        for block in blocks:
            exec(compile(block, "README.md (Keras 3)", "exec"), namespace)
    loaded = namespace["model"]
    layer = loaded.layers[0]
    assert isinstance(layer, KerasLayer) and layer.trainable
    assert layer.get_config()["handle"] == "testdata/modules/convnet_bn"
    assert len(loaded.losses) == 0  # collected when the layer runs...
    loaded(namespace["images"])
    assert len(loaded.losses) == golden_json(NAME)["regularization_loss_count"]  # ...as the README says


def test_unsafe_models_are_refused_unless_allowed(tmp_path):
    import keras

    from bridge.keras import KerasLayer
    from legacy.errors import UnsafeModelError

    secret = tmp_path / "secret.txt"
    secret.write_text("12345")
    reads = tf.__internal__.tracking.AutoTrackable()
    reads.__call__ = tf.function(lambda x: x + tf.cast(tf.strings.length(tf.io.read_file(str(secret))), tf.float32),
                                 input_signature=[tf.TensorSpec([None, 4], tf.float32)])
    path = str(tmp_path / "reads_a_file")
    tf.saved_model.save(reads, path)
    with pytest.raises(UnsafeModelError) as error:
        KerasLayer(path)
    assert "allow_unsafe_ops=True" in _one_line(error.value)
    layer = KerasLayer(path, allow_unsafe_ops=True)
    np.testing.assert_array_equal(np.asarray(keras.Sequential([keras.Input((4,)), layer])(np.zeros((1, 4)))), 5.0)
