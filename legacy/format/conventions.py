"""The conventions both formats share, in one place: file names, format detection, graph-variant tags, image
signature names and kinds, and the image-size grammar. Every layer (format, engine, hub, and `bridge`) uses these;
none defines its own.

    is_tf1_hub_module(path), is_tf2_saved_model(path), is_model_directory(path)   # cheap file tests
    TRAIN_TAGS, tag_label(TRAIN_TAGS)                                             # frozenset({"train"}), "{train}"
    KINDS["classification"]                                                       # "image_classification"
    parse_image_size("224x160")                                                   # (224, 160)
    expected_image_size(recorded, lambda: [None, 224, 160, 3])                    # (224, 160) when none recorded
    variable_name(var), unique_variable_names(["kernel", "kernel"])               # "conv/kernel", [.., "kernel_1"]
"""

from __future__ import annotations

import numbers
import os
import re
from typing import Callable, Iterable

from legacy.errors import InvalidInputError, NotAModuleError, spell

# -- files -------------------------------------------------------------------------------------------------------
MODULE_DEF_FILENAME = "tfhub_module.pb"  # a directory is a TF1 Hub module exactly when it holds this file
SAVED_MODEL_FILENAME = "saved_model.pb"
SAVED_MODEL_TEXT_FILENAME = "saved_model.pbtxt"
FINGERPRINT_FILENAME = "fingerprint.pb"  # a TF2 SavedModel's hash of saved_model.pb (stale once that changes)
# A TF2 checkpoint's entry holding its object graph, and the attribute name of a variable's value in it.
OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"
VARIABLE_VALUE = "VARIABLE_VALUE"

# The files that make a directory a model (a TF1 Hub module holds both).
MODEL_FILENAMES = (MODULE_DEF_FILENAME, SAVED_MODEL_FILENAME)

# -- graph variants ----------------------------------------------------------------------------------------------
INFERENCE_TAGS = frozenset()
TRAIN_TAGS = frozenset({"train"})  # the training variant, by the convention of the published modules

# -- image signatures --------------------------------------------------------------------------------------------
DEFAULT_SIGNATURE = "default"
IMAGE_INPUT_KEY = "images"
IMAGE_MODULE_INFO_KEY = "image_module_info"
SERVING_DEFAULT = "serving_default"  # a TF2 SavedModel's default serving signature
# The kind of an image model (`--kind`) and the TF1 signature that carries it besides `default`.
KINDS = {"feature_vector": "image_feature_vector", "classification": "image_classification"}


def is_tf1_hub_module(path: str) -> bool:
    """The cheap format test: a TF1 Hub module is a directory holding `tfhub_module.pb`."""
    return os.path.isfile(os.path.join(path, MODULE_DEF_FILENAME))


def holds_saved_model(path: str) -> bool:
    """A directory holding `saved_model.pb`: a TF2 SavedModel, or a TF1 Hub module (which holds one too)."""
    return os.path.isfile(os.path.join(path, SAVED_MODEL_FILENAME))


def is_tf2_saved_model(path: str) -> bool:
    """A SavedModel directory that is not a TF1 Hub module (which holds a `saved_model.pb` too)."""
    return holds_saved_model(path) and not is_tf1_hub_module(path)


def holds_model(path: str) -> bool:
    """A directory holding one of `MODEL_FILENAMES`: a TF1 Hub module or a binary TF2 SavedModel (what an archive
    must hold at its root)."""
    return any(os.path.isfile(os.path.join(path, name)) for name in MODEL_FILENAMES)


# What a TF1 Hub module or a TF2 SavedModel holds at its top level (every writer of either format, TensorFlow's,
# tf-keras's and this project's): a folder holding anything else holds someone's files besides a model.
MODEL_ENTRIES = frozenset({MODULE_DEF_FILENAME, SAVED_MODEL_FILENAME, SAVED_MODEL_TEXT_FILENAME,
                           FINGERPRINT_FILENAME, "keras_metadata.pb", "variables", "assets", "assets.extra"})


def foreign_entries(path: str) -> list:
    """The entries of directory `path` that are not part of a model: top-level names outside `MODEL_ENTRIES`, a
    `variables` or a model file that is not of the kind its name says, and files in `variables/` other than a
    checkpoint's index and data shards. Empty for a model directory (or an empty one)."""
    foreign = []
    for name in sorted(os.listdir(path)):
        full = os.path.join(path, name)
        is_dir = os.path.isdir(full) and not os.path.islink(full)
        if name not in MODEL_ENTRIES or is_dir != (name in ("variables", "assets", "assets.extra")):
            foreign.append(name + ("/" if is_dir else ""))
        elif name == "variables":
            foreign += [f"variables/{entry}" for entry in sorted(os.listdir(full))
                        if entry != "variables.index" and not re.fullmatch(r"variables\.data-\d+-of-\d+", entry)]
    return foreign


def is_model_directory(path: str) -> bool:
    """A directory holding a TF1 Hub module or a TF2 SavedModel, also one written as text (the only folders
    `--force` may replace)."""
    return holds_model(path) or os.path.isfile(os.path.join(path, SAVED_MODEL_TEXT_FILENAME))


def require_directory(path: str, what: str = "a model", holds: str = SAVED_MODEL_FILENAME) -> str:
    """`path` when it is a directory, else the one error for a missing path or a file where a model directory
    belongs (`what` names what was expected, `holds` the file such a directory holds)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise NotAModuleError(f"{path}: no such file or directory; check the path")
    if not os.path.isdir(path):
        raise NotAModuleError(f"{path} is a file, but {what} is a directory; pass the directory that holds {holds}, "
                              "or a .tar.gz archive of it")
    return path


def tag_label(tags: Iterable[str]) -> str:
    """The one printable name of a tag set: `{}` for the inference variant, `{train}`, `{a, b}`."""
    tags = sorted(tags)
    return "{" + ", ".join(tags) + "}" if tags else "{}"


def kind_fix() -> str:
    """How to name a kind, spelled for the caller: `kind='feature_vector' or kind='classification'` in Python,
    `--kind feature_vector or --kind classification` inside `bridge.cli`."""
    return spell(" or ".join(f"kind={k!r}" for k in KINDS), " or ".join(f"--kind {k}" for k in KINDS))


def kind_of_signature(name: str) -> str | None:
    """"classification" for `image_classification`, "feature_vector" for `image_feature_vector`, else None."""
    return next((kind for kind, signature in KINDS.items() if signature == name), None)


# -- variable names ----------------------------------------------------------------------------------------------


def variable_name(var) -> str:
    """A TensorFlow variable's name without its output suffix (`conv/kernel:0` -> `conv/kernel`): the checkpoint name
    of a TF1 module's variable, and the base of the names given to a TF2 model's variables."""
    return var.name.split(":")[0]


def unique_variable_names(names: Iterable[str]) -> list:
    """Checkpoint names for TF2 variable names (':0' already stripped), in order: a repeated name gets `_1`, `_2`...

    TF2 names need not be unique (Keras 3: "kernel", "kernel", ...). The converter, the shim and the parity
    harness all name variables this way, so a TF2 model and the TF1 module made from it match by name.
    """
    result, used = [], set()
    for base in names:
        base = base or "variable"
        name, k = base, 1
        while name in used:
            name, k = f"{base}_{k}", k + 1
        used.add(name)
        result.append(name)
    return result


# -- image size --------------------------------------------------------------------------------------------------


def attached_image_size(info) -> tuple | None:
    """(height, width) from an `ImageModuleInfo` (the `image_module_info` attachment) when it sets both, else None
    (the legacy lookup ignores an attachment with a zero size)."""
    if info is not None and info.default_image_size.height and info.default_image_size.width:
        return info.default_image_size.height, info.default_image_size.width
    return None


def static_image_size(shape) -> tuple | None:
    """(height, width) of a static image shape [batch, height, width, channels] (None or 0 where unknown; the
    shape None when the rank is unknown), or None when it does not give both."""
    if shape is None or len(shape) != 4 or not shape[1] or not shape[2]:
        return None
    return shape[1], shape[2]


def static_num_channels(shape) -> int | None:
    """The channel count of a static image shape [batch, height, width, channels] (as `static_image_size` takes
    it), or None when it does not give it: the only source the legacy lookup reads."""
    if shape is None or len(shape) != 4 or not shape[3]:
        return None
    return shape[3]


def expected_image_size(recorded, input_shape: Callable[[], object]) -> tuple | None:
    """The one rule, in both formats, for the size of the images a model expects: the size it records (a TF1
    module's `image_module_info` when it sets both sizes, see `attached_image_size`; the bridge metadata of a
    converted TF2 model), else the static height and width of its image input (`static_image_size` of
    `input_shape()`, called only then: looking the input up may fail); None when neither says."""
    if recorded:
        return tuple(recorded)
    return static_image_size(input_shape())


_SIZE = re.compile(r"\s*(\d+)\s*[xX,]\s*(\d+)\s*")


def parse_image_size(value, name: str | None = None) -> tuple | None:
    """`"224x160"`, `"224,160"` or `(224, 160)` -> (224, 160); None stays None. The one image-size grammar of the
    command line (`--image-size HxW`) and the Python API (`image_size=(h, w)`).

    Anything else (`(224,)`, `("a", "b")`, `(0, 10)`, `(224.5, 224)`, `"0x10"`) is an `InvalidInputError` naming
    the parameter as the caller spelled it: `name` when given (`"--image-size"` or `"image_size"`), else the
    spelling of the caller (`legacy.errors.spell`: the command line's inside `bridge.cli`).
    """
    if value is None:
        return None
    if isinstance(value, str):
        match = _SIZE.fullmatch(value)
        size = (int(match.group(1)), int(match.group(2))) if match else None
    elif isinstance(value, (tuple, list)) and len(value) == 2 and all(
            isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in value):
        size = (int(value[0]), int(value[1]))
    else:
        size = None
    if size is not None and min(size) > 0:
        return size
    cli = name.startswith("-") if name else spell("python", "cli") == "cli"
    if cli or isinstance(value, str):
        flag = name if name and cli else "--image-size"
        given, example = (f"{flag} {value!r}", f"{flag} 224x224") if cli else (
            f"{name or 'image_size'}={value!r}", f"{name or 'image_size'}=(224, 224)")
        raise InvalidInputError(f"{given} is not HEIGHTxWIDTH with both at least 1; pass e.g. {example}")
    param = name or "image_size"
    raise InvalidInputError(f"{param}={value!r} is not (height, width) with two whole numbers of at least 1; pass "
                            f"e.g. {param}=(224, 224) or {param}='224x224'")
