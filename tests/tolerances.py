"""What the test suite compares exactly, and every tolerance it uses otherwise, with the measurement behind each.

Exact (np.testing.assert_array_equal) only where the same kernels run on the same machine in the same test run:
the in-memory adapter against the converted SavedModel and its consumers; the shim on a TF1 module against the
shim on its TF2 conversion, and with either way of importing `hub`; and, inside one oracle process, the genuine
library on a module against its round trip (TF1 -> TF2 -> TF1, or rewritten by legacy.format.writer). Values that are
read, not computed (checkpoint weights, numpy's seeded random images), are exact everywhere.

Everything else crosses TensorFlow versions or machines and is compared with `assert_close`:

    max |actual - expected| <= rel * max |expected| + floor         (over the whole array)

CPU kernels are chosen by CPU features (oneDNN/Eigen: AVX-512, AVX2, SSE4.1) and reductions are split by thread
count, so the last bits of a result depend on the machine. They were measured on an AMD EPYC (AVX-512, 2 cores)
under the default kernels and under ONEDNN_MAX_CPU_ISA=AVX2, ONEDNN_MAX_CPU_ISA=SSE41, TF_ENABLE_ONEDNN_OPTS=0 and
TF_NUM_INTRAOP_THREADS=1 (each a different set of kernels, as on another CPU). To measure again, run

    BRIDGE_TOLERANCE_REPORT=observed.json .venv/bin/python -m pytest -m numerics

under each setting: the file lists, per tolerance, the largest rel a check needed and where (tests/conftest.py
writes it).
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Tolerance:
    name: str
    rel: float  # times max|expected|
    floor: float = 0.0  # absolute, for values that are mathematically zero (float32 noise on both sides)


# This project on TF 2.21 against the genuine library on TF 2.15, computed live on the same machine under the same
# kernel setting (the oracle's answers are cached per machine, see tests/oracle/cache.py): the corpus modules and
# the modules of tests/oracle/real_modules.py, text_oracle.py and tokens_oracle.py.
# Outputs: on the corpus bit-identical under four of the five settings, 2.8e-7 at most under ONEDNN_MAX_CPU_ISA=AVX2;
# with the other modules 3.0e-7 at most under ONEDNN_MAX_CPU_ISA=SSE41 and TF_ENABLE_ONEDNN_OPTS=0 (the ELMo-style
# token module's converted outputs).
GENUINE_OUTPUTS = Tolerance("genuine_outputs", rel=5e-6)
# Gradients, moving statistics, fine-tuned weights, losses: bit-identical except in the graph-mode shim (a TF1
# Session on TF 2.21), whose gradient of classifier_assets' conv/biases (a sum over 6x28x28 positions that cancels
# to 0.306) came out 9.2e-5 of its scale away under the default kernels.
GENUINE_TRAINING = Tolerance("genuine_training", rel=5e-4)

# TF2 models (tests/bridge/tf2_models.py) on TF 2.21 against the genuine library running their TF1 conversion, and
# the shim's TF1 graphs of a TF2 model against the model itself. Measured: bit-identical under four of the five
# settings; under ONEDNN_MAX_CPU_ISA=AVX2 outputs at most 3.7e-6 of their scale. A conv bias followed by batch
# norm has a mathematically zero gradient, so after fine-tuning both sides hold float32 noise of ~1e-8 there
# (4.5e-9 apart under AVX2): an absolute floor far below any real weight is added. Gradients are scaled by the
# model's largest gradient: the random-weight MobileNetV2 has gradients from 7e-6 to 6.4e4, and under AVX2
# block_10_project_BN/beta (largest 1.45e-4) differs by 2.4e-4 between TF 2.15 and 2.21, 4e-9 of the largest
# gradient (its fine-tuning is compared after one small step, see test_tf2_to_tf1.py).
TF2_GRAPH_OUTPUTS = Tolerance("tf2_graph_outputs", rel=1e-5)
TF2_GRAPH_TRAINING = Tolerance("tf2_graph_training", rel=1e-5, floor=1e-6)

# Live results (either library) against testdata/golden, recorded by `make testdata` on another machine
# (tests/test_golden.py, and the photographs as decoded and resized for parity runs).
# Outputs: at most 3.3e-6 (training-mode conv1 activations of convnet_bn, TF_NUM_INTRAOP_THREADS=1).
RECORDED_OUTPUTS = Tolerance("recorded_outputs", rel=2e-5)
# Training: gradients through training-mode batch norm on a batch of 6 cancel heavily: conv1/BatchNorm/beta of
# convnet_bn moved by 1.6e-3 of its scale with TF_NUM_INTRAOP_THREADS=1 (9.2e-5 for classifier_assets conv/biases
# under the default kernels, at most 2.8e-5 elsewhere); fine-tuned weights by at most 9.6e-5.
RECORDED_TRAINING = Tolerance("recorded_training", rel=5e-3)

# The model zoo (tests/zoo: TF-Slim-style TF1 modules exported by the genuine library, and Keras applications
# converted to TF1) is compared with the parity harness's own rule (`assert_parity_rule`): an element fails only
# where it exceeds both PARITY_RULE.rel * max|expected| and DEFAULT_RTOL * |expected| (bridge.parity.tolerance's
# defaults, 1e-5 each), so what users are told passes is what the zoo is held to. Measured on its members (outputs,
# training outputs with the random draws matched, gradients against the loss's largest gradient, moving
# statistics): at most 8.6e-7 of scale under the default kernels (a ResNet V1 conv kernel's gradient).
PARITY_RULE = Tolerance("zoo_parity_rule", rel=1e-5)
# EfficientNetB0's training mode (Keras source converted to TF1; at 32x32 its training-mode batch norms normalise 1x1
# maps of 4 images, which amplifies rounding): TF 2.21 alone moves its training outputs by 9.5e-4 of their scale
# between kernel settings (oneDNN on and off, SSE4.1 on one thread), the genuine library differed by 4.4e-4, and its
# first conv kernel's gradient by 1.6e-3 of that kernel's scale. About twice the kernel spread.
EFFICIENTNET_TRAINING = Tolerance("efficientnet_training", rel=2e-3)
# A Keras source's first conv kernel gradient, genuine library (TF1 Session) vs. the TF2 model's tape, against the
# kernel's own scale. The difference is grappler's rewriting of the Session's graph (arithmetic optimization and
# constant folding: with both off the two are bit-identical, tests/zoo/test_keras_sources.py shows it). Measured on
# MobileNetV3Small: 7.9e-7 as the test feeds the images; 1.15e-6 with the images a constant in the genuine graph,
# where the genuine library's classic SGD step (learning rate 0.1) lands 1.17e-6 of the step's size from the TF2
# model's own step on that kernel. ResNet50: 0. About four times the largest measured difference.
FIRST_CONV_GRADIENT = Tolerance("first_conv_gradient", rel=5e-6)
# TFLite runs its own kernels (XNNPACK) and may fuse ops: float members measured 3.3e-7 of each output's scale on
# this machine; the bound leaves room for other CPUs' XNNPACK kernels and fused ops.
TFLITE = Tolerance("tflite", rel=1e-4)
# Fake-quant graphs round every activation to a step of its range (6/255 for ReLU6), so a last-bit difference before
# a rounding becomes a whole step: measured 0.0061 on logits of scale 0.239 (2.6%) on the quantops member.
TFLITE_FAKE_QUANT = Tolerance("tflite_fake_quant", rel=0.05)

observed: dict = {}  # tolerance name -> {"rel": the rel each check needed at most, "where": ..., "checks": n}


def relative_error(actual, expected) -> tuple:
    """(max |actual - expected|, max |expected|) in float64."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    if expected.size == 0:
        return 0.0, 0.0
    return float(np.abs(actual - expected).max()), float(np.abs(expected).max())


def assert_close(actual, expected, tolerance: Tolerance, what: str, scale: float | None = None) -> None:
    """max|actual - expected| <= tolerance.rel * scale + tolerance.floor; shapes must be equal.

    `scale` is max|expected| unless given (e.g. the largest gradient of the whole model, see TF2_GRAPH_TRAINING).
    """
    __tracebackhide__ = True
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    error, own_scale = relative_error(actual, expected)
    scale = own_scale if scale is None else max(scale, own_scale)
    seen = observed.setdefault(tolerance.name, {"rel": 0.0, "where": None, "checks": 0})
    seen["checks"] += 1
    excess = max(0.0, error - tolerance.floor)  # what the floor does not cover, as a fraction of the scale
    rel = excess / scale if scale else (0.0 if excess == 0 else float("inf"))
    if rel > seen["rel"]:
        seen.update(rel=rel, where=what)
    bound = tolerance.rel * scale + tolerance.floor
    assert error <= bound, (f"{what}: max |difference| {error:.3g} > {tolerance.name} tolerance {bound:.3g} "
                            f"({tolerance.rel:g} * max|expected| {scale:.3g} + {tolerance.floor:g})")


def is_output(key: str) -> bool:
    """Whether an answer key (`outputs/train/...`, `gradients/...`, `finetune_loss`, ...) is a model output, as
    opposed to a training result (gradients, moving statistics, fine-tuned weights, losses)."""
    return key.startswith("outputs/") or key.startswith("inference/") or key.startswith("training/")


def genuine(key: str) -> Tolerance:
    """The tolerance against the genuine library for an answer key."""
    return GENUINE_OUTPUTS if is_output(key) else GENUINE_TRAINING


def recorded(key: str) -> Tolerance:
    """The tolerance against testdata/golden for an answer key."""
    return RECORDED_OUTPUTS if is_output(key) else RECORDED_TRAINING


def assert_parity_rule(actual, expected, what: str, tolerance: Tolerance = PARITY_RULE,
                       scale: float | None = None) -> None:
    """The parity harness's rule: fails only where |A-B| > tolerance.rel * max|A| and |A-B| > DEFAULT_RTOL * |A|.

    `scale` replaces max|A| where an array's own scale means nothing: the gradient of a conv bias followed by batch
    norm is zero in exact arithmetic, so both sides hold rounding noise there; it is measured against the scale of
    the loss's largest gradient instead."""
    __tracebackhide__ = True
    from bridge.parity.tolerance import DEFAULT_RTOL

    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    diff = np.abs(actual.astype(np.float64) - expected)
    own_scale = float(np.abs(expected).max()) if expected.size else 0.0
    reference = scale if scale is not None else own_scale
    atol = tolerance.rel * reference
    seen = observed.setdefault(tolerance.name, {"rel": 0.0, "where": None, "checks": 0})
    seen["checks"] += 1
    if diff.size and reference and float(diff.max()) / reference > seen["rel"]:
        seen.update(rel=float(diff.max()) / reference, where=what)
    bad = (diff > atol) & (diff > DEFAULT_RTOL * np.abs(expected))
    assert not bad.any(), (f"{what}: {int(bad.sum())} of {bad.size} elements off; max abs diff "
                           f"{float(diff.max()):.3g} ({tolerance.name}: atol {atol:.3g}, scale {own_scale:.3g})")
