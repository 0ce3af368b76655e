"""TF2 -> TF1 of SavedModels with serving signatures only (Keras 3's `model.export`, `tf.saved_model.save` of a
Keras 3 model), checked with the genuine tensorflow_hub 0.15.

Such a model has no `__call__` and no training mode: its `serving_default` signature becomes the inference variant
(signatures `default` and the kind's, input `images`, its one output as `default`), with the variables the
signature reads. The genuine library (TF 2.15) runs the written graph, TF 2.21 the Keras model: different
TensorFlow versions, so results are compared within tests/tolerances.py's TF2_GRAPH_* tolerances.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from bridge.conversion.converter import convert
from legacy.errors import ConversionError
from tests.bridge import tf2_models
from tests.tolerances import TF2_GRAPH_OUTPUTS, TF2_GRAPH_TRAINING, assert_close

pytestmark = pytest.mark.numerics  # compares computed numbers: .ci/run repeats it under other kernels

SIZE = 24  # keras3_exports' input size
SOURCES = ["exported", "saved"]  # model.export, tf.saved_model.save


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> dict:
    """{source: (TF2 path, TF1 module written by a verified convert, images, loss weights)}."""
    root = tmp_path_factory.mktemp("serving")
    paths = dict(zip(SOURCES, tf2_models.keras3_exports(str(root / "tf2"), size=SIZE)))
    images = np.random.default_rng(0).uniform(0, 1, (4, SIZE, SIZE, 3)).astype(np.float32)
    weights = np.random.default_rng(1).standard_normal((4, 5)).astype(np.float32)
    result = {}
    for name, src in paths.items():
        dst = convert(src, str(root / name), kind="classification", progress=lambda m: None).destination
        result[name] = src, dst, images, weights
    return result


@pytest.fixture(scope="module")
def answers(oracle, written) -> dict:
    questions = [oracle.answers_question(dst, images, weights, lr=0.01, steps=1)
                 for _, dst, images, weights in written.values()]
    return dict(zip(written, oracle.ask(questions)))


def _serving(src):
    signature = tf.saved_model.load(src).signatures["serving_default"]
    key = next(iter(signature.structured_input_signature[1]))
    return signature, key


@pytest.mark.parametrize("source", SOURCES)
def test_genuine_library_reads_an_inference_only_module(written, answers, source):
    info, _ = answers[source]
    assert info["tags"] == [[]]
    assert info["signatures"] == {"infer": ["default", "image_classification"]}
    assert info["inputs"]["infer"]["default"]["images"]["dtype"] == "float32"
    assert tuple(info["expected_image_size"]) == (SIZE, SIZE)
    # The variables the serving signature reads, once each (the export also tracks a dropout-free model's seed
    # generator and lists variables under two objects): conv kernel and bias, batch norm's four, dense's two.
    names = sorted(info["variables"])
    assert len(names) == 8 and not any("seed" in n for n in names), names
    trainable = sorted(n for n, v in info["variables"].items() if v["trainable"])
    assert len(trainable) == 6 and not any("moving" in n for n in trainable), trainable
    assert info["update_op_count"] == 0 and info["regularization_loss_count"] == 0


@pytest.mark.parametrize("source", SOURCES)
def test_outputs_and_gradients_match_the_serving_signature(written, answers, source):
    src, _, images, weights = written[source]
    _, arrays = answers[source]
    signature, key = _serving(src)
    expected = signature(**{key: tf.constant(images)})["output_0"].numpy()
    for name in ("default", "image_classification"):
        assert_close(arrays[f"outputs/infer/{name}/default"], expected, TF2_GRAPH_OUTPUTS, name)
    genuine = {k[len("gradients/"):]: v for k, v in arrays.items() if k.startswith("gradients/")}
    obj = tf.saved_model.load(src)
    signature = obj.signatures["serving_default"]
    captured = {id(t) for t in signature.captured_inputs}
    read = {v.name.split(":")[0]: v for v in tf.train.TrackableView(obj).descendants()
            if isinstance(v, tf.Variable) and id(v.handle) in captured}
    trainable = {name: v for name, v in read.items() if v.trainable}
    assert sorted(genuine) == sorted(trainable)  # every trainable variable the signature reads, by its TF2 name
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(signature(**{key: tf.constant(images)})["output_0"] * weights)
    grads = dict(zip(trainable, tape.gradient(loss, list(trainable.values()))))
    scale = max(float(np.abs(g.numpy()).max()) for g in grads.values())
    for name, value in genuine.items():
        assert_close(value, grads[name].numpy(), TF2_GRAPH_TRAINING, f"gradient of {name}", scale=scale)


def test_a_serving_signature_with_two_inputs_is_refused(tmp_path):
    class TwoInputs(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 8, 8, 3]), tf.TensorSpec([None])])
        def serve(self, images, scale):
            return {"output_0": tf.reduce_mean(images, [1, 2]) * scale[:, None]}

    model = TwoInputs()
    tf.saved_model.save(model, str(tmp_path / "two"), signatures={"serving_default": model.serve})
    with pytest.raises(ConversionError, match=r"'serving_default' signature takes 2 inputs \(images, scale\), but an "
                                              r"image module takes exactly one"):
        convert(str(tmp_path / "two"), str(tmp_path / "tf1"), kind="feature_vector", progress=lambda m: None)
    assert not (tmp_path / "tf1").exists()


def test_several_outputs_without_a_default_are_refused(tmp_path):
    class TwoOutputs(tf.Module):
        def __init__(self):
            self.w = tf.Variable(tf.ones([3, 2]))

        @tf.function(input_signature=[tf.TensorSpec([None, 8, 8, 3])])
        def serve(self, images):
            pooled = tf.reduce_mean(images, [1, 2])
            return {"logits": pooled @ self.w, "features": pooled}

    model = TwoOutputs()
    tf.saved_model.save(model, str(tmp_path / "two"), signatures={"serving_default": model.serve})
    with pytest.raises(ConversionError, match=r"returns 2 outputs \(features, logits\) and none is named 'default'"):
        convert(str(tmp_path / "two"), str(tmp_path / "tf1"), kind="classification", progress=lambda m: None)
    assert not (tmp_path / "tf1").exists()


@pytest.mark.parametrize("source", SOURCES)
def test_the_shim_applies_the_export_as_its_conversion_does(written, source, tmp_path):
    """hub.Module on a signature-only SavedModel: an inference-only module with the `default` signature over the
    variables its serving signature reads, computing the Keras model's outputs (within TF2_GRAPH_OUTPUTS: the TF1
    graph against the Keras model's function) and exactly what the shim computes on the module `bridge convert`
    wrote (the same graph, the same kernels), in eager and in graph mode; Module.export keeps it loadable."""
    from legacy import hub

    src, dst, images, _ = written[source]
    spec = hub.load_module_spec(src)
    assert spec.get_tags() == [set()] and spec.get_signature_names() == ["default"]
    assert list(spec.get_input_info_dict()) == ["images"] and list(spec.get_output_info_dict()) == ["default"]
    assert hub.get_expected_image_size(spec) == [SIZE, SIZE]
    signature, key = _serving(src)
    expected = next(iter(signature(**{key: tf.constant(images)}).values())).numpy()
    module = hub.Module(src)
    eager = module(images).numpy()
    assert_close(eager, expected, TF2_GRAPH_OUTPUTS, "shim on the signature-only SavedModel")
    np.testing.assert_array_equal(eager, hub.Module(dst)(images).numpy())
    assert sorted(module.variable_map) == sorted(hub.Module(dst).variable_map)
    with tf.Graph().as_default(), tf.compat.v1.Session() as session:
        graph_module = hub.Module(src, trainable=True)
        output = graph_module(tf.constant(images))
        session.run(tf.compat.v1.global_variables_initializer())
        np.testing.assert_array_equal(session.run(output), eager)
        assert not tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.UPDATE_OPS)  # no train variant
        graph_module.export(str(tmp_path / "exported"), session)
    np.testing.assert_array_equal(hub.Module(str(tmp_path / "exported"))(images).numpy(), eager)


def test_the_shim_names_the_fix_for_a_signature_it_cannot_serve(tmp_path):
    from legacy import hub
    from legacy.errors import ModuleFormatError, NotAModuleError

    class TwoInputs(tf.Module):
        def __init__(self):
            super().__init__()
            self.w = tf.Variable(tf.ones([3, 2]))

        @tf.function(input_signature=[tf.TensorSpec([None, 8, 8, 3]), tf.TensorSpec([None, 8, 8, 3])])
        def serve(self, a, b):
            return {"out": tf.reduce_mean(a + b, [1, 2]) @ self.w}

    model = TwoInputs()
    tf.saved_model.save(model, str(tmp_path / "two"), signatures={"serving_default": model.serve})
    with pytest.raises(NotAModuleError, match=r"'serving_default' signature takes 2 inputs.*tf.saved_model.load"):
        hub.Module(str(tmp_path / "two"))
    tf.saved_model.save(tf.Module(), str(tmp_path / "plain"))
    with pytest.raises(NotAModuleError, match=r"neither a __call__ function nor a 'serving_default' signature"):
        hub.Module(str(tmp_path / "plain"))

    class Strings(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def serve(self, text):
            return {"length": tf.strings.length(text)}

    model = Strings()
    tf.saved_model.save(model, str(tmp_path / "text"), signatures={"serving_default": model.serve})
    with pytest.raises((ModuleFormatError, NotAModuleError), match=r"tf.saved_model.load"):
        hub.Module(str(tmp_path / "text"))
