"""Put the TF1 API on the real `tensorflow_hub` module, so legacy code runs with its imports unchanged.

    import legacy
    legacy.install()                 # or, as one line: import legacy.install_hub
    import tensorflow_hub as hub
    module = hub.Module("testdata/modules/convnet_bn")

tensorflow_hub 0.16 keeps `load`, `KerasLayer` and `resolve` but still lists the removed names in its `__all__`,
so `from tensorflow_hub import *` fails with an AttributeError. `install()` adds every missing name (the TF1 API
of `legacy.hub`, and stand-ins that explain what is gone) and nothing else: names the installed tensorflow_hub has
are never replaced.
"""

from __future__ import annotations

from legacy import hub
from legacy.errors import HubImportError

_added: list = []  # names install() put on tensorflow_hub, for uninstall()


def _import_tensorflow_hub():
    try:
        import tensorflow_hub
    except ImportError as e:
        raise HubImportError(
            f"import tensorflow_hub failed ({e}); on TensorFlow 2.16+ install tensorflow-hub==0.16.1 with tf-keras "
            "and setuptools<81 (it imports pkg_resources), or skip install() and use `from legacy import hub`") from e
    return tensorflow_hub


def install():
    """Add the TF1 names to `tensorflow_hub` (idempotent) and return that module."""
    tensorflow_hub = _import_tensorflow_hub()
    for name in hub.TF1_NAMES + tuple(hub.REMOVED):
        if not hasattr(tensorflow_hub, name):
            setattr(tensorflow_hub, name, getattr(hub, name))
            _added.append(name)
    return tensorflow_hub


def uninstall() -> None:
    """Remove what `install()` added (for tests and for code that must see the plain module again)."""
    import sys

    tensorflow_hub = sys.modules.get("tensorflow_hub")
    while _added:
        name = _added.pop()
        if tensorflow_hub is not None and hasattr(tensorflow_hub, name):
            delattr(tensorflow_hub, name)
