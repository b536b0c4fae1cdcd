"""``sim export``: a run or a whole sweep as flat files, one per table, for tools that want them.

A run's tables are written as they are, with dictionary-encoded strings as plain strings. A
sweep's runs are stacked into one file per table, each row led by the run's folder (``run``),
its axis values and its ``seed``; the sweep's ``summary`` and ``summary_ci`` tables come too.
Tables stream batch by batch, so memory stays flat however large the sweep; each file is
written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from sim.errors import UserError
from sim.record.schemas import TABLES, pandas_metadata
from sim.record.writer import MANIFEST

FORMATS = ("csv", "parquet")
SWEEP_JSON = "sweep.json"
SWEEP_TABLES = ("summary", "summary_ci")
"""A sweep's own tables, exported beside the stacked run tables."""


def _flat(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Dictionary-encoded columns as plain strings."""
    columns = [
        pc.cast(col, col.type.value_type) if pa.types.is_dictionary(col.type) else col
        for col in batch.columns
    ]
    fields = [
        pa.field(f.name, c.type, metadata=f.metadata)
        for f, c in zip(batch.schema, columns, strict=True)
    ]
    return pa.RecordBatch.from_arrays(columns, schema=pa.schema(fields))


def _with_pandas_metadata(schema: pa.Schema) -> pa.Schema:
    """``schema`` with the pandas metadata a run's files carry.

    Integers and booleans then read back as pandas' nullable types; a schema with a column
    type the metadata does not know is left without it.
    """
    try:
        return schema.with_metadata({b"pandas": pandas_metadata(list(schema))})
    except KeyError:
        return schema.remove_metadata()


class _Output:
    """One exported file, written under a temporary name and renamed by ``commit``."""

    def __init__(self, path: Path, fmt: str) -> None:
        self.path = path
        self.tmp = path.with_name(f".{path.name}.tmp")
        self.fmt = fmt
        self.writer: Any = None
        self.schema: pa.Schema | None = None

    def write(self, batch: pa.RecordBatch) -> None:
        if self.writer is None:
            self.schema = _with_pandas_metadata(batch.schema)
            if self.fmt == "csv":
                self.writer = pcsv.CSVWriter(self.tmp, self.schema)
            else:
                self.writer = pq.ParquetWriter(self.tmp, self.schema, compression="zstd")
        assert self.schema is not None
        if self.fmt == "csv":
            self.writer.write_batch(batch.cast(self.schema))
        else:
            self.writer.write_table(pa.Table.from_batches([batch.cast(self.schema)]))

    def commit(self) -> None:
        if self.writer is not None:
            self.writer.close()
            os.replace(self.tmp, self.path)

    def abort(self) -> None:
        if self.writer is not None:
            with contextlib.suppress(Exception):
                self.writer.close()
        with contextlib.suppress(OSError):
            self.tmp.unlink()


def _runs(source: Path) -> tuple[list[tuple[Path, dict[str, Any]]], bool]:
    """The run folders to export with the constant columns of each, and whether a sweep."""
    if (source / MANIFEST).exists():
        return [(source, {})], False
    listing = source / SWEEP_JSON
    if not listing.exists():
        raise UserError(
            f"{source}: neither a run directory (no {MANIFEST}) nor a sweep folder "
            f"(no {SWEEP_JSON})"
        )
    try:
        runs = json.loads(listing.read_text())["runs"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{listing}: cannot read the sweep's runs ({exc})") from None
    found = [
        (source / r["run"], {"run": r["run"], **r["values"], "seed": r["seed"]})
        for r in runs
        if (source / r["run"] / MANIFEST).exists()
    ]
    if not found:
        raise UserError(f"{source}: the sweep has no finished run yet")
    for key in found[0][1]:  # an axis given as [0.8, 1] is a float axis in every run
        if any(isinstance(c[key], float) for _, c in found):
            for _, constants in found:
                constants[key] = float(constants[key])
    return found, True


def _with_constants(batch: pa.RecordBatch, constants: dict[str, Any]) -> pa.RecordBatch:
    """``batch`` led by one column per constant (the run, its axes and seed)."""
    if not constants:
        return batch
    n = batch.num_rows
    arrays = [pa.array([value] * n, type=pa.scalar(value).type) for value in constants.values()]
    names = [*constants, *batch.schema.names]
    return pa.RecordBatch.from_arrays([*arrays, *batch.columns], names=names)


def _batches(path: Path) -> Iterator[pa.RecordBatch]:
    try:
        yield from pq.ParquetFile(path).iter_batches(batch_size=65_536)
    except (OSError, pa.ArrowException) as exc:
        raise UserError(f"{path}: cannot read: {exc}") from None


def _check_out(out: Path, names: list[str]) -> None:
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a folder; choose another --out")
    if out.is_dir():
        foreign = sorted(p.name for p in out.iterdir() if p.name not in names and p.name[0] != ".")
        if foreign:
            raise UserError(
                f"{out}: holds files sim export did not write ({', '.join(foreign[:3])}); "
                "choose an empty folder for --out"
            )
    out.mkdir(parents=True, exist_ok=True)


def export(source: str | Path, fmt: str = "csv", out: str | Path | None = None) -> Path:
    """Export a run directory or a sweep folder as one ``<table>.<fmt>`` file per table.

    ``out`` defaults to ``<source>-<fmt>`` beside the source. Returns the folder written.
    """
    if fmt not in FORMATS:
        raise UserError(f"--format: expected one of {', '.join(FORMATS)} (got {fmt!r})")
    source = Path(source).resolve()
    if not source.is_dir():
        raise UserError(f"{source}: not a folder")
    runs, sweep = _runs(source)
    target = (Path(out) if out is not None else source.with_name(f"{source.name}-{fmt}")).resolve()
    inside = next((p for p in target.parents if (p / SWEEP_JSON).exists()), None)
    if inside is not None:
        raise UserError(
            f"{target}: inside the sweep folder {inside}, where a dataset read of the sweep would "
            "take the exported files for runs; choose an --out outside it"
        )
    tables = list(TABLES) + (list(SWEEP_TABLES) if sweep else [])
    _check_out(target, [f"{name}.{fmt}" for name in tables])
    for name in tables:
        output = _Output(target / f"{name}.{fmt}", fmt)
        try:
            if name in SWEEP_TABLES:
                for batch in _batches(source / f"{name}.parquet"):
                    output.write(_flat(batch))
            else:
                for run_dir, constants in runs:
                    for batch in _batches(run_dir / f"{name}.parquet"):
                        output.write(_with_constants(_flat(batch), constants))
                if output.writer is None:  # no rows anywhere: still write the header
                    schema = pq.read_schema(runs[0][0] / f"{name}.parquet")
                    batch = pa.RecordBatch.from_pylist([], schema=schema)
                    output.write(_with_constants(_flat(batch), runs[0][1]))
            output.commit()
        except OSError as exc:
            output.abort()
            raise UserError(f"{output.path}: cannot write ({exc.strerror or exc})") from None
        except BaseException:
            output.abort()
            raise
    return target
