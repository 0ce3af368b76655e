"""Both conversion directions, with the same shape: `tf1_to_tf2` and `tf2_to_tf1` each build the converted model
in memory (`build`) and write it (`write`); `converter.convert` only dispatches on the source's format, verifies
the written model against its source and moves it into place atomically.

    from bridge.conversion import convert
    convert("old_module/", "new_savedmodel/")            # TF1 Hub -> TF2 SavedModel (direction from the source)
"""

from __future__ import annotations

from bridge.conversion.converter import ConversionResult, convert

__all__ = ["ConversionResult", "convert"]
