"""What every adapter of a stored TF1 module shares: the module it reads, its bridge metadata, and the object that
`tf.saved_model.save` writes. `tf1_to_tf2.ModuleAdapter` (images) and `text_adapter.TextModuleAdapter` (strings,
sparse inputs, tables) build these in their constructors and differ in everything they compute."""

from __future__ import annotations

from legacy.format.conventions import tag_label
from legacy.format.metadata import BridgeMetadata
from legacy.format.reader import StoredModule


def save_options():
    """The options a converted SavedModel is saved with: without TensorFlow's traced saver, which
    `legacy.format.graph_saver` writes as plain graph nodes. Functions are traced for export under the same
    options (`save_context`), so that saving does not trace them again."""
    import tensorflow as tf

    return tf.saved_model.SaveOptions(experimental_skip_saver=True)


class StoredModuleAdapter:
    """Base of the adapters: subclasses set `_stored`, `_primary`, `_metadata` and `_saved` in `__init__`."""

    _stored: StoredModule
    _primary: str
    _metadata: BridgeMetadata
    _saved: object

    @property
    def saveable(self):
        """The trackable object to pass to `tf.saved_model.save` (after `trace_for_export`)."""
        return self._saved

    @property
    def metadata(self) -> BridgeMetadata:
        return self._metadata

    @property
    def signature_names(self) -> list:
        """The TF1 signatures this object serves, primary first."""
        return list(self._metadata.signatures)

    @property
    def stored_module(self) -> StoredModule:
        return self._stored

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} {self._stored.path} signature={self._primary!r} "
                f"variants={', '.join(tag_label(t) for t in self._stored.tags)}>")
