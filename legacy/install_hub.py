"""The one-line form of `legacy.install()`: `import legacy.install_hub` before `import tensorflow_hub as hub`."""

from legacy.installer import install

install()
