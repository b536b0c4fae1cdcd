"""One output table streamed to Parquet while the run goes, under a temporary name until the end.

Batches are gathered until a row group is full (``ROW_GROUP_ROWS``), then written, so memory
holds at most one row group per table whatever the horizon. Only string columns are
dictionary-encoded (on float columns it makes writing several times slower for nothing).
``commit`` renames the finished file into place; ``abort`` removes it.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

ROW_GROUP_ROWS = 1 << 18
"""Rows per Parquet row group (262,144): what a table holds in memory at most."""
COMPACT_BATCHES = 64
"""Small batches waiting for a row group are merged into one when this many have gathered (a
batch carries its own buffers and dictionaries: thousands of tiny ones would cost more memory
than their rows)."""


def temporary_name(path: Path) -> Path:
    """Where a file of the run directory is written before it is renamed into place."""
    return path.with_name(f".{path.name}.tmp")


class ParquetSink:
    """Writes batches of one schema to ``<directory>/<name>.parquet`` in row groups."""

    def __init__(self, directory: Path, name: str, schema: pa.Schema) -> None:
        self.path = directory / f"{name}.parquet"
        self.tmp = temporary_name(self.path)
        self.schema = schema
        self.rows = 0
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0
        self._writer: pq.ParquetWriter | None = None
        self._dictionary = [
            f.name for f in schema if pa.types.is_dictionary(f.type) or pa.types.is_string(f.type)
        ]

    def write(self, batch: pa.RecordBatch) -> None:
        """Add rows; a full row group goes to disk."""
        if batch.num_rows == 0:
            return
        self._pending.append(batch)
        self._pending_rows += batch.num_rows
        self.rows += batch.num_rows
        if self._pending_rows >= ROW_GROUP_ROWS:
            self._flush()
        elif len(self._pending) >= COMPACT_BATCHES:
            merged = pa.Table.from_batches(self._pending, schema=self.schema).combine_chunks()
            self._pending = merged.to_batches()

    def _open(self) -> pq.ParquetWriter:
        if self._writer is None:
            self._writer = pq.ParquetWriter(
                self.tmp,
                self.schema,
                compression="zstd",
                use_dictionary=self._dictionary,
            )
        return self._writer

    def _flush(self) -> None:
        if not self._pending:
            return
        table = pa.Table.from_batches(self._pending, schema=self.schema)
        self._pending, self._pending_rows = [], 0
        self._open().write_table(table, row_group_size=max(table.num_rows, 1))

    def close(self) -> None:
        """Write what is left (an empty table if nothing was written) and close the file."""
        self._flush()
        writer = self._open()
        if self.rows == 0:
            writer.write_table(self.schema.empty_table())
        writer.close()
        self._writer = None

    def commit(self) -> None:
        """Rename the closed file into place."""
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        """Close and remove the temporary file."""
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()
            self._writer = None
        self._pending = []
        with contextlib.suppress(OSError):
            self.tmp.unlink()
