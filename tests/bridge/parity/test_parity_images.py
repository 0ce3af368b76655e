"""Parity inputs: image files of every format and mode, arrays, seeded random images, streamed as batches.

Test images are made in code from known pixels (PNG and JPEG with TensorFlow's encoders, BMP and GIF written byte
by byte below), so the expected float values follow from the image input convention: RGB, value / max in [0, 1].
The real photographs must come out as the genuine library's golden inputs were made (on another machine: within
RECORDED_OUTPUTS of tests/tolerances.py).
"""

from __future__ import annotations

import os
import struct

import numpy as np
import pytest
import tensorflow as tf

from bridge.parity import images as images_module
from bridge.parity.images import collect_inputs, list_image_files, load_image, parse_image_size, parse_val_range
from legacy.errors import InvalidInputError
from tests.corpus import IMAGES_DIR, MODULES, golden_arrays
from tests.tolerances import RECORDED_OUTPUTS, assert_close

# The order of the photographs in the golden inputs (testdata/README.md, "Inputs").
GOLDEN_PHOTOS = ("astronaut.png", "chelsea.png", "camera.png", "horse.png")


def _pixels(shape, seed=0, dtype=np.uint8):
    return np.random.default_rng(seed).integers(0, np.iinfo(dtype).max + 1, shape, dtype=dtype)


def _bmp(pixels: np.ndarray) -> bytes:
    """An uncompressed BMP (BITMAPINFOHEADER): 24-bit from RGB pixels, 32-bit from RGBA."""
    height, width, channels = pixels.shape
    order = [2, 1, 0] + ([3] if channels == 4 else [])  # stored as BGR(A), bottom row first, rows padded to 4
    pad = b"\0" * ((-width * channels) % 4)
    data = b"".join(row[:, order].tobytes() + pad for row in pixels[::-1])
    dib = struct.pack("<IiiHHIIiiII", 40, width, height, 1, channels * 8, 0, len(data), 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + 40 + len(data), 0, 0, 54) + dib + data


def _gif(palette: np.ndarray, frames: list) -> bytes:
    """A GIF89a with a 256-colour global palette; each frame is LZW-coded with 9-bit literal codes only."""
    height, width = frames[0].shape
    data = b"GIF89a" + struct.pack("<HHBBB", width, height, 0xF7, 0, 0) + palette.astype(np.uint8).tobytes()
    for frame in frames:
        data += b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0) + _lzw_literals(frame.ravel())
    return data + b"\x3b"


def _lzw_literals(indices) -> bytes:
    # A clear code (256) every 250 literals keeps the decoder's code width at 9 bits; 257 ends the data.
    codes, run = [256], 0
    for index in indices:
        if run == 250:
            codes, run = codes + [256], 0
        codes.append(int(index))
        run += 1
    codes.append(257)
    packed, bits, count = bytearray(), 0, 0
    for code in codes:
        bits |= code << count
        count += 9
        while count >= 8:
            packed.append(bits & 0xFF)
            bits, count = bits >> 8, count - 8
    if count:
        packed.append(bits & 0xFF)
    blocks = b"".join(bytes([len(packed[i:i + 255])]) + bytes(packed[i:i + 255]) for i in range(0, len(packed), 255))
    return bytes([8]) + blocks + b"\0"


def _write(path, data: bytes) -> str:
    with open(path, "wb") as f:
        f.write(data)
    return str(path)


def _rgb(pixels: np.ndarray, maximum: float) -> np.ndarray:
    """What the convention says a decoded image becomes: gray repeated, alpha dropped, value / max."""
    if pixels.shape[-1] in (1, 2):
        pixels = np.repeat(pixels[..., :1], 3, axis=-1)
    return pixels[..., :3].astype(np.float64) / maximum


LOSSLESS = [
    ("png_gray", lambda p: tf.io.encode_png(p).numpy(), (9, 13, 1), np.uint8),
    ("png_gray_alpha", lambda p: tf.io.encode_png(p).numpy(), (9, 13, 2), np.uint8),
    ("png_rgb", lambda p: tf.io.encode_png(p).numpy(), (9, 13, 3), np.uint8),
    ("png_rgba", lambda p: tf.io.encode_png(p).numpy(), (9, 13, 4), np.uint8),
    ("png16_gray", lambda p: tf.io.encode_png(p).numpy(), (9, 13, 1), np.uint16),
    ("png16_rgb", lambda p: tf.io.encode_png(p).numpy(), (9, 13, 3), np.uint16),
    ("bmp_rgb", _bmp, (9, 13, 3), np.uint8),
    ("bmp_rgba", _bmp, (9, 13, 4), np.uint8),
]


@pytest.mark.parametrize("name,encode,shape,dtype", LOSSLESS, ids=[c[0] for c in LOSSLESS])
def test_lossless_images_decode_to_rgb_in_0_1(tmp_path, name, encode, shape, dtype):
    pixels = _pixels(shape, dtype=dtype)
    extension = ".bmp" if name.startswith("bmp") else ".png"
    path = _write(tmp_path / f"{name}{extension}", encode(pixels))
    image = load_image(path, None)
    assert image.dtype == np.float32 and image.shape == shape[:2] + (3,)
    np.testing.assert_allclose(image, _rgb(pixels, np.iinfo(dtype).max), rtol=0, atol=1e-7)


def test_gif_gives_its_first_frame(tmp_path):
    palette = _pixels((256, 3), seed=1)
    first, second = _pixels((11, 17), seed=2), _pixels((11, 17), seed=3)
    path = _write(tmp_path / "animated.gif", _gif(palette, [first, second]))
    np.testing.assert_allclose(load_image(path, None), palette[first] / 255.0, rtol=0, atol=1e-7)


@pytest.mark.parametrize("channels", [1, 3])
def test_jpeg_gray_and_color(tmp_path, channels):
    # A smooth gradient survives JPEG closely; gray JPEGs become three equal channels.
    y, x = np.mgrid[0:16, 0:24]
    base = (x * 8 + y * 2).astype(np.uint8)  # 0..214: no wrap-around
    pixels = np.stack([base, 255 - base, base // 2][:channels], axis=-1)
    path = _write(tmp_path / "image.jpg", tf.io.encode_jpeg(pixels, quality=100).numpy())
    image = load_image(path, None)
    assert image.shape == (16, 24, 3) and 0 <= image.min() and image.max() <= 1
    error = np.abs(image - _rgb(pixels, 255))  # lossy (chroma subsampling), but channels in RGB order
    assert error.mean() < 0.01 and error.max() < 0.1
    if channels == 1:
        assert np.array_equal(image[..., 0], image[..., 1]) and np.array_equal(image[..., 0], image[..., 2])


def test_images_are_resized_to_the_requested_size(tmp_path):
    path = _write(tmp_path / "image.png", tf.io.encode_png(_pixels((20, 30, 3))).numpy())
    assert load_image(path, (7, 9)).shape == (7, 9, 3)


@pytest.mark.numerics
@pytest.mark.parametrize("name", MODULES)
def test_photographs_and_random_images_are_the_golden_inputs(name):
    golden = golden_arrays(name)["inputs/images"]  # 4 photos resized to the module's size, then 2 random images
    inputs = collect_inputs([os.path.join(IMAGES_DIR, f) for f in GOLDEN_PHOTOS], random=2, seed=0,
                            image_size=golden.shape[1:3], batch_size=4)
    fed = np.concatenate([batch.images for batch in inputs.batches()])
    np.testing.assert_array_equal(fed[4:], golden[4:])  # the random images: numpy's generator, exact anywhere
    assert_close(fed[:4], golden[:4], RECORDED_OUTPUTS, "photographs decoded and resized")


def test_folders_are_searched_recursively_and_non_images_are_skipped(tmp_path):
    png = tf.io.encode_png(_pixels((4, 4, 3))).numpy()
    _write(tmp_path / "b.png", png)
    os.makedirs(tmp_path / "sub")
    _write(tmp_path / "sub" / "a.PNG", png)
    _write(tmp_path / "notes.md", b"not an image")
    files, skipped = list_image_files(str(tmp_path))
    assert files == [str(tmp_path / "b.png"), str(tmp_path / "sub" / "a.PNG")]
    assert skipped == [str(tmp_path / "notes.md")]
    inputs = collect_inputs(str(tmp_path), image_size=(4, 4))
    assert inputs.describe()["skipped_files"] == skipped and len(inputs) == 2


def test_the_real_photographs_folder_loads(tmp_path):
    inputs = collect_inputs(IMAGES_DIR, image_size=(24, 40), batch_size=3)
    batches = list(inputs.batches())
    assert [len(b.images) for b in batches] == [3, 1]
    assert [os.path.basename(n) for b in batches for n in b.names] == sorted(GOLDEN_PHOTOS)
    assert all(b.images.shape[1:] == (24, 40, 3) for b in batches)


@pytest.mark.parametrize("data,match", [
    (b"hello, world", "not a JPEG, PNG, GIF or BMP image"),
    (b"\x89PNG\r\n\x1a\n" + b"\0" * 20, "cannot decode the image"),
])
def test_broken_image_files_are_refused_naming_the_file(tmp_path, data, match):
    path = _write(tmp_path / "broken.png", data)
    with pytest.raises(InvalidInputError, match=match) as e:
        list(collect_inputs(path, image_size=(4, 4)).batches())
    assert path in str(e.value)


def test_bad_paths_are_refused(tmp_path):
    with pytest.raises(InvalidInputError, match="no such file or directory"):
        collect_inputs(str(tmp_path / "missing"))
    os.makedirs(tmp_path / "empty")
    with pytest.raises(InvalidInputError, match="no image files"):
        collect_inputs(str(tmp_path / "empty"))
    with pytest.raises(InvalidInputError, match="no input images"):
        collect_inputs(None)


# -- arrays ------------------------------------------------------------------------------------------------------


def test_npy_and_npz_arrays_are_fed_as_they_are(tmp_path):
    rng = np.random.default_rng(0)
    first, second = rng.uniform(size=(7, 5, 6, 3)), rng.uniform(size=(5, 6, 3)).astype(np.float32)
    np.save(tmp_path / "batch.npy", first)  # float64: fed as float32
    np.savez_compressed(tmp_path / "more.npz", x=first[:2], y=second)
    inputs = collect_inputs([str(tmp_path / "batch.npy"), str(tmp_path / "more.npz")], image_size=(5, 6),
                            batch_size=3)
    batches = list(inputs.batches())
    assert [len(b.images) for b in batches] == [3, 3, 3, 1]
    fed = np.concatenate([b.images for b in batches])
    np.testing.assert_array_equal(fed, np.concatenate([first, first[:2], second[None]]).astype(np.float32))
    assert batches[-1].names == [f"{tmp_path / 'more.npz'}:y[0]"]
    assert inputs.describe()["array_images"] == 10


def test_npz_members_are_read_in_chunks(tmp_path):
    array = np.random.default_rng(1).uniform(size=(7, 4, 4, 3)).astype(np.float32)
    np.savez(tmp_path / "big.npz", images=array)
    chunks = list(images_module.read_npz_member(str(tmp_path / "big.npz"), "images", 3))
    assert [len(c) for c in chunks] == [3, 3, 1]
    np.testing.assert_array_equal(np.concatenate(chunks), array)


def test_in_memory_arrays_and_tensors():
    array = np.random.default_rng(2).uniform(size=(3, 4, 4, 3)).astype(np.float32)
    inputs = collect_inputs([array, tf.constant(array[0])], image_size=(4, 4), batch_size=8)
    (batch,) = list(inputs.batches())
    np.testing.assert_array_equal(batch.images, np.concatenate([array, array[:1]]))


@pytest.mark.parametrize("array,match", [
    (np.zeros((2, 4, 4, 3), np.uint8), "dtype uint8"),
    (np.zeros((2, 4, 4), np.float32), "not a batch of RGB images"),
    (np.zeros((2, 4, 4, 1), np.float32), "not a batch of RGB images"),
    (np.zeros((2, 5, 4, 3), np.float32), "arrays are never resized"),
])
def test_bad_arrays_are_refused_with_the_fix(tmp_path, array, match):
    np.save(tmp_path / "bad.npy", array)
    with pytest.raises(InvalidInputError, match=match):
        collect_inputs(str(tmp_path / "bad.npy"), image_size=(4, 4))
    with pytest.raises(InvalidInputError, match=match):
        collect_inputs(array, image_size=(4, 4))


def test_corrupt_npz_is_refused(tmp_path):
    path = _write(tmp_path / "bad.npz", b"PK\x03\x04 not really a zip")
    with pytest.raises(InvalidInputError, match="not a readable .npz"):
        collect_inputs(path)


# -- random images and batching ------------------------------------------------------------------------------------


def _all(inputs) -> np.ndarray:
    return np.concatenate([b.images for b in inputs.batches()])


def test_random_images_are_seeded_in_range_and_independent_of_the_batch_size():
    one = _all(collect_inputs(random=5, seed=3, val_range=(-1, 2), image_size=(4, 6), batch_size=1))
    five = _all(collect_inputs(random=5, seed=3, val_range=(-1, 2), image_size=(4, 6), batch_size=5))
    np.testing.assert_array_equal(one, five)
    assert one.shape == (5, 4, 6, 3) and -1 <= one.min() and one.max() < 2
    expected = np.random.default_rng(3).uniform(-1, 2, (5, 4, 6, 3)).astype(np.float32)
    np.testing.assert_array_equal(one, expected)
    assert not np.array_equal(one, _all(collect_inputs(random=5, seed=4, val_range=(-1, 2), image_size=(4, 6))))


def test_sources_are_mixed_into_full_batches_in_order(tmp_path):
    paths = [_write(tmp_path / f"{i}.png", tf.io.encode_png(_pixels((4, 4, 3), seed=i)).numpy()) for i in range(3)]
    array = np.random.default_rng(5).uniform(size=(4, 4, 4, 3)).astype(np.float32)
    inputs = collect_inputs(paths + [array], random=3, image_size=(4, 4), batch_size=4)
    batches = list(inputs.batches())
    assert [len(b.images) for b in batches] == [4, 4, 2] and [b.start for b in batches] == [0, 4, 8]
    assert batches[0].names == paths + ["array[0]"]
    fed = np.concatenate([b.images for b in batches])
    np.testing.assert_array_equal(fed[3:7], array)
    np.testing.assert_array_equal(fed[7:], np.random.default_rng(0).uniform(0, 1, (3, 4, 4, 3)).astype(np.float32))


def test_images_are_loaded_one_batch_at_a_time(tmp_path, monkeypatch):
    paths = [_write(tmp_path / f"{i}.png", tf.io.encode_png(_pixels((4, 4, 3), seed=i)).numpy()) for i in range(7)]
    loaded = []
    real = images_module.load_image
    monkeypatch.setattr(images_module, "load_image", lambda path, size: loaded.append(path) or real(path, size))
    batches = collect_inputs(paths, image_size=(4, 4), batch_size=2).batches()
    next(batches)
    assert loaded == paths[:2]
    next(batches)
    assert loaded == paths[:4]


def test_size_and_range_options():
    assert parse_image_size("224x160") == (224, 160) and parse_image_size("24,40") == (24, 40)
    assert parse_val_range("-1,1") == (-1.0, 1.0)
    for bad in ("224", "0x5", "axb"):
        with pytest.raises(InvalidInputError, match="HEIGHTxWIDTH"):
            parse_image_size(bad)
    with pytest.raises(InvalidInputError, match="LOW,HIGH"):
        parse_val_range("1")
    with pytest.raises(InvalidInputError, match="LOW < HIGH"):
        collect_inputs(random=2, val_range=(1, 1), image_size=(4, 4))
    with pytest.raises(InvalidInputError, match="need an image size"):
        list(collect_inputs(random=2).batches())
