"""Hand-computed cases: one node, one job, one queue, with the arithmetic in each docstring."""

from __future__ import annotations

import math

import numpy as np
import pytest

POOL_8xH100 = """
[scenario]
name = "hand"
duration = "{duration}"

[facility]
pue = 1.3

[[pools]]
name = "hall"
gpu_type = "{gpu}"
nodes = {nodes}
gpus_per_node = {per_node}
node_overhead_w = 1000
"""


def pool(duration: str = "3h", gpu: str = "H100-SXM", nodes: int = 1, per_node: int = 8) -> str:
    return POOL_8xH100.format(duration=duration, gpu=gpu, nodes=nodes, per_node=per_node)


def job(name: str, at: list[str], gpus: int, length: str, priority: int = 0) -> str:
    times = ", ".join(f'"{t}"' for t in at)
    return f"""
[[workloads]]
name = "{name}"
kind = "training"
arrival = {{ process = "at", times = [{times}] }}
gpus = {gpus}
priority = {priority}
duration = {{ dist = "deterministic", value = "{length}" }}
"""


def test_one_node_one_job_times_energy_and_utilisation(run_text):
    """One 8-GPU H100 node (idle 70 W, peak 700 W per GPU, 1000 W overhead), one 8-GPU job of
    1 h submitted at 10 min, horizon 3 h, PUE 1.3.

    start = 600 s, end = 600 + 3600 = 4200 s, wait 0.
    IT energy = (8 x 70 + 1000) W x 3 h + 8 x (700 - 70) W x 1 h = 4680 + 5040 = 9720 Wh.
    Facility energy = 9720 x 1.3 = 12636 Wh. Utilisation = 8 GPU-h busy / 24 GPU-h = 1/3.
    """
    result = run_text(pool() + job("ft", ["10m"], 8, "1h"))
    jobs = result.frame("jobs")
    assert len(jobs) == 1
    row = jobs.iloc[0]
    assert (row.submit_s, row.start_s, row.end_s, row.wait_s) == (600.0, 600.0, 4200.0, 0.0)
    assert row.status == "completed" and row.pool == "hall" and row.nodes == 1
    assert row.run_s == 3600.0 and row.work_s == 3600.0 and row.progress == 1.0
    s = result.summary
    assert s["it_energy_mwh"] == pytest.approx(9.720e-3, rel=1e-12)
    assert s["energy_mwh"] == pytest.approx(12.636e-3, rel=1e-12)
    assert s["pue"] == pytest.approx(1.3)
    assert s["gpu_utilization"] == pytest.approx(1 / 3, rel=1e-12)
    assert s["jobs_submitted"] == 1 and s["jobs_completed"] == 1 and s["job_wait_mean_s"] == 0.0
    ts = result.frame("timeseries")
    at_hour = ts[ts.time_s == 3600.0].iloc[0]
    assert at_hour.gpus_busy == 8 and at_hour.it_power_kw == pytest.approx(1.560 + 5.040)
    last = ts.iloc[-1]
    assert last.time_s == 10800.0 and last.gpus_busy == 0
    assert last.it_energy_kwh == pytest.approx(9.72, rel=1e-12)


def test_slower_gpu_divides_the_duration(run_text):
    """A100-80GB has speed 0.63: a 1 h job (on H100) runs 3600 / 0.63 = 5714.2857 s."""
    result = run_text(pool(gpu="A100-80GB") + job("ft", ["0s"], 8, "1h"))
    row = result.frame("jobs").iloc[0]
    assert row.end_s - row.start_s == pytest.approx(3600 / 0.63, rel=1e-12)


def test_second_job_waits_for_the_first(run_text):
    """8 GPUs. Job 0: 8 GPUs at 0 for 1 h. Job 1: 8 GPUs at 10 min for 30 min.

    Job 1 starts when job 0 ends, at 3600 s, waits 3000 s, and ends at 5400 s.
    """
    result = run_text(pool() + job("a", ["0s"], 8, "1h") + job("b", ["10m"], 8, "30m"))
    jobs = result.frame("jobs").set_index("job_id")
    assert jobs.loc[1, "start_s"] == 3600.0
    assert jobs.loc[1, "wait_s"] == 3000.0
    assert jobs.loc[1, "end_s"] == 5400.0
    assert result.summary["job_wait_mean_s"] == 1500.0


def test_fifo_is_strict_nothing_overtakes_the_head(run_text):
    """16 GPUs (2 nodes). A: 12 GPUs at 0 for 1 h. B: 8 GPUs at 5 min (4 free: waits).
    C: 2 GPUs at 10 min: 4 GPUs are free, but B is the head, so C waits too.

    At 3600 s A ends; B starts, then C (10 of 16 GPUs).
    """
    text = (
        pool(nodes=2)
        + job("a", ["0s"], 12, "1h")
        + job("b", ["5m"], 8, "1h")
        + job("c", ["10m"], 2, "1h")
        + '\n[scheduler]\npolicy = "fifo"\n'
    )
    jobs = run_text(text).frame("jobs").set_index("workload")
    assert jobs.loc["a", "nodes"] == 2  # 12 GPUs span both nodes
    assert jobs.loc["b", "start_s"] == 3600.0
    assert jobs.loc["c", "start_s"] == 3600.0


def test_priority_policy_starts_the_highest_priority_first(run_text):
    """8 GPUs. A (priority 0) runs 0-1 h. B (priority 0) arrives at 10 min, C (priority 5) at
    20 min, both needing all 8 GPUs for 1 h. With policy "priority", C starts at 1 h, B at 2 h.
    With "fifo", B starts at 1 h and C at 2 h.
    """
    base = (
        pool(duration="4h")
        + job("a", ["0s"], 8, "1h")
        + job("b", ["10m"], 8, "1h")
        + job("c", ["20m"], 8, "1h", priority=5)
    )
    prio = (
        run_text(base + '\n[scheduler]\npolicy = "priority"\n').frame("jobs").set_index("workload")
    )
    assert (prio.loc["c", "start_s"], prio.loc["b", "start_s"]) == (3600.0, 7200.0)
    fifo = run_text(base + '\n[scheduler]\npolicy = "fifo"\n').frame("jobs").set_index("workload")
    assert (fifo.loc["b", "start_s"], fifo.loc["c", "start_s"]) == (3600.0, 7200.0)


def test_job_that_can_never_fit_is_rejected_at_once(run_text):
    """A 16-GPU job on an 8-GPU pool is rejected at its submission, with the reason."""
    result = run_text(pool() + job("big", ["1h"], 16, "1h"))
    row = result.frame("jobs").iloc[0]
    assert row.status == "rejected"
    assert math.isnan(row.start_s) and row.submit_s == 3600.0
    assert "needs 16 GPUs" in row.reason and "8" in row.reason
    events = result.frame("events")
    assert "job_rejected" in set(events.event.astype(str))
    assert result.summary["jobs_rejected"] == 1


def test_jobs_running_or_queued_at_the_horizon_are_unfinished(run_text):
    """Horizon 1 h. A: 8 GPUs at 0 for 2 h: running at the horizon, half done.
    B: 8 GPUs at 30 min: still queued."""
    result = run_text(pool(duration="1h") + job("a", ["0s"], 8, "2h") + job("b", ["30m"], 8, "1h"))
    jobs = result.frame("jobs").set_index("workload")
    assert jobs.loc["a", "status"] == "unfinished" and jobs.loc["a", "progress"] == 0.5
    assert jobs.loc["a", "run_s"] == 3600.0 and math.isnan(jobs.loc["a", "end_s"])
    assert jobs.loc["b", "status"] == "unfinished" and math.isnan(jobs.loc["b", "start_s"])


INFERENCE = """
[[workloads]]
name = "chat"
kind = "inference"
replicas = {replicas}
arrival = {{ process = "at", times = [{times}] }}
service = {{ dist = "deterministic", value = "2s" }}
sla = {{ latency = "{sla}" }}
{extra}
"""


def inference(times: str, replicas: int = 1, sla: str = "3s", extra: str = "") -> str:
    return INFERENCE.format(replicas=replicas, times=times, sla=sla, extra=extra)


def test_one_replica_fifo_queue(run_text):
    """One replica, service 2 s, arrivals at 0, 1 and 1.5 s.

    r0: 0 -> 2 (latency 2). r1: waits 1 s, 2 -> 4 (latency 3). r2: waits 2.5 s, 4 -> 6
    (latency 4.5). SLA 3 s: met, met (3 <= 3), missed.
    """
    result = run_text(pool(duration="1m") + inference("0, 1, 1.5"))
    req = result.frame("requests").sort_values("arrival_s")
    assert list(req.start_s) == [0.0, 2.0, 4.0]
    assert list(req.end_s) == [2.0, 4.0, 6.0]
    assert list(req.wait_s) == [0.0, 1.0, 2.5]
    assert list(req.latency_s) == [2.0, 3.0, 4.5]
    assert list(req.sla_met) == [True, True, False]
    assert list(req.status.astype(str)) == ["ok"] * 3
    assert list(req.replica) == [0, 0, 0] and set(req.pool.astype(str)) == {"hall"}
    s = result.summary
    assert s["requests_total"] == 3 and s["requests_served"] == 3
    assert s["sla_attainment"] == pytest.approx(2 / 3)
    assert s["request_wait_mean_s"] == pytest.approx(3.5 / 3)


def test_full_queue_rejects(run_text):
    """max_queue = 1: r1 waits; r2 arrives to a full queue and is rejected (SLA missed)."""
    result = run_text(pool(duration="1m") + inference("0, 1, 1.5", extra="max_queue = 1"))
    req = result.frame("requests").sort_values("arrival_s")
    assert list(req.status.astype(str)) == ["ok", "ok", "rejected"]
    assert math.isnan(req.start_s.iloc[2]) and req.sla_met.iloc[2] == False  # noqa: E712
    assert result.summary["requests_rejected"] == 1


def test_requests_at_the_horizon_are_unfinished_and_sla_undecided(run_text):
    """Horizon 5 s: r2 (4 -> 6) is still in service. With SLA 3 s it has already waited
    5 - 1.5 = 3.5 s > 3 s, so it missed; with SLA 10 s it is undecided (null)."""
    short = run_text(pool(duration="5s") + inference("0, 1, 1.5")).frame("requests")
    short = short.sort_values("arrival_s")
    assert list(short.status.astype(str)) == ["ok", "ok", "unfinished"]
    assert short.start_s.iloc[2] == 4.0 and math.isnan(short.end_s.iloc[2])
    assert short.sla_met.iloc[2] == False  # noqa: E712
    long_sla = run_text(pool(duration="5s") + inference("0, 1, 1.5", sla="10s"))
    assert long_sla.frame("requests").sort_values("arrival_s").sla_met.isna().tolist() == [
        False,
        False,
        True,
    ]


def test_lowest_numbered_free_replica_serves(run_text):
    """Two replicas: r0 at 0 goes to replica 0; r1 at 1 s to replica 1; r2 at 2.5 s finds
    replica 0 free again (it finished at 2 s)."""
    req = run_text(pool(duration="1m") + inference("0, 1, 2.5", replicas=2)).frame("requests")
    assert list(req.sort_values("arrival_s").replica) == [0, 1, 0]


def test_inference_energy(run_text):
    """One H100 replica (idle 70 W, peak 700 W) in a 1-GPU node with 1000 W overhead; one
    request of 2 s; horizon 10 s. IT energy = (70 + 1000) W x 10 s + 630 W x 2 s = 11960 J."""
    result = run_text(pool(duration="10s", per_node=1) + inference("0"))
    last = result.frame("timeseries").iloc[-1]
    assert last.it_energy_kwh == pytest.approx(11960 / 3.6e6, rel=1e-12)
    assert last.gpu_busy_hours == pytest.approx(2 / 3600, rel=1e-12)


def test_calendar_start_adds_timestamps(run_text):
    """With start = 2024-07-15T08:00:00Z, a job submitted at 600 s has submit_ts 08:10 UTC."""
    text = pool().replace('duration = "3h"', 'duration = "3h"\nstart = 2024-07-15T08:00:00Z')
    result = run_text(text + job("ft", ["10m"], 8, "1h"))
    jobs = result.frame("jobs")
    assert str(jobs.submit_ts.iloc[0]) == "2024-07-15 08:10:00+00:00"
    assert str(jobs.end_ts.iloc[0]) == "2024-07-15 09:10:00+00:00"
    assert "timestamp" in result.tables["timeseries"].column_names


def test_a_completion_at_an_arrival_instant_frees_the_replica_first(run_text):
    """max_queue = 0 (a loss system), one replica, 1 s service, arrivals at 0, 1 and 2 s.

    Each request ends exactly when the next arrives; the completion is handled first, so no
    request is rejected: starts at 0, 1, 2.
    """
    result = run_text(
        pool(duration="1m").replace('value = "2s"', 'value = "1s"')
        + inference("0, 1, 2", extra="max_queue = 0").replace('value = "2s"', 'value = "1s"')
    )
    req = result.frame("requests").sort_values("arrival_s")
    assert list(req.status.astype(str)) == ["ok"] * 3
    assert list(req.start_s) == [0.0, 1.0, 2.0]


WARMUP_WAITS = """
[scenario]
name = "warmup-waits"
duration = "10m"
warmup = "100s"

[[pools]]
name = "hall"
gpu_type = "H100-SXM"
nodes = 1
gpus_per_node = 2

[[workloads]]
name = "chat"
kind = "inference"
replicas = 1
arrival = { process = "at", times = ["0s", "0s", "0s", "0s", "0s", "100s", "100s", "300s"] }
service = { dist = "deterministic", value = "10s" }

[[workloads]]
name = "batch"
kind = "inference"
replicas = 1
arrival = { process = "at", times = ["90s", "90s", "90s", "200s", "200s"] }
service = { dist = "deterministic", value = "10s" }
"""


def test_mean_wait_counts_only_requests_arriving_at_or_after_the_warmup(run_text):
    """Warm-up 100 s; each workload has one replica and a 10 s service.

    chat: a burst of 5 at 0 s waits 0, 10, 20, 30, 40 (left out: arrived before the warm-up);
    2 at exactly 100 s (counted: at the warm-up) wait 0 and 10; one at 300 s waits 0.
    Mean wait = (0 + 10 + 0) / 3 = 10/3 s (with the burst it would be 110 / 8 = 13.75 s).
    batch: 3 at 90 s wait 0, 10, 20 and start at 90, 100, 110 (left out: they arrived before
    the warm-up, though two start after it); 2 at 200 s wait 0 and 10. Mean = 5 s (with the
    burst 40 / 5 = 8 s; filtering on the start instead, 40 / 4 = 10 s).
    Site: (10 + 10) / 5 = 4 s (with the bursts 150 / 13 s).
    """
    result = run_text(WARMUP_WAITS)
    req = result.frame("requests")
    assert (req["status"].astype(str) == "ok").all()
    assert (req["after_warmup"] == (req["arrival_s"] >= 100.0)).all()
    post = req[req["after_warmup"]]
    s = result.summary
    expected = {"chat": (3, 10 / 3, 1 / 3), "batch": (2, 5.0, 1 / 2)}
    for name, (total, wait_mean, wait_probability) in expected.items():
        mine = post[post["workload"].astype(str) == name]
        assert mine["wait_s"].mean() == pytest.approx(wait_mean, rel=1e-12)
        figures = s["workloads"][name]
        assert figures["requests_total"] == total
        assert figures["request_wait_mean_s"] == pytest.approx(wait_mean, rel=1e-9)
        assert figures["request_wait_probability"] == pytest.approx(wait_probability, rel=1e-9)
    assert post["wait_s"].mean() == pytest.approx(4.0, rel=1e-12)
    assert s["requests_total"] == 5
    assert s["request_wait_mean_s"] == pytest.approx(4.0, rel=1e-9)
    assert s["request_wait_probability"] == pytest.approx(2 / 5, rel=1e-9)


SAME_INSTANT = """
[scenario]
name = "same-instant"
duration = "5m"
sample_every = "1m"

[[pools]]
name = "hall"
gpu_type = "H100-SXM"
nodes = 1
gpus_per_node = 8

[[workloads]]
name = "chat"
kind = "inference"
replicas = 1
gpus_per_replica = 2
arrival = { process = "deterministic", interval = "120s", offset = "120s" }
service = { dist = "deterministic", value = "45s" }

[[workloads]]
name = "train"
kind = "training"
gpus = 4
arrival = { process = "at", times = ["10s", "130s", "150s", "240s"] }
duration = { dist = "deterministic", value = "50s" }
"""


def test_a_sample_shows_the_state_after_everything_at_its_instant(run_text):
    """Samples every 60 s; the README: a sample at t shows the state after everything at t.

    One 8-GPU node; the replica holds 2 GPUs, so 6 are left for 4-GPU jobs (one at a time).
    Requests arrive at 120 and 240 s (exactly at samples) and take 45 s.
    Jobs of 50 s: j0 10 -> 60 and j1 130 -> 180 end exactly at samples; j2, submitted at
    150 s, waits for j1 and starts at 180 (the instant j1 ends); j3 240 -> 290.

    time   in service  jobs running  jobs queued  GPUs busy  GPUs allocated
       0       0            0             0           0            2
      60       0            0  (j0 ended) 0           0            2
     120       1  (arrived) 0             0           2            2
     180       0            1  (j2)       0           4            6
     240       1  (arrived) 1  (j3)       0           6            6
     300       0            0             0           0            2     (the horizon)
    """
    result = run_text(SAME_INSTANT)
    jobs = result.frame("jobs").sort_values("job_id")
    assert jobs["start_s"].tolist() == [10.0, 130.0, 180.0, 240.0]
    assert jobs["end_s"].tolist() == [60.0, 180.0, 230.0, 290.0]
    req = result.frame("requests").sort_values("arrival_s")
    assert req["start_s"].tolist() == [120.0, 240.0]

    ts = result.frame("timeseries")
    columns = [
        "time_s",
        "requests_in_service",
        "requests_waiting",
        "jobs_running",
        "jobs_queued",
        "gpus_busy",
        "gpus_allocated",
    ]
    rows = [tuple(int(v) for v in row) for row in ts[columns].itertuples(index=False)]
    assert rows == [
        (0, 0, 0, 0, 0, 0, 2),
        (60, 0, 0, 0, 0, 0, 2),
        (120, 1, 0, 0, 0, 2, 2),
        (180, 0, 0, 1, 0, 4, 6),
        (240, 1, 0, 1, 0, 6, 6),
        (300, 0, 0, 0, 0, 0, 2),
    ]


def test_busy_hours_stay_exact_when_a_request_starts_at_a_sample_time(run_text):
    """A request arriving at exactly a sample time (7 s) has served 0 s of its d at that sample,
    which the start-of-service account computes as d - ((7 + d) - 7): rounding must not make the
    busy GPU-hours negative or let them fall (found by the slow invariant test)."""
    result = run_text(
        """
[scenario]
name = "edge"
seed = 1
duration = "300s"
sample_every = "7s"

[[pools]]
name = "p0"
gpu_type = "A100-80GB"
nodes = 1
gpus_per_node = 1

[[pools]]
name = "p1"
gpu_type = "A100-80GB"
nodes = 1
gpus_per_node = 4

[[pools]]
name = "p2"
gpu_type = "A100-80GB"
nodes = 1
gpus_per_node = 4

[[workloads]]
name = "inf0"
kind = "inference"
replicas = 2
gpus_per_replica = 3
arrival = { process = "deterministic", interval = "1s" }
service = { dist = "lognormal", mean = "375ms", sd = "1s" }
"""
    )
    pools = result.frame("pool_timeseries")
    series = [result.frame("timeseries")] + [
        rows for _, rows in pools.groupby("pool", observed=True)
    ]
    for rows in series:
        busy = rows["gpu_busy_hours"].to_numpy()
        assert (busy >= 0).all()
        assert (np.diff(busy) >= -1e-12 * busy[1:]).all()  # rounding, relative to the total
