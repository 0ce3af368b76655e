"""tf-hub-bridge: carry TensorFlow Hub image models across the TF1 Hub / TF2 SavedModel divide, and prove it."""

__version__ = "0.1.0"
