"""Every crash fuzzing found, kept as a regression case: it must now end in the project's one-line error.

Two kinds: cases the fuzzer saved (testdata/fuzz/*.json, each a `tests.fuzzing.Case` reproduced from the committed
testdata modules, with what it used to raise and, when it is not the project's error, the outcome it has now),
and the known damage written out by hand below (nested messages of a collection that do not parse, structure
that parses but does not fit together, a damaged metadata file or array).
"""

from __future__ import annotations

import glob
import json
import os
import shutil

import numpy as np
import pytest

from bridge.cli import main
from tests import fuzzing
from tests.corpus import module_path

FUZZ_DIR = os.path.join(fuzzing.ROOT, "testdata", "fuzz")
SAVED_CASES = sorted(glob.glob(os.path.join(FUZZ_DIR, "*.json")))


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    return fuzzing.prepare_seeds(str(tmp_path_factory.mktemp("seeds")))


@pytest.mark.parametrize("filename", SAVED_CASES, ids=[os.path.basename(p)[:-5] for p in SAVED_CASES])
def test_saved_fuzz_case_ends_in_the_projects_error(filename, seeds, tmp_path):
    with open(filename) as f:
        saved = json.load(f)
    case = fuzzing.Case.from_json(saved["case"])
    result = fuzzing.run_case(case, seeds, str(tmp_path / "case"))
    # "error" unless the file says otherwise (a damaged part some entry point may do without, and does)
    assert result["outcome"] == saved.get("outcome", "error"), result


@pytest.mark.parametrize("target", ["inspect", "convert", "parity"])
def test_undecodable_type_spec_ends_in_the_projects_error_everywhere(target, seeds, tmp_path):
    """The saved case found it through parity; inspect (which decodes the specs itself) and convert raised it too."""
    with open(os.path.join(FUZZ_DIR, "tf2-type-spec-not-decodable.json")) as f:
        case = fuzzing.Case.from_json(dict(json.load(f)["case"], target=target))
    result = fuzzing.run_case(case, seeds, str(tmp_path / "case"))
    assert result["outcome"] == "error" and "No encoder for object" in result["detail"], result


def test_object_graph_child_out_of_range_ends_in_the_projects_error(tmp_path, capsys):
    """Found by the campaign with seed 20249 (IndexError in bridge inspect's walk of a TF2 object graph). Kept as
    the damaged archive itself: its case drew different bytes when replayed, so the input is what reproduces."""
    archive = os.path.join(FUZZ_DIR, "object-graph-child-out-of-range.tar.gz")
    assert main(["inspect", archive]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("bridge inspect: error: ") and archive in err[-1], err
    assert "object graph is corrupt or inconsistent (IndexError" in err[-1], err


def test_object_graph_child_out_of_range_is_refused_by_the_shim(tmp_path):
    """Found by the campaign with seed 20282 (IndexError in hub.load_module_spec's look at the root's functions).
    Kept as the damaged model itself, archived: its case drew different bytes when replayed."""
    import tarfile

    from legacy import hub
    from legacy.errors import ModuleFormatError

    with tarfile.open(os.path.join(FUZZ_DIR, "shim-object-graph-child-out-of-range.tar.gz")) as archive:
        archive.extractall(tmp_path / "model", filter="data")
    with pytest.raises(ModuleFormatError, match=r"object graph refers to object \d+, but it holds \d+; .*re-export"):
        hub.load_module_spec(str(tmp_path / "model"))


# -- damage written out by hand ---------------------------------------------------------------------------------


def _edit_saved_model(module: str, edit) -> str:
    from tensorflow.core.protobuf import saved_model_pb2

    filename = os.path.join(module, "saved_model.pb")
    with open(filename, "rb") as f:
        saved_model = saved_model_pb2.SavedModel.FromString(f.read())
    edit(saved_model)
    with open(filename, "wb") as f:
        f.write(saved_model.SerializeToString())
    return filename


def _inference(saved_model):
    return next(m for m in saved_model.meta_graphs if not m.meta_info_def.tags)


def _set_variable_blob(blob: bytes):
    def edit(saved_model):
        for meta_graph in saved_model.meta_graphs:
            meta_graph.collection_def["variables"].bytes_list.value[0] = blob
    return edit


def _signature_output(name: str):
    def edit(saved_model):
        _inference(saved_model).signature_def["default"].outputs["default"].name = name
    return edit


def _node_input(name: str):
    def edit(saved_model):
        _inference(saved_model).graph_def.node[-1].input.append(name)
    return edit


def _signature_dtype(value: int):
    def edit(saved_model):
        _inference(saved_model).signature_def["default"].inputs["images"].dtype = value
    return edit


def _huge_collection(saved_model):
    meta_graph = _inference(saved_model)
    blobs = meta_graph.collection_def["update_ops"].node_list.value
    blobs.extend(["no_such_op"] * 100_000)


def _attachment(value: bytes):
    def edit(saved_model):
        from legacy.format import protos

        for meta_graph in saved_model.meta_graphs:
            blobs = meta_graph.collection_def["hub_module_attachments"].bytes_list.value
            blobs.append(protos.ModuleAttachment(key="image_module_info", value=value).SerializeToString())
    return edit


DAMAGE = [
    # The crash the issue reports: a VariableDef in a collection whose bytes do not parse.
    ("variabledef-corrupt-wire-format", _set_variable_blob(b"\x0a\xff\xff\xff\xff\x0f"),
     "collection 'variables' is corrupt"),
    ("variabledef-bad-utf8", _set_variable_blob(b"\x0a\x02\xff\xfe"), "collection 'variables' is corrupt"),
    ("dangling-node-input", _node_input("no_such_node:0"), "takes input 'no_such_node:0', which is not in the graph"),
    ("dtype-out-of-range", _signature_dtype(4242), "data type number 4242, which TensorFlow does not know"),
    ("huge-collection-of-missing-ops", _huge_collection, "collection 'update_ops' names 'no_such_op'"),
    ("image-module-info-corrupt", _attachment(b"\x0a\x05\x08"), "the attached image_module_info is corrupt"),
    ("image-module-info-negative", _attachment(b"\x0a\x0b\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"),
     "gives image size -1x0"),
]


@pytest.mark.parametrize("command", ["inspect", "convert", "shim"])
@pytest.mark.parametrize("name, edit, problem", DAMAGE, ids=[d[0] for d in DAMAGE])
def test_damaged_module_gives_one_line_naming_the_file(name, edit, problem, command, tmp_path, capsys):
    module = shutil.copytree(module_path("convnet_bn"), tmp_path / "src")
    filename = _edit_saved_model(str(module), edit)
    if command == "shim":
        from legacy import hub
        from legacy.errors import ModuleFormatError

        with pytest.raises(ModuleFormatError) as raised:
            hub.Module(hub.load_module_spec(str(module)))
        line = str(raised.value)
    else:
        argv = ["inspect", str(module)] if command == "inspect" else \
            ["convert", str(module), str(tmp_path / "out"), "--no-verify"]
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"bridge {command}: error: "), err
        line = err[0]
        assert not os.path.exists(tmp_path / "out")
    assert filename in line and problem in line and "re-download or re-export" in line, line


def test_signature_naming_a_missing_tensor_fails_when_used_and_names_the_file(tmp_path, capsys):
    """As in the legacy loader, reading and inspecting still work; converting or applying the signature fails."""
    module = str(shutil.copytree(module_path("convnet_bn"), tmp_path / "src"))
    filename = _edit_saved_model(module, _signature_output("missing_tensor:0"))
    assert main(["inspect", module]) == 0
    capsys.readouterr()
    assert main(["convert", module, str(tmp_path / "out"), "--no-verify"]) == 2
    line = capsys.readouterr().err.strip()
    assert filename in line and "output 'default' names tensor 'missing_tensor:0', which is not in the graph" in line
    assert not os.path.exists(tmp_path / "out")

    from legacy import hub
    from legacy.errors import ModuleFormatError

    module_obj = hub.Module(module)
    with pytest.raises(ModuleFormatError, match="missing_tensor:0"):
        module_obj(np.zeros([1, 32, 32, 3], np.float32))


@pytest.mark.parametrize("content, problem", [
    (b'{"image_size": 5}', "image_size is 5, not [height, width]"),
    (b'{"image_size": [32, "x"]}', "image_size is [32, \"x\"]"),
    (b'{"signatures": {"a": 1}}', "signatures is"),
    (b'\xff\xfe{}', "not valid JSON"),
    (b'[1, 2]', "holds a JSON list, not an object"),
    (b'{"variants": [[1]]}', "variants is [[1]]"),
    (b'{"partitions": ["a"]}', "partitions is [\"a\"]"),
    (b'{"partitions": {"w/part_0": {"full_name": "w", "full_shape": [4], "offset": [5]}}}', "partitions is"),
])
def test_damaged_bridge_metadata_gives_one_line_naming_the_file(content, problem, seeds, tmp_path, capsys):
    model = str(shutil.copytree(seeds[fuzzing.TF2_SEED], tmp_path / "tf2"))
    metadata = os.path.join(model, fuzzing.METADATA)
    with open(metadata, "wb") as f:
        f.write(content)
    assert main(["inspect", model]) == 2
    line = capsys.readouterr().err.strip()
    assert metadata in line and problem in line and "convert the model again" in line, line

    from legacy import hub
    from legacy.errors import ModuleFormatError

    with pytest.raises(ModuleFormatError, match="convert the model again"):
        hub.load_module_spec(model)


def test_metadata_naming_a_missing_primary_signature_is_refused_by_convert_and_served_by_the_shim(seeds, tmp_path,
                                                                                                   capsys):
    """Found by fuzzing: a primary_signature the model holds no function for made both raise AttributeError."""
    model = str(shutil.copytree(seeds[fuzzing.TF2_SEED], tmp_path / "tf2"))
    metadata = os.path.join(model, fuzzing.METADATA)
    with open(metadata) as f:
        data = json.load(f)
    data["primary_signature"] = "no_such_signature"
    with open(metadata, "w") as f:
        json.dump(data, f)

    assert main(["convert", model, str(tmp_path / "out"), "--no-verify"]) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith("bridge convert: error: ") and model in line, line
    assert "primary signature 'no_such_signature'" in line and "re-convert it" in line, line
    assert not os.path.exists(tmp_path / "out")

    from legacy import hub

    spec = hub.load_module_spec(model)  # served through the model's own functions, as other damaged metadata is
    module = hub.Module(spec)
    assert module(np.zeros((1, 28, 28, 3), np.float32)).shape == (1, 5)


def test_npy_whose_header_does_not_tokenize_gives_the_projects_error(tmp_path):
    """The saved case npz-header-token-error, for a plain .npy: numpy parses both headers the same way."""
    from bridge.parity.images import collect_inputs
    from legacy.errors import InvalidInputError

    path = str(tmp_path / "images.npy")
    np.save(path, np.zeros((2, 32, 32, 3), np.float32))
    with open(path, "rb") as f:
        data = bytearray(f.read())
    start = data.index(b"(2, 32")  # the header is the literal "{'descr': '<f4', ..., 'shape': (2, 32, 32, 3), }"
    data[start + 4:128] = bytes(128 - start - 4)  # "(2, 3" and zeros: unclosed brackets, as in the saved case
    with open(path, "wb") as f:
        f.write(bytes(data))
    with pytest.raises(InvalidInputError, match="not a readable numpy array"):
        for _ in collect_inputs([path], image_size=(32, 32), batch_size=2).batches():
            pass


def test_npz_with_a_bad_checksum_gives_the_projects_error(seeds, tmp_path):
    """Found by fuzzing: a flipped bit in an .npz member's data showed only as zipfile.BadZipFile while reading."""
    from bridge.parity.images import collect_inputs
    from legacy.errors import InvalidInputError

    path = str(tmp_path / "images.npz")
    with open(os.path.join(seeds["inputs"], "images.npz"), "rb") as f:
        data = bytearray(f.read())
    data[len(data) // 2] ^= 0x20  # inside the stored array data
    with open(path, "wb") as f:
        f.write(bytes(data))
    with pytest.raises(InvalidInputError, match="the array data is damaged"):
        for _ in collect_inputs([path], image_size=(32, 32), batch_size=2).batches():
            pass


@pytest.mark.parametrize("command", ["shim", "convert"])
def test_tf2_function_node_without_an_op_gives_the_projects_error(command, seeds, tmp_path, capsys):
    # Found by the campaign with seed 20241 (a function node's op cleared made tf.saved_model.load raise
    # "RuntimeError: Op type not registered ''"); written out by hand so it does not depend on how the seed's
    # functions happen to be laid out.
    model = shutil.copytree(seeds[fuzzing.TF2_SEED], tmp_path / "src")

    def clear_an_op(saved_model):
        functions = saved_model.meta_graphs[0].graph_def.library.function
        assert functions, "the TF2 seed holds library functions"
        functions[0].node_def[0].op = ""

    filename = _edit_saved_model(str(model), clear_an_op)
    if command == "shim":
        from legacy import hub
        from legacy.errors import BridgeError

        with pytest.raises(BridgeError) as raised:
            spec = hub.load_module_spec(str(model))
            hub.Module(spec)(np.zeros((1, 32, 32, 3), np.float32))
        line = str(raised.value)
    else:
        # --allow-unsafe-ops: past the safety scan (which refuses the unknown op too), to the load that used to crash
        assert main(["convert", str(model), str(tmp_path / "out"), "--no-verify", "--allow-unsafe-ops"]) == 2
        err = capsys.readouterr().err.strip().splitlines()  # a progress line, then the error as the last line
        assert err[-1].startswith("bridge convert: error: ") and "Traceback" not in "\n".join(err), err
        line = err[-1]
        assert not os.path.exists(tmp_path / "out")
    assert (filename in line or str(model) in line) and "re-download or re-export" in line, line


def test_object_graph_variable_of_unknown_dtype_ends_in_the_projects_error(seeds, tmp_path, capsys):
    """Found by the campaign with seed 20292 (TypeError in bridge inspect's size of a TF2 model's variables): a
    variable node of the object graph whose dtype field was cleared (DT_INVALID)."""
    from tensorflow.core.protobuf import saved_model_pb2

    model = str(shutil.copytree(seeds[fuzzing.TF2_SEED], tmp_path / "tf2"))
    path = os.path.join(model, "saved_model.pb")
    saved_model = saved_model_pb2.SavedModel()
    with open(path, "rb") as f:
        saved_model.ParseFromString(f.read())
    node = next(n for n in saved_model.meta_graphs[0].object_graph_def.nodes if n.WhichOneof("kind") == "variable")
    node.variable.ClearField("dtype")
    with open(path, "wb") as f:
        f.write(saved_model.SerializeToString())
    assert main(["inspect", model]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bridge inspect: error: ") and model in err[0], err
    assert "has data type 0, which TensorFlow does not know" in err[0], err
