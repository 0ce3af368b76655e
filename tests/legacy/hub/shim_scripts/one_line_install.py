"""The one-line form, as the first lines of a legacy program: prints what `hub.Module` now is."""

import legacy.install_hub  # noqa: F401  (the one line)
import tensorflow_hub as hub
from tensorflow_hub import *  # noqa: F401,F403  (fails on plain tensorflow_hub 0.16)

print(f"{hub.Module.__module__}.{hub.Module.__name__}")
print(f"{load_module_spec.__module__}.{load_module_spec.__name__}")  # noqa: F405  (from the star import)
print("OK")
