"""Durations with units (``"250ms"``, ``"90s"``, ``"2h30m"``, ``"7d"``) and their pydantic type.

A duration is a string of one or more ``<number><unit>`` parts, or a plain number of seconds.
Every duration in a validated scenario is a float number of seconds.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from pydantic import BeforeValidator, WithJsonSchema

UNIT_SECONDS: dict[str, float] = {
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 604800.0,
}

_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_PART = re.compile(rf"({_NUMBER})\s*(ms|s|m|h|d|w)")
_WHOLE = re.compile(rf"\s*(?:{_NUMBER}\s*(?:ms|s|m|h|d|w)\s*)+")

DURATION_HINT = "a duration such as '250ms', '90s', '15m', '2h30m', '7d', or a number of seconds"


def parse_duration(value: Any) -> float:
    """Convert a duration (string with units, or number of seconds) to seconds.

    Raises ``ValueError`` with a message saying what was expected.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected {DURATION_HINT}, got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        if value.strip().startswith("-"):
            raise ValueError(f"a duration cannot be negative, got {value!r}")
        if not _WHOLE.fullmatch(value):
            raise ValueError(f"expected {DURATION_HINT}, got {value!r}")
        seconds = sum(float(n) * UNIT_SECONDS[u] for n, u in _PART.findall(value))
    else:
        raise ValueError(f"expected {DURATION_HINT}, got {value!r}")
    if not math.isfinite(seconds):
        raise ValueError(f"expected a finite duration, got {value!r}")
    if seconds < 0:
        raise ValueError(f"a duration cannot be negative, got {value!r}")
    return seconds


def format_duration(seconds: float) -> str:
    """A short human form of a number of seconds, e.g. ``'2h30m'`` or ``'1.5s'``."""
    if seconds == 0:
        return "0s"
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    parts = []
    rest = seconds
    for unit in ("d", "h", "m"):
        size = UNIT_SECONDS[unit]
        if rest >= size:
            whole = math.floor(rest / size)
            parts.append(f"{whole}{unit}")
            rest -= whole * size
    if rest > 1e-9 or not parts:
        parts.append(f"{round(rest, 6):g}s")
    return "".join(parts)


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0},
                {"type": "string", "pattern": r"^\s*(\d+(\.\d*)?|\.\d+)\s*(ms|s|m|h|d|w)"},
            ],
            "description": "Duration: seconds, or a string such as '250ms', '90s', '15m', "
            "'2h30m', '7d'.",
        }
    ),
]
"""A duration in seconds, given in a scenario file as a number of seconds or a string with units."""
