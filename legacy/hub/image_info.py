"""The image-module lookups of the legacy API: `get_expected_image_size` and `get_num_image_channels`.

    spec = load_module_spec("testdata/modules/convnet_bn")
    height, width = get_expected_image_size(spec)          # [32, 32]
    channels = get_num_image_channels(spec)                # 3

Both take a `ModuleSpec` or a `Module` (whose graph variant is then used). The size comes from the
`image_module_info` attachment when it sets both sizes, else from the static height and width of the signature's
`images` input; the channel count only ever comes from the static shape (as in the legacy library).
"""

from __future__ import annotations

from legacy.format import protos
from legacy.errors import NotAnImageModuleError
from legacy.format.conventions import attached_image_size, expected_image_size, static_num_channels
from legacy.format.reader import IMAGE_INPUT_KEY, IMAGE_MODULE_INFO_KEY
from legacy.hub.spec import signature_name

ImageModuleInfo = protos.ImageModuleInfo


def get_image_module_info(module_or_spec, required: bool = False):
    """The attached `ImageModuleInfo`, or None."""
    return module_or_spec.get_attached_message(IMAGE_MODULE_INFO_KEY, ImageModuleInfo, required=required)


def get_expected_image_size(module_or_spec, signature: str | None = None, input_name: str | None = None) -> list:
    """[height, width] of the images the module expects (a ValueError when nothing records it)."""
    size = expected_image_size(attached_image_size(get_image_module_info(module_or_spec)),
                               lambda: _dims(_image_input_shape(module_or_spec, signature, input_name)))
    if size is None:
        raise NotAnImageModuleError(
            f"Shape of module input is {_image_input_shape(module_or_spec, signature, input_name)}, expected "
            "[batch_size, height, width, num_channels] with known height and width; resize to the size the "
            "module's documentation gives")
    return list(size)


def get_num_image_channels(module_or_spec, signature: str | None = None, input_name: str | None = None) -> int:
    """The number of color channels the module expects (a ValueError when the static shape does not say)."""
    shape = _image_input_shape(module_or_spec, signature, input_name)
    channels = static_num_channels(_dims(shape))
    if channels is None:
        raise NotAnImageModuleError(
            f"Shape of module input is {shape}, expected [batch_size, height, width, num_channels] with known "
            "num_channels; use the module's documentation (usually 3, RGB)")
    return channels


def _dims(shape) -> list | None:
    """A TensorShape as a list (None where unknown), None when its rank is unknown."""
    return shape.as_list() if shape.rank is not None else None


def _image_input_shape(module_or_spec, signature, input_name):
    inputs = module_or_spec.get_input_info_dict(signature)
    input_name = IMAGE_INPUT_KEY if input_name is None else input_name
    if input_name not in inputs:
        raise NotAnImageModuleError(
            f"Module is missing input {input_name!r} in signature {signature_name(signature)!r} (it has "
            f"{', '.join(sorted(inputs)) or 'no inputs'}); pass input_name= or use an image signature")
    return inputs[input_name].get_shape()
