"""What a run records: recording levels, percentiles from histograms, the per-workload time
series, reading the run directory with DuckDB, and requests streamed in row groups.

Whatever the recording level of the requests, the summary and ``workload_timeseries`` count
every request (from exact aggregates and log-bucket histograms), so they must agree with the
rows of ``requests.parquet`` when every row is recorded.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from conftest import SCENARIOS

import sim
from sim.cli import cli
from sim.record.sink import ROW_GROUP_ROWS
from sim.runner import RunResult

TOLERANCE = 0.01 * (1 + 1e-9)
"""Percentiles from the histograms are within 1 % of the order statistic (as documented; not
read from ``sim.record.histogram``, so that a coarser histogram fails)."""

TWO_SERVICES = """
[scenario]
name = "two"
seed = 3
duration = "{duration}"
warmup = "{warmup}"
sample_every = "1m"

[[pools]]
name = "hall"
gpu_type = "H100-SXM"
nodes = 1
gpus_per_node = 8

# Poisson arrivals, log-normal service, a short queue: some requests are rejected.
[[workloads]]
name = "chat"
kind = "inference"
replicas = 3
arrival = {{ process = "poisson", rate_per_s = 2.7 }}
service = {{ dist = "lognormal", mean = "1s", sd = "1.5s" }}
sla = {{ latency = "3s" }}
max_queue = 4

# Arrivals every 0.5 s and a 1.5 s service on 2 replicas (overloaded): arrivals and ends
# fall on the interval boundaries, and a third of the requests find the queue full. No SLA.
[[workloads]]
name = "embed"
kind = "inference"
replicas = 2
arrival = {{ process = "deterministic", interval = "0.5s" }}
service = {{ dist = "deterministic", value = "1.5s" }}
max_queue = 2
"""


def two_services(duration: str = "30m", warmup: str = "0s") -> str:
    return TWO_SERVICES.format(duration=duration, warmup=warmup)


def floats(series: pd.Series) -> np.ndarray:
    return series.to_numpy(dtype=np.float64, na_value=np.nan)


def nearest_rank(values: np.ndarray, q: float) -> float:
    """The smallest value with at least q % of the values at or below it."""
    ordered = np.sort(values)
    return float(ordered[max(math.ceil(q / 100 * len(ordered)), 1) - 1])


def assert_within_1pct(reported: float | None, values: np.ndarray, q: float, what: str) -> None:
    expected = nearest_rank(values, q)
    assert reported is not None, what
    assert abs(reported - expected) <= TOLERANCE * expected, (what, q, reported, expected)


# -- 6. recording levels -------------------------------------------------------------------------
def without_recorded(summary: Any) -> Any:
    """The summary without its ``requests_recorded`` keys (at every level)."""
    if isinstance(summary, dict):
        return {k: without_recorded(v) for k, v in summary.items() if k != "requests_recorded"}
    return summary


@pytest.fixture(scope="module")
def levels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, RunResult]:
    """The two-service scenario (30 min, 5 min warm-up) at each recording level, plus one with
    only 'embed' left unrecorded."""
    path = tmp_path_factory.mktemp("levels") / "two.toml"
    path.write_text(two_services(warmup="5m"))
    runs = {
        "all": [],
        "sample": ["output.requests=sample", "output.sample_rate=0.1"],
        "none": ["output.requests=none"],
        "embed-none": ['workloads.embed.output={ requests = "none" }'],
    }
    return {name: sim.run(path, overrides=overrides) for name, overrides in runs.items()}


def test_summary_is_the_same_at_every_recording_level(levels):
    """Counts, means and percentiles come from exact aggregates and histograms kept for every
    request, so the summaries are equal (exactly) but for requests_recorded, which counts the
    rows written."""
    full = levels["all"].summary
    assert full["requests_total"] > 5000 and full["requests_rejected"] > 500
    for name, result in levels.items():
        assert without_recorded(result.summary) == without_recorded(full), name
        assert result.summary["requests_recorded"] == result.rows["requests"], name
        for wl in ("chat", "embed"):
            recorded = result.summary["workloads"][wl]["requests_recorded"]
            assert recorded == (result.frame("requests").workload == wl).sum(), (name, wl)


def test_all_sample_and_none_record_every_row_a_tenth_and_nothing(levels):
    """'all' writes every request (warm-up included); 'sample' with rate 0.1 writes a random
    tenth of them, unchanged, within the binomial 99.9 % bounds (n p ± 3.29 sqrt(n p (1-p)));
    'none' writes no row."""
    full = levels["all"].frame("requests")
    stats = levels["all"].frame("workload_timeseries")
    assert len(full) == stats.arrivals.sum()
    assert full.request_id.is_unique

    sample = levels["sample"].frame("requests")
    n, p = len(full), 0.1
    half_width = 3.29 * math.sqrt(n * p * (1 - p))
    assert n * p - half_width <= len(sample) <= n * p + half_width, (len(sample), n)
    for wl in ("chat", "embed"):  # each workload is sampled, not only one
        share = (sample.workload == wl).sum() / (full.workload == wl).sum()
        assert 0.05 < share < 0.15, (wl, share)
    same = full.set_index("request_id").loc[sample.request_id].reset_index()
    pd.testing.assert_frame_equal(sample.reset_index(drop=True), same[sample.columns])

    assert len(levels["none"].frame("requests")) == 0
    assert list(levels["none"].frame("requests").columns) == list(full.columns)


def test_per_workload_level_applies_to_that_workload_only(levels):
    """workloads.embed.output = { requests = "none" }: no row of embed, every row of chat,
    identical to the 'all' run's; the summary is unchanged but for requests_recorded."""
    full = levels["all"].frame("requests")
    part = levels["embed-none"].frame("requests")
    assert (part.workload == "embed").sum() == 0
    chat = full[full.workload == "chat"].reset_index(drop=True)
    pd.testing.assert_frame_equal(part.reset_index(drop=True), chat, check_categorical=False)
    summary = levels["embed-none"].summary
    assert summary["workloads"]["embed"]["requests_recorded"] == 0
    assert summary["workloads"]["chat"]["requests_recorded"] == len(chat)


def test_workload_time_series_is_the_same_at_every_recording_level(levels):
    """The per-interval figures count every request, recorded or not."""
    full = levels["all"].frame("workload_timeseries")
    for name in ("sample", "none", "embed-none"):
        pd.testing.assert_frame_equal(levels[name].frame("workload_timeseries"), full)


def invoke(*args: str | Path) -> Any:
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.mark.parametrize(
    ("sets", "key", "words"),
    [
        (["output.requests=sample"], "output", "needs a sample_rate"),
        (["output.sample_rate=0.1"], "output", 'only with requests = "sample"'),
        (
            ['workloads.chat.output={ requests = "sample" }'],
            "workloads.chat.output",
            "needs a sample_rate",
        ),
        (
            ['workloads.chat.output={ requests = "none", sample_rate = 0.5 }'],
            "workloads.chat.output",
            'only with requests = "sample"',
        ),
    ],
)
def test_sample_rate_goes_with_sample_only(write_scenario, tmp_path, sets, key, words):
    """`sample` without `sample_rate`, or `sample_rate` with another level, exits 2 with one
    message naming the key and saying which --set caused it; nothing is written."""
    path = write_scenario(two_services(duration="1m"))
    args: list[str | Path] = ["run", path, "--out", tmp_path / "out"]
    for text in sets:
        args += ["--set", text]
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert f"{key}: " in result.stderr and words in result.stderr, result.stderr
    assert "sample_rate" in result.stderr
    assert f"(from --set {sets[0].split('=')[0]})" in result.stderr, result.stderr
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_sample_without_rate_in_the_file_is_an_error(write_scenario):
    """The same check on the file: `[output] requests = "sample"` alone exits 2 naming it."""
    path = write_scenario(two_services(duration="1m") + '\n[output]\nrequests = "sample"\n')
    result = invoke("validate", path)
    assert result.exit_code == 2, result.output
    assert "output: " in result.stderr and "needs a sample_rate" in result.stderr


# -- 7. percentiles ------------------------------------------------------------------------------
def test_latency_percentiles_are_within_1pct_of_the_order_statistics(run_text):
    """p50, p95 and p99 of the summary (site and each workload) against the nearest-rank order
    statistics of the latencies in requests.parquet (after the warm-up, status ok); the mean
    is exact."""
    result = run_text(two_services(duration="40m", warmup="5m"))
    req = result.frame("requests")
    counted = req[req.after_warmup.astype(bool) & (req.status == "ok")]
    assert len(counted) > 5000
    scopes: list[tuple[str, dict[str, Any], np.ndarray]] = [
        ("site", result.summary, floats(counted.latency_s))
    ]
    for wl in ("chat", "embed"):
        latency = floats(counted[counted.workload == wl].latency_s)
        assert len(latency) > 2000
        scopes.append((wl, result.summary["workloads"][wl], latency))
    for what, summary, latency in scopes:
        for q in (50, 95, 99):
            assert_within_1pct(summary[f"request_latency_p{q}_s"], latency, q, what)
        assert summary["request_latency_mean_s"] == pytest.approx(latency.mean(), rel=1e-11)
        assert summary["requests_served"] == len(latency)


# -- 8. the per-workload time series --------------------------------------------------------------
@pytest.mark.parametrize("duration", ["30m", "29m30s"])
def test_workload_time_series_agrees_with_the_requests(run_text, duration):
    """One row per inference workload per interval (0, 1 min], (1, 2 min], ... (the first also
    holds time 0, the last ends at the horizon): ceil(duration / 1 min) rows each. In each:
    arrivals = requests arriving in it; served = requests ending ok in it; rejected =
    requests rejected (at their arrival) in it; p50/p95/p99 within 1 % of the order statistics
    of the latencies of those served; sla_attainment = served within the SLA / (served +
    rejected), null without an SLA; waiting and in_service = the requests waiting and being
    served at the end of the interval (after everything at that instant), which add up over
    the workloads to the site time series.
    """
    result = run_text(two_services(duration=duration))
    horizon = result.scenario.scenario.duration_s
    step = 60.0
    count = math.ceil(horizon / step)
    wts = result.frame("workload_timeseries")
    req = result.frame("requests")
    assert wts.arrivals.sum() == len(req)
    assert (req.status == "rejected").sum() > 100

    for wl, sla in (("chat", 3.0), ("embed", None)):
        rows = wts[wts.workload == wl].sort_values("time_s").reset_index(drop=True)
        assert len(rows) == count
        np.testing.assert_array_equal(rows.time_s, step * np.arange(count))
        np.testing.assert_array_equal(
            rows.end_s, np.minimum(step * np.arange(1, count + 1), horizon)
        )
        mine = req[req.workload == wl]
        status = mine.status.astype(str).to_numpy()
        arrival, start, end = floats(mine.arrival_s), floats(mine.start_s), floats(mine.end_s)
        latency = end - arrival
        ok, rejected = status == "ok", status == "rejected"
        for row in rows.itertuples():
            t0, t1 = row.time_s, row.end_s

            def inside(x: np.ndarray, t0: float = t0, t1: float = t1) -> np.ndarray:
                return ((x > t0) | ((t0 == 0) & (x == 0))) & (x <= t1)

            where = f"{wl} ({t0}, {t1}]"
            assert row.arrivals == inside(arrival).sum(), where
            served = ok & inside(end)
            assert row.served == served.sum(), where
            assert row.rejected == (rejected & inside(arrival)).sum(), where
            waiting = ~rejected & (arrival <= t1) & ~(start <= t1)
            in_service = (start <= t1) & ~(end <= t1)
            assert row.waiting == waiting.sum(), where
            assert row.in_service == in_service.sum() == row.busy_replicas, where
            if served.any():
                for q in (50, 95, 99):
                    reported = getattr(row, f"latency_p{q}_s")
                    assert_within_1pct(reported, latency[served], q, where)
            else:
                assert math.isnan(row.latency_p50_s), where
            ended = served.sum() + (rejected & inside(arrival)).sum()
            if sla is None or ended == 0:
                assert math.isnan(row.sla_attainment), where
            else:
                met = (served & (latency <= sla)).sum()
                assert row.sla_attainment == pytest.approx(met / ended, rel=1e-12), where

    site = result.frame("timeseries").set_index("time_s")
    summed = wts.groupby("end_s")[["waiting", "in_service"]].sum()
    assert list(summed.index) == list(rows.end_s)
    for name in ("waiting", "in_service"):
        np.testing.assert_array_equal(
            summed[name].to_numpy(), site.loc[summed.index, f"requests_{name}"].to_numpy()
        )


def test_single_workload_series_equals_the_site_series(run_text):
    """With one inference workload (M/M/8 at rho 0.9), waiting and in_service at the end of
    each interval are the site's requests_waiting and requests_in_service at that time."""
    result = run_text((SCENARIOS / "mmc.toml").read_text())
    wts = result.frame("workload_timeseries").set_index("end_s")
    site = result.frame("timeseries").set_index("time_s").loc[wts.index]
    assert len(wts) == 120
    np.testing.assert_array_equal(wts.waiting.to_numpy(), site.requests_waiting.to_numpy())
    np.testing.assert_array_equal(wts.in_service.to_numpy(), site.requests_in_service.to_numpy())
    assert wts.waiting.max() > 0


# -- 9. DuckDB -----------------------------------------------------------------------------------
def test_duckdb_reads_the_run_directory(write_scenario, tmp_path):
    """The workload time series opens in DuckDB as written, and a folder of runs of several
    seeds reads at once with hive partitioning (the seed from the folder name)."""
    path = write_scenario(two_services(duration="10m"))
    runs = tmp_path / "runs"
    results = {seed: sim.run(path, seed=seed, out=runs / f"seed={seed}") for seed in (1, 2)}

    one = runs / "seed=1" / "workload_timeseries.parquet"
    got = duckdb.sql(f"select workload, sum(served) from '{one}' group by 1 order by 1").fetchall()
    wts = results[1].frame("workload_timeseries")
    expected = wts.groupby("workload", observed=True).served.sum().sort_index()
    assert got == [(str(k), int(v)) for k, v in expected.items()]

    pattern = runs / "*" / "requests.parquet"
    got = duckdb.sql(
        f"select seed, count(*), avg(latency_s) from read_parquet('{pattern}', "
        "hive_partitioning = true) group by seed order by seed"
    ).fetchall()
    assert [row[0] for row in got] == [1, 2]
    for (seed, rows, mean), result in zip(got, results.values(), strict=True):
        req = result.frame("requests")
        assert rows == len(req), seed
        assert mean == pytest.approx(req.latency_s.mean(), rel=1e-12), seed
    assert got[0][1:] != got[1][1:]  # two seeds, two runs
    summary = json.loads((runs / "seed=2" / "summary.json").read_text())
    assert summary["seed"] == 2


# -- 10. memory bounded: requests in row groups ----------------------------------------------------
BIG = """
[scenario]
name = "big"
seed = 5
duration = "10m"

[[pools]]
name = "hall"
gpu_type = "H100-SXM"
nodes = 2
gpus_per_node = 8

[[workloads]]
name = "chat"
kind = "inference"
replicas = 12
arrival = { process = "poisson", rate_per_s = 1000 }
service = { dist = "exponential", mean = "10ms" }
"""


def test_many_requests_are_written_in_row_groups_each_once(run_text: Callable[..., RunResult]):
    """About 600,000 requests (1000/s for 10 min): requests.parquet has several row groups,
    none much larger than ROW_GROUP_ROWS (what memory holds), and every request exactly once,
    in arrival order."""
    result = run_text(BIG)
    path = result.run_dir / "requests.parquet"
    meta = pq.ParquetFile(path).metadata
    sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
    assert meta.num_row_groups > 1, sizes
    assert max(sizes) <= 2 * ROW_GROUP_ROWS, sizes
    ids = pq.read_table(path, columns=["request_id", "arrival_s"])
    request_id = ids["request_id"].to_numpy()
    n = len(request_id)
    assert n > 550_000
    assert n == result.summary["requests_total"] == result.rows["requests"]
    assert n == result.frame("workload_timeseries").arrivals.sum()
    np.testing.assert_array_equal(np.sort(request_id), np.arange(n))
    assert (np.diff(ids["arrival_s"].to_numpy()) >= 0).all()


def test_intervals_of_a_step_that_is_no_whole_number_of_seconds():
    """With sample_every = 100 ms, k x 0.1 and t / 0.1 round differently: each served request
    must still land in the interval (time_s, end_s] its row covers, and the last interval end at
    the horizon (3 x 0.3 s is 0.8999999999999999 s, not a separate interval before 0.9 s)."""
    result = sim.run(
        SCENARIOS / "mmc.toml",
        overrides=["scenario.sample_every=100ms", "scenario.duration=60s", "scenario.warmup=0s"],
    )
    series = result.frame("workload_timeseries")
    requests = result.frame("requests")
    served = requests[requests["status"] == "ok"]
    assert len(series) == 600
    for row in series.itertuples():
        lo = -1.0 if row.time_s == 0 else row.time_s
        ended = served[(served["end_s"] > lo) & (served["end_s"] <= row.end_s)]
        assert row.served == len(ended), row
        assert (row.served == 0) == pd.isna(row.latency_p50_s), row
    short = sim.run(
        SCENARIOS / "mmc.toml",
        overrides=["scenario.sample_every=300ms", "scenario.duration=900ms", "scenario.warmup=0s"],
    ).frame("workload_timeseries")
    assert short["end_s"].tolist() == [0.3, 0.6, 0.9]


def test_a_request_ending_exactly_on_a_boundary_is_filed_where_the_model_closes_it(run_text):
    """3 x 0.1 s is 0.30000000000000004 s, and 0.30000000000000004 / 0.1 is 3.0000000000000004:
    a request rejected at exactly that time belongs to interval (0.2, 0.30000000000000004], the
    third row, which the model closes at that instant with rejected = 1."""
    result = run_text(
        """
[scenario]
name = "edge"
duration = "1s"
sample_every = "100ms"

[[pools]]
name = "hall"
gpu_type = "H100-SXM"
nodes = 1
gpus_per_node = 1

[[workloads]]
name = "chat"
kind = "inference"
replicas = 1
max_queue = 0
arrival = { process = "at", times = [0, 0.30000000000000004] }
service = { dist = "deterministic", value = "10s" }
sla = { latency = "5s" }
"""
    )
    series = result.frame("workload_timeseries")
    row = series.iloc[2]
    assert row["rejected"] == 1
    assert row["sla_attainment"] == 0.0
    assert series["sla_attainment"].notna().sum() == 1
