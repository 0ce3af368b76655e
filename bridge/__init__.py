"""tf-hub-bridge: carry TensorFlow Hub image models across the TF1 Hub / TF2 SavedModel divide, and prove it.

    import bridge
    bridge.convert("old_module/", "new_savedmodel/")     # either direction, verified before it appears
    obj = bridge.adapt("old_module/")                    # a TF1 module as a Reusable SavedModel object, in memory
    report = bridge.compare("old_module/", obj)          # parity of any two models on identical batches

The names are imported on first use, so `import bridge` (and `bridge --help`) stays free of TensorFlow.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["adapt", "compare", "convert"]

_LAZY = {"adapt": ("bridge.conversion.tf1_to_tf2", "adapt"), "convert": ("bridge.conversion", "convert"),
         "compare": ("bridge.parity", "compare")}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attribute = _LAZY[name]
        value = getattr(importlib.import_module(module), attribute)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'bridge' has no attribute {name!r}")
