"""Test helpers for users of the bridge: `assert_parity(a, b, ...)` for pytest and unittest alike.

    from bridge.testing import assert_parity

    def test_conversion(tmp_path):
        bridge.convert("old_module/", tmp_path / "new")
        assert_parity("old_module/", tmp_path / "new", images="photos/", training=True)
"""

from __future__ import annotations

from bridge.parity.comparison import compare
from bridge.parity.results import Report


def assert_parity(a, b, images=None, **options) -> Report:
    """Compare `a` (the reference) with `b` like `bridge.parity.compare` and fail with the per-output table.

    Takes the same arguments as `compare`; returns the report when every output matches, so a test can look
    further (e.g. `report.identical`).
    """
    __tracebackhide__ = True  # pytest: show the failure at the caller
    report = compare(a, b, images=images, **options)
    if not report.passed:
        raise AssertionError("models differ\n" + report.table())
    return report
