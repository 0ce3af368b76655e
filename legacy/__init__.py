"""The TF1 Hub world on modern TensorFlow: the module format (read and write) and the `hub.Module` API over it.

This package never imports `bridge`.
"""
