"""Signature tensors that are not plain tensors: SparseTensor and other composites (RaggedTensor), as TF1 Hub
modules store them (a `coo_sparse` or `composite_tensor` TensorInfo naming their component tensors).

    spec = type_spec(info)                     # tf.SparseTensorSpec / tf.RaggedTensorSpec / tf.TensorSpec
    feeds = dict(zip(info.component_names(), flatten(info, value)))
    value = pack(info, [graph tensors of info.component_names()])
"""

from __future__ import annotations

from legacy.format.reader import COMPOSITE, DENSE, SPARSE, TensorInfo


def type_spec(info: TensorInfo):
    """The `tf.TypeSpec` of a signature tensor."""
    import tensorflow as tf

    shape = tf.TensorShape(None if info.shape is None else list(info.shape))
    if info.kind == DENSE:
        return tf.TensorSpec(shape, tf.as_dtype(info.dtype))
    if info.kind == SPARSE:
        return tf.SparseTensorSpec(shape, tf.as_dtype(info.dtype))
    from tensorflow.core.protobuf import struct_pb2
    from tensorflow.python.saved_model import nested_structure_coder

    value = struct_pb2.StructuredValue()
    value.type_spec_value.ParseFromString(info.type_spec)
    return nested_structure_coder.decode_proto(value)


def component_specs(info: TensorInfo) -> list:
    """The dense `tf.TensorSpec`s of the components, in `info.component_names()` order."""
    import tensorflow as tf

    spec = type_spec(info)
    return [spec] if info.kind == DENSE else tf.nest.flatten(spec, expand_composites=True)


def flatten(info: TensorInfo, value) -> list:
    """The component tensors of `value` (a tensor, SparseTensor or RaggedTensor matching `info`)."""
    import tensorflow as tf

    if info.kind == DENSE:
        return [value]
    return tf.nest.flatten(value, expand_composites=True)


def pack(info: TensorInfo, components):
    """The signature tensor built from its component tensors."""
    import tensorflow as tf

    components = list(components)
    if info.kind == DENSE:
        return components[0]
    if info.kind == SPARSE:
        return tf.SparseTensor(*components)
    assert info.kind == COMPOSITE
    return tf.nest.pack_sequence_as(type_spec(info), components, expand_composites=True)
