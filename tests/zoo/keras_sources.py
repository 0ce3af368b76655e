"""TF2 sources from real architectures: Keras applications with random weights and small inputs, saved as Reusable
SavedModels the way tfhub.dev TF2 image models were exported (tests/bridge/tf2_models.save_reusable).

Building and saving them takes a while, so each is cached outside git, under $BRIDGE_ZOO_CACHE (default
~/.cache/tf-hub-bridge/zoo), keyed by BUILD_VERSION; a cached model is used only when it is complete.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile

from tests.tolerances import EFFICIENTNET_TRAINING, PARITY_RULE, Tolerance
from tests.zoo.members import CACHE

BUILD_VERSION = 1


@dataclasses.dataclass(frozen=True)
class KerasSource:
    name: str
    application: str  # tf_keras.applications.<application>
    size: int
    options: tuple = ()
    # Training-mode outputs, gradients and updates against the genuine library, relative to their scale: the
    # project's default unless this architecture's training mode is itself that sensitive to kernel choice.
    training: Tolerance = PARITY_RULE
    random_ops: bool = False  # random ops in training mode (drop-connect)

    def build(self, path: str) -> str:
        import tf_keras

        from tests.bridge.tf2_models import _randomize_batch_norm, save_reusable

        tf_keras.utils.set_random_seed(0)
        base = getattr(tf_keras.applications, self.application)(
            input_shape=(self.size, self.size, 3), include_top=False, weights=None, pooling="avg",
            **dict(self.options))
        _randomize_batch_norm(base.variables)
        return save_reusable(base, path, (self.size, self.size, 3))

    def cached(self) -> str:
        """The SavedModel's directory, built on first use."""
        path = os.path.join(CACHE, f"{self.name}-v{BUILD_VERSION}")
        if not os.path.exists(os.path.join(path, "saved_model.pb")):
            os.makedirs(CACHE, exist_ok=True)
            tmp = tempfile.mkdtemp(prefix=f".{self.name}-", dir=CACHE)
            try:
                self.build(os.path.join(tmp, "model"))
                shutil.rmtree(path, ignore_errors=True)
                os.rename(os.path.join(tmp, "model"), path)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        return path


SOURCES = [
    # Squeeze-excite blocks and hard-swish; include_preprocessing off: inputs stay in [0, 1] as the image convention says.
    KerasSource("mobilenet_v3_small", "MobileNetV3Small", 32, (("include_preprocessing", False),)),
    # MBConv blocks with drop-connect: random ops in training mode.
    # Its training mode at 32x32 (batch norm over 1x1 maps of 4 images) moves by 9.5e-4 of the output's scale between
    # oneDNN on and off, or SSE4.1 kernels on one thread, in TF 2.21 alone (measured on one machine); the genuine
    # library (TF 2.15) differed by 4.4e-4. Twice the kernel spread is the bar.
    KerasSource("efficientnet_b0", "EfficientNetB0", 32, training=EFFICIENTNET_TRAINING, random_ops=True),
    KerasSource("resnet50", "ResNet50", 32),
]
