"""The TF1 API of tensorflow_hub 0.15 on TensorFlow 2.16+, plus the 0.16 names: a drop-in `hub`.

    from legacy import hub              # instead of: import tensorflow_hub as hub

    module_spec = hub.load_module_spec("testdata/modules/convnet_bn")
    height, width = hub.get_expected_image_size(module_spec)
    module = hub.Module(module_spec)
    features = module(images)

    spec = hub.create_module_spec_from_saved_model("export/1700000000")   # a TF1 SavedModel (Builder, simple_save)
    module = hub.Module(spec, tags={"serve"})

`load`, `KerasLayer` and `resolve` are those of the installed tensorflow_hub (0.16), imported on first use. The
0.15 names this shim does not provide (feature columns, estimator exporters) exist so that `from ... import *`
works, and raise an error naming the replacement when used.
`legacy.install()` puts all of these names on the real `tensorflow_hub` module instead.
"""

from __future__ import annotations

from legacy.hub.image_info import ImageModuleInfo, get_expected_image_size, get_num_image_channels
from legacy.hub.module import Module, eval_function_for_module
from legacy.hub.publish import add_signature, attach_image_module_info, attach_message, create_module_spec
from legacy.hub.loading import load_module_spec
from legacy.hub.spec import ModuleSpec
from legacy.hub.tf1_saved_model import create_module_spec_from_saved_model

# The names tensorflow_hub 0.16 still has: taken from it, never re-implemented.
PASSED_THROUGH = ("load", "KerasLayer", "resolve")

# The TF1 API provided here.
TF1_NAMES = ("Module", "ModuleSpec", "load_module_spec", "create_module_spec", "create_module_spec_from_saved_model",
             "add_signature", "attach_message", "attach_image_module_info", "ImageModuleInfo",
             "get_expected_image_size", "get_num_image_channels", "eval_function_for_module")


def _removed(name: str, reason: str):
    """A stand-in for a 0.15 name that needs what TensorFlow 2.16+ removed: fails with the replacement."""

    def removed(*args, **kwargs):
        raise NotImplementedError(f"hub.{name} is not available on TensorFlow 2.16+ ({reason})")

    removed.__name__ = removed.__qualname__ = name
    removed.__doc__ = f"Not available on TensorFlow 2.16+: {reason}."
    return removed


_FEATURE_COLUMN = ("its feature columns feed tf.estimator, which TensorFlow 2.16 removed, and Keras 2's DenseFeatures, "
                   "which Keras 3 has not; apply the module with hub.Module or hub.KerasLayer")
_ESTIMATOR = "tf.estimator was removed; export with Module.export(path, session) after training"
REMOVED = {
    "text_embedding_column": _FEATURE_COLUMN,
    "text_embedding_column_v2": _FEATURE_COLUMN,
    "sparse_text_embedding_column": _FEATURE_COLUMN,
    "image_embedding_column": _FEATURE_COLUMN,
    "LatestModuleExporter": _ESTIMATOR,
    "register_module_for_export": _ESTIMATOR,
}
for _name, _reason in REMOVED.items():
    globals()[_name] = _removed(_name, _reason)
del _name, _reason

__all__ = sorted(TF1_NAMES + PASSED_THROUGH + tuple(REMOVED))


def __getattr__(name: str):
    if name in PASSED_THROUGH:
        import tensorflow_hub

        return getattr(tensorflow_hub, name)
    raise AttributeError(f"module 'legacy.hub' has no attribute {name!r}")
