"""Parity: run two models on identical image batches and prove that their outputs match (or show where not).

    from bridge.parity import compare, verify_conversion
    report = compare("old_module/", "new_savedmodel/", images="photos/")
    assert report.passed, report.table()

Split by concern, as the CLI (`bridge parity`) wires them: `images` (inputs as streamed batches), `runners` (a model
as something to run), `tolerance` (what passes), `stats` (streaming error statistics), `compare` (runs both models
batch by batch), `results` (the verdicts), `report` (table, JSON, saved arrays).
"""

from __future__ import annotations

from bridge.parity.comparison import compare, verify_conversion
from bridge.parity.results import OutputResult, Report
from bridge.parity.tolerance import DEFAULT_ATOL_SCALE, DEFAULT_RTOL, Tolerances

__all__ = ["compare", "verify_conversion", "Report", "OutputResult", "Tolerances", "DEFAULT_ATOL_SCALE",
           "DEFAULT_RTOL"]
