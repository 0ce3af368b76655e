#!/usr/bin/env python
"""Runs a script of the legacy environment after writing down which library versions run it.

  launch.py VERSIONS_JSON SCRIPT [ARGS...]

Imports tensorflow and tensorflow_hub (every oracle script imports both first anyway), writes
{"tensorflow": ..., "tensorflow_hub": ...} to VERSIONS_JSON, then runs SCRIPT as `__main__` with ARGS. The tests
(tests/oracle/runner.py `start`) check the file against constraints/legacy.txt, so no answer is taken from another
stack, whichever script gave it.
"""

import json
import os
import runpy
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402
import tensorflow_hub as hub  # noqa: E402

versions_path, script = sys.argv[1], sys.argv[2]
with open(versions_path, "w") as f:
  json.dump({"tensorflow": tf.__version__, "tensorflow_hub": hub.__version__}, f)
sys.argv = [script] + sys.argv[3:]
sys.path[0] = os.path.dirname(os.path.abspath(script))  # as when the script itself is run
runpy.run_path(script, run_name="__main__")
