"""Check the arguments of the Python API and of the `bridge` command line, before any work, in one place.

Every check raises `InvalidInputError` naming the parameter as the caller spelled it: `image_size=(h, w)` from
Python, `--image-size HxW` from the command line (`legacy.errors.spell`; the CLI switches the spelling). The CLI
passes its option strings straight to these functions, so the two cannot disagree on a grammar. The image-size
grammar lives with the other shared conventions (`legacy.format.conventions.parse_image_size`), re-exported here.

    parse_image_size("224x160")       # (224, 160)
    parse_image_size((224, 160))      # (224, 160)
    parse_image_size((224,))          # InvalidInputError: image_size=(224,) is not (height, width) ...
"""

from __future__ import annotations

import numbers
import os
from typing import Iterable

from legacy.errors import InvalidInputError, spell
from legacy.format.conventions import parse_image_size  # noqa: F401  (the one image-size grammar)


def option(name: str, value: str = "") -> str:
    """How the caller names parameter `name` (a Python keyword) with `value` (already in the caller's syntax)."""
    flag = "--" + name.replace("_", "-")
    return spell(f"{name}={value}" if value else name, f"{flag} {value}" if value else flag)


def _flag(name: str) -> str:
    return name.replace("_", "-")


def choice(value, choices: Iterable[str], *, name: str):
    """`value` if it is None or one of `choices`, else an error listing them."""
    choices = tuple(choices)
    if value is None or value in choices:
        return value
    listed = " or ".join(spell(f"{name}={c!r}", f"--{_flag(name)} {c}") for c in choices)
    raise InvalidInputError(f"{spell(f'{name}={value!r}', f'--{_flag(name)} {value}')} is not a known value; "
                            f"pass {listed}")


def integer(value, *, name: str, minimum: int | None = None):
    """A whole number (not a bool), at least `minimum`; None stays None."""
    if value is None:
        return None
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        example = 0 if minimum is None or minimum <= 0 else minimum
        raise InvalidInputError(f"{spell(f'{name}={value!r}', f'--{_flag(name)} {value}')} is not a whole number; "
                                f"pass e.g. {spell(f'{name}={example}', f'--{_flag(name)} {example}')}")
    if minimum is not None and value < minimum:
        raise InvalidInputError(f"{spell(name, '--' + _flag(name))} must be at least {minimum}, got {value}")
    return int(value)


def flag(value, *, name: str) -> bool:
    """A bool parameter; anything else (a string "False", say) is refused rather than taken as true."""
    if not isinstance(value, bool):
        raise InvalidInputError(f"{name}={value!r} is not True or False")
    return value


def text(value, *, name: str) -> str | None:
    """A non-empty string parameter (a signature name, say); None stays None."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError(f"{spell(f'{name}={value!r}', f'--{_flag(name)} {value!r}')} is not a name; "
                                f"pass a non-empty {spell(name + '=...', '--' + _flag(name))}")
    return value


def paths(value, *, name: str) -> list:
    """Input paths (a path or a list of paths; arrays pass through): each must exist."""
    items = [value] if isinstance(value, (str, os.PathLike)) else list(value)
    for item in items:
        if isinstance(item, (str, os.PathLike)) and not os.path.exists(item):
            raise InvalidInputError(f"{os.fspath(item)}: no such file or directory; check the "
                                    f"{spell(name + '=', '--' + _flag(name))} path")
    return items


def not_with(name: str, value, reason: str, fix: str) -> None:
    """Refuse an option that does not apply (`value` set) rather than ignore it: `reason`, then `fix`."""
    if value not in (None, False, [], ()):
        raise InvalidInputError(f"{name} {reason}; {fix}")


def inputs(value, *, name: str = "inputs") -> dict:
    """Values for signature inputs besides images (`inputs={"batch_norm_momentum": 0.99}`): names -> numbers,
    bools or (nested) lists/arrays of them; None stays {}. Whether a model has such an input is checked once it
    loads."""
    import numpy as np

    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInputError(f"{name}={value!r} is not a dict; pass e.g. {name}={{'batch_norm_momentum': 0.99}}")
    result = {}
    for key, item in value.items():
        if not isinstance(key, str) or not key.isidentifier():
            raise InvalidInputError(f"{spell(f'{name}={{{key!r}: ...}}', f'--input {key}=...')}: {key!r} is not an "
                                    "input name; pass the signature's input key (e.g. batch_norm_momentum)")
        if isinstance(item, str) and item.startswith("@") and len(item) > 1:
            result[key] = item  # sentences from a file, for a text model (bridge.parity.text_inputs)
            continue
        try:
            array = np.asarray(getattr(item, "numpy", lambda: item)())
        except (TypeError, ValueError):
            array = np.asarray(None)
        if array.dtype.kind in "US" and array.ndim == 1 and array.size:
            result[key] = array  # sentences, for a text model
            continue
        if array.dtype.kind not in "biuf" or array.size == 0:
            given = spell(f"{name}={{{key!r}: {item!r}}}", f"--input {key}={item}")
            raise InvalidInputError(f"{given}: the value is not a number; pass a number, true/false or a list of "
                                    f"numbers (e.g. {spell(f'{name}={{{key!r}: 0.99}}', f'--input {key}=0.99')})")
        result[key] = array
    return result


def parse_input_options(values) -> dict:
    """`--input NAME=VALUE` (repeatable) as a dict: VALUE a number, true/false or a JSON list of numbers."""
    import json

    result = {}
    for text in values or ():
        key, sep, raw = text.partition("=")
        key = key.strip()
        if not sep or not key or not raw.strip():
            raise InvalidInputError(f"--input {text!r} is not NAME=VALUE; pass e.g. --input batch_norm_momentum=0.99")
        if key in result:
            raise InvalidInputError(f"--input {key} is given twice; pass each input once")
        raw = raw.strip()
        try:
            parsed = {"true": True, "false": False}.get(raw.lower()) if raw.lower() in ("true", "false") \
                else json.loads(raw)
        except ValueError:
            parsed = raw
        result[key] = parsed
    return inputs(result)
