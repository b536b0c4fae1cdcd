"""External data a scenario refers to (empirical distributions), read and checked before a run.

A missing or unreadable file, a missing column or a bad row is a problem naming the key path
(``workloads.ft.duration.path``), the data file and the line. Reading needs pyarrow, not pandas.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sim.config.distributions import Empirical
from sim.config.scenario import InferenceWorkload, Scenario
from sim.config.units import UNIT_SECONDS
from sim.errors import Problem


@dataclass
class Inputs:
    """Data loaded for a run: empirical samples in seconds, keyed by (path, column, unit)."""

    samples: dict[tuple[Path, str | None, str], np.ndarray] = field(default_factory=dict)

    def empirical(self, spec: Empirical) -> np.ndarray:
        """The values (seconds) of an empirical distribution."""
        return self.samples[(spec.path, spec.column, spec.unit)]


class DataFileError(ValueError):
    """A data file that cannot be used, and the key of its spec to blame (path or column)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


def _read_table(path: Path) -> Any:
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    if path.suffix.lower() == ".csv":
        return pacsv.read_csv(path)
    return pq.read_table(path)


def _as_seconds(values: list[Any]) -> tuple[list[float], list[tuple[int, Any]]]:
    """Numbers from a column (numeric strings accepted), and the rows that are not numbers >= 0."""
    numbers: list[float] = []
    bad: list[tuple[int, Any]] = []
    for i, v in enumerate(values):
        try:
            x = float(v) if isinstance(v, int | float | str) and not isinstance(v, bool) else None
        except ValueError:
            x = None
        if x is None or not math.isfinite(x) or x < 0:
            bad.append((i, v))
        else:
            numbers.append(x)
    return numbers, bad


def read_empirical(spec: Empirical) -> np.ndarray:
    """Read an empirical distribution's column as seconds; raise DataFileError if it can't."""
    import pyarrow as pa

    path = spec.path
    if not path.exists():
        raise DataFileError("path", f"data file {str(path)!r} does not exist")
    try:
        table = _read_table(path)
    except Exception as exc:  # pyarrow raises several types for unreadable files
        raise DataFileError("path", f"cannot read data file {str(path)!r}: {exc}") from None
    names = table.column_names
    column = spec.column
    if column is None:
        if len(names) != 1:
            raise DataFileError(
                "column", f"data file {str(path)!r} has columns {names}: say which with 'column'"
            )
        column = names[0]
    if column not in names:
        raise DataFileError(
            "column", f"data file {str(path)!r} has no column {column!r} (it has {names})"
        )
    scale = UNIT_SECONDS[spec.unit]
    col = table.column(column).combine_chunks()
    if len(col) == 0:
        raise DataFileError("column", f"column {column!r} of {str(path)!r} is empty")
    if col.null_count == 0 and (pa.types.is_integer(col.type) or pa.types.is_floating(col.type)):
        floats = col.cast(pa.float64())
        fast = np.frombuffer(floats.buffers()[1], dtype=np.float64)
        fast = fast[floats.offset : floats.offset + len(floats)]
        if bool(np.all(np.isfinite(fast) & (fast >= 0))):
            seconds: np.ndarray = fast * scale
            return seconds
    numbers, bad = _as_seconds(col.to_pylist())
    if bad:
        csv = path.suffix.lower() == ".csv"
        first = ", ".join(
            f"{'line' if csv else 'row'} {i + 2 if csv else i + 1}: {v!r}" for i, v in bad[:3]
        )
        raise DataFileError(
            "path",
            f"column {column!r} of {str(path)!r} has {len(bad)} value(s) that are not numbers "
            f">= 0 ({first})",
        )
    return np.asarray(numbers, dtype=np.float64) * scale


def read_inputs(scn: Scenario) -> tuple[Inputs, list[Problem]]:
    """Read every data file ``scn`` refers to; return what was read and every problem."""
    inputs = Inputs()
    problems: list[Problem] = []
    for wl in scn.workloads:
        key, spec = (
            ("service", wl.service)
            if isinstance(wl, InferenceWorkload)
            else ("duration", wl.duration)
        )
        if not isinstance(spec, Empirical):
            continue
        ident = (spec.path, spec.column, spec.unit)
        if ident in inputs.samples:
            continue
        try:
            inputs.samples[ident] = read_empirical(spec)
        except DataFileError as exc:
            problems.append(Problem(f"workloads.{wl.name}.{key}.{exc.key}", str(exc)))
    return inputs, problems
