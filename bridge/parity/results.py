"""What a parity run found: one `OutputResult` per compared output, gathered in a `Report`."""

from __future__ import annotations

import dataclasses
import math

INFERENCE, TRAINING, GRADIENTS, UPDATES = "inference", "training", "gradients", "updates"
PASS, FAIL, MISSING = "pass", "fail", "missing"


@dataclasses.dataclass
class OutputResult:
    """The verdict and statistics of one compared output (or gradient, or updated variable)."""

    name: str  # "signature/output_key", "gradients/<variable>" or "updates/<variable>"
    signature: str | None
    key: str
    mode: str  # inference, training, gradients or updates
    status: str  # pass, fail or missing
    reason: str
    shape: list | None = None  # the whole run's shape (batched outputs: all images), else one batch's
    batches: int = 0
    elements: int = 0
    atol: float | None = None
    rtol: float | None = None
    atol_source: str = "default"
    rtol_source: str = "default"
    scale: float = 0.0  # max |A|
    identical: bool = False
    max_abs: float = 0.0
    mean_abs: float = 0.0
    median_abs: float = 0.0
    p99_abs: float = 0.0
    max_rel: float = 0.0
    mean_rel: float = 0.0
    median_rel: float = 0.0
    p99_rel: float = 0.0
    cosine: float | None = None
    top1: float | None = None
    top5: float | None = None
    failing: int = 0
    min_atol: float = 0.0  # the smallest atol that would have passed (at this rtol)
    min_rtol: float = 0.0  # the smallest rtol that would have passed (at this atol)
    exact_quantiles: bool = True
    worst: dict | None = None
    # Other names of this output: the same tensor under another signature, compared once (e.g.
    # "image_classification/default" for "default/default" of a classifier).
    aliases: list = dataclasses.field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.status == PASS

    def to_json(self) -> dict:
        return {k: _json_number(v) for k, v in dataclasses.asdict(self).items()}


def _json_number(value):
    """JSON has no inf/nan: they become the strings "inf", "-inf", "nan"."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: _json_number(v) for k, v in value.items()}
    return value


@dataclasses.dataclass
class Report:
    """Everything a parity run found: per-output results, what was fed, and the settings."""

    a: dict
    b: dict
    inputs: dict
    results: list
    settings: dict
    notes: list = dataclasses.field(default_factory=list)
    other_sizes: list = dataclasses.field(default_factory=list)  # Reports of the same models at other image sizes

    @property
    def passed(self) -> bool:
        return bool(self.results) and all(r.passed for r in self.results) and all(
            other.passed for other in self.other_sizes)

    @property
    def status(self) -> str:
        return PASS if self.passed else FAIL

    @property
    def identical(self) -> bool:
        """Every compared element equal in both models."""
        return bool(self.results) and all(r.identical for r in self.results)

    @property
    def failures(self) -> list:
        return [r for r in self.results if not r.passed]

    def result(self, name: str, mode: str = INFERENCE) -> OutputResult:
        for r in self.results:
            if (r.name == name or name in r.aliases) and r.mode == mode:
                return r
        raise KeyError(f"no {mode} result named {name!r}; have {', '.join(r.name for r in self.results)}")

    def table(self, full: bool = False, width: int | None = None) -> str:
        from bridge.parity.report import format_table
        return format_table(self, full=full, width=width)

    def to_json(self) -> dict:
        from bridge.parity.report import to_json
        return to_json(self)

    def __str__(self) -> str:
        return self.table()
