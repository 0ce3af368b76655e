"""The package's own verbs: `bridge.convert`, `bridge.adapt`, `bridge.compare`, loaded on first use."""

from __future__ import annotations

import subprocess
import sys

import pytest


def test_import_bridge_does_not_import_tensorflow():
    code = "import sys, bridge, bridge.cli; bridge.cli.build_parser(); print('tensorflow' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "False"


def test_verbs_are_the_functions_of_their_modules():
    import bridge
    import bridge.conversion.tf1_to_tf2
    import bridge.conversion.converter
    import bridge.parity.comparison

    assert bridge.convert is bridge.conversion.converter.convert
    assert bridge.adapt is bridge.conversion.tf1_to_tf2.adapt
    assert bridge.compare is bridge.parity.comparison.compare
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        bridge.nope
