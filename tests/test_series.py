"""Series files (ambient, prices, other load): parsing, alignment, rejection and coverage."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import sim.inputs
from sim.config.facility import AmbientSeries, OtherLoadSeries, PriceSeries
from sim.config.scenario import Scenario
from sim.inputs import DataFileError, NeedsStart, read_inputs, read_series

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "scenarios" / "data"
START = datetime(2024, 6, 1, tzinfo=UTC)
HOUR = 3600.0
DAY = 86400.0


def spec(base: Path, name: str, cls: type[AmbientSeries] = AmbientSeries, **keys: str):
    """A series spec for ``base/name``, resolved as a scenario file in ``base`` would be."""
    return cls.model_validate({"kind": "series", "path": name, **keys}, context={"base_dir": base})


def write(base: Path, name: str, text: str) -> Path:
    path = base / name
    path.write_text(text)
    return path


def scenario(base: Path, facility: dict, start: str | None = "2024-06-01T00:00:00Z") -> Scenario:
    meta = {"name": "s", "duration": "1h", **({"start": start} if start else {})}
    return Scenario.model_validate(
        {
            "scenario": meta,
            "facility": facility,
            "pools": [{"name": "hall", "gpu_type": "H100-SXM", "nodes": 1}],
        },
        context={"base_dir": base},
    )


def rejected(spec_, start, horizon_s) -> DataFileError:
    with pytest.raises(DataFileError) as info:
        read_series(spec_, start, horizon_s)
    return info.value


# --- Reading and aligning ------------------------------------------------------------------


@pytest.mark.parametrize(
    "stamps",
    [
        ["2024-05-31 23:45:00", "2024-06-01 00:00:00", "2024-06-01 00:15:00"],  # naive: UTC
        ["2024-05-31 23:45", "2024-06-01 00:00", "2024-06-01 00:15"],
        ["2024-05-31T23:45:00Z", "2024-06-01T00:00:00Z", "2024-06-01T00:15:00Z"],
        ["2024-06-01T01:45:00+02:00", "2024-06-01T02:00:00+02:00", "2024-06-01T02:15:00+02:00"],
        # Mixed forms: the CSV reader leaves them as text, parsed row by row.
        ["2024-05-31T23:45:00Z", "2024-06-01 00:00:00", "2024-05-31T19:15:00-05:00"],
    ],
)
def test_csv_timestamps_are_aligned_to_the_start(tmp_path, stamps):
    rows = "".join(f"{t},{v}\n" for t, v in zip(stamps, ["21.5", "22", "23.25"], strict=True))
    write(tmp_path, "amb.csv", "time,value\n" + rows)
    series = read_series(spec(tmp_path, "amb.csv"), START, 1800)
    assert series.times_s.dtype == np.float64 and series.values.dtype == np.float64
    assert series.times_s.tolist() == [-900.0, 0.0, 900.0]
    assert series.values.tolist() == [21.5, 22.0, 23.25]
    assert series.step_s == 900.0
    assert not series.times_s.flags.writeable and not series.values.flags.writeable


def test_numeric_times_are_seconds_and_need_no_start(tmp_path):
    write(tmp_path, "load.csv", "t,mw\n0,1.5\n600,2\n1200.5,3\n")
    s = spec(tmp_path, "load.csv", OtherLoadSeries, time_column="t", value_column="mw")
    series = read_series(s, None, 1800)
    assert series.times_s.tolist() == [0.0, 600.0, 1200.5]
    assert series.values.tolist() == [1.5, 2.0, 3.0]
    # A start changes nothing for seconds.
    assert read_series(s, START, 1800).times_s.tolist() == [0.0, 600.0, 1200.5]


@pytest.mark.parametrize(
    ("unit", "tz"), [("us", None), ("s", None), ("ns", None), ("ms", "America/Chicago")]
)
def test_parquet_timestamp_column(tmp_path, unit, tz):
    stamps = [START + timedelta(minutes=15 * i) for i in range(-1, 5)]
    if tz is None:
        stamps = [s.replace(tzinfo=None) for s in stamps]
    table = pa.table(
        {
            "interval_start": pa.array(stamps, pa.timestamp(unit, tz=tz)),
            "rtm": pa.array([10.0, 20.0, -5.0, 4858.0, 0.0, 1.0]),
            "text": pa.array(["10", "20", "-5", "4858", "0", "1e0"]),  # numeric text is fine
        }
    )
    pq.write_table(table, tmp_path / "prices.parquet")
    for column in ("rtm", "text"):
        s = spec(tmp_path, "prices.parquet", PriceSeries, time_column="interval_start")
        s = s.model_copy(update={"value_column": column})
        series = read_series(s, START, 4 * 900)
        assert series.times_s.tolist() == [-900.0, 0.0, 900.0, 1800.0, 2700.0, 3600.0]
        assert series.values.tolist() == [10.0, 20.0, -5.0, 4858.0, 0.0, 1.0]


def test_a_start_off_the_grid_keeps_fractions(tmp_path):
    write(tmp_path, "a.csv", "time,value\n2024-05-31 23:00:00,1\n2024-06-01 00:00:00,2\n")
    start = START + timedelta(seconds=0.25)
    assert read_series(spec(tmp_path, "a.csv"), start, 1).times_s.tolist() == [-3600.25, -0.25]
    stamps = [START.replace(tzinfo=None) - timedelta(hours=1), START.replace(tzinfo=None)]
    table = pa.table({"time": pa.array(stamps, pa.timestamp("s")), "value": [1.0, 2.0]})
    pq.write_table(table, tmp_path / "a.parquet")
    series = read_series(spec(tmp_path, "a.parquet"), start, 1)
    assert series.times_s.tolist() == [-3600.25, -0.25]


def test_unsorted_rows_are_sorted(tmp_path):
    write(tmp_path, "u.csv", "time,value\n1800,3\n0,1\n900,2\n-900,0\n")
    series = read_series(spec(tmp_path, "u.csv"), None, 2700)
    assert series.times_s.tolist() == [-900.0, 0.0, 900.0, 1800.0]
    assert series.values.tolist() == [0.0, 1.0, 2.0, 3.0]


# --- Rejections ---------------------------------------------------------------------------


def test_timestamps_without_a_start_blame_scenario_start(tmp_path):
    write(tmp_path, "amb.csv", "time,value\n2024-06-01 00:00:00,20\n2024-06-01 01:00:00,21\n")
    with pytest.raises(NeedsStart, match=r"holds timestamps \('2024-06-01 00:00:00' on line 2\)"):
        read_series(spec(tmp_path, "amb.csv"), None, HOUR)

    scn = scenario(tmp_path, {"ambient": {"kind": "series", "path": "amb.csv"}}, start=None)
    inputs, problems = read_inputs(scn)
    assert [p.key for p in problems] == ["scenario.start"]
    assert "facility.ambient" in problems[0].related
    assert "facility.ambient needs it" in problems[0].message
    assert "set scenario.start" in problems[0].message
    assert not inputs.series


def test_timestamps_of_parquet_and_of_mixed_text_need_a_start_too(tmp_path):
    table = pa.table({"time": pa.array([START], pa.timestamp("us", tz="UTC")), "value": [1.0]})
    pq.write_table(table, tmp_path / "a.parquet")
    with pytest.raises(NeedsStart, match=r"'2024-06-01 00:00:00 UTC' on row 1"):
        read_series(spec(tmp_path, "a.parquet"), None, HOUR)
    write(tmp_path, "m.csv", "time,value\n2024-06-01T00:00:00Z,1\n2024-06-01 01:00,2\n")
    with pytest.raises(NeedsStart, match=r"'2024-06-01T00:00:00Z' on line 2"):
        read_series(spec(tmp_path, "m.csv"), None, HOUR)


def test_a_bad_time_names_file_line_column_and_value(tmp_path):
    # Line 1 is the header; the blank line 4 is skipped by the reader but still counted.
    path = write(
        tmp_path,
        "amb.csv",
        "stamp,value\n2024-06-01 00:00:00,1\n2024-06-01 01:00:00,2\n\n2024-06-01 2:00,3\n",
    )
    error = rejected(spec(tmp_path, "amb.csv", time_column="stamp"), START, HOUR)
    assert error.key == "time_column"
    assert str(error) == (
        f"column 'stamp' of {str(path)!r} has 1 value(s) that are not timestamps (like "
        f"2024-06-01 00:15:00, optionally with a UTC offset): line 5: '2024-06-01 2:00'"
    )


def test_missing_timestamps_are_rejected(tmp_path):
    # The CSV reader takes the column as timestamps with a null; the message shows the text.
    write(tmp_path, "a.csv", "time,value\n2024-06-01 00:00:00,1\n,2\n2024-06-01 01:00:00,3\n")
    error = rejected(spec(tmp_path, "a.csv"), START, HOUR)
    assert error.key == "time_column" and str(error).endswith("UTC offset): line 3: ''")
    stamps = pa.array([START, None, START + timedelta(hours=1)], pa.timestamp("us", tz="UTC"))
    pq.write_table(pa.table({"time": stamps, "value": [1, 2, 3]}), tmp_path / "a.parquet")
    error = rejected(spec(tmp_path, "a.parquet"), START, HOUR)
    assert error.key == "time_column" and str(error).endswith("UTC offset): row 2: None")


def test_many_bad_times_show_three_and_the_count(tmp_path):
    write(tmp_path, "t.csv", "time,value\n0,1\nsoon,2\n,3\n1e400,4\nnan,5\n7200,6\n")
    error = rejected(spec(tmp_path, "t.csv"), None, HOUR)
    assert error.key == "time_column"
    assert "has 4 value(s) that are not numbers (seconds since the scenario start)" in str(error)
    assert "line 3: 'soon', line 4: '', line 5: '1e400' and 1 more" in str(error)


def test_bad_parquet_rows_are_numbered_from_one(tmp_path):
    inf = float("inf")
    table = pa.table({"time": [0.0, None, 600.0, inf], "value": [1.0, 2.0, inf, 3.0]})
    pq.write_table(table, tmp_path / "a.parquet")
    error = rejected(spec(tmp_path, "a.parquet"), None, HOUR)
    assert error.key == "time_column"
    assert str(error).endswith(
        "has 2 value(s) that are not numbers (seconds since the scenario start): "
        "row 2: None, row 4: inf"
    )
    table = table.set_column(0, "time", pa.array([0.0, 300.0, 600.0, 900.0]))
    pq.write_table(table, tmp_path / "a.parquet")
    error = rejected(spec(tmp_path, "a.parquet"), None, HOUR)
    assert error.key == "value_column" and str(error).endswith("not finite numbers: row 3: inf")


def test_a_bad_value_names_file_line_column_and_value(tmp_path):
    path = write(tmp_path, "p.csv", "time,usd\n0,25.1\n900,30\n1800,n/a\n2700,NaN\n3600,12\n")
    error = rejected(spec(tmp_path, "p.csv", PriceSeries, value_column="usd"), None, HOUR)
    assert error.key == "value_column"
    assert str(error) == (
        f"column 'usd' of {str(path)!r} has 2 value(s) that are not finite numbers: "
        f"line 4: 'n/a', line 5: 'NaN'"
    )


def test_repeated_times_name_both_lines(tmp_path):
    write(tmp_path, "d.csv", "time,value\n0,1\n900,2\n1800,3\n900,4\n")
    error = rejected(spec(tmp_path, "d.csv"), None, HOUR)
    assert error.key == "time_column"
    assert "has 1 repeated time(s): line 3 and line 5 (900 s)" in str(error)
    # The same instant written two ways is a repeat too.
    write(tmp_path, "e.csv", "time,value\n2024-06-01T00:00:00Z,1\n2024-06-01 02:00+02:00,2\n")
    error = rejected(spec(tmp_path, "e.csv"), START, HOUR)
    assert "line 2 and line 3 (2024-06-01 00:00:00 UTC)" in str(error)


def test_missing_file_and_columns_blame_their_keys(tmp_path):
    assert rejected(spec(tmp_path, "nope.csv"), None, HOUR).key == "path"
    write(tmp_path, "a.csv", "time,value\n0,1\n")
    assert rejected(spec(tmp_path, "a.csv", time_column="t"), None, HOUR).key == "time_column"
    assert rejected(spec(tmp_path, "a.csv", value_column="v"), None, HOUR).key == "value_column"
    write(tmp_path, "b.csv", "time,value\n")
    assert "has no rows" in str(rejected(spec(tmp_path, "b.csv"), None, HOUR))


# --- Coverage -----------------------------------------------------------------------------


def test_a_series_starting_after_the_run_start_is_rejected(tmp_path):
    write(tmp_path, "a.csv", "time,value\n2024-06-01 00:15:00,1\n2024-06-01 00:30:00,2\n")
    error = rejected(spec(tmp_path, "a.csv"), START, 900)
    assert error.key == "path" and "scenario.start" in error.related
    assert "does not cover the start of the run: its first time is 2024-06-01 00:15:00 UTC" in (
        str(error)
    )
    assert "the run spans 2024-06-01 00:00:00 UTC to 2024-06-01 00:15:00 UTC (15m)" in str(error)
    write(tmp_path, "b.csv", "time,value\n1,1\n")
    assert "its first time is 1 s; the run spans 0 s to 900 s (15m)" in str(
        rejected(spec(tmp_path, "b.csv"), None, 900)
    )


def test_a_series_ending_before_the_horizon_is_rejected(tmp_path):
    write(tmp_path, "a.csv", "time,value\n2024-06-01 00:00,1\n2024-06-01 01:00,2\n")
    error = rejected(spec(tmp_path, "a.csv"), START, 3 * HOUR)
    assert error.key == "path" and "scenario.duration" in error.related
    assert (
        "does not cover the end of the run: its last time 2024-06-01 01:00:00 UTC holds for one "
        "step (1h, the median spacing) to 2024-06-01 02:00:00 UTC; the run spans "
        "2024-06-01 00:00:00 UTC to 2024-06-01 03:00:00 UTC (3h)"
    ) in str(error)


def test_the_last_point_holds_for_the_median_spacing(tmp_path):
    # Spacings 900, 900, 1800: median 900 (the mean, 1200, and the last, 1800, would cover more).
    write(tmp_path, "a.csv", "time,value\n0,1\n900,2\n1800,3\n3600,4\n")
    s = spec(tmp_path, "a.csv")
    assert read_series(s, None, 4500).step_s == 900.0  # exactly covered
    error = rejected(s, None, 4501)  # one second short
    assert "holds for one step (15m, the median spacing) to 4500 s" in str(error)
    # Starting exactly at 0 covers the start.
    write(tmp_path, "b.csv", "time,value\n0.001,1\n900,2\n")
    assert "does not cover the start" in str(rejected(spec(tmp_path, "b.csv"), None, 900))


def test_a_single_point_covers_everything_after_it(tmp_path):
    write(tmp_path, "a.csv", "time,value\n-5,7\n")
    series = read_series(spec(tmp_path, "a.csv"), None, 1e9)
    assert series.times_s.tolist() == [-5.0] and series.step_s == float("inf")


# --- read_inputs --------------------------------------------------------------------------


def test_read_inputs_reads_each_series_once(tmp_path, monkeypatch):
    write(tmp_path, "site.csv", "time,c,usd,mw\n0,20,30,1\n1800,21,31,2\n")
    calls = []
    real = sim.inputs.read_series

    def counting(s, start, horizon_s):
        calls.append(s.path)
        return real(s, start, horizon_s)

    monkeypatch.setattr(sim.inputs, "read_series", counting)
    same = {"kind": "series", "path": "site.csv", "value_column": "mw"}
    scn = scenario(
        tmp_path,
        {
            "ambient": same,
            "other_load_mw": same,
            "price": {"kind": "series", "path": "site.csv", "value_column": "usd"},
        },
    )
    inputs, problems = read_inputs(scn)
    assert problems == [] and len(calls) == 2 and len(inputs.series) == 2
    fac = scn.facility
    assert inputs.series_of(fac.ambient) is inputs.series_of(fac.other_load_mw)
    assert inputs.series_of(fac.price).values.tolist() == [30.0, 31.0]


def test_read_inputs_reports_each_series_at_its_key(tmp_path):
    write(tmp_path, "ok.csv", "time,value\n0,20\n")
    write(tmp_path, "bad.csv", "time,value\n0,x\n")
    scn = scenario(
        tmp_path,
        {
            "ambient": {"kind": "series", "path": "ok.csv", "time_column": "when"},
            "price": {"kind": "series", "path": "bad.csv"},
            "other_load_mw": {"kind": "series", "path": "missing.parquet"},
        },
    )
    _, problems = read_inputs(scn)
    assert [p.key for p in problems] == [
        "facility.ambient.time_column",
        "facility.price.value_column",
        "facility.other_load_mw.path",
    ]
    assert "line 2: 'x'" in problems[1].message


def test_read_inputs_blames_the_horizon_for_a_short_series(tmp_path):
    write(tmp_path, "p.csv", "time,value\n2024-06-01 00:00,1\n2024-06-01 00:15,2\n")
    _, problems = read_inputs(scenario(tmp_path, {"price": {"kind": "series", "path": "p.csv"}}))
    assert [p.key for p in problems] == ["facility.price.path"]
    assert set(problems[0].related) == {"scenario.start", "scenario.duration"}


# --- Speed and the shipped data -----------------------------------------------------------


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_a_year_of_15_minute_prices_loads_fast(tmp_path, suffix):
    n = 365 * 96
    stamps = pa.array(
        np.arange(n, dtype=np.int64) * 900 + int(START.timestamp()), pa.timestamp("s")
    )
    table = pa.table({"time": stamps, "value": np.round(np.linspace(-20, 500, n), 2)})
    path = tmp_path / f"year.{suffix}"
    if suffix == "csv":
        lines = [
            f"{START + timedelta(seconds=900 * i):%Y-%m-%d %H:%M:%S},{i % 97}" for i in range(n)
        ]
        path.write_text("time,value\n" + "\n".join(lines) + "\n")
    else:
        pq.write_table(table, path, compression="zstd")
    s = spec(tmp_path, path.name, PriceSeries)
    read_series(s, START, 365 * DAY)  # warm: imports
    began = time.perf_counter()
    series = read_series(s, START, 365 * DAY)
    assert time.perf_counter() - began < 0.5
    assert len(series.times_s) == n and series.times_s[-1] == (n - 1) * 900


def test_shipped_ambient_covers_july_2023():
    s = spec(
        DATA,
        "ambient_greensboro_nc_tmy3_hourly.csv",
        time_column="hour_start_local",
        value_column="dry_bulb_c",
    )
    series = read_series(s, datetime(2023, 7, 1, tzinfo=UTC), 31 * DAY)
    assert len(series.times_s) == 8760 and series.step_s == HOUR
    july = (series.times_s >= 0) & (series.times_s < 31 * DAY)
    assert july.sum() == 744
    assert 10 < series.values[july].min() < series.values[july].max() < 40


def test_shipped_prices_cover_summer_2024():
    start = datetime(2024, 7, 1, tzinfo=UTC)
    horizon = 62 * DAY  # July and August
    keys = {"time_column": "interval_start", "value_column": "rtm_usd_per_mwh"}
    year = read_series(
        spec(DATA, "ercot_hb_south_2024_15min_prices.parquet", PriceSeries, **keys), start, horizon
    )
    summer = read_series(
        spec(DATA, "ercot_hb_south_2024_summer_15min_prices.csv", PriceSeries, **keys),
        start,
        horizon,
    )
    assert len(year.times_s) == 28800 and len(summer.times_s) == 62 * 96
    assert summer.times_s[0] == 0 and summer.times_s[-1] + summer.step_s == horizon
    window = (year.times_s >= 0) & (year.times_s < horizon)
    assert np.array_equal(year.times_s[window], summer.times_s)
    assert np.array_equal(year.values[window], summer.values)
    schema = pq.read_schema(DATA / "ercot_hb_south_2024_15min_prices.parquet")
    assert schema.field("interval_start").type == pa.timestamp("us")
    assert schema.field("dam_usd_per_mwh").type == pa.float64()
