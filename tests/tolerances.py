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
