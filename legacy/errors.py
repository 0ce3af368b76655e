"""Every error this project raises on bad input, each naming the problem and the fix.

`bridge` imports these too: there is one place to look for what can go wrong. The CLI prints the message of
any `BridgeError` as one line (exit status 2) and hides the traceback unless BRIDGE_DEBUG=1.
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import Iterator

# Whether the caller is the `bridge` command line (set by `bridge.cli`): errors then name options as the user typed
# them (`--image-size HxW`) rather than as Python parameters (`image_size=(h, w)`).
_COMMAND_LINE = contextvars.ContextVar("bridge_command_line", default=False)


@contextlib.contextmanager
def command_line_spelling() -> Iterator[None]:
    """Inside this block, `spell` returns the command-line spelling."""
    token = _COMMAND_LINE.set(True)
    try:
        yield
    finally:
        _COMMAND_LINE.reset(token)


def spell(python: str, cli: str) -> str:
    """The parameter as the caller writes it: `spell("kind='feature_vector'", "--kind feature_vector")`."""
    return cli if _COMMAND_LINE.get() else python


class BridgeError(Exception):
    """Base class: a problem with the user's input, explained in one line."""


class NotAModuleError(BridgeError):
    """The path is neither a TF1 Hub module nor a TF2 SavedModel."""


class ModuleFormatError(BridgeError):
    """A TF1 Hub module whose files are missing, corrupt or of an unsupported format."""


class UnsupportedCollectionsError(ModuleFormatError, ValueError):
    """A SavedModel with graph collections a TF1 Hub module cannot hold (a ValueError, as in tensorflow_hub 0.15)."""


class UnknownVariantError(BridgeError, ValueError, KeyError):
    """No graph variant with the requested tags (the message lists the ones that exist).

    A ValueError, as `hub.Module(spec, tags=...)` raised in tensorflow_hub 0.15, and a KeyError, as its
    `spec.get_signature_names(tags=...)` and the other spec lookups raised."""

    __str__ = Exception.__str__  # the message as given, not quoted as a KeyError's


class CheckpointMismatchError(BridgeError, ValueError):
    """A checkpoint that lacks a module variable or holds it with another shape (a ValueError, as in
    tensorflow_hub 0.15's `ModuleSpec.export(path, checkpoint_path=...)`)."""


class UnknownSignatureError(BridgeError, ValueError):
    """No signature with the requested name (the message lists the ones that exist)."""


class NotAnImageModuleError(BridgeError, ValueError):
    """An image-only operation on a signature without an image input."""


class DestinationExistsError(BridgeError):
    """The output path exists and --force was not given."""


class InvalidInputError(BridgeError, ValueError):
    """Input tensors or image files that do not fit the model."""


class ConversionError(BridgeError):
    """A model that cannot be converted as asked (the message says what to change)."""


class UnsafeModelError(BridgeError):
    """A graph with ops that touch files, processes or the network, refused before running."""


class UnsafeArchiveError(BridgeError):
    """An archive whose contents would land outside its directory, or that is too big, refused before extracting."""


class ModelNotCachedError(NotAModuleError):
    """A TF Hub handle that is not in the local TF Hub cache (the bridge never downloads)."""


class ModuleCallError(InvalidInputError, TypeError):
    """`hub.Module` inputs or `as_dict` that do not fit the signature. A TypeError, as in the legacy library."""


class ModuleFnError(BridgeError, ValueError):
    """A module_fn that does not build a valid module (the message says what to change)."""


class LegacyLayersUnavailableError(BridgeError, AttributeError):
    """tf.compat.v1.layers used without Keras 2 (tf-keras and TF_USE_LEGACY_KERAS=1)."""


class HubImportError(BridgeError, ImportError):
    """The real tensorflow_hub cannot be imported, so there is nothing to install the TF1 names into."""


class VerificationError(ConversionError):
    """The converted model does not match its source; `report` says where (nothing was written)."""

    def __init__(self, message: str, report=None):
        super().__init__(message)
        self.report = report


class MissingExtraError(BridgeError, ImportError):
    """An optional dependency (an extra, e.g. Apache Beam) that is not installed; the message says how to add it."""
