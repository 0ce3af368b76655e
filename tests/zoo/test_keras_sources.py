"""TF2 -> TF1 on real architectures (Keras applications, random weights, 32x32 inputs): `bridge convert` verifies,
and the genuine hub.Module on the written module computes what the TF2 model computes.

Gradients: the TF1 graph the converter writes is differentiated by tf.gradients (TF 2.15), the TF2 model by
GradientTape (TF 2.21); both sum the same terms but not always in the same order, so gradients agree to rounding,
measured below (GRADIENT_RTOL), not bit for bit. Outputs and batch-norm updates use the project's default tolerance.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from bridge.parity.tolerance import DEFAULT_ATOL_SCALE
from tests.zoo.conftest import run_bridge, seeded_copy
from tests.zoo.keras_sources import SOURCES, KerasSource
from tests.zoo.test_zoo import assert_close

# slow: building the Keras applications takes minutes on a machine that has not cached them (~/.cache), so this file
# runs in the slow tier (make test-slow), which .ci/run runs after make test.
pytestmark = [pytest.mark.oracle, pytest.mark.slow]

# Largest |genuine - TF2| over every gradient, relative to the loss's largest gradient. Measured on this machine:
# MobileNetV3Small 7.9e-7 on the first conv kernel (relative to its own scale), ResNet50 0 (bit for bit). The
# project's default tolerance (bridge.parity.tolerance.DEFAULT_ATOL_SCALE) is the bar.
GRADIENT_RTOL = DEFAULT_ATOL_SCALE


def _name(var) -> str:
    return var.name.split(":")[0]


@pytest.fixture(scope="module")
def keras_conversions(zoo, tmp_path_factory):
    """{name: (source dir, TF1 dir, bridge run, inputs)}; every conversion's oracle job submitted at once."""
    root = tmp_path_factory.mktemp("keras_sources")
    result = {}
    for source in SOURCES:
        src = source.cached()
        run = run_bridge("convert", src, str(root / source.name), "--kind", "feature_vector")
        obj = tf.saved_model.load(src)
        images = np.random.default_rng(0).uniform(0, 1, (4, source.size, source.size, 3)).astype(np.float32)
        width = int(obj(images[:1]).shape[-1])
        inputs = {"images": images,
                  "loss_weights": np.random.default_rng(1).standard_normal((4, width)).astype(np.float32)}
        if run.exit_code == 0:
            zoo.oracle.submit(f"keras/{source.name}", run.destination, inputs)
        seeded = seeded_copy(src, str(root / f"{source.name}-seeded"))
        result[source.name] = (src, seeded, run, inputs)
    return result


@pytest.mark.parametrize("source", SOURCES, ids=lambda s: s.name)
def test_convert_verifies(keras_conversions, source: KerasSource):
    _, _, run, _ = keras_conversions[source.name]
    assert run.exit_code == 0, run.stderr[-3000:]
    assert "verified: PASS" in run.stdout + run.stderr


@pytest.mark.parametrize("source", SOURCES, ids=lambda s: s.name)
def test_genuine_library_computes_what_the_tf2_model_computes(zoo, keras_conversions, source: KerasSource, capsys):
    _, seeded, run, inputs = keras_conversions[source.name]
    assert run.exit_code == 0, run.stderr[-3000:]
    info, genuine = zoo.oracle.answers(f"keras/{source.name}")
    images, weights = inputs["images"], inputs["loss_weights"]
    obj = tf.saved_model.load(seeded)
    assert info["expected_image_size"] == [source.size, source.size]
    assert_close(obj(images, training=False).numpy(), genuine["outputs/infer/default/default"], "inference")
    assert_close(obj(images, training=True).numpy(), genuine["outputs/train/default/default"], "training",
                 atol_scale=source.training_rtol)

    obj = tf.saved_model.load(seeded)  # fresh: the random ops draw their first numbers, as in the oracle's graph
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(obj(images, training=True) * weights)
    grads = dict(zip((_name(v) for v in obj.trainable_variables), tape.gradient(loss, obj.trainable_variables)))
    # Measured against the loss's largest gradient: the projection batch norms' beta feed a following batch norm in
    # training mode, which cancels them in exact arithmetic, so their own scale is rounding noise on both sides.
    scale = max(float(np.abs(g).max()) for g in grads.values() if g is not None)
    worst = {}
    for key, value in genuine.items():
        if key.startswith("gradients/"):
            worst[key] = float(np.abs(value - grads[key[len("gradients/"):]].numpy()).max()) / scale
    assert worst and len(worst) == sum(g is not None for g in grads.values())
    first = min(worst, key=lambda k: list(grads).index(k[len("gradients/"):]))
    with capsys.disabled():
        print(f"\n{source.name}: gradients, max |genuine - TF2| / (largest gradient): {max(worst.values()):.2g} "
              f"({max(worst, key=worst.get)}); first variable {first}: {worst[first]:.2g}")
    assert max(worst.values()) <= max(GRADIENT_RTOL, source.training_rtol), sorted(worst.items(), key=lambda kv: -kv[1])[:5]
    for var in obj.variables:  # the training call above ran the update ops once, as UPDATE_OPS did in the oracle
        # The oracle's arrays hold a scalar variable as shape (1,) (the genuine variable_map reports shape ()).
        expected = genuine["updated/" + _name(var)]
        expected = expected.reshape(var.shape) if expected.size == var.shape.num_elements() else expected
        assert_close(var.numpy(), expected, f"after the update ops: {_name(var)}",
                     atol_scale=source.training_rtol)
