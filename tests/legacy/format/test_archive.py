"""legacy.format.archive: .tar.gz modules and cached TF Hub handles become local directories; hostile archives are refused.

Every refusal is checked for what matters: one line naming the member and the fix, nothing written outside the
extraction directory, and the temporary directory gone afterwards.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import socket
import tarfile
import tempfile

import pytest

from legacy.format import archive
from legacy.format.archive import extract_archive, resolve_model_path
from legacy.errors import BridgeError, ModelNotCachedError, ModuleFormatError, UnsafeArchiveError
from legacy.format.reader import read_module
from tests.corpus import module_path

HANDLE = "https://tfhub.dev/example/imagenet/convnet_bn/feature_vector/1"


@pytest.fixture(autouse=True)
def private_tmp(tmp_path, monkeypatch):
    """Temporary directories of the code under test go to tmp_path/systmp, so leftovers can be seen."""
    systmp = tmp_path / "systmp"
    systmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(systmp))
    yield systmp
    assert _ours(systmp) == [], "a temporary directory was left behind"


def _ours(directory) -> list:
    """Entries of `directory`, without the source files TensorFlow's autograph writes there while tracing."""
    return [name for name in os.listdir(directory) if not name.startswith("__autograph_generated_file")]


def pack_dir(directory, dst, prefix: str = ".") -> str:
    """A .tar.gz of `directory`'s contents, with member names under `prefix` (as `tar -czf dst -C directory .`)."""
    with tarfile.open(dst, "w:gz") as tar:
        tar.add(directory, arcname=prefix)
    return str(dst)


def pack_members(dst, members) -> str:
    """A .tar.gz of hand-made members: (TarInfo fields dict, data bytes or None)."""
    with tarfile.open(dst, "w:gz") as tar:
        for fields, data in members:
            info = tarfile.TarInfo(fields.pop("name"))
            for key, value in fields.items():
                setattr(info, key, value)
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return str(dst)


def test_module_archive_with_files_at_root(tmp_path):
    packed = pack_dir(module_path("convnet_bn"), tmp_path / "convnet_bn.tar.gz")
    with resolve_model_path(packed) as path:
        assert read_module(path).expected_image_size() == (32, 32)
        extracted = path
    assert not os.path.exists(extracted)


def test_archive_holding_one_model_directory(tmp_path):
    packed = pack_dir(module_path("classifier_assets"), tmp_path / "m.tgz", prefix="classifier_assets")
    with resolve_model_path(packed) as path:
        assert os.path.basename(path) == "classifier_assets"
        assert read_module(path).asset_files() == ["labels.txt"]


def test_archive_recognised_by_content_without_suffix(tmp_path):
    packed = pack_dir(module_path("convnet_bn"), tmp_path / "download")
    with resolve_model_path(packed) as path:
        assert os.path.isfile(os.path.join(path, "tfhub_module.pb"))


def test_directories_and_objects_pass_through(tmp_path):
    with resolve_model_path(module_path("convnet_bn")) as path:
        assert path == module_path("convnet_bn")
    marker = object()
    with resolve_model_path(marker) as same:
        assert same is marker


def test_links_inside_the_archive_are_kept(tmp_path):
    packed = pack_members(tmp_path / "links.tar.gz", [
        ({"name": "saved_model.pb"}, b""),
        ({"name": "assets", "type": tarfile.DIRTYPE}, None),
        ({"name": "assets/labels.txt"}, b"cat\n"),
        ({"name": "assets/alias.txt", "type": tarfile.SYMTYPE, "linkname": "labels.txt"}, None),
        ({"name": "assets/copy.txt", "type": tarfile.LNKTYPE, "linkname": "assets/labels.txt"}, None),
    ])
    with resolve_model_path(packed) as path:
        assert open(os.path.join(path, "assets", "alias.txt")).read() == "cat\n"
        assert open(os.path.join(path, "assets", "copy.txt")).read() == "cat\n"
        assert not os.path.islink(os.path.join(path, "assets", "copy.txt"))


@pytest.mark.parametrize("members, problem", [
    ([({"name": "/tmp/evil.txt"}, b"x")], "'/tmp/evil.txt' has an absolute path"),
    ([({"name": "../evil.txt"}, b"x")], "'../evil.txt' has '..' in its path"),
    ([({"name": "assets/../../evil.txt"}, b"x")], "has '..' in its path"),
    ([({"name": "escape", "type": tarfile.SYMTYPE, "linkname": "/etc"}, None)], "is a link to '/etc', outside"),
    ([({"name": "escape", "type": tarfile.SYMTYPE, "linkname": "../.."}, None)], "is a link to '../..', outside"),
    ([({"name": "a/b", "type": tarfile.SYMTYPE, "linkname": "c/../.."}, None)], "outside its directory"),
    ([({"name": "escape", "type": tarfile.LNKTYPE, "linkname": "/etc/passwd"}, None)], "has an absolute path"),
    ([({"name": "hard", "type": tarfile.LNKTYPE, "linkname": "later.txt"}, None), ({"name": "later.txt"}, b"x")],
     "is a hard link to 'later.txt', which is not a file extracted before it"),
    ([({"name": "null", "type": tarfile.CHRTYPE, "devmajor": 1, "devminor": 3}, None)], "is a device file"),
    ([({"name": "disk", "type": tarfile.BLKTYPE, "devmajor": 8, "devminor": 0}, None)], "is a device file"),
    ([({"name": "pipe", "type": tarfile.FIFOTYPE}, None)], "is a FIFO"),
    ([({"name": "saved_model.pb"}, b"a"), ({"name": "./saved_model.pb"}, b"b")], "appears twice"),
    ([({"name": "dir", "type": tarfile.SYMTYPE, "linkname": "."}, None), ({"name": "dir/x"}, b"1"),
      ({"name": "x"}, b"2")], "would replace an entry extracted before it"),
])
def test_hostile_members_are_refused(tmp_path, members, problem):
    packed = pack_members(tmp_path / "evil.tar.gz", members)
    with pytest.raises(UnsafeArchiveError) as info:
        with resolve_model_path(packed):
            pass
    message = str(info.value)
    assert problem in message and "\n" not in message
    assert "refused before extracting it" in message
    assert "re-create" in message or "sources you trust" in message
    assert sorted(os.listdir(tmp_path)) == ["evil.tar.gz", "systmp"]
    assert not os.path.exists("/tmp/evil.txt")


def test_size_limit(tmp_path, monkeypatch):
    packed = pack_members(tmp_path / "big.tar.gz", [({"name": "saved_model.pb"}, b"\0" * 600),
                                                      ({"name": "variables.data"}, b"\0" * 600)])
    monkeypatch.setenv(archive.MAX_BYTES_ENV, "1000")
    with pytest.raises(UnsafeArchiveError, match="'variables.data' takes the archive beyond 1000 bytes when "
                                                 f"extracted; .* raise the limit with {archive.MAX_BYTES_ENV}="):
        with resolve_model_path(packed):
            pass
    monkeypatch.setenv(archive.MAX_BYTES_ENV, "1200")
    with resolve_model_path(packed) as path:
        assert os.path.getsize(os.path.join(path, "variables.data")) == 600
    monkeypatch.setenv(archive.MAX_BYTES_ENV, "lots")
    with pytest.raises(BridgeError, match="is not a positive number of bytes; set it to e.g."):
        with resolve_model_path(packed):
            pass


def test_compression_bomb_is_stopped_by_the_declared_size(tmp_path):
    """256 MiB of zeros compress to about 1 MiB; the member's header alone is enough to refuse it."""
    dst = tmp_path / "bomb.tar.gz"
    with tarfile.open(dst, "w:gz", compresslevel=1) as tar:
        info = tarfile.TarInfo("saved_model.pb")
        info.size = 256 << 20

        class Zeros(io.RawIOBase):
            def readinto(self, buffer):
                buffer[:] = bytes(len(buffer))
                return len(buffer)

        tar.addfile(info, Zeros())
    assert dst.stat().st_size < (256 << 20) // 100
    with pytest.raises(UnsafeArchiveError, match="beyond 104857600 bytes"):
        extract_archive(str(dst), str(tmp_path / "systmp"), max_bytes=100 << 20)
    assert _ours(tmp_path / "systmp") == []


def test_oversized_extended_header(tmp_path):
    """A pax header is metadata tarfile reads into memory whole: a huge one is refused before it is read."""
    dst = tmp_path / "pax.tar.gz"
    with tarfile.open(dst, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("saved_model.pb")
        info.pax_headers = {"comment": "x" * (2 << 20)}
        tar.addfile(info, io.BytesIO(b""))
    with pytest.raises(UnsafeArchiveError, match=r"an extended header of \d+ bytes precedes member .*refused before "
                                                 "reading it: re-create the archive"):
        with resolve_model_path(str(dst)):
            pass


def test_too_many_members(tmp_path, monkeypatch):
    monkeypatch.setattr(archive, "MAX_MEMBERS", 3)
    packed = pack_members(tmp_path / "many.tar.gz", [({"name": f"f{i}"}, b"") for i in range(4)])
    with pytest.raises(UnsafeArchiveError, match="'f3' is beyond the limit of 3 archive entries"):
        with resolve_model_path(packed):
            pass


@pytest.mark.parametrize("damage, problem", [
    (lambda data: b"this is not an archive" * 10, "is not a readable tar or .tar.gz archive"),
    (lambda data: data[:len(data) // 2], "is not a readable tar or .tar.gz archive, or it is truncated"),
])
def test_corrupt_archives(tmp_path, damage, problem):
    packed = pack_dir(module_path("convnet_bn"), tmp_path / "m.tar.gz")
    with open(packed, "rb") as f:
        data = f.read()
    with open(packed, "wb") as f:
        f.write(damage(data))
    with pytest.raises(ModuleFormatError, match=problem + ".*; re-download it"):
        with resolve_model_path(packed):
            pass


def test_archive_without_a_model(tmp_path):
    packed = pack_members(tmp_path / "docs.tar.gz", [({"name": "README.md"}, b"hello")])
    with pytest.raises(ModuleFormatError, match="holds no model: neither tfhub_module.pb nor saved_model.pb at its "
                                                "root; pack the model directory's contents"):
        with resolve_model_path(packed):
            pass


def test_errors_about_extracted_files_name_the_archive(tmp_path):
    work = tmp_path / "work"
    shutil.copytree(module_path("convnet_bn"), work)
    (work / "saved_model.pb").write_bytes(b"\xff" * 64)
    packed = pack_dir(work, tmp_path / "broken.tar.gz")
    with pytest.raises(ModuleFormatError) as info:
        with resolve_model_path(packed) as path:
            read_module(path)
    assert str(info.value).startswith(f"{packed}:saved_model.pb is corrupt or truncated")


def test_inspect_an_archive_like_its_directory(tmp_path, capsys):
    from bridge.cli import main

    packed = pack_dir(module_path("convnet_refvars"), tmp_path / "refvars.tar.gz")
    assert main(["inspect", "--json", packed]) == 0
    from_archive = json.loads(capsys.readouterr().out)
    assert main(["inspect", "--json", module_path("convnet_refvars")]) == 0
    from_directory = json.loads(capsys.readouterr().out)
    assert from_archive.pop("path") == packed
    from_directory.pop("path")
    assert from_archive == from_directory


def test_convert_an_archive(tmp_path, capsys):
    from bridge.cli import main

    packed = pack_dir(module_path("classifier_assets"), tmp_path / "m.tar.gz")
    assert main(["convert", packed, str(tmp_path / "tf2")]) == 0
    assert os.path.isfile(tmp_path / "tf2" / "saved_model.pb")


# -- handles ------------------------------------------------------------------------------------------------------


@pytest.fixture
def offline(monkeypatch):
    """Any attempt to open a network connection fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError("tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A TF Hub cache laid out as tensorflow_hub 0.16 writes it: <cache>/<sha1(handle)>/ plus a descriptor."""
    root = tmp_path / "hub_cache"
    root.mkdir()
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(root))
    monkeypatch.delenv("TFHUB_MODEL_LOAD_FORMAT", raising=False)

    def add(handle: str, model: str) -> str:
        entry = root / hashlib.sha1(handle.encode("utf8")).hexdigest()
        shutil.copytree(model, entry)
        (root / (entry.name + ".descriptor.txt")).write_text(f"Module: {handle}\n")
        return str(entry)

    return add


def test_cached_handle_resolves_offline_through_tensorflow_hub(cache, offline):
    import tensorflow_hub as hub

    entry = cache(HANDLE, module_path("convnet_bn"))
    assert hub.resolve(HANDLE) == entry  # the layout is the one tensorflow_hub itself reads
    with resolve_model_path(HANDLE) as path:
        assert path == entry
        assert read_module(path).expected_image_size() == (32, 32)
    assert os.path.isdir(entry)  # the cache is never cleaned up by us


def test_inspect_a_cached_handle(cache, offline, capsys):
    from bridge.cli import main

    entry = cache(HANDLE, module_path("convnet_bn"))
    assert main(["inspect", "--json", HANDLE]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["path"] == HANDLE and report["resolved_path"] == entry
    assert report["expected_image_size"] == [32, 32]


def test_handle_not_in_cache(cache, offline, tmp_path):
    cache("https://tfhub.dev/example/other/1", module_path("convnet_bn"))
    os.mkdir(archive.cached_handle_dir(HANDLE))  # an empty entry is an unfinished download, as for hub
    with pytest.raises(ModelNotCachedError) as info:
        with resolve_model_path(HANDLE):
            pass
    message = str(info.value)
    assert message.startswith(f"{HANDLE} is not in the TF Hub cache ({tmp_path / 'hub_cache'}) and the bridge does "
                              "not download; fetch it once")
    assert "hub.resolve(" in message and "\n" not in message


@pytest.mark.parametrize("handle, env, problem", [
    ("gs://bucket/model", {}, "is a cloud storage directory, which is read over the network"),
    (HANDLE, {"TFHUB_MODEL_LOAD_FORMAT": "UNCOMPRESSED"}, "TFHUB_MODEL_LOAD_FORMAT=UNCOMPRESSED makes"),
])
def test_handles_that_would_need_the_network(cache, offline, monkeypatch, handle, env, problem):
    cache(handle, module_path("convnet_bn"))
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ModelNotCachedError, match=problem):
        with resolve_model_path(handle):
            pass
