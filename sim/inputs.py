"""External data a scenario refers to, read and checked before a run.

Three kinds: empirical distributions (``read_empirical``: a column of durations), time series
of site conditions (``read_series``: ambient temperature, prices, other load, held constant from
each point to the next) and arrival traces (``read_trace``: one arrival per row). A missing or
unreadable file, a missing column or a bad row is a problem naming the key path
(``workloads.ft.duration.path``, ``facility.price.value_column``), the data file and the line.
Reading needs pyarrow, not pandas.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from sim.config.arrivals import Trace
from sim.config.distributions import Empirical
from sim.config.facility import SeriesFile
from sim.config.scenario import InferenceWorkload, LLMWorkload, Scenario, Workload
from sim.config.units import UNIT_SECONDS, format_duration
from sim.errors import Problem


@dataclass(frozen=True, eq=False)
class Series:
    """A time series, held constant from each point to the next.

    ``times_s`` are seconds since the scenario start, strictly increasing; ``values[i]`` holds
    from ``times_s[i]`` to ``times_s[i + 1]``, and the last value for ``step_s`` (the median
    spacing of the points). Points before 0 or past the horizon are kept. Both arrays are
    float64 and read-only.
    """

    times_s: np.ndarray
    values: np.ndarray

    @property
    def step_s(self) -> float:
        """How long the last value holds: the median spacing (infinite for a single point)."""
        return _median_step(self.times_s)


@dataclass
class Inputs:
    """Data loaded for a run.

    Empirical samples in seconds, keyed by (path, column, unit); series keyed by (path,
    time column, value column); arrival traces (seconds since their first row, ascending)
    keyed by (path, time column), and their marks keyed by (path, time column, marks).
    """

    samples: dict[tuple[Path, str | None, str], np.ndarray] = field(default_factory=dict)
    series: dict[tuple[Path, str, str], Series] = field(default_factory=dict)
    traces: dict[tuple[Path, str], np.ndarray] = field(default_factory=dict)
    trace_marks: dict[tuple[Path, str, tuple[tuple[str, str], ...]], dict[str, np.ndarray]] = field(
        default_factory=dict
    )

    def empirical(self, spec: Empirical) -> np.ndarray:
        """The values (seconds) of an empirical distribution."""
        return self.samples[(spec.path, spec.column, spec.unit)]

    def series_of(self, spec: SeriesFile) -> Series:
        """The series read for a ``kind = "series"`` spec."""
        return self.series[(spec.path, spec.time_column, spec.value_column)]

    def trace_of(self, spec: Trace) -> np.ndarray:
        """A trace's times: seconds since its earliest row, ascending, one per row."""
        return self.traces[(spec.path, spec.time_column)]

    def marks_of(self, spec: Trace) -> dict[str, np.ndarray]:
        """A trace's marks (``columns``), by mark name, in the order of its times."""
        if not spec.columns:
            return {}
        return self.trace_marks[(spec.path, spec.time_column, spec.marks())]


class DataFileError(ValueError):
    """A data file that cannot be used, and the key of its spec to blame.

    ``key`` is a sub-key of the spec (``path``, ``column``, ``time_column``, ``value_column``);
    ``related`` names scenario-wide keys the problem also depends on (``scenario.duration``).
    """

    def __init__(self, key: str, message: str, related: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.key = key
        self.related = related


class NeedsStart(DataFileError):
    """A series with timestamps in a scenario without ``scenario.start``: blame the start."""

    def __init__(self, message: str) -> None:
        super().__init__("time_column", message)


def _read_table(path: Path) -> Any:
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    if path.suffix.lower() == ".csv":
        return pacsv.read_csv(path)
    if path.is_dir():  # a partitioned data set
        return pq.read_table(path)
    # Not pq.read_table: for a single file it goes through the data set API, which loads pandas.
    with pq.ParquetFile(path) as file:
        return file.read()


def _open_table(path: Path) -> Any:
    """The whole table of a CSV or Parquet file; DataFileError (at ``path``) if it can't."""
    if not path.exists():
        raise DataFileError("path", f"data file {str(path)!r} does not exist")
    try:
        return _read_table(path)
    except Exception as exc:  # pyarrow raises several types for unreadable files
        raise DataFileError("path", f"cannot read data file {str(path)!r}: {exc}") from None


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
    table = _open_table(path)
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


# ---------------------------------------------------------------------------------------------
# Time series

_UNITS_PER_S = {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_TIMESTAMPS = "timestamps (like 2024-06-01 00:15:00, optionally with a UTC offset)"
_SECONDS = "numbers (seconds since the scenario start)"


def _median_step(times_s: np.ndarray) -> float:
    if len(times_s) < 2:
        return math.inf
    return float(np.median(np.diff(times_s)))


class _Rows:
    """Names rows for messages: ``line N`` of a CSV (the header is line 1), ``row N`` of Parquet.

    A CSV's line numbers account for the blank lines the reader skips (read only when needed).
    """

    def __init__(self, path: Path, n_rows: int) -> None:
        self.path = path
        self.n_rows = n_rows
        self.csv = path.suffix.lower() == ".csv"
        self._lines: list[int] | None = None

    def __call__(self, i: int) -> str:
        if not self.csv:
            return f"row {i + 1}"
        if self._lines is None:
            text = self.path.read_bytes().split(b"\n")
            lines = [n + 1 for n, line in enumerate(text) if line not in (b"", b"\r")]
            # A quoted field spanning lines breaks the count: fall back to one line per row.
            self._lines = lines if len(lines) == self.n_rows + 1 else []
        return f"line {self._lines[i + 1] if self._lines else i + 2}"


def _csv_texts(path: Path, column: str) -> list[str]:
    """A CSV column as its text, cell by cell (empty cells as ``''``)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    options = pacsv.ConvertOptions(
        include_columns=[column], column_types={column: pa.string()}, strings_can_be_null=False
    )
    texts: list[str] = pacsv.read_csv(path, convert_options=options).column(column).to_pylist()
    return texts


def _numpy(arr: Any, dtype: type[np.generic]) -> np.ndarray:
    """A null-free Arrow array of fixed-width ``dtype`` as a (read-only) numpy view.

    Not ``Array.to_numpy``: it loads pandas, which the model's run must not need.
    """
    values = np.frombuffer(arr.buffers()[1], dtype=dtype)
    return values[arr.offset : arr.offset + len(arr)]


def _floats(arr: Any) -> np.ndarray:
    """A numeric Arrow array as float64, NaN where null."""
    import pyarrow as pa

    floats = arr.cast(pa.float64())
    if floats.null_count:
        floats = floats.fill_null(math.nan)
    return _numpy(floats, np.float64)


def _number(text: str) -> float | None:
    try:
        x = float(text)
    except ValueError:
        return None
    return x if math.isfinite(x) else None


def _timestamp(text: str) -> datetime | None:
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        return None
    return stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=UTC)


def _stamp_text(value: int, unit: str) -> str:
    """An Arrow timestamp integer as calendar text (UTC)."""
    per_s = _UNITS_PER_S[unit]
    whole, rest = divmod(value, per_s)
    try:
        stamp = _EPOCH + timedelta(seconds=whole, microseconds=rest * 10**6 // per_s)
    except OverflowError:
        return f"{value} {unit} since 1970"
    return stamp.replace(tzinfo=None).isoformat(" ")


class _Column:
    """One column of a series file, with what messages need to name it and its rows."""

    def __init__(self, path: Path, name: str, key: str, arr: Any, rows: _Rows) -> None:
        self.path = path
        self.name = name
        self.key = key
        self.arr = arr
        self.rows = rows

    @property
    def where(self) -> str:
        return f"column {self.name!r} of {str(self.path)!r}"

    def texts(self) -> list[Any]:
        """The cells as the file holds them: the text of a CSV, Python values of Parquet."""
        import pyarrow as pa

        if self.rows.csv:
            return _csv_texts(self.path, self.name)
        if pa.types.is_timestamp(self.arr.type):  # only nulls are bad; avoid ns scalars
            return [None] * len(self.arr)
        cells: list[Any] = self.arr.to_pylist()
        return cells

    def reject(self, bad: np.ndarray, cells: Sequence[Any], what: str) -> DataFileError:
        """The error for the rows where ``bad`` is set: up to 3 of them, and the count."""
        rows = np.flatnonzero(bad)
        shown = ", ".join(f"{self.rows(int(i))}: {cells[int(i)]!r}" for i in rows[:3])
        more = f" and {len(rows) - 3} more" if len(rows) > 3 else ""
        return DataFileError(
            self.key, f"{self.where} has {len(rows)} value(s) that are not {what}: {shown}{more}"
        )

    def wrong_type(self, what: str) -> DataFileError:
        return DataFileError(self.key, f"{self.where} holds {self.arr.type}: expected {what}")


def _needs_start(col: _Column, example: str, row: int) -> NeedsStart:
    return NeedsStart(
        f"{col.where} holds timestamps ({example!r} on {col.rows(row)}): set scenario.start "
        f"(the calendar time of the run's time 0), or give the times as seconds since the start"
    )


def _read_times(
    col: _Column, start: datetime | None, seconds_are: str = _SECONDS
) -> tuple[np.ndarray, bool]:
    """Seconds since ``start`` of each row, and whether the column holds timestamps.

    ``seconds_are`` says what numbers mean, for messages.
    """
    import pyarrow as pa

    arr = col.arr
    kind = arr.type
    if pa.types.is_integer(kind) or pa.types.is_floating(kind):
        seconds = _floats(arr)
        bad = ~np.isfinite(seconds)
        if bad.any():
            raise col.reject(bad, col.texts(), seconds_are)
        return seconds, False
    if pa.types.is_timestamp(kind):
        nulls = None
        ints = arr.cast(pa.int64())
        if arr.null_count:
            nulls = _numpy(arr.is_null().cast(pa.int8()), np.int8).astype(bool)
            if nulls.all():
                raise col.reject(nulls, col.texts(), _TIMESTAMPS)
            ints = ints.fill_null(0)
        values = _numpy(ints, np.int64)
        if start is None:
            first = int(np.argmin(nulls)) if nulls is not None else 0
            example = _stamp_text(int(values[first]), kind.unit) + (" UTC" if kind.tz else "")
            raise _needs_start(col, example, first)
        if nulls is not None:
            raise col.reject(nulls, col.texts(), _TIMESTAMPS)
        per_s = _UNITS_PER_S[kind.unit]
        origin, rest = divmod((start - _EPOCH) // timedelta(microseconds=1) * per_s, 10**6)
        seconds = (values - np.int64(origin)).astype(np.float64) / per_s
        if rest:
            seconds -= rest / 10**6 / per_s
        return seconds, True
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_null(kind)):
        raise col.wrong_type(f"{_TIMESTAMPS} or {seconds_are}")
    return _parse_times(col, col.texts(), start, seconds_are)


def _parse_times(
    col: _Column, cells: list[Any], start: datetime | None, seconds_are: str = _SECONDS
) -> tuple[np.ndarray, bool]:
    """Times from text: numbers of seconds or timestamps, whichever most rows hold."""
    n = len(cells)
    numbers = np.full(n, math.nan)
    stamps: list[datetime | None] = [None] * n
    for i, cell in enumerate(cells):
        if not isinstance(cell, str):
            continue
        text = cell.strip()
        x = _number(text)
        if x is not None:
            numbers[i] = x
        else:
            stamps[i] = _timestamp(text)
    n_stamps = sum(s is not None for s in stamps)
    if n_stamps <= int(np.isfinite(numbers).sum()):
        bad = ~np.isfinite(numbers)
        if bad.any():
            raise col.reject(bad, cells, seconds_are)
        return numbers, False
    if start is None:
        first = next(i for i, s in enumerate(stamps) if s is not None)
        raise _needs_start(col, str(cells[first]).strip(), first)
    bad = np.array([s is None for s in stamps])
    if bad.any():
        raise col.reject(bad, cells, _TIMESTAMPS)
    seconds = np.array([(s - start).total_seconds() for s in stamps if s is not None])
    return seconds, True


def _read_values(col: _Column) -> np.ndarray:
    """The values as float64: finite numbers (numeric text accepted)."""
    import pyarrow as pa

    kind = col.arr.type
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        values = _floats(col.arr)
        bad = ~np.isfinite(values)
        if bad.any():
            raise col.reject(bad, col.texts(), "finite numbers")
        return values
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_null(kind)):
        raise col.wrong_type("numbers")
    cells = col.texts()
    values = np.array(
        [_number(c.strip()) if isinstance(c, str) else None for c in cells], dtype=np.float64
    )
    bad = ~np.isfinite(values)
    if bad.any():
        raise col.reject(bad, cells, "finite numbers")
    return values


def _numbers_or_nan(col: _Column) -> np.ndarray:
    """The values as float64 (numeric text accepted), NaN where a cell is not a number."""
    import pyarrow as pa

    kind = col.arr.type
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        return _floats(col.arr)
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_null(kind)):
        raise col.wrong_type("numbers")
    return np.array(
        [_number(c.strip()) if isinstance(c, str) else None for c in col.texts()],
        dtype=np.float64,
    )


def _clock(start: datetime | None) -> Callable[[float], str]:
    """How a time (seconds since the start) is shown: calendar time with a start, else seconds."""

    def show(t: float) -> str:
        if start is not None and math.isfinite(t):
            try:
                return (start + timedelta(seconds=t)).replace(tzinfo=None).isoformat(" ") + " UTC"
            except OverflowError:
                pass
        return f"{t:.15g} s"

    return show


def _open_with_columns(path: Path, columns: Sequence[tuple[str, str]]) -> tuple[Any, _Rows]:
    """Open a data file that must hold rows and these columns; its table and row numbering.

    ``columns`` are ``(key, column name)``: the key is blamed when the column is missing.
    """
    table = _open_table(path)
    names = table.column_names
    for key, name in columns:
        if name not in names:
            raise DataFileError(
                key, f"data file {str(path)!r} has no column {name!r} (it has {names})"
            )
    if table.num_rows == 0:
        raise DataFileError("path", f"data file {str(path)!r} has no rows")
    return table, _Rows(path, table.num_rows)


def read_series(spec: SeriesFile, start: datetime | None, horizon_s: float) -> Series:
    """Read a series file; raise DataFileError (NeedsStart for timestamps without a start).

    Times are seconds since ``start``: timestamp columns (Parquet timestamps, or CSV text such
    as ``2024-06-01 00:15:00`` or ISO 8601 with an offset; UTC without one) need ``start``,
    numeric columns are seconds already. Rows are sorted by time; repeated times are an error.
    The series must cover ``[0, horizon_s)``: its first time at or before 0, its last time plus
    one step (the median spacing) at or after ``horizon_s``. The error's ``key`` is the spec's
    sub-key to blame: ``path``, ``time_column`` or ``value_column``.
    """
    if start is not None and start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    path = spec.path
    table, rows = _open_with_columns(
        path, (("time_column", spec.time_column), ("value_column", spec.value_column))
    )
    time_col = _Column(
        path, spec.time_column, "time_column", table.column(spec.time_column).combine_chunks(), rows
    )
    times, stamped = _read_times(time_col, start)
    value_col = _Column(
        path,
        spec.value_column,
        "value_column",
        table.column(spec.value_column).combine_chunks(),
        rows,
    )
    values = _read_values(value_col)
    show = _clock(start)

    order = np.argsort(times, kind="stable")
    ordered = times[order]
    repeats = np.flatnonzero(ordered[1:] == ordered[:-1])
    if len(repeats):
        pairs = ", ".join(
            f"{rows(int(order[j]))} and {rows(int(order[j + 1]))} ({show(float(ordered[j]))})"
            for j in repeats[:3]
        )
        more = f" and {len(repeats) - 3} more" if len(repeats) > 3 else ""
        raise DataFileError(
            "time_column", f"{time_col.where} has {len(repeats)} repeated time(s): {pairs}{more}"
        )
    times, values = ordered, values[order]

    step = _median_step(times)
    span = f"the run spans {show(0.0)} to {show(horizon_s)} ({format_duration(horizon_s)})"
    related = ("scenario.start",) if stamped else ()
    if times[0] > 0:
        raise DataFileError(
            "path",
            f"{str(path)!r} does not cover the start of the run: its first time is "
            f"{show(float(times[0]))}; {span}",
            related=related,
        )
    if times[-1] + step < horizon_s:
        raise DataFileError(
            "path",
            f"{str(path)!r} does not cover the end of the run: its last time "
            f"{show(float(times[-1]))} holds for one step ({format_duration(step)}, the median "
            f"spacing) to {show(float(times[-1] + step))}; {span}",
            related=(*related, "scenario.duration"),
        )
    times.setflags(write=False)
    values.setflags(write=False)
    return Series(times_s=times, values=values)


# ---------------------------------------------------------------------------------------------
# Arrival traces

_TRACE_ORIGIN = datetime(2000, 1, 1, tzinfo=UTC)
"""Timestamps are first read as seconds since this instant, then taken from the earliest."""
_TRACE_SECONDS = "numbers (seconds)"


def _trace_times(spec: Trace) -> tuple[np.ndarray, np.ndarray, Any, _Rows]:
    """A trace's times relative to its earliest row, unsorted; their sorting order; the table."""
    path = spec.path
    columns = [("time_column", spec.time_column)]
    columns += [(f"columns.{mark}", name) for mark, name in spec.marks()]
    table, rows = _open_with_columns(path, columns)
    col = _Column(
        path, spec.time_column, "time_column", table.column(spec.time_column).combine_chunks(), rows
    )
    times, stamped = _read_times(col, _TRACE_ORIGIN, _TRACE_SECONDS)
    if not stamped:
        negative = times < 0
        if negative.any():
            raise col.reject(negative, col.texts(), "numbers >= 0 (seconds)")
    first = float(times.min())
    if stamped and first != 0.0:
        # Again from the first row's whole second, so sub-second gaps keep their digits.
        whole = math.floor(first)
        times, _ = _read_times(col, _TRACE_ORIGIN + timedelta(seconds=whole), _TRACE_SECONDS)
        first = float(times.min())
    relative = times - first
    return relative, np.argsort(relative, kind="stable"), table, rows


def read_trace(spec: Trace) -> np.ndarray:
    """Read a trace's time column: seconds since its earliest row, ascending, one per row.

    The column holds numbers of seconds (>= 0) or timestamps (Parquet timestamps, or text such
    as ``2023-11-16 18:15:46.6805900``; any number of fractional digits, UTC without an offset;
    no ``scenario.start`` needed, only differences count). Rows may come in any order and
    share an instant; every row is kept. Raises DataFileError at ``path`` (missing, unreadable
    or empty file) or ``time_column`` (missing column, bad rows, with their line numbers); a
    column of ``columns`` missing from the file is blamed on ``columns.<mark>``.
    """
    times, order, _, _ = _trace_times(spec)
    relative: np.ndarray = times[order]
    relative.setflags(write=False)
    return relative


MARK_RULES: dict[str, tuple[str, Callable[[np.ndarray], np.ndarray]]] = {
    "input_tokens": ("integers >= 0", lambda v: (v >= 0) & (v == np.floor(v))),
    "output_tokens": ("integers >= 0", lambda v: (v >= 0) & (v == np.floor(v))),
    "gpus": ("integers >= 1", lambda v: (v >= 1) & (v == np.floor(v))),
    "duration": ("numbers of seconds > 0", lambda v: (v > 0) & np.isfinite(v)),
    "requested": ("numbers of seconds > 0", lambda v: (v > 0) & np.isfinite(v)),
}
"""What each trace mark's values must be (for messages), and the test of good values."""


def read_trace_marks(spec: Trace) -> dict[str, np.ndarray]:
    """Read the columns a trace maps to marks: float64 arrays, in the order of ``read_trace``.

    Each row's values follow its time when the rows are sorted. Raises DataFileError like
    ``read_trace``; a bad value is blamed on ``columns.<mark>`` with up to 3 of its lines.
    """
    _, order, table, rows = _trace_times(spec)
    marks: dict[str, np.ndarray] = {}
    for mark, name in spec.marks():
        col = _Column(spec.path, name, f"columns.{mark}", table.column(name).combine_chunks(), rows)
        values = _numbers_or_nan(col)
        what, good = MARK_RULES[mark]
        bad = ~good(values)  # NaN (not a number, empty) fails every rule
        if bad.any():
            raise col.reject(bad, col.texts(), what)
        sorted_values: np.ndarray = np.ascontiguousarray(values[order], dtype=np.float64)
        sorted_values.setflags(write=False)
        marks[mark] = sorted_values
    return marks


def trace_period(relative: np.ndarray) -> float:
    """The period of a looped trace (in the file's seconds): its span + one median gap.

    Raises DataFileError if it is 0 (a trace whose rows are all at one instant cannot loop).
    """
    period = float(relative[-1] - relative[0]) + _median_step(relative)
    if not period > 0 or not math.isfinite(period):
        raise DataFileError(
            "loop", f"a trace whose {len(relative)} row(s) all share one instant cannot loop"
        )
    return period


def trace_count(spec: Trace, relative: np.ndarray, horizon_s: float) -> int:
    """How many arrivals a trace hands out in ``[0, horizon_s)``."""
    span = (horizon_s - spec.offset_s) * spec.speedup  # the file's seconds within the horizon
    if span <= 0:
        return 0
    if not spec.loop:
        return int(np.searchsorted(relative, span, side="left"))
    period = trace_period(relative)
    reps = math.floor(span / period)
    return reps * len(relative) + int(np.searchsorted(relative, span - reps * period, side="left"))


_READ: dict[tuple[Any, ...], Any] = {}
"""Data this process has read, keyed by what was asked and the file's size and modification
time: a sweep worker reads each data file once, not once per run."""
_READ_LIMIT = 64


def _cached(path: Path, key: tuple[Any, ...], read: Callable[[], Any]) -> Any:
    """``read()``, or what it gave for the same ``key`` while ``path`` was unchanged."""
    try:
        stat = path.stat()
    except OSError:
        return read()
    full = (*key, stat.st_mtime_ns, stat.st_size)
    if full not in _READ:
        if len(_READ) >= _READ_LIMIT:
            _READ.clear()
        _READ[full] = read()
    return _READ[full]


def _empirical(spec: Empirical) -> np.ndarray:
    def read() -> np.ndarray:
        values = read_empirical(spec)
        values.setflags(write=False)
        return values

    result: np.ndarray = _cached(spec.path, ("empirical", spec.model_dump_json()), read)
    return result


def _series(spec: SeriesFile, start: datetime | None, horizon_s: float) -> Series:
    key = ("series", spec.model_dump_json(), start, horizon_s)
    result: Series = _cached(spec.path, key, lambda: read_series(spec, start, horizon_s))
    return result


def _trace(spec: Trace) -> np.ndarray:
    key = ("trace", str(spec.path), spec.time_column)
    result: np.ndarray = _cached(spec.path, key, lambda: read_trace(spec))
    return result


def _trace_marks(spec: Trace) -> dict[str, np.ndarray]:
    key = ("trace_marks", str(spec.path), spec.time_column, spec.marks())
    result: dict[str, np.ndarray] = _cached(spec.path, key, lambda: read_trace_marks(spec))
    return result


def trace_counts(scn: Scenario) -> dict[str, float]:
    """Arrivals in the horizon of each workload with a ``trace`` arrival, by workload name.

    For the run's estimate, before the other checks: a trace that cannot be read is left out
    (``read_inputs`` reports it).
    """
    counts: dict[str, float] = {}
    for wl in scn.workloads:
        if isinstance(wl.arrival, Trace):
            try:
                counts[wl.name] = float(
                    trace_count(wl.arrival, _trace(wl.arrival), scn.scenario.duration_s)
                )
            except DataFileError:
                continue
    return counts


def _series_specs(scn: Scenario) -> list[tuple[str, SeriesFile]]:
    """The scenario's series, each with its key path."""
    facility = scn.facility
    specs = [
        ("facility.ambient", facility.ambient),
        ("facility.price", facility.price),
        ("facility.other_load_mw", facility.other_load_mw),
    ]
    return [(key, spec) for key, spec in specs if isinstance(spec, SeriesFile)]


def _distributions(scn: Scenario) -> list[tuple[Workload, str, Any]]:
    """(workload, key, spec) of every distribution a workload draws from."""
    found: list[tuple[Workload, str, Any]] = []
    for wl in scn.workloads:
        if isinstance(wl, InferenceWorkload):
            found.append((wl, "service", wl.service))
        elif isinstance(wl, LLMWorkload):
            found += [
                (wl, "input_tokens", wl.input_tokens),
                (wl, "output_tokens", wl.output_tokens),
            ]
        else:
            found += [(wl, "duration", wl.duration), (wl, "gpus", wl.gpus)]
    return found


def read_inputs(scn: Scenario) -> tuple[Inputs, list[Problem]]:
    """Read every data file ``scn`` refers to; return what was read and every problem.

    Each distinct file (with its columns) is read once, and once per process while it is
    unchanged (``_cached``); a series' problems are reported at its
    key (``facility.price.value_column``), and a missing start at ``scenario.start``.
    """
    inputs = Inputs()
    problems: list[Problem] = []
    for wl, key, spec in _distributions(scn):
        if not isinstance(spec, Empirical):
            continue
        ident = (spec.path, spec.column, spec.unit)
        if ident in inputs.samples:
            continue
        try:
            inputs.samples[ident] = _empirical(spec)
        except DataFileError as exc:
            problems.append(Problem(f"workloads.{wl.name}.{key}.{exc.key}", str(exc)))
    for wl in scn.workloads:
        arrival = wl.arrival
        if not isinstance(arrival, Trace):
            continue
        try:
            times = inputs.traces.get((arrival.path, arrival.time_column))
            if times is None:
                times = inputs.traces[(arrival.path, arrival.time_column)] = _trace(arrival)
            if arrival.loop:
                trace_period(times)
            marks_key = (arrival.path, arrival.time_column, arrival.marks())
            if arrival.columns and marks_key not in inputs.trace_marks:
                inputs.trace_marks[marks_key] = _trace_marks(arrival)
        except DataFileError as exc:
            problems.append(
                Problem(f"workloads.{wl.name}.arrival.{exc.key}", str(exc), related=exc.related)
            )
    failed: dict[tuple[Path, str, str], DataFileError] = {}
    for key, series in _series_specs(scn):
        sid = (series.path, series.time_column, series.value_column)
        if sid not in inputs.series and sid not in failed:
            try:
                inputs.series[sid] = _series(series, scn.scenario.start, scn.scenario.duration_s)
            except DataFileError as exc:
                failed[sid] = exc
        error = failed.get(sid)
        if isinstance(error, NeedsStart):
            problems.append(
                Problem(
                    "scenario.start",
                    f"{key} needs it: {error}",
                    related=(key, f"{key}.path", f"{key}.time_column"),
                )
            )
        elif error is not None:
            problems.append(Problem(f"{key}.{error.key}", str(error), related=error.related))
    return inputs, problems
