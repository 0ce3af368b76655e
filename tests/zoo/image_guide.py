"""The TF Hub image guide's TF1 snippets ("Common Signatures for Images"), as written there, run on the shim.

Graph mode and a Session, as the guide's readers ran them: `hub.load_module_spec`, `hub.get_expected_image_size` of
the spec, `hub.Module(module_spec)`, the default signature on a bare tensor, and each named signature the module has
(`image_feature_vector`, `image_classification`) called with `dict(images=images)` and `as_dict=True`.
"""

from __future__ import annotations

import numpy as np

NAMED = ("image_feature_vector", "image_classification")


def run_image_guide(path: str, batch: np.ndarray) -> dict:
    """{"size": (height, width), "default": module(images), <named signature>: outputs["default"]} on `batch`."""
    import tensorflow as tf

    from legacy import hub

    tf1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        module_spec = hub.load_module_spec(path)
        height, width = hub.get_expected_image_size(module_spec)
        images = tf1.placeholder(tf.float32, [None, height, width, 3])  # a batch of images
        module = hub.Module(module_spec)
        fetches = {"default": module(images)}
        for signature in NAMED:
            if signature in module_spec.get_signature_names():
                outputs = module(dict(images=images), signature=signature, as_dict=True)
                fetches[signature] = outputs["default"]
        with tf1.Session() as session:
            session.run(tf1.global_variables_initializer())
            results = session.run(fetches, {images: batch})
    return {"size": (height, width), **results}
