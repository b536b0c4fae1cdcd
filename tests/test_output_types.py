"""Plain ``pd.read_parquet`` gives the documented dtypes, in every run, whatever the nulls.

Each Parquet file carries pandas metadata built by hand in ``sim.record.schemas`` (no pandas
there); these tests check it against what pyarrow writes from pandas, and read real runs back.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import SCENARIOS, mmc_text

import sim
from sim.record.schemas import PANDAS_DTYPES, TABLES, schema
from sim.runner import RunResult

ZONE = "America/Chicago"


def documented(name: str, calendar: bool, timezone: str | None = None) -> dict[str, str]:
    """The dtype of each column of a table, as the schema module documents it."""
    return {f.name: PANDAS_DTYPES[f.type] for f in schema(name, calendar, timezone)}


def dtypes(frame: pd.DataFrame) -> dict[str, str]:
    return {str(k): str(v) for k, v in frame.dtypes.items()}


def read(result: RunResult, name: str) -> pd.DataFrame:
    return pd.read_parquet(result.run_dir / f"{name}.parquet")


@pytest.mark.parametrize("name", list(TABLES))
def test_pandas_metadata_is_what_pyarrow_writes_for_the_documented_dtypes(name):
    """The hand-written JSON against what ``pa.Table.from_pandas`` writes for an empty DataFrame
    with the documented dtypes (pandas 3.1 here): the same column entries, save what pandas derives
    from the data (a categorical's code dtype and number of categories)."""
    ours = schema(name, calendar=True, timezone=ZONE)
    frame = pd.DataFrame(
        {f.name: pd.Series([], dtype=PANDAS_DTYPES[f.type]) for f in ours},
    )
    plain = pa.schema([pa.field(f.name, f.type) for f in ours])
    theirs = pa.Table.from_pandas(frame, schema=plain, preserve_index=False).schema
    mine = json.loads(ours.metadata[b"pandas"])["columns"]
    expected = json.loads(theirs.metadata[b"pandas"])["columns"]
    assert [c["name"] for c in mine] == [f.name for f in ours]
    for got, want in zip(mine, expected, strict=True):
        if want["pandas_type"] == "categorical":
            assert got["pandas_type"] == "categorical"
            assert got["metadata"]["ordered"] == want["metadata"]["ordered"]
            continue
        assert got == want, got["name"]


def test_plain_to_pandas_of_an_empty_table_gives_the_documented_dtypes():
    """Even a table with no rows (a run without jobs) reads with the documented dtypes."""
    for name in TABLES:
        table = schema(name, True, ZONE).empty_table()
        assert dtypes(table.to_pandas()) == documented(name, True, ZONE), name


# -- real runs ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, RunResult]:
    """An overloaded M/M/4 (requests still waiting at the horizon: null replica and start_s),
    a light one (every request starts at once: no nulls there), and a calendar run with
    failures, outages, jobs and a price (the outages scenario, shortened)."""
    folder = tmp_path_factory.mktemp("types")
    out: dict[str, RunResult] = {}
    for key, text in (
        ("busy", mmc_text(c=4, rate=8.0, duration="10m", warmup="1m")),
        ("light", mmc_text(c=4, rate=0.05, mean=0.5, duration="10m", warmup="1m")),
    ):
        path = folder / f"{key}.toml"
        path.write_text(text)
        out[key] = sim.run(path)
    out["calendar"] = sim.run(
        SCENARIOS / "outages.toml",
        overrides=["scenario.duration=3d", "scenario.sample_every=1h"],
    )
    return out


def test_the_two_runs_differ_in_nulls_where_the_old_reading_changed_dtype(runs):
    """The premise: one run has nulls in ``replica`` and ``start_s``, the other none, and
    without the metadata (as before) ``replica`` reads as float64 in one and int32 in the
    other."""
    busy = pq.read_table(runs["busy"].run_dir / "requests.parquet")
    light = pq.read_table(runs["light"].run_dir / "requests.parquet")
    assert busy["replica"].null_count > 0
    assert light["replica"].null_count == 0 and light.num_rows > 0
    old = [t.to_pandas(ignore_metadata=True)["replica"].dtype for t in (busy, light)]
    assert [str(d) for d in old] == ["float64", "int32"]


@pytest.mark.parametrize("key", ["busy", "light", "calendar"])
def test_read_parquet_gives_the_documented_dtypes_and_frame_agrees(runs, key):
    result = runs[key]
    calendar = key == "calendar"
    for name in TABLES:
        plain = read(result, name)
        assert dtypes(plain) == documented(name, calendar), (key, name)
        assert dtypes(result.frame(name)) == dtypes(plain), (key, name)


def test_dtypes_are_the_same_with_and_without_nulls(runs):
    for name in TABLES:
        assert dtypes(read(runs["busy"], name)) == dtypes(read(runs["light"], name)), name


def test_nulls_read_as_missing_values_and_integers_stay_exact(runs):
    req = read(runs["busy"], "requests")
    assert (
        req["replica"].isna().sum()
        == pq.read_table(runs["busy"].run_dir / "requests.parquet", columns=["replica"])[
            "replica"
        ].null_count
    )
    started = req["replica"].dropna()
    assert started.dtype == "Int32" and set(started.unique()) <= {0, 1, 2, 3}
    assert req["request_id"].is_unique and req["request_id"].dtype == "Int64"


def test_calendar_run_has_rows_in_the_tables_that_carry_timestamps(runs):
    """So the timestamp dtypes above were read from real values, not empty columns."""
    result = runs["calendar"]
    for name in ("requests", "jobs", "timeseries", "billing", "nodes"):
        frame = read(result, name)
        assert len(frame) > 0, name
        ts = [c for c in frame.columns if str(frame[c].dtype) == "datetime64[us, UTC]"]
        assert ts and frame[ts[0]].notna().any(), name


def test_files_are_the_same_bytes_from_run_to_run(runs, tmp_path: Path):
    """The metadata is deterministic: the same seed gives the same file hashes."""
    path = tmp_path / "busy.toml"
    path.write_text(mmc_text(c=4, rate=8.0, duration="10m", warmup="1m"))
    again = sim.run(path, out=tmp_path / "again")
    first = json.loads((runs["busy"].run_dir / "manifest.json").read_text())["files"]
    second = json.loads((again.run_dir / "manifest.json").read_text())["files"]
    assert {k: v["sha256"] for k, v in first.items()} == {k: v["sha256"] for k, v in second.items()}


def test_frame_gives_the_documented_dtypes_even_without_the_pandas_metadata(runs):
    """``to_frame`` maps the types itself, so a table read without the metadata (a file of an
    earlier sim, a table built in memory) reads the same."""
    from sim.analysis.summary import to_frame

    for name in TABLES:
        table = pq.read_table(runs["busy"].run_dir / f"{name}.parquet")
        bare = table.replace_schema_metadata(None)
        assert dtypes(to_frame(bare)) == documented(name, False), name
