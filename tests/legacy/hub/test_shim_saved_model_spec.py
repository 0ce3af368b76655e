"""`hub.create_module_spec_from_saved_model` against the genuine library (tests/oracle/saved_model_oracle.py, run
live): a TF1 SavedModel written by tf.compat.v1.saved_model.Builder (a `serve` and an untagged meta graph, a
lookup table on a vocabulary asset, resource and reference variables, a global step, the main op and a `losses`
collection) and one written by simple_save ({serve} only). The spec, hub.Module in graph and eager mode, and the
modules the shim exports, loaded by the genuine hub.Module."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from legacy import hub
from legacy.errors import BridgeError, ModuleFormatError, NotAModuleError
from tests.oracle.saved_model_modules import saved_model_oracle, start_run
from tests.tolerances import GENUINE_OUTPUTS, assert_close

SERVE = {"serve"}


@pytest.fixture(scope="module")
def genuine_saved_model(oracle):
    return saved_model_oracle()


@pytest.fixture(scope="module")
def spec(genuine_saved_model):
    out, answers, _ = genuine_saved_model
    return hub.create_module_spec_from_saved_model(os.path.join(out, "saved_model"),
                                                   drop_collections=answers["drop_collections"])


def _label(tags) -> str:
    return "+".join(sorted(tags)) or "infer"


def _feed(answers, signature: str) -> dict:
    if signature in ("serving_default", "default"):
        return {"x": np.array(answers["x"], np.float32)}
    return {"words": tf.constant(answers["words"])}


def _apply_all(module, tags, answers, prefix: str) -> dict:
    """Every output of every signature, keyed as the oracle keys them."""
    return {f"{prefix}/{_label(tags)}/{name}/{key}": value
            for name in module.get_signature_names()
            for key, value in module(_feed(answers, name), signature=name, as_dict=True).items()}


def _info(info) -> dict:
    shape = info.get_shape()
    return {"dtype": info.dtype.name, "shape": shape.as_list() if shape.rank is not None else None}


def _assert_outputs(found: dict, arrays: dict, prefix: str, what: str) -> None:
    expected = {k for k in arrays if k.startswith(prefix + "/") and "/variables/" not in k}
    assert set(found) == expected, what
    for key in sorted(found):
        assert_close(found[key], arrays[key], GENUINE_OUTPUTS, f"{what} {key}")


def test_unsupported_collection_refused_as_genuine(genuine_saved_model):
    out, answers, _ = genuine_saved_model
    genuine = answers["unsupported_collections"]
    assert genuine["is_value_error"]
    with pytest.raises(ValueError) as info:
        hub.create_module_spec_from_saved_model(os.path.join(out, "saved_model"))
    message = str(info.value)
    assert isinstance(info.value, BridgeError) and "\n" not in message
    assert message.startswith(genuine["message"].splitlines()[0])  # "Unsupported collections in graph: ['losses']"
    assert f"drop_collections={answers['drop_collections']!r}" in message


def test_spec_as_genuine(spec, genuine_saved_model):
    _, answers, _ = genuine_saved_model
    assert sorted(sorted(t) for t in spec.get_tags()) == answers["tags"]
    for tags in spec.get_tags():
        genuine = answers["signatures"][_label(tags)]
        assert sorted(spec.get_signature_names(tags)) == sorted(genuine)
        for name, infos in genuine.items():
            assert {k: _info(v) for k, v in spec.get_input_info_dict(name, tags).items()} == infos["inputs"]
            assert {k: _info(v) for k, v in spec.get_output_info_dict(name, tags).items()} == infos["outputs"]
    assert answers["missing_default_signature"]["is_value_error"]
    with pytest.raises(ValueError):
        spec.get_input_info_dict(tags=SERVE)


def test_graph_mode_as_genuine(spec, genuine_saved_model):
    _, answers, arrays = genuine_saved_model
    for tags in spec.get_tags():
        with tf.Graph().as_default():
            module = hub.Module(spec, tags=tags)
            fetches = _apply_all(module, tags, answers, "outputs")
            if tags:
                assert {k: v.op.name for k, v in module.variable_map.items()} == answers["variable_map"]
                assert {k: type(v).__name__ for k, v in module.variable_map.items()} == answers["variable_types"]
                assert sorted(v.op.name for v in tf.compat.v1.global_variables()) == answers["global_variables"]
                assert sorted(v.op.name for v in tf.compat.v1.trainable_variables()) == \
                    answers["trainable_variables_untrainable_module"]
                assert len(tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.TABLE_INITIALIZERS)) == \
                    answers["table_initializers"]
            with tf.compat.v1.Session() as sess:
                sess.run([tf.compat.v1.global_variables_initializer(), tf.compat.v1.tables_initializer()])
                found = sess.run(fetches)
                values = sess.run(module.variable_map)
        _assert_outputs(found, arrays, f"outputs/{_label(tags)}", "graph mode")
        for name, value in values.items():  # read from the checkpoint: exact
            np.testing.assert_array_equal(value, arrays["initial/" + name], err_msg=name)
    with tf.Graph().as_default():
        hub.Module(spec, tags=SERVE, trainable=True)
        assert sorted(v.op.name for v in tf.compat.v1.trainable_variables()) == answers["trainable_variables"]


def test_eager_mode_as_genuine(spec, genuine_saved_model):
    _, answers, arrays = genuine_saved_model
    for tags in spec.get_tags():
        module = hub.Module(spec, tags=tags)
        found = {k: v.numpy() for k, v in _apply_all(module, tags, answers, "outputs").items()}
        _assert_outputs(found, arrays, f"outputs/{_label(tags)}", "eager mode")
        assert sorted(module.variable_map) == sorted(answers["variable_map"])
        for name, var in module.variable_map.items():
            np.testing.assert_array_equal(var.numpy(), arrays["initial/" + name], err_msg=name)
    module = hub.Module(spec, tags=SERVE, trainable=True)
    assert sorted(v.name.split(":")[0] for v in module.trainable_variables) == answers["trainable_variables"]


@pytest.fixture(scope="module")
def exports(spec, genuine_saved_model, tmp_path_factory):
    """The modules the shim exports (Module.export in graph and eager mode after assigning a variable, and
    spec.export from the SavedModel's checkpoint), with the genuine hub.Module started on them at once."""
    out, answers, _ = genuine_saved_model
    root = tmp_path_factory.mktemp("exports")
    dirs = {name: str(root / name) for name in ("graph_module", "eager_module", "spec")}
    with tf.Graph().as_default():
        module = hub.Module(spec, tags=SERVE)
        assign = tf.compat.v1.assign(module.variable_map["stats/mean"], answers["exported_mean"])
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            sess.run(assign)
            module.export(dirs["graph_module"], sess)
    module = hub.Module(spec, tags=SERVE)
    module.variable_map["stats/mean"].assign(answers["exported_mean"])
    module.export(dirs["eager_module"])
    spec.export(dirs["spec"], checkpoint_path=os.path.join(out, "saved_model", "variables", "variables"))
    dirs["serve_only_module"] = str(root / "serve_only_module")  # a SavedModel of {serve} only: that variant only
    with tf.Graph().as_default():
        module = hub.Module(hub.create_module_spec_from_saved_model(os.path.join(out, "serve_only")), tags=SERVE)
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            module.export(dirs["serve_only_module"], sess)
    names = sorted(dirs)
    return dirs, dict(zip(names, start_run([dirs[name] for name in names])()))


@pytest.mark.parametrize("name,genuine_export", [("graph_module", "exported_module"),
                                                 ("eager_module", "exported_module"), ("spec", "exported_spec"),
                                                 ("serve_only_module", "serve_only_exported")])
def test_exports_load_in_genuine_hub_module(exports, genuine_saved_model, name, genuine_export):
    """What the genuine library reads back from the shim's export equals what it reads from its own."""
    _, answers, arrays = genuine_saved_model
    info, found = exports[1][name]
    for key in ("tags", "signatures", "files", "assets"):
        assert info[key] == answers[genuine_export][key], key
    variables = {k[len("run/variables/"):]: v for k, v in found.items() if k.startswith("run/variables/")}
    assert sorted(variables) == sorted(k[len(genuine_export) + len("/variables/"):] for k in arrays
                                       if k.startswith(genuine_export + "/variables/"))
    for key, value in variables.items():
        np.testing.assert_array_equal(value, arrays[f"{genuine_export}/variables/{key}"], err_msg=key)
    outputs = {genuine_export + k[len("run"):]: v for k, v in found.items() if not k.startswith("run/variables/")}
    _assert_outputs(outputs, arrays, genuine_export, f"genuine hub.Module on the shim's {name} export")


def test_exported_module_reloads_in_the_shim(exports, spec, genuine_saved_model):
    _, answers, arrays = genuine_saved_model
    exported = hub.load_module_spec(exports[0]["graph_module"])
    assert sorted(sorted(t) for t in exported.get_tags()) == answers["exported_module"]["tags"]
    found = {k: v.numpy() for k, v in _apply_all(hub.Module(exported, tags=SERVE), SERVE, answers,
                                                 "exported_module").items()}
    _assert_outputs(found, {k: v for k, v in arrays.items() if "/serve/" in k}, "exported_module/serve",
                    "shim on its export")


def test_serve_only_saved_model(genuine_saved_model, tmp_path):
    out, answers, arrays = genuine_saved_model
    path = os.path.join(out, "serve_only")
    spec = hub.create_module_spec_from_saved_model(path)
    assert sorted(sorted(t) for t in spec.get_tags()) == answers["serve_only_tags"]
    x = np.array(answers["x"], np.float32)
    with tf.Graph().as_default():
        y = hub.Module(spec, tags=SERVE)({"x": x}, signature="serving_default", as_dict=True)["y"]
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            assert_close(sess.run(y), arrays["serve_only/y"], GENUINE_OUTPUTS, "serve_only graph")
    module = hub.Module(spec, tags=SERVE)
    assert_close(module({"x": x}, signature="serving_default", as_dict=True)["y"], arrays["serve_only/y"],
                 GENUINE_OUTPUTS, "serve_only eager")
    for key, call in (("serve_only_spec_export", lambda: spec.export(
            str(tmp_path / "spec"), checkpoint_path=os.path.join(path, "variables", "variables"))),
                      ("serve_only_module_without_tags", lambda: hub.Module(spec))):
        genuine = answers[key]
        assert genuine["is_value_error"]
        with pytest.raises(ValueError) as info:
            call()
        # "No such graph variant: tags=None" for both; the shim's Module names the tags as it prints them ({}).
        expected = genuine["message"] if key == "serve_only_spec_export" else genuine["message"].split("=")[0]
        assert str(info.value).startswith(expected), key
    assert not os.path.exists(tmp_path / "spec")


def _copy(genuine_saved_model, tmp_path, name="saved_model") -> str:
    dst = str(tmp_path / name)
    shutil.copytree(os.path.join(genuine_saved_model[0], name), dst)
    return dst


def _tf2_saved_model(path: str) -> None:
    module = tf.Module()
    module.v = tf.Variable([1.0, 2.0])
    module.f = tf.function(lambda x: x * module.v, input_signature=[tf.TensorSpec([None, 2])])
    tf.saved_model.save(module, path, signatures=module.f)


def _remove(path: str, *parts: str) -> None:
    target = os.path.join(path, *parts)
    shutil.rmtree(target) if os.path.isdir(target) else os.remove(target)


def _data_shard(path: str) -> str:
    return next(n for n in os.listdir(os.path.join(path, "variables")) if n.startswith("variables.data-"))


@pytest.mark.parametrize("case,error,match", [
    ("missing", NotAModuleError, "no such file or directory; pass the directory of a TF1 SavedModel"),
    ("file", NotAModuleError, "is a file, not a SavedModel directory"),
    ("empty", NotAModuleError, "holds no saved_model.pb; pass the directory of a TF1 SavedModel"),
    ("text_only", NotAModuleError, r"holds saved_model.pbtxt but no saved_model.pb; .*as_text=False"),
    ("corrupt", ModuleFormatError, "saved_model.pb is corrupt or truncated"),
    ("tf2", ModuleFormatError, r"is a TF2 SavedModel .*hub.load_module_spec\(path\)"),
    ("no_variables", ModuleFormatError, "variables/variables.index is missing although the graph has variables"),
    ("no_data_shard", ModuleFormatError, r"variables/variables.data-\* is missing"),
])
def test_damaged_input_is_one_line_error(genuine_saved_model, tmp_path, case, error, match):
    path = str(tmp_path / "model")
    if case == "file":
        with open(path, "w") as f:
            f.write("not a model")
    elif case in ("empty", "text_only"):
        os.makedirs(path)
        if case == "text_only":
            with open(os.path.join(path, "saved_model.pbtxt"), "w") as f:
                f.write("saved_model_schema_version: 1\n")
    elif case == "corrupt":
        path = _copy(genuine_saved_model, tmp_path)
        with open(os.path.join(path, "saved_model.pb"), "wb") as f:
            f.write(b"\xff\xff\xff\xff not a protocol buffer")
    elif case == "tf2":
        _tf2_saved_model(path)
    elif case.startswith("no_"):
        path = _copy(genuine_saved_model, tmp_path)
        _remove(path, "variables") if case == "no_variables" else _remove(path, "variables", _data_shard(path))
    before = sorted(os.walk(tmp_path))
    with pytest.raises(error, match=match) as info:
        hub.create_module_spec_from_saved_model(path, drop_collections=["losses"])
    assert "\n" not in str(info.value)
    assert sorted(os.walk(tmp_path)) == before  # nothing written


def test_asset_file_def_field_and_source_untouched(spec, genuine_saved_model, tmp_path):
    """AssetFileDefs in the MetaGraphDef's own field (newer builders) name the asset as the collection does: the
    table reads assets/, not the path the graph was built with (made unreadable here). The source is only read."""
    from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2

    _, answers, _ = genuine_saved_model
    path = _copy(genuine_saved_model, tmp_path)
    filename = os.path.join(path, "saved_model.pb")
    with open(filename, "rb") as f:
        saved_model = saved_model_pb2.SavedModel.FromString(f.read())
    for meta_graph in saved_model.meta_graphs:
        for any_proto in meta_graph.collection_def["saved_model_assets"].any_list.value:
            asset = meta_graph_pb2.AssetFileDef()
            any_proto.Unpack(asset)
            meta_graph.asset_file_def.append(asset)
        del meta_graph.collection_def["saved_model_assets"]
        for asset in meta_graph.asset_file_def:
            node = next(n for n in meta_graph.graph_def.node if n.name == asset.tensor_info.name.split(":")[0])
            node.attr["value"].tensor.string_val[:] = [str(tmp_path / "gone" / asset.filename).encode()]
    with open(filename, "wb") as f:
        f.write(saved_model.SerializeToString())
    before = {name: open(os.path.join(root, name), "rb").read()
              for root, _, files in os.walk(path) for name in files}

    moved = hub.create_module_spec_from_saved_model(path, drop_collections=answers["drop_collections"])
    def embed(spec):
        module = hub.Module(spec, tags=SERVE)
        return module(tf.constant(answers["words"]), signature="embed", as_dict=True)["embedding"]

    expected = embed(spec)
    np.testing.assert_array_equal(embed(moved), expected)
    hub.Module(moved, tags=SERVE).export(str(tmp_path / "exported"))
    exported = hub.load_module_spec(str(tmp_path / "exported"))
    np.testing.assert_array_equal(embed(exported), expected)
    meta_graph = exported.stored.variant(SERVE).meta_graph
    assert len(meta_graph.collection_def["saved_model_assets"].any_list.value) == 1
    assert not meta_graph.asset_file_def
    assert {name: open(os.path.join(root, name), "rb").read()
            for root, _, files in os.walk(path) for name in files} == before


def test_install_exposes_it():
    import legacy
    import tensorflow_hub
    from legacy.hub import installer

    try:
        legacy.install()
        assert tensorflow_hub.create_module_spec_from_saved_model is hub.create_module_spec_from_saved_model
        namespace = {}
        exec("from tensorflow_hub import *", namespace)
        assert namespace["create_module_spec_from_saved_model"] is hub.create_module_spec_from_saved_model
    finally:
        installer.uninstall()
    assert "create_module_spec_from_saved_model" not in hub.REMOVED
