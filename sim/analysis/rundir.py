"""Reading a run directory back: its manifest, its Parquet tables, and its summary recomputed."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sim.analysis.summary import summarize, to_frame
from sim.errors import UserError
from sim.record.schemas import SCHEMA_VERSION
from sim.record.writer import MANIFEST

if TYPE_CHECKING:
    import pandas as pd

RUN_KEYS = ("scenario", "seed", "duration_s", "warmup_s", "pue", "workloads", "pools")
"""What ``summarize`` needs from the manifest's ``run`` object."""


def read_manifest(run_dir: str | Path) -> dict[str, Any]:
    """The manifest of a complete run directory; a UserError if there is none."""
    path = Path(run_dir) / MANIFEST
    if not Path(run_dir).is_dir():
        raise UserError(f"{run_dir}: not a directory")
    if not path.exists():
        raise UserError(
            f"{run_dir}: not a complete run directory (no {MANIFEST}; the run may have failed "
            "or still be writing)"
        )
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: cannot read the manifest: {exc}") from None
    run = manifest.get("run") if isinstance(manifest, dict) else None
    missing = [key for key in RUN_KEYS if not isinstance(run, dict) or key not in run]
    if missing:
        raise UserError(
            f"{path}: not a sim run manifest (expected a 'run' object with "
            f"{', '.join(RUN_KEYS)}; missing {', '.join(missing)})"
        )
    version = manifest.get("schema_version")
    if version != SCHEMA_VERSION:
        raise UserError(
            f"{path}: the run was written with output schema {version}; this sim reads schema "
            f"{SCHEMA_VERSION} (summaries come from workload_stats.parquet and "
            "histograms.parquet since schema 2): run the scenario again"
        )
    checked: dict[str, Any] = manifest
    return checked


def load_table(
    run_dir: str | Path, name: str, columns: Sequence[str] | None = None
) -> pd.DataFrame:
    """One table of a run directory as a DataFrame (``columns`` to read only some; all if empty)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(run_dir) / f"{name}.parquet"
    if not path.exists():
        raise UserError(f"{path}: missing; the run directory is incomplete or was modified")
    try:
        wanted = list(columns) if columns else None
        return to_frame(pq.read_table(path, columns=wanted))
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise UserError(f"{path}: cannot read: {exc}") from None


def summarize_run_dir(run_dir: str | Path) -> dict[str, Any]:
    """Recompute a run's summary from its Parquet files (the same code ``sim run`` uses)."""
    manifest = read_manifest(run_dir)
    return summarize(lambda name, cols: load_table(run_dir, name, cols), manifest["run"])
