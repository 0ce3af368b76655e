"""The TF1 Hub world on modern TensorFlow: the module format (read and write) and the `hub.Module` API over it.

    from legacy import hub            # the TF1 tensorflow_hub API (see legacy.hub)
    import legacy; legacy.install()   # or put it on the real tensorflow_hub (see legacy.hub.installer)

Importing this package is cheap: TensorFlow is imported by the submodules that need it. It never imports `bridge`.
"""


def install():
    """Add the TF1 API to the real `tensorflow_hub` module and return it (see `legacy.hub.installer`)."""
    from legacy.hub.installer import install as _install

    return _install()
