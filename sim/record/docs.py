"""``docs/outputs.md``, generated from the schema module: every file of a run directory.

``python -m sim.record.docs`` prints the page; ``python -m sim.record.docs --write`` writes
it to ``docs/outputs.md`` (run from the repository's root). A test fails when the file
differs from what this module generates.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pyarrow as pa

from sim.record import codes
from sim.record.schemas import (
    DICT,
    LOCAL_TIMESTAMP,
    PANDAS_DTYPES,
    SCHEMA_VERSION,
    TABLE_DOCS,
    TABLES,
    TIMESTAMP,
    schema,
)
from sim.record.sink import ROW_GROUP_ROWS

OUTPUTS_MD = Path("docs") / "outputs.md"
"""Where ``--write`` puts the page, relative to the repository's root."""
COMMAND = "python -m sim.record.docs --write"
"""The command that regenerates ``docs/outputs.md``."""

TYPE_NAMES: dict[pa.DataType, str] = {
    pa.int32(): "int32",
    pa.int64(): "int64",
    pa.float64(): "float64",
    pa.bool_(): "bool",
    pa.string(): "string",
    DICT: "string (dictionary)",
    TIMESTAMP: "timestamp[us, UTC]",
    LOCAL_TIMESTAMP: "timestamp[us]",
}
"""How each Arrow type of the outputs is named on the page."""

VALUES: dict[tuple[str, str], tuple[str, ...]] = {
    ("events", "event"): codes.EVENTS,
    ("requests", "status"): codes.REQUEST_STATUS,
    ("jobs", "status"): codes.JOB_STATUS,
    ("timeseries", "limit_source"): codes.LIMIT_SOURCES,
    ("limits", "source"): codes.LIMIT_SOURCES[1:],
    ("nodes", "state"): codes.NODE_STATES,
    ("histograms", "measure"): codes.MEASURES,
}
"""The fixed vocabularies of dictionary columns (the recorder writes them from these codes)."""

ZONE = "the scenario's timezone"
"""Stands for the zone name in the local columns' descriptions."""

INTRO = f"""\
<!-- Generated from sim/record/schemas.py by `{COMMAND}`; do not edit by hand. -->

# The run directory

A run writes into its directory {len(TABLES)} Parquet files, `summary.json` and
`manifest.json`. This page lists every file and column; it is generated from the schema module
(`sim/record/schemas.py`), which also stores each column's unit and description in the Parquet
field metadata (`unit`, `description`).

**A run directory is complete only when `manifest.json` exists.** The tables stream to disk
while the run goes (zstd-compressed, text dictionary-encoded, row groups of
{ROW_GROUP_ROWS:,} rows), each under a hidden temporary name (`.requests.parquet.tmp`) renamed
into place when the run ends; `summary.json` follows, and `manifest.json` comes last. A stale
manifest is removed before a new run writes anything, and a failed run removes its temporary
files.

## Times, timestamps and local times

Times (`*_s`) are seconds since the scenario start. When the scenario has a calendar
`[scenario] start`, a UTC timestamp column follows each time column that has one (`time_s`:
`timestamp`, `arrival_s`: `arrival_ts`, ...). When it also has a `[scenario] timezone` (an IANA
name such as `America/Chicago`), a local column follows each timestamp column, named with
`_local` for `_ts` (`arrival_local`; `timestamp`: `timestamp_local`): the local wall-clock time
in that zone as a timezone-naive timestamp, which BI tools show as it is, daylight saving time
included. In the autumn hour that repeats, two instants an hour apart show the same local
time, and no local time falls in the hour skipped in spring: order and subtract with the `*_s`
or `*_ts` columns. The tables below list both kinds, marked "with `start`" and "with
`timezone`".

## Types

Each file carries pandas metadata, so a plain `pd.read_parquet(path)` (or `result.frame(name)`
from Python, which agrees with it) gives the same dtypes in every run, whether a column happens
to hold nulls or not:

| Parquet type | pandas dtype | null in pandas |
| --- | --- | --- |
{{types}}

Integer columns read as pandas' nullable integer dtypes (`Int32`, `Int64`) and booleans as
`boolean`, with `pd.NA` for null: `df.gpus.sum()` works as on any integer column, and
`df.sla_met.fillna(False)` or `df.replica.dropna()` handles the nulls. Dictionary-encoded text
(a small, fixed set of values: statuses, workload and pool names) reads as `category`, whose
categories are all the values the run could write (use `observed=True` in `groupby`); other
text reads as pandas' default string dtype (`str` in pandas 3, `object` in pandas 2).
`pd.read_parquet(path, dtype_backend="pyarrow")` gives Arrow-backed dtypes throughout instead.
DuckDB, Polars and BI tools read the Parquet types themselves (the pandas metadata does not
concern them).
"""

SUMMARY_JSON = """\
## `summary.json`

The run's summary as `sim run` prints it (`sim summarize RUN_DIR` recomputes it from the
tables): utilisation and allocation, request and SLA figures, job figures, reliability, energy,
PUE, cost, and what each limit held back, for the whole site and per workload and pool.
Statistics cover requests and jobs arriving at or after the warm-up; time-based figures cover
the window from the warm-up to the end. Figures with nothing to measure are `null`; numbers
keep 12 significant digits. Each key is described in the README's `summary.json` section.
"""

MANIFEST_JSON = f"""\
## `manifest.json`

Written last (see above). It holds the simulator (`"sim"`) and its version, `schema_version`
(of the output columns: {SCHEMA_VERSION}; bumped when a column is renamed or removed or its
meaning changes), creation time, Python version, the scenario file, the overrides and the seed,
the wall time, row counts, `simulated` (requests and jobs simulated, whatever was recorded),
`run` (what the summary needs), the fully resolved `scenario` (every default filled in,
durations in seconds) and, for each file, its size, row count and SHA-256.
"""


SWEEP_FILES = (
    (
        "`sweep.json`",
        "the sweep file's content, the scenario file, the axes, and every run: its folder, "
        "point, values, seed and `--set` items",
    ),
    ("`summary.parquet`", "one row per run (columns below)"),
    ("`summary_ci.parquet`", "one row per point (columns below)"),
)
ANY_TYPE = "`Int64`, `float64`, `boolean` or `string`"
SWEEP_SUMMARY = (
    ("`run`", "`string`", "the run's folder under the sweep's folder"),
    ("`point`", "`Int64`", "the point's number, in the order of the sweep file"),
    ("one per axis (`pools.hall-a.nodes`, ...)", ANY_TYPE, "the point's value of that key"),
    ("`seed`", "`Int64`", "the run's seed"),
    ("`status`", "`string`", "`ok`, or `failed`"),
    ("`error`", "`string`", "why the run failed; null when `ok`"),
    (
        "every figure of `summary.json`",
        ANY_TYPE,
        "flattened with dots: `sla_attainment`, `workloads.<name>.<figure>`, "
        "`pools.<name>.<figure>`, `held_back.<source>.<figure>`; null for a failed run",
    ),
)
SWEEP_CI = (
    ("`point` and one per axis", "as above", "the point"),
    ("`runs`", "`Int64`", "the point's finished runs"),
    ("`failed`", "`Int64`", "the point's failed runs"),
    (
        "`<figure>.mean`",
        "`float64`",
        "for every numeric figure: its mean over the point's finished runs that have it",
    ),
    (
        "`<figure>.ci95_low`, `<figure>.ci95_high`",
        "`float64`",
        "the 95 % Student-t confidence interval of that mean, mean ± t(0.975, n − 1) · s / √n; "
        "null with fewer than two runs",
    ),
)


def _rows(header: tuple[str, ...], rows: tuple[tuple[str, ...], ...]) -> str:
    """A Markdown table (``<`` kept: these cells hold it inside code spans only)."""
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def sweep_markdown() -> str:
    """The section on a sweep's folder and its tables."""
    columns = ("column", "pandas", "meaning")
    return f"""\
## A sweep's folder

`sim sweep` writes each run to `<out>/<sweep name>/<axis>=<value>/.../seed=<n>/`, a run
directory as above, so a sweep reads as one hive-partitioned dataset whose partition columns
are the axes (named by their dotted keys, such as `pools.hall-a.nodes`) and `seed`. Beside the
runs, in the sweep's folder:

{_rows(("file", "what"), SWEEP_FILES)}

`summary.parquet`:

{_rows(columns, SWEEP_SUMMARY)}

`summary_ci.parquet`:

{_rows(columns, SWEEP_CI)}

`sim export RUN_OR_SWEEP_DIR --format csv|parquet` writes one flat file per table (text as
plain strings); for a sweep, each row is led by `run`, the axes and `seed`.
"""


def _cell(text: str) -> str:
    """Text for a Markdown table cell."""
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;").replace("\n", " ")


def _types_table() -> str:
    nulls = {
        pa.int32(): "`pd.NA`",
        pa.int64(): "`pd.NA`",
        pa.bool_(): "`pd.NA`",
        pa.float64(): "`NaN`",
        pa.string(): "`NaN` (`None` in pandas 2)",
        DICT: "`NaN`",
        TIMESTAMP: "`NaT`",
        LOCAL_TIMESTAMP: "`NaT`",
    }
    return "\n".join(f"| {TYPE_NAMES[t]} | `{PANDAS_DTYPES[t]}` | {nulls[t]} |" for t in TYPE_NAMES)


def table_markdown(name: str) -> str:
    """The section of one table: what a row is, and a row per column (type, unit, meaning)."""
    lines = [
        f"## `{name}.parquet`",
        "",
        TABLE_DOCS[name],
        "",
        "| column | type | pandas | unit | meaning |",
        "| --- | --- | --- | --- | --- |",
    ]
    for field in schema(name, calendar=True, timezone=ZONE):
        meta = {k.decode(): v.decode() for k, v in (field.metadata or {}).items()}
        meaning = meta["description"]
        if field.type == TIMESTAMP:
            meaning += "; with `start`"
        elif field.type == LOCAL_TIMESTAMP:
            meaning += "; with `timezone`"
        values = VALUES.get((name, field.name))
        if values:
            meaning += "; one of " + ", ".join(f"`{v}`" for v in values)
        lines.append(
            f"| `{field.name}` | {TYPE_NAMES[field.type]} | `{PANDAS_DTYPES[field.type]}` "
            f"| {_cell(meta['unit'])} | {_cell(meaning)} |"
        )
    return "\n".join(lines) + "\n"


def outputs_markdown() -> str:
    """The whole of ``docs/outputs.md``."""
    parts = [INTRO.replace("{types}", _types_table())]
    parts.extend(table_markdown(name) for name in TABLES)
    parts.extend((SUMMARY_JSON, MANIFEST_JSON, sweep_markdown()))
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    """Print the page, or write it with ``--write [PATH]`` (default ``docs/outputs.md``)."""
    parser = argparse.ArgumentParser(prog="python -m sim.record.docs", description=__doc__)
    parser.add_argument(
        "--write",
        nargs="?",
        const=str(OUTPUTS_MD),
        metavar="PATH",
        help=f"write the page to PATH (default {OUTPUTS_MD}) instead of printing it",
    )
    args = parser.parse_args(argv)
    text = outputs_markdown()
    if args.write is None:
        sys.stdout.write(text)
    else:
        Path(args.write).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
