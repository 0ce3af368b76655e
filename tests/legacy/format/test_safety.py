"""legacy.format.safety: ops that touch files, processes or the network or run Python are found by node name, anywhere.

Unsafe modules are built in code (a tiny image module whose graph reads a file, writes one from inside a function of
its library, or calls Python); the corpus, a converted TF2 SavedModel and its ordinary checkpoint functions
scan clean.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from legacy.errors import UnsafeModelError
from legacy.format.reader import read_module
from legacy.format.safety import FILES, NETWORK, PYTHON, UNKNOWN, check_graph_safe, scan_model
from legacy.format.writer import write_module
from tests.corpus import MODULES, module_path


def image_module(path: str, extra=None, size: int = 8) -> str:
    """A one-variable image module (`default`: images * w), with `extra(tensor) -> tensor` added on the path."""
    graph = tf.Graph()
    with graph.as_default():
        images = tf.compat.v1.placeholder(tf.float32, [None, size, size, 3], name="images")
        w = tf.compat.v1.get_variable("w", shape=[], initializer=tf.compat.v1.ones_initializer(), use_resource=True)
        out = images * w
        if extra is not None:
            out = extra(out)
        out = tf.identity(out, name="output")
        meta_graph = tf.compat.v1.train.export_meta_graph(graph=graph, collection_list=["variables",
                                                                                        "trainable_variables"])
        add_signature(meta_graph, "default", {"images": images}, {"default": out})
    return write_module(path, [meta_graph], variables={"w": np.float32(1.0)})


def add_signature(meta_graph, name: str, inputs: dict, outputs: dict) -> None:
    """Add a signature to `meta_graph` (call inside the graph's context)."""
    info = tf.compat.v1.saved_model.build_tensor_info
    meta_graph.signature_def[name].CopyFrom(tf.compat.v1.saved_model.build_signature_def(
        inputs={k: info(v) for k, v in inputs.items()}, outputs={k: info(v) for k, v in outputs.items()}))


def reads_file(secret: str):
    """A ReadFile on the signature's path (its length, times zero, is added to the output)."""
    def extra(out):
        data = tf.io.read_file(tf.constant(secret), name="read_secret")
        return out + 0.0 * tf.cast(tf.strings.length(data), tf.float32)
    return extra


def writes_file_in_function(target: str):
    """A WriteFile inside a function of the graph's library, called on the signature's path."""
    @tf.function
    def leak(x):
        tf.io.write_file(target, tf.strings.as_string(tf.reduce_sum(x)), name="write_leak")
        return tf.identity(x)

    return leak


def calls_python(out):
    return tf.compat.v1.py_func(lambda x: x, [out], tf.float32, name="python_hook")


@pytest.fixture(scope="module")
def unsafe_modules(tmp_path_factory):
    root = tmp_path_factory.mktemp("unsafe")
    secret = root / "secret.txt"
    secret.write_text("do not read")
    return {
        "read": image_module(str(root / "read"), reads_file(str(secret))),
        "write": image_module(str(root / "write"), writes_file_in_function(str(root / "leaked.txt"))),
        "python": image_module(str(root / "python"), calls_python),
        "leaked": str(root / "leaked.txt"),
    }


def _found(result) -> set:
    return {(f.node, f.op, f.reason) for f in result.findings}


def test_read_file_on_the_signature_path_is_found(unsafe_modules):
    result = scan_model(unsafe_modules["read"])
    assert _found(result) == {("read_secret", "ReadFile", FILES)}
    assert result.findings[0].location == "graph variant {}"


def test_write_file_inside_a_library_function_is_found(unsafe_modules):
    result = scan_model(unsafe_modules["write"])
    assert _found(result) == {("write_leak", "WriteFile", FILES)}
    assert result.findings[0].location.startswith("function __inference_leak_")


def test_python_call_is_found(unsafe_modules):
    assert _found(scan_model(unsafe_modules["python"])) == {("python_hook", "PyFunc", PYTHON)}


def test_check_refuses_with_one_line_naming_the_node_and_the_override(unsafe_modules):
    with pytest.raises(UnsafeModelError) as info:
        check_graph_safe(unsafe_modules["read"])
    message = str(info.value)
    assert "\n" not in message
    assert "'read_secret' (ReadFile, reads or writes files)" in message
    assert "touch files" in message and "--allow-unsafe-ops" in message
    assert not check_graph_safe(unsafe_modules["read"], allow_unsafe_ops=True).safe


def test_read_module_accepts_a_stored_module(unsafe_modules):
    assert _found(scan_model(read_module(unsafe_modules["python"]))) == {("python_hook", "PyFunc", PYTHON)}


@pytest.mark.parametrize("name", MODULES)
def test_corpus_modules_scan_clean(name):
    result = check_graph_safe(module_path(name))
    assert result.safe and result.nodes > 50


@pytest.fixture(scope="module")
def converted_model(converted) -> str:
    """classifier_assets converted by the session's corpus fixture (read, never written)."""
    return converted["classifier_assets"]


def test_converted_savedmodel_scans_clean_with_its_checkpoint_functions(converted_model):
    result = check_graph_safe(converted_model)
    assert result.safe and result.functions > 5


def test_checkpoint_ops_count_once_the_saver_no_longer_owns_them(converted_model):
    """The save/restore functions are allowed because the saver_def reaches them, not because of their names."""
    from tensorflow.core.protobuf import saved_model_pb2

    with open(os.path.join(converted_model, "saved_model.pb"), "rb") as f:
        saved_model = saved_model_pb2.SavedModel.FromString(f.read())
    saved_model.meta_graphs[0].ClearField("saver_def")
    ops = {f.op for f in scan_model(saved_model).findings}
    assert {"SaveV2", "RestoreV2", "MergeV2Checkpoints"} <= ops


def test_saver_reached_from_a_signature_is_not_excused(converted_model):
    """A signature that exposes the restore function (it takes a checkpoint path) makes RestoreV2 a finding."""
    from tensorflow.core.protobuf import saved_model_pb2

    with open(os.path.join(converted_model, "saved_model.pb"), "rb") as f:
        saved_model = saved_model_pb2.SavedModel.FromString(f.read())
    meta_graph = saved_model.meta_graphs[0]
    restore = meta_graph.saver_def.restore_op_name
    meta_graph.signature_def["load_any_checkpoint"].outputs["done"].name = restore + ":0"
    assert {f.op for f in scan_model(saved_model).findings} == {"RestoreV2"}


def test_a_saver_def_excuses_nothing_in_a_tf1_module(tmp_path):
    """TF1 Hub modules have no saver and their loader runs none: a saver_def planted in one changes nothing."""
    from tensorflow.core.protobuf import saved_model_pb2

    def restores(out):
        restored = tf.raw_ops.RestoreV2(prefix="/tmp/elsewhere", tensor_names=["w"], shape_and_slices=[""],
                                        dtypes=[tf.float32], name="planted_restore")
        return out + 0.0 * restored[0]

    path = image_module(str(tmp_path / "planted"), restores)
    filename = os.path.join(path, "saved_model.pb")
    with open(filename, "rb") as f:
        saved_model = saved_model_pb2.SavedModel.FromString(f.read())
    saved_model.meta_graphs[0].saver_def.restore_op_name = "planted_restore"
    with open(filename, "wb") as f:
        f.write(saved_model.SerializeToString())
    assert _found(scan_model(path)) == {("planted_restore", "RestoreV2", FILES)}


def test_restore_called_from_the_model_itself_is_found(tmp_path):
    """A TF2 SavedModel whose __call__ restores a checkpoint (and reads a file) is not excused as a saver."""
    class Sneaky(tf.Module):
        def __init__(self):
            self.w = tf.Variable(1.0)

        @tf.function(input_signature=[tf.TensorSpec([None, 4, 4, 3], tf.float32)])
        def __call__(self, images):
            restored = tf.raw_ops.RestoreV2(prefix=str(tmp_path / "ckpt"), tensor_names=["w"],
                                            shape_and_slices=[""], dtypes=[tf.float32], name="sneaky_restore")
            return images * self.w + 0.0 * restored[0]

    path = str(tmp_path / "sneaky")
    tf.saved_model.save(Sneaky(), path)
    findings = scan_model(path).findings
    assert [(f.node, f.op) for f in findings] == [("sneaky_restore", "RestoreV2")]
    assert findings[0].location.startswith("function __inference___call___")


def _graph_def(*nodes):
    from tensorflow.core.framework import graph_pb2

    graph_def = graph_pb2.GraphDef()
    for name, op, attrs in nodes:
        node = graph_def.node.add(name=name, op=op)
        for key, value in attrs.items():
            if isinstance(value, list):
                node.attr[key].list.s.extend(value)
            else:
                node.attr[key].s = value
    return graph_def


@pytest.mark.parametrize("op, attrs, reason", [
    ("ImmutableConst", {}, FILES),
    ("MatchingFiles", {}, FILES),
    ("EagerPyFunc", {}, PYTHON),
    ("TFRecordDatasetV2", {}, FILES),
    ("DataServiceDatasetV4", {}, NETWORK),
    ("DebugIdentityV2", {"debug_urls": [b"file:///tmp/dump"]}, FILES),
    ("DebugIdentity", {"debug_urls": [b"grpc://example.com:6064"]}, NETWORK),
    ("DecodeProtoV2", {"descriptor_source": b"/etc/descriptors.bin"}, FILES),
    ("PrintV2", {"output_stream": b"file:///tmp/log.txt"}, FILES),
    ("MyCustomKernel", {}, UNKNOWN),
])
def test_op_catalogue(op, attrs, reason):
    assert _found(scan_model(_graph_def(("n", op, attrs)))) == {("n", op, reason)}


@pytest.mark.parametrize("op, attrs", [
    ("DebugIdentityV2", {}),  # no debug_urls: data goes nowhere
    ("DecodeProtoV2", {"descriptor_source": b"local://"}),
    ("PrintV2", {"output_stream": b"stderr"}),
    ("Conv2D", {}),
])
def test_harmless_uses_pass(op, attrs):
    assert scan_model(_graph_def(("n", op, attrs))).safe


def test_vocabulary_from_an_asset_passes_but_from_another_path_is_found(tmp_path):
    """A TF1 text module's table read from its own asset file is ordinary; a table read from elsewhere is not."""
    from tensorflow.core.protobuf import meta_graph_pb2

    vocab = tmp_path / "vocab.txt"
    vocab.write_text("a\nb\n")
    graph = tf.Graph()
    with graph.as_default():
        asset = tf.constant(str(vocab), name="asset_path")
        elsewhere = tf.constant("/etc/hosts", name="other_path")
        for name, filename in (("from_asset", asset), ("from_elsewhere", elsewhere)):
            initializer = tf.lookup.TextFileInitializer(filename, tf.string, tf.lookup.TextFileIndex.WHOLE_LINE,
                                                        tf.int64, tf.lookup.TextFileIndex.LINE_NUMBER)
            tf.lookup.StaticHashTable(initializer, -1, name=name)
        text = tf.compat.v1.placeholder(tf.string, [None], name="text")
        meta_graph = tf.compat.v1.train.export_meta_graph(graph=graph, collection_list=["asset_filepaths"])
        add_signature(meta_graph, "default", {"text": text}, {"default": text})
    # As the TF1 exporter records an asset: the loader replaces the constant's value with the file in assets/.
    # (TextFileInitializer put both paths into asset_filepaths; only the first one is a real asset.)
    asset_def = meta_graph_pb2.AssetFileDef(filename="vocab.txt")
    asset_def.tensor_info.name = "asset_path:0"
    meta_graph.collection_def["saved_model_assets"].any_list.value.add().Pack(asset_def)
    path = write_module(str(tmp_path / "text"), [meta_graph], assets={"vocab.txt": str(vocab)})
    findings = scan_model(path).findings
    assert [(f.node, f.op) for f in findings] == [("text_file_init_1/InitializeTableFromTextFileV2",
                                                   "InitializeTableFromTextFileV2")]
    assert read_module(path).variants[frozenset()].asset_filepaths == ["asset_path:0", "other_path:0"]


def test_inspect_reports_findings_without_running_anything(unsafe_modules, capsys):
    from bridge.cli import main

    assert main(["inspect", "--json", unsafe_modules["write"]]) == 0
    safety = json.loads(capsys.readouterr().out)["safety"]
    assert safety["safe"] is False
    assert [(f["node"], f["op"]) for f in safety["findings"]] == [("write_leak", "WriteFile")]
    assert main(["inspect", unsafe_modules["write"]]) == 0
    table = capsys.readouterr().out
    assert "safety: 1 unsafe op" in table and "'write_leak' (WriteFile" in table
    assert not os.path.exists(unsafe_modules["leaked"])  # the graph never ran


def test_inspect_reports_a_clean_module_as_such(capsys):
    from bridge.cli import main

    assert main(["inspect", module_path("convnet_bn")]) == 0
    assert "safety: no ops that touch files, processes or the network or run Python" in capsys.readouterr().out


def test_unsafe_module_really_does_what_the_scan_says(tmp_path):
    """The scan is not crying wolf: run anyway (allowed), the WriteFile node writes its file."""
    from legacy.engine.functions import ModuleFunctions

    leaked = tmp_path / "leaked.txt"

    def writes_file(out):
        write = tf.io.write_file(str(leaked), tf.strings.as_string(tf.reduce_sum(out)), name="write_leak")
        with tf.control_dependencies([write]):
            return tf.identity(out)

    module = read_module(image_module(str(tmp_path / "write"), writes_file))
    assert not check_graph_safe(module, allow_unsafe_ops=True).safe
    ModuleFunctions(module).signature(frozenset(), "default")(images=tf.zeros([1, 8, 8, 3]))
    assert leaked.exists()


def test_a_node_without_an_op_type_is_named_as_such():
    result = scan_model(_graph_def(("blank", "", {})))
    assert _found(result) == {("blank", "", UNKNOWN)}
    assert "'blank' (no op type, " in result.summary()
