"""A text module whose signature inputs are named like what the converted functions bind themselves (`name`,
`keys`) or like a Python keyword (`class`), against the genuine library.

keyword_text is exported by tests/oracle/text_oracle.py: `scaled` takes `sentences`, `name` (default 2.0) and `keys`
(default 0.5) and returns the sentence embedding * name + keys; `keyword` takes an input `class`.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import tensorflow as tf

from legacy.errors import InvalidInputError
from tests.oracle.text_modules import text_oracle
from tests.tolerances import GENUINE_OUTPUTS, assert_close

pytestmark = pytest.mark.numerics


@pytest.fixture(scope="module")
def oracle_text(oracle):
    root, answers, arrays = text_oracle()
    return os.path.join(root, "keyword_text"), answers, arrays


@pytest.fixture(scope="module")
def converted_path(oracle_text, tmp_path_factory) -> str:
    from bridge.conversion.converter import convert

    module, _, _ = oracle_text
    return convert(module, str(tmp_path_factory.mktemp("keyword_text") / "tf2"), progress=None).destination


def test_the_genuine_module_has_those_inputs(oracle_text):
    _, answers, _ = oracle_text
    assert answers["keyword_text_inputs"]["scaled"] == ["keys", "name", "sentences"]
    assert answers["keyword_text_inputs"]["keyword"] == ["class", "sentences"]


def test_the_adapter_takes_inputs_named_name_and_keys(oracle_text):
    import bridge

    module, answers, arrays = oracle_text
    obj = bridge.adapt(module)
    given = obj.call_signature("scaled", sentences=answers["sentences"], **answers["keyword_inputs"])
    assert_close(given["default"].numpy(), arrays["keyword_text/scaled/given"], GENUINE_OUTPUTS, "scaled")
    # omitted, they keep the module's defaults (2.0 and 0.5): the same kernels in one process, so exactly
    defaults = obj.call_signature("scaled", sentences=answers["sentences"])["default"].numpy()
    explicit = obj.call_signature("scaled", sentences=answers["sentences"], name=2.0, keys=0.5)["default"].numpy()
    np.testing.assert_array_equal(defaults, explicit)
    assert not np.array_equal(defaults, given["default"].numpy())
    with pytest.raises(InvalidInputError, match="has no input 'scale'"):
        obj.call_signature("scaled", sentences=answers["sentences"], scale=1.0)


def test_a_keyword_input_is_not_kept_with_a_reason(oracle_text):
    import bridge

    module, _, _ = oracle_text
    obj = bridge.adapt(module)
    assert "keyword" not in obj.signature_names and "keyword" in obj.not_kept
    assert "'class'" in obj.not_kept["keyword"] and "another input key" in obj.not_kept["keyword"]


def test_the_converted_model_takes_them_too(oracle_text, converted_path):
    _, answers, arrays = oracle_text
    obj = tf.saved_model.load(converted_path)
    sentences = tf.constant(answers["sentences"])
    given = obj.scaled(sentences, **{k: tf.constant(v) for k, v in answers["keyword_inputs"].items()})
    assert_close(given["default"].numpy(), arrays["keyword_text/scaled/given"], GENUINE_OUTPUTS, "saved scaled")
    by_keyword = obj.scaled(sentences=sentences, name=tf.constant(3.0), keys=tf.constant(-1.0))
    np.testing.assert_array_equal(by_keyword["default"].numpy(), given["default"].numpy())
    import bridge

    adapter = bridge.adapt(oracle_text[0])  # same kernels, same process: exact
    np.testing.assert_array_equal(obj.scaled(sentences)["default"].numpy(),
                                  adapter.call_signature("scaled", sentences=answers["sentences"])["default"].numpy())
