"""Wire-compatible definitions of the TF1 Hub format's own protocol buffers.

The messages are declared here (field names and numbers as in the format: see the design notes) and built with
protobuf's descriptor machinery, so nothing from the removed tensorflow_hub TF1 code is needed:

    message ModuleDef { enum Format { FORMAT_UNSPECIFIED = 0; FORMAT_V3 = 3; }
                        Format format = 1; repeated string required_features = 2; }
    message ModuleAttachment { string key = 1; bytes value = 2; }
    message ImageModuleInfo { message InputSize { int32 height = 1; int32 width = 2; }
                              InputSize default_image_size = 1; }
"""

from __future__ import annotations

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_PACKAGE = "tf_hub_bridge.legacy"
FORMAT_V3 = 3
_F = descriptor_pb2.FieldDescriptorProto


def _file() -> descriptor_pb2.FileDescriptorProto:
    fd = descriptor_pb2.FileDescriptorProto(name="tf_hub_bridge/legacy/hub_format.proto", package=_PACKAGE,
                                            syntax="proto3")

    module_def = fd.message_type.add(name="ModuleDef")
    fmt = module_def.enum_type.add(name="Format")
    fmt.value.add(name="FORMAT_UNSPECIFIED", number=0)
    fmt.value.add(name="FORMAT_V3", number=FORMAT_V3)
    module_def.field.add(name="format", number=1, type=_F.TYPE_ENUM, label=_F.LABEL_OPTIONAL,
                         type_name=f".{_PACKAGE}.ModuleDef.Format")
    module_def.field.add(name="required_features", number=2, type=_F.TYPE_STRING, label=_F.LABEL_REPEATED)

    attachment = fd.message_type.add(name="ModuleAttachment")
    attachment.field.add(name="key", number=1, type=_F.TYPE_STRING, label=_F.LABEL_OPTIONAL)
    attachment.field.add(name="value", number=2, type=_F.TYPE_BYTES, label=_F.LABEL_OPTIONAL)

    info = fd.message_type.add(name="ImageModuleInfo")
    size = info.nested_type.add(name="InputSize")
    size.field.add(name="height", number=1, type=_F.TYPE_INT32, label=_F.LABEL_OPTIONAL)
    size.field.add(name="width", number=2, type=_F.TYPE_INT32, label=_F.LABEL_OPTIONAL)
    info.field.add(name="default_image_size", number=1, type=_F.TYPE_MESSAGE, label=_F.LABEL_OPTIONAL,
                   type_name=f".{_PACKAGE}.ImageModuleInfo.InputSize")
    return fd


_pool = descriptor_pool.DescriptorPool()
_pool.Add(_file())


def _message(name: str) -> type:
    return message_factory.GetMessageClass(_pool.FindMessageTypeByName(f"{_PACKAGE}.{name}"))


ModuleDef = _message("ModuleDef")
ModuleAttachment = _message("ModuleAttachment")
ImageModuleInfo = _message("ImageModuleInfo")
