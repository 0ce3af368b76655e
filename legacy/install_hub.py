"""The one-line form of `legacy.install()`: `import legacy.install_hub` before `import tensorflow_hub as hub`."""

from legacy.hub.installer import install

install()
