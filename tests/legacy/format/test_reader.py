"""Reading every corpus module gives the answers the genuine library recorded for it."""

from __future__ import annotations

import pytest

from legacy.format import protos
from legacy.format.reader import IMAGE_MODULE_INFO_KEY, read_module
from tests.corpus import MODULES, golden_json, module_path, variant_label


@pytest.fixture(scope="module", params=MODULES)
def corpus(request):
    return request.param, read_module(module_path(request.param)), golden_json(request.param)


def test_tags(corpus):
    _, module, golden = corpus
    assert sorted(sorted(t) for t in module.tags) == golden["tags"]


def test_signatures_and_tensor_info(corpus):
    _, module, golden = corpus
    for tags in module.tags:
        label = variant_label(tags)
        variant = module.variant(tags)
        assert sorted(variant.signatures) == golden["signatures"][label]
        for name, sig in variant.signatures.items():
            assert {k: v.to_json() for k, v in sig.inputs.items()} == golden["inputs"][label][name]
            assert {k: v.to_json() for k, v in sig.outputs.items()} == golden["outputs"][label][name]


def test_expected_image_size_and_channels(corpus):
    _, module, golden = corpus
    assert list(module.expected_image_size()) == golden["expected_image_size"]
    assert module.num_image_channels() == golden["num_image_channels"]


def test_image_module_info_attachment(corpus):
    _, module, golden = corpus
    info = module.image_module_info()
    if golden["image_module_info"] is None:
        assert info is None
    else:
        size = info.default_image_size
        assert {"height": size.height, "width": size.width} == golden["image_module_info"]


def test_variables(corpus):
    _, module, golden = corpus
    found = {v.name: {"dtype": v.dtype, "shape": list(v.shape), "trainable": v.trainable}
             for v in module.variables()}
    assert found == golden["variables"]
    assert sorted({v.op_type for v in module.variables()}) == golden["variable_op_types"]


def test_collections(corpus):
    _, module, golden = corpus
    variant = module.variant({"train"} if module.has_train_variant else None)
    assert len(variant.update_ops) == golden["update_op_count"]
    assert len(variant.regularization_losses) == golden["regularization_loss_count"]
    assert module.asset_files() == golden["assets"]


def test_attachment_bytes_are_what_our_protos_write():
    checked = 0
    for name in MODULES:
        blob = read_module(module_path(name)).variant(None).attachments.get(IMAGE_MODULE_INFO_KEY)
        if blob is not None:
            info = protos.ImageModuleInfo()
            info.default_image_size.height, info.default_image_size.width = golden_json(name)["expected_image_size"]
            assert info.SerializeToString() == blob
            checked += 1
    assert checked >= 1


def test_module_def_bytes():
    assert protos.ModuleDef(format=protos.FORMAT_V3).SerializeToString() == b"\x08\x03"
    for name in MODULES:
        with open(module_path(name) + "/tfhub_module.pb", "rb") as f:
            assert f.read() == b"\x08\x03"


def test_unknown_variant_lists_the_existing_ones():
    module = read_module(module_path("classifier_assets"))
    with pytest.raises(ValueError, match=r"No such graph variant.*\{\}"):
        module.variant({"train"})


def test_unknown_signature_lists_the_existing_ones():
    module = read_module(module_path("convnet_bn"))
    with pytest.raises(ValueError, match="image_classification, image_feature_vector"):
        module.variant(None).signature("nope")
