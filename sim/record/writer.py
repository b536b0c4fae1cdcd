"""Writing a run directory: Parquet tables, summary.json, then manifest.json, each atomically.

A run directory is complete only when ``manifest.json`` exists. A stale manifest is removed
before anything is written, every file is written under a temporary name and renamed into
place, and the manifest comes last, so an interrupted run never looks complete.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from sim.errors import UserError
from sim.record.schemas import TABLES

MANIFEST = "manifest.json"
SUMMARY = "summary.json"
ROW_GROUP_ROWS = 1 << 20


def _foreign(out: Path) -> list[str]:
    """What in ``out`` sim did not write (hidden files aside), and a manifest not sim's."""
    own = {f"{name}.parquet" for name in TABLES} | {SUMMARY, MANIFEST}
    foreign = sorted(p.name for p in out.iterdir() if p.name not in own and p.name[0] != ".")
    manifest = out / MANIFEST
    if manifest.exists():
        try:
            mine = json.loads(manifest.read_text()).get("simulator") == "sim"
        except (OSError, ValueError, AttributeError):
            mine = False
        if not mine:
            foreign.insert(0, f"{MANIFEST} (not written by sim)")
    return foreign


def prepare_out_dir(out: Path) -> None:
    """Create ``out`` if needed, check it can be written, and remove a stale manifest.

    ``out`` must be new, empty, or a previous run's directory: sim refuses to write among
    files it did not write.
    """
    try:
        if out.exists() and not out.is_dir():
            raise UserError(f"{out}: exists and is not a directory; choose another --out")
        if out.is_dir():
            foreign = _foreign(out)
            if foreign:
                shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
                raise UserError(
                    f"{out}: holds files sim did not write ({shown}); choose an empty folder or "
                    "a previous run's folder for --out"
                )
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-check"
        probe.write_bytes(b"")
        probe.unlink()
        (out / MANIFEST).unlink(missing_ok=True)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise UserError(
            f"{out}: cannot write the run directory ({reason}); choose another --out"
        ) from None


def _atomic(path: Path, write: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _json_bytes(data: Mapping[str, Any]) -> bytes:
    return (json.dumps(data, indent=2, allow_nan=False) + "\n").encode()


def write_run_dir(
    out: Path,
    tables: Mapping[str, pa.Table],
    summary: Mapping[str, Any],
    manifest: dict[str, Any],
) -> None:
    """Write the tables, ``summary.json``, and last ``manifest.json``.

    Tables go to ``<name>.parquet`` (zstd, dictionary-encoded strings, row groups of about a
    million rows); the manifest gets each file's size, row count and checksum.
    """
    prepare_out_dir(out)
    files: dict[str, Any] = {}
    try:
        for name, table in tables.items():
            path = out / f"{name}.parquet"
            _atomic(
                path,
                lambda tmp, table=table: pq.write_table(
                    table,
                    tmp,
                    compression="zstd",
                    row_group_size=ROW_GROUP_ROWS,
                    use_dictionary=True,
                ),
            )
            files[path.name] = {
                "rows": table.num_rows,
                "bytes": path.stat().st_size,
                "sha256": _sha256(path),
            }
        path = out / SUMMARY
        _atomic(path, lambda tmp: tmp.write_bytes(_json_bytes(summary)))
        files[SUMMARY] = {"bytes": path.stat().st_size, "sha256": _sha256(path)}
        manifest = {**manifest, "files": files}
        _atomic(out / MANIFEST, lambda tmp: tmp.write_bytes(_json_bytes(manifest)))
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise UserError(f"{out}: cannot write the run directory ({reason})") from None
