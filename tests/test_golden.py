"""testdata/golden still holds what the genuine library answers, here: facts exactly, numbers within what CPUs
differ by (RECORDED_* in tests/tolerances.py). The other tests compare with the genuine library run on this
machine; this one keeps the recorded answers (and the README's description of them) honest."""

from __future__ import annotations

import numpy as np
import pytest

from tests.corpus import MODULES, checkpoint, golden_arrays, golden_json
from tests.tolerances import assert_close, recorded

pytestmark = pytest.mark.numerics


@pytest.mark.parametrize("name", MODULES)
def test_recorded_facts_are_the_genuine_libraries(name, genuine):
    live, golden = genuine[name].info, golden_json(name)
    assert sorted(live) == sorted(golden)
    for key in golden:
        if key == "regularization_loss_sum" and golden[key] is not None:
            assert_close(np.float32(live[key]), np.float32(golden[key]), recorded(key), key)
        else:
            assert live[key] == golden[key], key


@pytest.mark.parametrize("name", MODULES)
def test_recorded_arrays_are_the_genuine_libraries_within_what_cpus_differ_by(name, genuine):
    live, golden = genuine[name].arrays, golden_arrays(name)
    assert sorted(k for k in golden if not k.startswith("inputs/")) == sorted(live)
    stored = checkpoint(name)
    assert sorted(genuine[name].group("initial")) == sorted(stored)
    for key, value in live.items():
        if key.startswith("initial/"):  # the checkpoint's values, read: exact anywhere
            np.testing.assert_array_equal(value, stored[key[len("initial/"):]], err_msg=key)
            np.testing.assert_array_equal(golden[key], value, err_msg=key)
        else:
            assert_close(value, golden[key], recorded(key), key)
