"""The bad-input catalogue: every way a user can point `bridge` at the wrong thing, and what they get back.

Each CLI case must end in one line on stderr, `bridge <command>: error: <problem>; <fix>`, with exit status 2 and no
traceback; nothing new may appear (no destination, no temporary directory) and every source must stay byte for
byte as it was. Cases run in-process through `bridge.cli.main`; a few run as real `bridge` processes at the end.
Models are copies of testdata/modules/* (or built in code), damaged in a tmp dir.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from typing import Callable

import numpy as np
import pytest

from bridge.cli import main
from tests.corpus import IMAGES_DIR, ROOT, module_path

BRIDGE = os.path.join(os.path.dirname(sys.executable), "bridge")


# -- models built once per test module ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def built(tmp_path_factory, converted):
    """Models the corpus lacks: a converted TF2 SavedModel, TF2 models that are not image models, a text module."""
    import tensorflow as tf

    from tests.legacy.format.test_safety import add_signature, image_module, reads_file
    from legacy.format.writer import write_module

    root = tmp_path_factory.mktemp("built")
    models = {"tf2": converted["classifier_assets"]}  # the session's conversion: only ever copied here

    class NoEntryPoint(tf.Module):  # a SavedModel with a function, but neither __call__ nor serving_default
        def __init__(self):
            self.w = tf.Variable(2.0)

        @tf.function(input_signature=[tf.TensorSpec([None, 8, 8, 3], tf.float32)])
        def serve(self, images):
            return {"default": images * self.w}

    no_entry_point = NoEntryPoint()
    models["no_call"] = str(root / "no_call")
    tf.saved_model.save(no_entry_point, models["no_call"], signatures={"other": no_entry_point.serve})

    class TwoInputs(tf.Module):
        def __init__(self):
            self.w = tf.Variable(2.0)

        @tf.function(input_signature=[tf.TensorSpec([None, 8, 8, 3], tf.float32),
                                      tf.TensorSpec([None, 8, 8, 3], tf.float32)])
        def __call__(self, images, mask):
            return images * mask * self.w

    models["two_inputs"] = str(root / "two_inputs")
    tf.saved_model.save(TwoInputs(), models["two_inputs"])

    class Features(tf.Module):  # an image model saved by TensorFlow: nothing says feature vector or classifier
        def __init__(self):
            self.w = tf.Variable(2.0)

        @tf.function(input_signature=[tf.TensorSpec([None, 8, 8, 3], tf.float32)])
        def __call__(self, images):
            return tf.reduce_mean(images, axis=[1, 2]) * self.w

    models["no_kind"] = str(root / "no_kind")
    tf.saved_model.save(Features(), models["no_kind"])

    graph = tf.Graph()  # a text module whose only signature takes two string inputs: __call__ takes a dict
    with graph.as_default():
        text = tf.compat.v1.placeholder(tf.string, [None], name="sentences")
        other = tf.compat.v1.placeholder(tf.string, [None], name="other")
        w = tf.compat.v1.get_variable("w", shape=[], initializer=tf.compat.v1.ones_initializer(), use_resource=True)
        lengths = tf.cast(tf.strings.length(text) + tf.strings.length(other), tf.float32) * w
        meta_graph = tf.compat.v1.train.export_meta_graph(graph=graph, collection_list=["variables",
                                                                                        "trainable_variables"])
        add_signature(meta_graph, "default", {"default": text, "other": other}, {"default": lengths})
    models["text"] = write_module(str(root / "text"), [meta_graph], variables={"w": np.float32(1.0)})

    graph = tf.Graph()  # an image module with a second, non-image signature
    with graph.as_default():
        images = tf.compat.v1.placeholder(tf.float32, [None, 8, 8, 3], name="images")
        text = tf.compat.v1.placeholder(tf.string, [None], name="text")
        w = tf.compat.v1.get_variable("w", shape=[], initializer=tf.compat.v1.ones_initializer(), use_resource=True)
        meta_graph = tf.compat.v1.train.export_meta_graph(graph=graph, collection_list=["variables",
                                                                                        "trainable_variables"])
        add_signature(meta_graph, "default", {"images": images}, {"default": images * w})
        add_signature(meta_graph, "describe", {"text": text}, {"default": tf.strings.length(text)})
    models["mixed"] = write_module(str(root / "mixed"), [meta_graph], variables={"w": np.float32(1.0)})

    graph = tf.Graph()  # an image module of any size that records none (no image_module_info)
    with graph.as_default():
        images = tf.compat.v1.placeholder(tf.float32, [None, None, None, 3], name="images")
        w = tf.compat.v1.get_variable("w", shape=[], initializer=tf.compat.v1.ones_initializer(), use_resource=True)
        out = images * w
        meta_graph = tf.compat.v1.train.export_meta_graph(graph=graph, collection_list=["variables",
                                                                                        "trainable_variables"])
        add_signature(meta_graph, "default", {"images": images}, {"default": out})
    models["any_size_unrecorded"] = write_module(str(root / "any_size_unrecorded"), [meta_graph],
                                                 variables={"w": np.float32(1.0)})

    secret = root / "secret.txt"
    secret.write_text("not for models")
    models["unsafe"] = image_module(str(root / "unsafe"), reads_file(str(secret)), size=28)
    return models


# -- helpers ------------------------------------------------------------------------------------------------------


def tree_digest(path) -> str:
    """A digest of everything under `path`: names, kinds, modes, link targets and file bytes."""
    digest = hashlib.sha256()
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(dirs + files):
            if name.startswith("__autograph_generated_file"):  # TensorFlow's tracing writes these to TMPDIR
                continue
            full = os.path.join(root, name)
            st = os.lstat(full)
            digest.update(f"{os.path.relpath(full, path)}\0{st.st_mode:o}\0".encode())
            if os.path.islink(full):
                digest.update(os.readlink(full).encode())
            elif os.path.isfile(full):
                with open(full, "rb") as f:
                    digest.update(f.read())
    return digest.hexdigest()


def copy_model(src: str, dst) -> str:
    shutil.copytree(src, dst, symlinks=True)
    return str(dst)


def truncate(path, keep: Callable[[int], int]) -> None:
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data[:keep(len(data))])


def drop_inference_variant(module: str) -> None:
    from tensorflow.core.protobuf import saved_model_pb2

    filename = os.path.join(module, "saved_model.pb")
    with open(filename, "rb") as f:
        saved_model = saved_model_pb2.SavedModel.FromString(f.read())
    kept = [m for m in saved_model.meta_graphs if m.meta_info_def.tags]
    del saved_model.meta_graphs[:]
    saved_model.meta_graphs.extend(kept)
    with open(filename, "wb") as f:
        f.write(saved_model.SerializeToString())


def drop_checkpoint_value(module: str, name: str) -> None:
    import tensorflow as tf

    from legacy.format.writer import write_checkpoint

    prefix = os.path.join(module, "variables", "variables")
    reader = tf.train.load_checkpoint(prefix)
    values = {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map() if k != name}
    shutil.rmtree(os.path.join(module, "variables"))
    os.makedirs(os.path.join(module, "variables"))
    write_checkpoint(prefix, values)


def pack(directory: str, archive: str, links=(), files=()) -> str:
    """A .tar.gz of `directory`'s contents plus symbolic `links` (name, target) and `files` (name, bytes)."""
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(directory, arcname=".")
        for name, target in links:
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return archive


@dataclasses.dataclass
class Workspace:
    """A case's playground: `path(name)` lives in tmp_path; `models` are the shared built models."""

    root: str
    models: dict
    monkeypatch: pytest.MonkeyPatch | None = None
    locked: list = dataclasses.field(default_factory=list)

    def path(self, *names) -> str:
        return os.path.join(self.root, *names)

    def module(self, name: str = "convnet_bn") -> str:
        return copy_model(module_path(name), self.path("src"))

    def built(self, name: str) -> str:
        return copy_model(self.models[name], self.path("src"))

    def images(self) -> str:
        return copy_model(IMAGES_DIR, self.path("images"))

    def read_only(self, directory: str) -> None:
        os.makedirs(directory)
        self.locked.append(directory)
        os.chmod(directory, 0o555)
        if os.access(directory, os.W_OK):  # root ignores permissions: make it immutable instead
            subprocess.run(["chattr", "+i", directory], capture_output=True)
        if os.access(directory, os.W_OK):
            pytest.skip("cannot make a directory read-only here (root without chattr)")

    def unlock(self) -> None:
        for directory in self.locked:
            subprocess.run(["chattr", "-i", directory], capture_output=True)
            os.chmod(directory, 0o755)


# -- the catalogue ------------------------------------------------------------------------------------------------

@dataclasses.dataclass
class Case:
    id: str
    setup: Callable[[Workspace], list]  # returns the argv after "bridge"
    problem: str  # text the error line must contain, naming the problem
    fix: str  # text it must contain, naming the fix


def _inspect(ws, make) -> list:
    return ["inspect", make(ws)]


def _convert(ws, src, *extra) -> list:
    os.makedirs(ws.path("out"), exist_ok=True)
    return ["convert", src, ws.path("out", "converted"), "--no-verify", *extra]


def _parity(ws, a, b, *extra) -> list:
    return ["parity", a, b, "--quiet", *extra]


def _npz(ws, **arrays) -> str:
    path = ws.path("inputs.npz")
    np.savez(path, **arrays)
    return path


def _write(path, data: bytes) -> str:
    with open(path, "wb") as f:
        f.write(data)
    return path


def _damaged(ws, name: str, damage) -> str:
    src = ws.module(name) if name in ("convnet_bn", "convnet_refvars", "classifier_assets") else ws.built(name)
    damage(src)
    return src


def _mkdir(path: str) -> str:
    os.makedirs(path)
    return path


def _images_with(ws, name: str, data: bytes | None = None, copy_from: str | None = None, keep=None) -> str:
    folder = ws.images()
    if copy_from is not None:
        shutil.copyfile(copy_from, os.path.join(folder, name))
        truncate(os.path.join(folder, name), keep)
    else:
        _write(os.path.join(folder, name), data)
    return folder


def _jpeg(ws) -> str:
    """A real JPEG of a photograph, to be damaged."""
    import tensorflow as tf

    image = tf.io.decode_png(tf.io.read_file(os.path.join(IMAGES_DIR, "horse.png")), channels=3)
    path = ws.path("photo.jpg")
    tf.io.write_file(path, tf.io.encode_jpeg(image))
    return path


CASES = [
    # -- what the path is -------------------------------------------------------------------------------------------
    Case("missing-path", lambda ws: _inspect(ws, lambda ws: ws.path("nope")),
         "no such file or directory", "check the path"),
    Case("file-not-directory", lambda ws: _inspect(ws, lambda ws: _write(ws.path("model.txt"), b"hello")),
         "is a file, but a model is a directory", "pass the directory that holds saved_model.pb"),
    Case("empty-directory", lambda ws: _inspect(ws, lambda ws: _mkdir(ws.path("empty"))),
         "is an empty directory", "pass a TF1 Hub module or TF2 SavedModel directory"),
    Case("unrelated-directory", lambda ws: _inspect(ws, lambda ws: ws.images()),
         "is neither a TF1 Hub module", "pass a model directory"),
    # -- saved_model.pb and tfhub_module.pb -------------------------------------------------------------------------
    Case("saved-model-truncated", lambda ws: _inspect(ws, lambda ws: _damaged(
        ws, "convnet_bn", lambda d: truncate(os.path.join(d, "saved_model.pb"), lambda n: n // 2))),
         "saved_model.pb is corrupt or truncated", "re-download or re-export"),
    Case("saved-model-garbage", lambda ws: _inspect(ws, lambda ws: _damaged(
        ws, "convnet_bn", lambda d: _write(os.path.join(d, "saved_model.pb"), b"\xff" * 100))),
         "saved_model.pb is corrupt or truncated", "re-download or re-export"),
    Case("saved-model-zero-bytes", lambda ws: _inspect(ws, lambda ws: _damaged(
        ws, "convnet_bn", lambda d: _write(os.path.join(d, "saved_model.pb"), b""))),
         "holds no graphs", "re-download or re-export"),
    Case("saved-model-missing", lambda ws: _inspect(ws, lambda ws: _damaged(
        ws, "convnet_bn", lambda d: os.remove(os.path.join(d, "saved_model.pb")))),
         "saved_model.pb is missing", "re-download or re-export"),
    Case("tf2-saved-model-truncated", lambda ws: _inspect(ws, lambda ws: _damaged(
        ws, "tf2", lambda d: truncate(os.path.join(d, "saved_model.pb"), lambda n: n // 3))),
         "saved_model.pb is corrupt or truncated", "re-download or re-export"),
    Case("module-def-unknown-format", lambda ws: _inspect(ws, lambda ws: _damaged(
        ws, "convnet_bn", lambda d: _write(os.path.join(d, "tfhub_module.pb"), b"\x08\x04"))),
         "declares format 4, but only FORMAT_V3 (3) is supported", "re-export the module"),
    Case("module-def-required-feature", lambda ws: _inspect(ws, lambda ws: _damaged(
        ws, "convnet_bn", lambda d: _write(os.path.join(d, "tfhub_module.pb"), b"\x08\x03\x12\x05magic"))),
         "requires unknown features ['magic']", "re-export the module without them"),
    Case("module-def-corrupt", lambda ws: _inspect(ws, lambda ws: _damaged(
        ws, "convnet_bn", lambda d: _write(os.path.join(d, "tfhub_module.pb"), b"\x08"))),
         "tfhub_module.pb is corrupt", "re-download or re-export"),
    # -- archives and handles ---------------------------------------------------------------------------------------
    Case("archive-garbage", lambda ws: _inspect(ws, lambda ws: _write(ws.path("m.tar.gz"), b"\x1f\x8b" + b"x" * 99)),
         "is not a readable tar or .tar.gz archive", "re-download it"),
    Case("archive-truncated", lambda ws: _inspect(ws, lambda ws: truncate(
        pack(module_path("convnet_bn"), ws.path("m.tar.gz")), lambda n: n // 2) or ws.path("m.tar.gz")),
         "or it is truncated", "re-download it"),
    Case("archive-link-outside", lambda ws: _inspect(ws, lambda ws: pack(
        module_path("convnet_bn"), ws.path("m.tar.gz"), links=[("assets/passwd", "/etc/passwd")])),
         "member 'assets/passwd' is a link to '/etc/passwd', outside its directory", "re-create the archive"),
    Case("archive-path-traversal", lambda ws: _inspect(ws, lambda ws: pack(
        module_path("convnet_bn"), ws.path("m.tar.gz"), files=[("assets/../../escaped.txt", b"x")])),
         "member 'assets/../../escaped.txt' has '..' in its path", "only extract archives from sources you trust"),
    Case("archive-too-big", lambda ws: _inspect(ws, lambda ws: (
        ws.monkeypatch.setenv("BRIDGE_MAX_ARCHIVE_BYTES", "10000"),
        pack(module_path("convnet_bn"), ws.path("m.tar.gz")))[1]),
         "beyond 10000 bytes when extracted", "raise the limit with BRIDGE_MAX_ARCHIVE_BYTES"),
    Case("archive-without-model", lambda ws: _inspect(ws, lambda ws: pack(IMAGES_DIR, ws.path("photos.tar.gz"))),
         "holds no model", "pack the model directory's contents"),
    Case("handle-not-cached", lambda ws: _inspect(ws, lambda ws: "https://tfhub.dev/google/not/cached/1"),
         "is not in the TF Hub cache", "fetch it once where downloads are allowed"),
    # -- variables ----------------------------------------------------------------------------------------------------
    Case("variables-index-missing", lambda ws: _convert(ws, _damaged(
        ws, "convnet_bn", lambda d: os.remove(os.path.join(d, "variables", "variables.index")))),
         "variables/variables.index is missing", "re-download or re-export"),
    Case("variables-data-missing", lambda ws: _convert(ws, _damaged(
        ws, "convnet_bn", lambda d: os.remove(os.path.join(d, "variables", "variables.data-00000-of-00001")))),
         "variables/variables.data-* is missing", "re-download or re-export"),
    Case("variables-data-truncated", lambda ws: _convert(ws, _damaged(
        ws, "convnet_bn", lambda d: truncate(os.path.join(d, "variables", "variables.data-00000-of-00001"),
                                             lambda n: n // 3))),
         "the checkpoint is corrupt", "re-download or re-export"),
    Case("variables-index-truncated", lambda ws: _convert(ws, _damaged(
        ws, "convnet_bn", lambda d: truncate(os.path.join(d, "variables", "variables.index"), lambda n: n - 20))),
         "the variables checkpoint cannot be read", "re-download or re-export"),
    Case("checkpoint-missing-variable", lambda ws: _convert(ws, _damaged(
        ws, "convnet_bn", lambda d: drop_checkpoint_value(d, "conv2/weights"))),
         "the checkpoint has no value for variable 'conv2/weights'", "re-download or re-export"),
    # -- graph variants and signatures ----------------------------------------------------------------------------
    Case("no-inference-variant", lambda ws: _convert(ws, _damaged(ws, "convnet_bn", drop_inference_variant)),
         "no inference variant (tags set())", "re-export the module with an inference variant"),
    Case("named-tensors-vs-images", lambda ws: _parity(ws, ws.built("text"), module_path("classifier_assets")),
         "takes tensors but B", "compare models that take the same inputs"),
    Case("named-tensors-npz-missing-input", lambda ws: _parity(
        ws, ws.built("text"), ws.models["text"], "--images", _npz(ws, default=np.array(["a", "b"]))),
         "has no array 'other'", "the models take default, other"),
    Case("named-tensors-damaged-npz", lambda ws: _parity(
        ws, ws.built("text"), ws.models["text"], "--images", _write(ws.path("inputs.npz"), b"PK\x03\x04junk")),
         "inputs.npz cannot be read as .npz (File is not a zip file)", "write it with np.savez"),
    Case("named-tensors-not-npz", lambda ws: _parity(ws, ws.built("text"), ws.models["text"], "--images",
                                                     ws.images()),
         "is not an .npz file: these models take named tensors", "pass an .npz file with one array per input"),
    Case("unknown-signature", lambda ws: _convert(ws, ws.module(), "--signature", "logits"),
         "signature 'logits' not found", "available: default, image_classification, image_feature_vector"),
    Case("signature-without-images", lambda ws: _convert(ws, ws.built("mixed"), "--signature", "describe"),
         "signature 'describe' does not take a single 'images' input", "pick one of default with --signature"),
    Case("already-in-target-format", lambda ws: _convert(ws, ws.module(), "--to", "tf1"),
         "is already a TF1 Hub module", "pass --to tf2"),
    # -- destinations -------------------------------------------------------------------------------------------------
    Case("destination-is-source", lambda ws: ["convert", ws.module(), ws.path("src"), "--no-verify"],
         "is the source or inside it", "choose a path outside"),
    Case("destination-inside-source", lambda ws: ["convert", ws.module(), ws.path("src", "assets", "tf2"),
                                                  "--no-verify"],
         "is the source or inside it", "choose a path outside"),
    Case("destination-exists", lambda ws: (_mkdir(ws.path("out", "converted")), _write(ws.path(
        "out", "converted", "saved_model.pb"), b"mine"), _convert(ws, ws.module()))[2],
         "already exists", "pass --force"),
    Case("destination-not-a-model", lambda ws: (_mkdir(ws.path("out", "converted")), _write(ws.path(
        "out", "converted", "keep.txt"), b"mine"), _convert(ws, ws.module(), "--force"))[2],
         "not a model, so it is never replaced", "choose a new or empty directory"),
    Case("destination-is-a-file", lambda ws: (_mkdir(ws.path("out")), _write(ws.path("out", "converted"), b"mine"),
                                              _convert(ws, ws.module(), "--force"))[2],
         "exists and is not a directory", "remove it or choose another destination"),
    Case("destination-parent-missing", lambda ws: ["convert", ws.module(), ws.path("no", "such", "dir"),
                                                   "--no-verify"],
         "does not exist", "create"),
    Case("destination-parent-read-only", lambda ws: (ws.read_only(ws.path("out")), _convert(ws, ws.module()))[1],
         "cannot write into", "choose a writable destination"),
    # -- TF2 SavedModels that are not Reusable image models ------------------------------------------------------
    Case("tf2-without-call", lambda ws: _convert(ws, ws.built("no_call"), "--kind", "feature_vector"),
         "has neither a __call__ function nor a 'serving_default' signature",
         "re-export it with a tf.function __call__(images, training=False)"),
    Case("tf1-any-size-without-recorded-size-verified",
         lambda ws: _convert(ws, ws.built("any_size_unrecorded"))[:-1],
         "takes images of any size and records no expected size", "pass --image-size HxW (the size to verify at; "
         "the converted model keeps taking any size) or --no-verify"),
    Case("tf2-image-model-without-kind", lambda ws: _convert(ws, ws.built("no_kind")),
         "does not say whether it is a feature vector or a classifier",
         "pass --kind feature_vector or --kind classification"),
    Case("tf2-image-size-does-not-fit",
         lambda ws: _convert(ws, ws.built("no_kind"), "--kind", "feature_vector", "--image-size", "16x16"),
         "image size 16x16 does not fit the model's input shape [None, 8, 8, 3] (images of 8x8)",
         "leave the image size out, or pass one that fits"),
    Case("tf2-two-inputs", lambda ws: _convert(ws, ws.built("two_inputs"), "--kind", "feature_vector"),
         "__call__ takes 2 input tensors", "exactly one"),
    # -- untrusted graphs ---------------------------------------------------------------------------------------------
    Case("unsafe-convert", lambda ws: _convert(ws, ws.built("unsafe")),
         "'read_secret' (ReadFile, reads or writes files)", "--allow-unsafe-ops"),
    Case("unsafe-parity", lambda ws: _parity(ws, ws.built("unsafe"), module_path("classifier_assets"),
                                             "--random", "1"),
         "'read_secret' (ReadFile, reads or writes files)", "--allow-unsafe-ops"),
    # -- parity inputs ------------------------------------------------------------------------------------------------
    Case("image-folder-with-non-image", lambda ws: _parity(
        ws, ws.module("classifier_assets"), module_path("classifier_assets"), "--images",
        _images_with(ws, "notes.jpg", b"these are my notes, not a photo")),
         "notes.jpg: not a JPEG, PNG, GIF or BMP image", "remove it or replace it"),
    Case("image-folder-with-corrupt-jpeg", lambda ws: _parity(
        ws, ws.module("classifier_assets"), module_path("classifier_assets"), "--images",
        _images_with(ws, "broken.jpg", copy_from=_jpeg(ws), keep=lambda n: n // 4)),
         "broken.jpg: cannot decode the image", "remove it or replace it"),
    Case("image-folder-without-images", lambda ws: _parity(
        ws, ws.module("classifier_assets"), module_path("classifier_assets"), "--images",
        os.path.dirname(_write(os.path.join(_mkdir(ws.path("docs")), "README.txt"), b"no images here"))),
         "no image files (JPEG, PNG, GIF or BMP) in this folder", "pass a folder of images"),
    Case("parity-unknown-signature", lambda ws: _parity(
        ws, ws.module("classifier_assets"), module_path("classifier_assets"), "--signature", "logits",
        "--random", "1"),
         "signature 'logits' is not in A", "it has default, image_classification: pick one with --signature"),
    Case("parity-missing-model", lambda ws: _parity(ws, ws.path("nope"), module_path("classifier_assets")),
         "no such file or directory", "check the path"),
]


@pytest.fixture
def workspace(tmp_path, built, monkeypatch):
    systmp = tmp_path / "systmp"  # where the code under test puts temporary directories
    systmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(systmp))
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path / "hub_cache"))
    monkeypatch.delenv("BRIDGE_DEBUG", raising=False)
    ws = Workspace(str(tmp_path), built, monkeypatch)
    yield ws
    ws.unlock()


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in CASES])
def test_bad_input_gives_one_line_with_the_fix_and_changes_nothing(case, workspace, capsys):
    argv = case.setup(workspace)
    before = tree_digest(workspace.root)
    built_before = {name: tree_digest(path) for name, path in workspace.models.items()}
    capsys.readouterr()

    code = main(argv)

    err = capsys.readouterr().err
    command = argv[0]
    assert code == 2, err
    assert "Traceback" not in err
    last = err.rstrip("\n").splitlines()[-1]
    assert last.startswith(f"bridge {command}: error: "), err
    assert case.problem in last, last
    assert case.fix in last, last
    assert tree_digest(workspace.root) == before, "a source changed or something new appeared"
    assert {name: tree_digest(path) for name, path in workspace.models.items()} == built_before
    assert [name for name in os.listdir(os.path.join(workspace.root, "systmp"))
            if not name.startswith("__autograph_generated_file")] == []  # autograph's own files may appear


def test_allow_unsafe_ops_lets_a_trusted_model_through(workspace, capsys):
    """The override works, and what it lets through really runs (the graph reads the file the scan named)."""
    src = workspace.built("unsafe")
    os.makedirs(workspace.path("out"))
    dst = workspace.path("out", "converted")
    assert main(["convert", src, dst, "--no-verify", "--allow-unsafe-ops"]) == 0, capsys.readouterr().err
    assert main(["parity", src, dst, "--quiet", "--random", "2", "--allow-unsafe-ops"]) == 0
    assert main(["inspect", "--json", dst]) == 0
    assert '"op": "ReadFile"' in capsys.readouterr().out  # the converted model carries the op along


# -- images given to an adapter (Python API) --------------------------------------------------------------------


@pytest.fixture(scope="module")
def adapter():
    """An adapter that has already run on good batches of two sizes (so its traces are relaxed, as in real use)."""
    from bridge.conversion.tf1_to_tf2 import adapt

    adapter = adapt(module_path("convnet_bn"))
    for batch in (2, 5):
        adapter(np.zeros([batch, 32, 32, 3], np.float32))
        adapter.image_feature_vector(np.zeros([batch, 32, 32, 3], np.float32), training=True)
    return adapter


@pytest.mark.parametrize("images, problem, fix", [
    (np.zeros([32, 32, 3], np.float32), "32, 32, 3", "resize or batch them"),
    (np.zeros([2, 32, 32, 1], np.float32), "2, 32, 32, 1", "resize or batch them"),
    (np.zeros([2, 32, 32, 4], np.float32), "2, 32, 32, 4", "resize or batch them"),
    (np.zeros([2, 28, 28, 3], np.float32), "2, 28, 28, 3", "resize or batch them"),
    (np.zeros([2, 32, 32, 3], np.uint8), "dtype uint8", "convert with tf.image.convert_image_dtype"),
    (np.zeros([2, 32, 32, 3], np.float64), "dtype float64", "convert with tf.image.convert_image_dtype"),
    (np.array(["a", "b"]), "dtype string", "convert with tf.image.convert_image_dtype"),
], ids=["rank-3", "one-channel", "four-channels", "wrong-size", "uint8", "float64", "strings"])
def test_adapter_refuses_images_that_do_not_fit(adapter, images, problem, fix):
    from legacy.errors import InvalidInputError

    for call in (lambda: adapter(images), lambda: adapter.image_feature_vector(images, training=True)):
        with pytest.raises(InvalidInputError) as info:
            call()
        message = str(info.value)
        assert "\n" not in message and problem in message and fix in message, message


# -- real processes ---------------------------------------------------------------------------------------------


def _run(*argv, env=None):
    full_env = {k: v for k, v in os.environ.items() if k != "BRIDGE_DEBUG"}
    full_env.update(TF_CPP_MIN_LOG_LEVEL="3", **(env or {}))
    return subprocess.run([BRIDGE, *argv], capture_output=True, text=True, cwd=ROOT, env=full_env, timeout=300)


def test_real_process_missing_path_and_debug_traceback(tmp_path):
    proc = _run("inspect", str(tmp_path / "nope"))
    assert proc.returncode == 2
    assert proc.stderr == f"bridge inspect: error: {tmp_path / 'nope'}: no such file or directory; check the path\n"
    assert proc.stdout == ""
    debug = _run("inspect", str(tmp_path / "nope"), env={"BRIDGE_DEBUG": "1"})
    assert debug.returncode != 0
    assert "Traceback" in debug.stderr and "NotAModuleError: " in debug.stderr


def test_real_process_corrupt_module(tmp_path):
    src = copy_model(module_path("convnet_bn"), tmp_path / "src")
    truncate(os.path.join(src, "saved_model.pb"), lambda n: n // 2)
    before = tree_digest(tmp_path)
    proc = _run("convert", src, str(tmp_path / "out"), "--no-verify")
    assert proc.returncode == 2
    last = proc.stderr.rstrip("\n").splitlines()[-1]
    assert last.startswith("bridge convert: error: ") and "is corrupt or truncated" in last
    assert "Traceback" not in proc.stderr
    assert tree_digest(tmp_path) == before


def test_real_process_read_only_destination_parent(tmp_path):
    ws = Workspace(str(tmp_path), {})
    try:
        ws.read_only(ws.path("locked"))
        proc = _run("convert", module_path("convnet_bn"), ws.path("locked", "tf2"), "--no-verify")
    finally:
        ws.unlock()
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[-1] == (f"bridge convert: error: cannot write into {ws.path('locked')} "
                                            "(permission denied); choose a writable destination")
    assert os.listdir(ws.path("locked")) == []
