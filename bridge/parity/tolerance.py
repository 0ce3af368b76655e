"""Tolerances of a parity run: what passes, stated once (Polygraphy's semantics), with per-output overrides.

    An element fails only when |A-B| > atol AND |A-B| > rtol * |A|, where A is the reference.

Defaults, per output: atol = 1e-5 * max|A| (the output's scale over the whole run) and rtol = 1e-5, because the
genuine legacy library itself varies by a few 1e-6 of an output's scale from run to run on CPU. A number applies to
every output; NAME:VALUE (or a dict) to some, where NAME is an output's full name (`signature/output_key`,
`gradients/<variable>`, `updates/<variable>`), an output key, or a mode (`inference`, `training`, `gradients`,
`updates`). The most specific wins: full name, then output key, then mode, then the plain value, then the default.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Mapping

from bridge.parity.results import GRADIENTS, INFERENCE, TRAINING, UPDATES
from legacy.errors import InvalidInputError, spell

DEFAULT_ATOL_SCALE = 1e-5  # default atol, as a fraction of max|reference| of each output
DEFAULT_RTOL = 1e-5
MODES = (INFERENCE, TRAINING, GRADIENTS, UPDATES)
SEMANTICS = ("an element fails only when |A-B| > atol and |A-B| > rtol*|A| (A is the reference); default "
             f"atol = {DEFAULT_ATOL_SCALE:g} * max|A| of each output, rtol = {DEFAULT_RTOL:g}")


@dataclasses.dataclass(frozen=True)
class Tolerances:
    """Per-output atol/rtol overrides. Key None is the value for every output; see the module docstring."""

    atol: Mapping = dataclasses.field(default_factory=dict)
    rtol: Mapping = dataclasses.field(default_factory=dict)

    @classmethod
    def parse(cls, atol=None, rtol=None) -> "Tolerances":
        """From numbers, "NAME:VALUE"/"VALUE" strings (or lists of them, as on the command line) or dicts."""
        return cls(_parse_tolerance(atol, "atol"), _parse_tolerance(rtol, "rtol"))

    def resolve(self, name: str, key: str, mode: str) -> tuple:
        """(atol or None for the scale-relative default, rtol, where each came from)."""
        atol, atol_from = _lookup(self.atol, name, key, mode)
        rtol, rtol_from = _lookup(self.rtol, name, key, mode)
        return atol, (DEFAULT_RTOL if rtol is None else rtol), atol_from or "default", rtol_from or "default"

    def unknown(self, names: set) -> list:
        """Override names that match none of `names` (likely typos: refused rather than silently ignored)."""
        return sorted({k for table in (self.atol, self.rtol) for k in table if k is not None and k not in names})

    def to_json(self) -> dict:
        label = lambda table: {("*" if k is None else k): v for k, v in table.items()}  # noqa: E731
        return {"atol": label(self.atol), "rtol": label(self.rtol)}


def _lookup(table: Mapping, name: str, key: str, mode: str) -> tuple:
    for candidate, source in ((name, name), (key, key), (mode, mode), (None, "all outputs")):
        if candidate in table:
            return table[candidate], source
    return None, None


def _parse_tolerance(value, flag: str) -> dict:
    if value is None:
        return {}
    if isinstance(value, Mapping):
        items = [(None if k in (None, "*", "") else str(k), v) for k, v in value.items()]
    elif isinstance(value, (int, float)):
        items = [(None, value)]
    else:
        items = []
        for text in ([value] if isinstance(value, str) else list(value)):
            if isinstance(text, (int, float)):
                items.append((None, text))
                continue
            name, sep, number = str(text).rpartition(":")
            items.append((name if sep else None, number))
    table = {}
    for name, number in items:
        try:
            number = float(number)
        except (TypeError, ValueError):
            given = spell(f"{flag}={number!r}", f"--{flag} {number!r}")
            fix = spell(f"{flag}=VALUE or {flag}={{NAME: VALUE}}", f"--{flag} VALUE or --{flag} NAME:VALUE")
            raise InvalidInputError(f"{given} is not a number; pass {fix} (NAME: signature/output_key, output_key "
                                    "or a mode)") from None
        if not number >= 0 or math.isinf(number):
            raise InvalidInputError(f"{spell(flag, '--' + flag)} must be a finite number >= 0, got {number}")
        table[name] = number
    return table


def check_overrides(tolerances: Tolerances, names: set) -> None:
    """Refuse overrides whose name matches no output (`names`): a typo must not leave the default in place."""
    unknown = tolerances.unknown(names)
    if unknown:
        outputs = sorted(n for n in names if "/" in n and not n.startswith(("updates/", "gradients/")))
        raise InvalidInputError(
            f"tolerance override {', '.join(map(repr, unknown))} matches no output; use signature/output_key "
            f"(here: {', '.join(outputs[:6])}{', ...' if len(outputs) > 6 else ''}), an output key, or a mode "
            f"({', '.join(MODES)})")
