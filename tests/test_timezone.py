"""``[scenario] timezone``: checked, the local hour and weekday of simulation times, and the
``*_local`` columns beside the UTC timestamps, across daylight saving time."""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner, Result
from conftest import mmc_text

import sim
from sim.calendar import LocalCalendar
from sim.cli import cli
from sim.record.schemas import TABLES
from sim.runner import RunResult

CHICAGO = "America/Chicago"


def invoke(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args])


def scenario_text(start: str | None, zone: str | None, duration: str = "4h") -> str:
    text = mmc_text(c=2, rate=0.5, duration=duration, warmup="0s")
    extra = (f"start = {start}\n" if start else "") + (f'timezone = "{zone}"\n' if zone else "")
    return text.replace("[[pools]]", extra + "\n[[pools]]", 1)


# -- the scenario key --------------------------------------------------------------------------
def test_a_known_zone_is_accepted(write_scenario):
    path = write_scenario(scenario_text("2026-03-08T00:00:00Z", CHICAGO))
    assert sim.load_scenario(path).scenario.timezone == CHICAGO


@pytest.mark.parametrize(
    ("zone", "words"),
    [
        ("America/Chicag", "did you mean 'America/Chicago'?"),
        ("america/chicago", "did you mean 'America/Chicago'?"),
        ("Mars/Olympus_Mons", "expected an IANA name"),
        ("../etc/passwd", "unknown time zone"),
        ("America", "unknown time zone"),
    ],
)
def test_an_unknown_zone_exits_2_at_its_key(write_scenario, zone, words):
    path = write_scenario(scenario_text("2026-03-08T00:00:00Z", zone))
    result = invoke("validate", path)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert "scenario.timezone: unknown time zone" in result.stderr, result.stderr
    assert words in result.stderr, result.stderr


def test_a_zone_without_a_start_exits_2_naming_the_start(write_scenario):
    path = write_scenario(scenario_text(None, CHICAGO))
    result = invoke("validate", path)
    assert result.exit_code == 2, result.output
    assert "scenario.timezone: needs scenario.start" in result.stderr, result.stderr


def test_a_bad_zone_from_set_is_blamed_on_the_override(write_scenario):
    path = write_scenario(scenario_text("2026-03-08T00:00:00Z", None))
    result = invoke("validate", path, "--set", "scenario.timezone=Europe/Lodnon")
    assert result.exit_code == 2, result.output
    assert "did you mean 'Europe/London'?" in result.stderr, result.stderr


# -- the local hour and weekday ----------------------------------------------------------------
def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_spring_forward_in_chicago_by_hand():
    """2026-03-08, a Sunday: at 08:00 UTC Chicago goes from 01:59:59 CST (UTC-6) to 03:00:00
    CDT (UTC-5); there is no 02:xx that day."""
    start = at("2026-03-08T00:00:00")
    cal = LocalCalendar(start, CHICAGO, 86400)
    change = 8 * 3600.0
    assert cal.transitions == [(change, -5 * 3600)]
    assert cal.offset_s(change - 1) == -6 * 3600 and cal.offset_s(change) == -5 * 3600
    assert cal.hour(change - 1) == 1 and cal.hour(change) == 3
    assert [cal.hour(change + k * 3600) for k in range(-3, 3)] == [23, 0, 1, 3, 4, 5]
    assert cal.weekday(change) == 6  # Sunday
    assert cal.weekday(0.0) == 5  # 2026-03-07 18:00 CST, a Saturday
    assert cal.hour_and_weekday(6 * 3600.0) == (0, 6)  # midnight CST: Sunday begins


def test_fall_back_in_chicago_by_hand():
    """2026-11-01, a Sunday: at 07:00 UTC Chicago goes from 01:59:59 CDT back to 01:00:00 CST,
    so the hour 01:xx comes twice."""
    start = at("2026-11-01T00:00:00")
    cal = LocalCalendar(start, CHICAGO, 86400)
    change = 7 * 3600.0
    assert cal.transitions == [(change, -6 * 3600)]
    assert [cal.hour(change + k * 1800) for k in range(-4, 4)] == [0, 0, 1, 1, 1, 1, 2, 2]
    assert cal.weekday(change) == 6


def test_a_year_of_chicago_has_exactly_its_two_changes():
    cal = LocalCalendar(at("2026-01-01T00:00:00"), CHICAGO, 365 * 86400)
    changes = [(cal.start_epoch + t, o) for t, o in cal.transitions if 0 <= t < 365 * 86400]
    assert changes == [
        (at("2026-03-08T08:00:00").timestamp(), -5 * 3600),
        (at("2026-11-01T07:00:00").timestamp(), -6 * 3600),
    ]


ZONES = [
    CHICAGO,
    "Europe/London",
    "Australia/Lord_Howe",  # a 30-minute DST shift
    "Asia/Kolkata",  # +05:30, no DST
    "America/St_Johns",  # -03:30 with DST
    "Pacific/Chatham",  # +12:45 with DST
    "Africa/Casablanca",  # DST suspended every Ramadan: several changes a year
    "UTC",
]


@pytest.mark.parametrize("zone", ZONES)
def test_hour_and_weekday_agree_with_zoneinfo_on_random_times(zone):
    rng = np.random.default_rng(zlib.crc32(zone.encode()))
    for _ in range(5):
        start = datetime(2000, 1, 1, tzinfo=UTC) + timedelta(seconds=float(rng.integers(0, 9e8)))
        horizon = float(rng.uniform(86400, 3 * 365 * 86400))
        cal = LocalCalendar(start, zone, horizon)
        # whole seconds plus a half, never on an hour's edge; some before the start and after
        # the horizon, in random order, so the cached stretch is left and the table extended
        times = rng.integers(-60 * 86400, int(horizon) + 60 * 86400, 400) + 0.5
        for t in times.tolist():
            local = datetime.fromtimestamp(start.timestamp() + t, ZoneInfo(zone))
            assert cal.hour_and_weekday(t) == (local.hour, local.weekday()), (zone, start, t)
            offset = local.utcoffset()
            assert offset is not None and cal.offset_s(t) == offset.total_seconds()
        utc_us = np.round((start.timestamp() + times) * 1e6).astype(np.int64)
        expected = []
        for u in utc_us.tolist():
            offset = datetime.fromtimestamp(u // 1_000_000, ZoneInfo(zone)).utcoffset()
            assert offset is not None
            expected.append(u + int(offset.total_seconds()) * 1_000_000)
        assert cal.local_epoch_us(utc_us).tolist() == expected


def test_without_a_zone_the_calendar_is_utc():
    cal = LocalCalendar(at("2026-03-08T00:00:00"), None, 86400)
    assert cal.transitions == [] and cal.hour(8 * 3600 + 1) == 8


# -- the local columns -------------------------------------------------------------------------
def run_zoned(write_scenario, start: str, duration: str = "4h") -> RunResult:
    return sim.run(write_scenario(scenario_text(start, CHICAGO, duration)))


def local_pairs(frame: pd.DataFrame) -> Iterator[tuple[str, str]]:
    """(UTC column, local column) of each local column: arrival_ts, arrival_local."""
    for column in frame.columns:
        if column == "timestamp_local":
            yield "timestamp", column
        elif column.endswith("_local"):
            yield column.removesuffix("_local") + "_ts", column


def test_local_columns_in_spring_by_hand(write_scenario):
    """Samples every minute from 2026-03-08 06:00 UTC (00:00 CST): 01:59 local at 07:59 UTC,
    then 03:00 local at 08:00 UTC."""
    result = run_zoned(write_scenario, "2026-03-08T06:00:00Z")
    ts = result.frame("timeseries").set_index("time_s")
    assert ts.loc[0.0, "timestamp_local"] == pd.Timestamp("2026-03-08 00:00:00")
    assert ts.loc[7140.0, "timestamp_local"] == pd.Timestamp("2026-03-08 01:59:00")
    assert ts.loc[7200.0, "timestamp_local"] == pd.Timestamp("2026-03-08 03:00:00")
    assert ts.loc[7200.0, "timestamp"] == pd.Timestamp("2026-03-08 08:00:00", tz="UTC")
    assert not (ts["timestamp_local"].dt.hour == 2).any()


def test_local_columns_in_autumn_by_hand(write_scenario):
    """From 2026-11-01 05:00 UTC (00:00 CDT): 06:30 UTC is 01:30 CDT and 07:30 UTC is 01:30
    CST, the same local time an hour apart."""
    result = run_zoned(write_scenario, "2026-11-01T05:00:00Z")
    ts = result.frame("timeseries").set_index("time_s")
    assert ts.loc[5400.0, "timestamp_local"] == pd.Timestamp("2026-11-01 01:30:00")
    assert ts.loc[9000.0, "timestamp_local"] == pd.Timestamp("2026-11-01 01:30:00")
    assert (ts["timestamp_local"].dt.hour == 1).sum() == 120  # two hours of minutes


@pytest.mark.parametrize("start", ["2026-03-08T06:00:00Z", "2026-11-01T05:00:00Z"])
def test_every_local_column_is_its_utc_column_converted(write_scenario, start):
    result = run_zoned(write_scenario, start)
    checked = 0
    for name in TABLES:
        frame = pd.read_parquet(result.run_dir / f"{name}.parquet")
        pairs = list(local_pairs(frame))
        assert len(pairs) == sum(c.endswith("_ts") or c == "timestamp" for c in frame.columns)
        for utc, local in pairs:
            assert str(frame[local].dtype) == "datetime64[us]", (name, local)
            expected = frame[utc].dt.tz_convert(CHICAGO).dt.tz_localize(None)
            pd.testing.assert_series_equal(frame[local], expected, check_names=False)
            assert frame[local].isna().equals(frame[utc].isna())
            checked += int(frame[utc].notna().sum())
    assert checked > 1000


def test_local_columns_carry_their_zone_in_the_field_metadata(write_scenario):
    import pyarrow.parquet as pq

    result = run_zoned(write_scenario, "2026-03-08T06:00:00Z", duration="10m")
    field = pq.read_schema(result.run_dir / "requests.parquet").field("arrival_local")
    assert field.metadata[b"timezone"] == CHICAGO.encode()
    assert field.metadata[b"unit"] == b"local"


def test_without_a_zone_there_are_no_local_columns(write_scenario):
    result = sim.run(write_scenario(scenario_text("2026-03-08T06:00:00Z", None, "10m")))
    frame = result.frame("requests")
    assert "arrival_ts" in frame.columns
    assert not [c for c in frame.columns if c.endswith("_local")]


def test_sim_run_writes_local_columns_from_the_scenario(write_scenario):
    result = sim.run(write_scenario(scenario_text("2026-03-08T06:00:00Z", CHICAGO, "10m")))
    assert "arrival_local" in result.frame("requests").columns
