"""Arrival processes ``daily``, ``mmpp`` and ``trace``: what they hand out, checked against the
arithmetic of their definitions, with bounds from the Poisson distribution where drawn."""

from __future__ import annotations

import math
import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import NormalDist
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import sim
from sim.cli import cli
from sim.config.arrivals import Daily, Mmpp, Trace
from sim.inputs import DataFileError, Inputs, read_trace, trace_count, trace_period
from sim.model.arrivals import StreamContext, make_stream
from sim.model.rng import RandomStreams
from sim.runner import prepare

ROOT = Path(__file__).resolve().parent.parent
AZURE = ROOT / "scenarios" / "data" / "azure_llm_2023_conv.csv"
HOUR = 3600.0
DAY = 86400.0
Z99 = NormalDist().inv_cdf(0.995)
"""Two-sided 99 % bounds of one count."""


def poisson_bounds(mean: float, tests: int = 1) -> tuple[float, float]:
    """99 % bounds of a Poisson count of this mean, jointly over ``tests`` counts (Bonferroni).

    The normal approximation with a continuity margin of 1: the means here are >= 100.
    """
    z = NormalDist().inv_cdf(1 - 0.005 / tests)
    half = z * math.sqrt(mean) + 1
    return mean - half, mean + half


def draw(
    spec: Any, horizon_s: float, seed: int = 1, ctx: StreamContext | None = None
) -> np.ndarray:
    """Every arrival of ``spec`` in ``[0, horizon_s)``, from the stream the model would use."""
    stream = make_stream(spec, RandomStreams(seed).stream("workload", "w", "arrival"), ctx)
    out: list[float] = []
    while not out or out[-1] < horizon_s:
        chunk = stream.next_chunk()
        if not chunk:
            break
        assert chunk == sorted(chunk)
        assert not out or chunk[0] >= out[-1]
        out += chunk
    times = np.asarray(out)
    return times[times < horizon_s]


def trace_spec(base: Path, name: str, **keys: Any) -> Trace:
    keys = {"process": "trace", "path": name, "time_column": "t", **keys}
    return Trace.model_validate(keys, context={"base_dir": base})


def trace_ctx(spec: Trace) -> StreamContext:
    inputs = Inputs()
    inputs.traces[(spec.path, spec.time_column)] = read_trace(spec)
    return StreamContext(inputs)


# --- trace ---------------------------------------------------------------------------------

# Unsorted, with two rows at one instant and sub-second gaps.
TIMES = [10.0, 10.25, 10.25, 12.5, 11.0, 30.125, 10.5]


def test_trace_keeps_every_row_and_its_spacing(tmp_path: Path) -> None:
    (tmp_path / "tr.csv").write_text("t\n" + "".join(f"{t}\n" for t in TIMES))
    spec = trace_spec(tmp_path, "tr.csv", speedup=2, offset="5s")
    times = draw(spec, 1e6, ctx=trace_ctx(spec))
    expected = [5 + (t - 10.0) / 2 for t in sorted(TIMES)]
    assert times.tolist() == expected  # every row, the same instant twice, in order


def test_trace_loop_repeats_with_span_plus_median_gap(tmp_path: Path) -> None:
    (tmp_path / "tr.csv").write_text("t\n" + "".join(f"{t}\n" for t in TIMES))
    spec = trace_spec(tmp_path, "tr.csv", speedup=2, offset="5s", loop=True)
    ordered = sorted(TIMES)
    gaps = np.diff(ordered)
    period = ordered[-1] - ordered[0] + float(np.median(gaps))  # 20.125 + 0.25
    assert trace_period(read_trace(spec)) == period
    times = draw(spec, 5 + 10 * period / 2, ctx=trace_ctx(spec))
    assert len(times) == 10 * len(TIMES)
    first = np.array([5 + (t - 10.0) / 2 for t in ordered])
    for k in range(10):
        rep = times[k * len(TIMES) : (k + 1) * len(TIMES)]
        np.testing.assert_allclose(rep, first + k * period / 2, rtol=0, atol=1e-9)
    # The count the estimate uses agrees with the stream, whatever the horizon.
    for horizon in (0.0, 5.0, 5.1, 17.3, 40.0, 101.0, 5 + 10 * period / 2):
        assert trace_count(spec, read_trace(spec), horizon) == len(
            draw(spec, horizon, ctx=trace_ctx(spec))
        )


def _azure_seconds() -> np.ndarray:
    """The Azure file's times as seconds since its first row, parsed here with datetime."""
    lines = AZURE.read_text().splitlines()[1:]
    stamps = [datetime.fromisoformat(line.split(",")[0]) for line in lines]
    first = min(stamps)
    return np.array(sorted((s - first) / timedelta(microseconds=1) / 1e6 for s in stamps))


def test_trace_of_timestamps_csv_and_parquet(tmp_path: Path) -> None:
    """The Azure file (text with 7 fractional digits, read by pyarrow as timestamps) and the
    same times as a Parquet timestamp column and as text give the same gaps as datetime."""
    expected = _azure_seconds()
    assert len(expected) == 19366
    shutil.copy(AZURE, tmp_path / "az.csv")
    csv = read_trace(trace_spec(tmp_path, "az.csv", time_column="TIMESTAMP"))
    np.testing.assert_allclose(csv, expected, rtol=0, atol=1e-6)
    assert csv[0] == 0.0
    stamps = pa.array(
        [datetime(2023, 11, 16, 18, 15, 46) + timedelta(seconds=float(s)) for s in expected],
        pa.timestamp("ns"),
    )
    pq.write_table(pa.table({"t": stamps}), tmp_path / "az.parquet")
    parquet = read_trace(trace_spec(tmp_path, "az.parquet"))
    np.testing.assert_allclose(parquet, expected, rtol=0, atol=1e-6)
    text = ["2023-11-16T18:15:46.5Z", "2023-11-16 12:15:46.25-06:00", "2023-11-16 18:15:47"]
    (tmp_path / "iso.csv").write_text("t\n" + "\n".join(text) + "\n")
    assert read_trace(trace_spec(tmp_path, "iso.csv")).tolist() == [0.0, 0.25, 0.75]


AZURE_SCENARIO = """
[scenario]
name = "trace"
duration = "{duration}"
[[pools]]
name = "hall"
gpu_type = "H100-SXM"
nodes = 8
[[workloads]]
name = "chat"
kind = "inference"
replicas = 8
arrival = {{ process = "trace", path = "az.csv", time_column = "TIMESTAMP"{extra} }}
service = {{ dist = "deterministic", value = "0.1s" }}
"""


@pytest.mark.parametrize(
    ("duration", "extra"), [("1h", ""), ("20m", ""), ("3h", ", loop = true, speedup = 1.5")]
)
def test_trace_run_and_its_estimate_count_the_rows(
    tmp_path: Path, duration: str, extra: str
) -> None:
    shutil.copy(AZURE, tmp_path / "az.csv")
    path = tmp_path / "s.toml"
    path.write_text(AZURE_SCENARIO.format(duration=duration, extra=extra))
    prepared = prepare(path)
    result = sim.run(prepared)
    arrivals = np.sort(result.tables["requests"].column("arrival_s").to_numpy())
    horizon = prepared.scenario.scenario.duration_s
    relative = _azure_seconds()
    if not extra:
        assert arrivals.tolist() == pytest.approx(relative[relative < horizon].tolist(), abs=1e-6)
    assert prepared.estimate is not None
    assert prepared.estimate.requests["chat"] == len(arrivals)
    if duration == "1h":
        assert len(arrivals) == 19366


BAD = [
    ("t\n1.5\nabc\n2\n\nxyz\n", "2 value(s) that are not numbers", "line 3: 'abc', line 6: 'xyz'"),
    ("t\n1.5\n-2\n3\n-4\n", "2 value(s) that are not numbers >= 0", "line 3: '-2', line 5: '-4'"),
    (
        "t\n2023-11-16 18:15:46.6805900\nnot a time\n2023-11-16 18:15:47\n",
        "1 value(s) that are not timestamps",
        "line 3: 'not a time'",
    ),
    ("t\n", "has no rows", ""),
    ("u\n1\n", "has no column 't'", ""),
]


@pytest.mark.parametrize(("text", "problem", "rows"), BAD)
def test_bad_trace_rows_exit_2_naming_file_key_and_rows(
    tmp_path: Path, text: str, problem: str, rows: str
) -> None:
    (tmp_path / "tr.csv").write_text(text)
    scenario = tmp_path / "s.toml"
    scenario.write_text(
        AZURE_SCENARIO.format(duration="1h", extra="").replace(
            'path = "az.csv", time_column = "TIMESTAMP"', 'path = "tr.csv", time_column = "t"'
        )
    )
    result = CliRunner().invoke(cli, ["validate", str(scenario)])
    assert result.exit_code == 2, result.output
    key = "path" if "no rows" in problem else "time_column"
    assert f"workloads.chat.arrival.{key}" in result.output
    assert "tr.csv" in result.output and problem in result.output and rows in result.output


def test_bad_parquet_trace_rows_are_named_by_row(tmp_path: Path) -> None:
    times = pa.array([0.0, -1.0, 2.5, -3.0], pa.float64())
    pq.write_table(pa.table({"t": times}), tmp_path / "tr.parquet")
    with pytest.raises(DataFileError) as info:
        read_trace(trace_spec(tmp_path, "tr.parquet"))
    assert info.value.key == "time_column"
    assert "tr.parquet" in str(info.value) and "row 2: -1.0, row 4: -3.0" in str(info.value)
    stamps = pa.array([datetime(2024, 1, 1), None, datetime(2024, 1, 2)], pa.timestamp("us"))
    pq.write_table(pa.table({"t": stamps}), tmp_path / "tr.parquet")
    with pytest.raises(DataFileError, match="row 2: None"):
        read_trace(trace_spec(tmp_path, "tr.parquet"))


def test_a_trace_at_one_instant_cannot_loop(tmp_path: Path) -> None:
    (tmp_path / "tr.csv").write_text("t\n5\n5\n")
    scenario = tmp_path / "s.toml"
    scenario.write_text(
        AZURE_SCENARIO.format(duration="1h", extra=", loop = true").replace(
            'path = "az.csv", time_column = "TIMESTAMP"', 'path = "tr.csv", time_column = "t"'
        )
    )
    result = CliRunner().invoke(cli, ["validate", str(scenario)])
    assert result.exit_code == 2, result.output
    assert "workloads.chat.arrival.loop" in result.output


# --- daily ---------------------------------------------------------------------------------

# A peak at 09:00-10:00 local, quiet nights; no two neighbouring hours alike.
HOURLY = [0.1 + 0.05 * (h % 3) for h in range(6)] + [0.5, 1.0, 2.0, 4.0] + [1.5] * 8 + [0.8] * 6


def daily(**keys: Any) -> Daily:
    return Daily.model_validate({"process": "daily", "rate_per_h": 600, **keys})


def test_daily_hourly_counts_without_a_start() -> None:
    """Without ``start`` hour 0 is the scenario start: 14 days, each hour of day within the
    joint 99 % Poisson bounds of 600/h × factor × 14 days."""
    days = 14
    times = draw(daily(hourly=HOURLY), days * DAY)
    counts = np.bincount((times // HOUR % 24).astype(int), minlength=24)
    for hour, factor in enumerate(HOURLY):
        lo, hi = poisson_bounds(600 * factor * days, tests=24)
        assert lo <= counts[hour] <= hi, (hour, counts[hour], 600 * factor * days)


def test_daily_follows_local_time_across_dst() -> None:
    """America/Chicago, 2024-03-04 (Monday) for 14 days: DST begins 2024-03-10, so the 09:00
    local peak is 15:00 UTC the first week and 14:00 UTC after. Each UTC hour's count is within
    the joint 99 % bounds of the rate of its local hour, found here with zoneinfo."""
    start = datetime(2024, 3, 4, tzinfo=UTC)
    zone = ZoneInfo("America/Chicago")
    days = 14
    ctx = StreamContext(start=start, timezone="America/Chicago", horizon_s=days * DAY)
    times = draw(daily(hourly=HOURLY), days * DAY, ctx=ctx)
    counts = np.bincount((times // HOUR).astype(int), minlength=days * 24)
    local = [(start + timedelta(hours=k)).astimezone(zone).hour for k in range(days * 24)]
    # Hours of equal factor pooled, so each count is large enough to bound tightly.
    for factor in sorted(set(HOURLY)):
        hours = [k for k in range(days * 24) if HOURLY[local[k]] == factor]
        lo, hi = poisson_bounds(600 * factor * len(hours), tests=len(set(HOURLY)))
        assert lo <= counts[hours].sum() <= hi, factor
    by_utc_hour = counts.reshape(days, 24)
    assert set(np.argmax(by_utc_hour[:6], axis=1)) == {15}  # CST, UTC-6
    assert set(np.argmax(by_utc_hour[7:], axis=1)) == {14}  # CDT, UTC-5


def test_daily_weekday_factors() -> None:
    """No start: day 0 is a Monday. With a start on a Wednesday, Saturday is day 3."""
    weekdays = [1.0, 2.0, 1.0, 1.0, 0.5, 0.0, 0.25]
    spec = daily(hourly=[1.0] * 24, weekdays=weekdays)
    weeks = 3
    for start, first_weekday in ((None, 0), (datetime(2024, 6, 5, 6, tzinfo=UTC), 2)):
        ctx = StreamContext(start=start, horizon_s=weeks * 7 * DAY)
        times = draw(spec, weeks * 7 * DAY, ctx=ctx)
        shift = start.hour * HOUR if start else 0.0  # days run from local midnight
        days = ((times + shift) // DAY).astype(int)
        counts = np.bincount((days + first_weekday) % 7, minlength=7)
        for weekday, factor in enumerate(weekdays):
            if factor == 0:
                assert counts[weekday] == 0
                continue
            lo, hi = poisson_bounds(600 * 24 * factor * weeks, tests=7)
            assert lo <= counts[weekday] <= hi, (start, weekday, counts[weekday])


def test_daily_mean_rate_and_checks() -> None:
    spec = daily(hourly=HOURLY, weekdays=[1, 1, 1, 1, 1, 0.5, 0.5])
    assert spec.mean_rate_hz() == pytest.approx(600 / HOUR * np.mean(HOURLY) * 6 / 7)
    for bad in ({"hourly": [0.0] * 24}, {"hourly": [1.0] * 23}, {"hourly": [-1.0] + [1.0] * 23}):
        with pytest.raises(ValueError):
            daily(**bad)


# --- mmpp ----------------------------------------------------------------------------------

MMPP = {"process": "mmpp", "rates_per_s": [1.0, 10.0], "mean_sojourn": ["10m", "1m"]}


def test_mmpp_stationary_mean_by_hand() -> None:
    """Uniform jumps visit every state equally often, so time shares follow the sojourns:
    (1 × 600 + 10 × 60) / 660 = 1.8181... and for three states (2×60 + 0×120 + 6×30) / 210."""
    assert Mmpp.model_validate(MMPP).mean_rate_hz() == pytest.approx(1200 / 660)
    three = {"process": "mmpp", "rates_per_s": [2, 0, 6], "mean_sojourn": [60, 120, 30]}
    assert Mmpp.model_validate(three).mean_rate_hz() == pytest.approx(300 / 210)


def test_mmpp_long_run_rate_and_burstiness() -> None:
    """Over 5,000 cycles the rate is within 99 % bounds of the stationary mean. The bound uses
    the MMPP's asymptotic count variance, (λ̄ + 2 (r0 − r1)² ab / (a + b)³) T with switching
    rates a = 1/600, b = 1/60; counts per minute are far more variable than Poisson's."""
    spec = Mmpp.model_validate(MMPP)
    horizon = 5000 * 660.0
    times = draw(spec, horizon, seed=3)
    mean = spec.mean_rate_hz()
    a, b = 1 / 600, 1 / 60
    variance = (mean + 2 * 9.0**2 * a * b / (a + b) ** 3) * horizon
    assert abs(len(times) - mean * horizon) <= Z99 * math.sqrt(variance)
    per_minute = np.bincount((times // 60).astype(int))
    assert per_minute.var() / per_minute.mean() > 20  # Poisson: 1


def test_mmpp_initial_state_and_checks() -> None:
    busy = Mmpp.model_validate({**MMPP, "rates_per_s": [0.0, 50.0], "initial_state": 1})
    assert len(draw(busy, 1.0)) > 0  # starts in the busy state (the quiet one has no arrivals)
    quiet = Mmpp.model_validate({**MMPP, "rates_per_s": [0.0, 50.0]})
    assert len(draw(quiet, 1.0)) == 0
    for bad in (
        {"mean_sojourn": ["10m"]},
        {"rates_per_s": [0, 0]},
        {"initial_state": 2},
        {"rates_per_s": [1, 2, 3]},
    ):
        with pytest.raises(ValueError):
            Mmpp.model_validate({**MMPP, **bad})


# --- determinism ---------------------------------------------------------------------------

SPECS: list[Callable[[], Any]] = [
    lambda: daily(hourly=HOURLY),
    lambda: Mmpp.model_validate(MMPP),
]


@pytest.mark.parametrize("make", SPECS)
def test_same_seed_same_arrivals(make: Callable[[], Any]) -> None:
    one, two, other = draw(make(), DAY, 5), draw(make(), DAY, 5), draw(make(), DAY, 6)
    assert one.tolist() == two.tolist()
    assert one.tolist() != other.tolist()


def test_mmpp_with_equal_rates_is_poisson() -> None:
    """Two states of one rate are a Poisson process whatever the switching: counts per second
    have variance equal to their mean (index of dispersion within its 99 % bounds, about
    1 ± 2.576 √(2 / windows)), so arrivals are spread over each sojourn, not bunched."""
    spec = Mmpp.model_validate({**MMPP, "rates_per_s": [5.0, 5.0], "mean_sojourn": ["3s", "1s"]})
    windows = 20_000
    counts = np.bincount(draw(spec, float(windows), seed=4).astype(int), minlength=windows)
    assert counts.mean() == pytest.approx(5.0, abs=Z99 * math.sqrt(5.0 / windows))
    assert abs(counts.var() / counts.mean() - 1) <= Z99 * math.sqrt(2 / windows)


TRAINING = """
[scenario]
name = "jobs"
duration = "2d"
[[pools]]
name = "hall"
gpu_type = "H100-SXM"
nodes = 4
gpus_per_node = 8
[[workloads]]
name = "replayed"
kind = "training"
gpus = 8
arrival = {{ process = "trace", path = "jobs.csv", time_column = "submitted", speedup = 2 }}
duration = {{ dist = "deterministic", value = "1h" }}
[[workloads]]
name = "office-hours"
kind = "training"
gpus = 8
arrival = {{ process = "daily", rate_per_d = 24, hourly = {hourly} }}
duration = {{ dist = "deterministic", value = "10m" }}
[[workloads]]
name = "bursty"
kind = "training"
gpus = 8
arrival = {{ process = "mmpp", rates_per_s = [0, 0.001], mean_sojourn = ["2h", "1h"] }}
duration = {{ dist = "deterministic", value = "10m" }}
"""


def test_training_workloads_take_the_new_processes(tmp_path: Path) -> None:
    """Jobs are submitted at a trace's rows (here every 2 h of the file: every hour of the run,
    speedup 2), in office hours only, and in bursts. The estimate: the trace's 5 rows, office
    hours at 24/d × 8/24 for 2 days (16), bursts at 0.001/s × 1 h / 3 h over 2 days (57.6)."""
    (tmp_path / "jobs.csv").write_text("submitted\n" + "".join(f"{7200 * h}\n" for h in range(5)))
    hourly = [0] * 9 + [1] * 8 + [0] * 7
    path = tmp_path / "s.toml"
    path.write_text(TRAINING.format(hourly=hourly))
    prepared = prepare(path)
    assert prepared.estimate is not None
    assert prepared.estimate.jobs == pytest.approx(5 + 16 + 57.6)
    jobs = sim.run(prepared).frame("jobs")
    replayed = jobs[jobs["workload"] == "replayed"]["submit_s"].sort_values()
    assert replayed.tolist() == [3600.0 * h for h in range(5)]
    office = jobs[jobs["workload"] == "office-hours"]["submit_s"]
    assert len(office) > 0 and set((office // HOUR % 24).astype(int)) <= set(range(9, 17))
    assert (jobs["workload"] == "bursty").sum() > 0


def test_mmpp_three_states_long_run_rate() -> None:
    """Three states, one silent and one of sojourns long enough to be cut into pieces: the
    long-run rate is within 99 % bounds (from 100 batch means) of (2×60 + 0×120 + 300×30) / 210
    ≈ 43.4 per second; arrivals per second stay within what the states allow."""
    three = {"process": "mmpp", "rates_per_s": [2, 0, 300], "mean_sojourn": [60, 120, 30]}
    spec = Mmpp.model_validate(three)
    horizon = 100 * 1500.0
    times = draw(spec, horizon, seed=7)
    counts = np.bincount((times // 1500).astype(int), minlength=100) / 1500
    half = 2.63 * counts.std(ddof=1) / math.sqrt(len(counts))  # t, 99 %, 99 degrees of freedom
    assert abs(counts.mean() - spec.mean_rate_hz()) <= half
    assert spec.mean_rate_hz() == pytest.approx((120 + 9000) / 210)
    assert np.bincount(times.astype(int)).max() < 300 + 5 * math.sqrt(300)
