"""Failures and outages: nodes fail and are repaired, the grid and the cooling go down,
maintenance drains nodes, training checkpoints and restarts, requests retry and time out.

Hand-computed cases (the arithmetic in each docstring), availability against
MTBF / (MTBF + MTTR) within a confidence bound, and hypothesis invariants of runs with random
failures and outages (with the ledger's audit on, which also checks at every change that no
work is placed on a node that is down).

H100-SXM: idle 70 W, peak 700 W, speed 1.0.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_facility import at_time, check_limited_run, inference, pool, run, scenario, training

from sim.cli import cli
from sim.config import validate_scenario
from sim.errors import ScenarioError

H = 3600.0


def job_row(result: Any, job_id: int = 0) -> pd.Series:
    jobs = result.frame("jobs")
    return jobs[jobs["job_id"] == job_id].iloc[0]


def rows(frame: pd.DataFrame, columns: list[str]) -> list[list[Any]]:
    """The frame's rows as lists, nulls as None."""
    return [
        [None if isinstance(v, float) and math.isnan(v) else v for v in row]
        for row in frame[columns].astype(object).values.tolist()
    ]


def checkpointed(**keys: Any) -> dict[str, Any]:
    """One 1-GPU job of 3 h at 0, checkpoints every hour (6 min each), restarts cost 12 min."""
    return {
        **training("ft", ["0s"], 1, "3h"),
        "checkpoint_every": "1h",
        "checkpoint_cost": "6m",
        "restart_cost": "12m",
        **keys,
    }


POOL_OUTAGE = {"target": "pool:hall", "at": "2.5h", "duration": "1h"}


# -- 1. checkpoints and restarts by hand ----------------------------------------------------------
def test_checkpoint_and_restart_by_hand() -> None:
    """One node of one H100; the job is killed by an outage of its pool from 2.5 h to 3.5 h.

    0 - 1 h: computes to 1 h of progress; 1 - 1.1 h: checkpoint (saved: 1 h);
    1.1 - 2.1 h: computes to 2 h; 2.1 - 2.2 h: checkpoint (saved: 2 h);
    2.2 - 2.5 h: computes to 2.3 h, then the node goes down: 0.3 h of work is lost.
    3.5 h: the node is back; the job restarts: 3.5 - 3.7 h reloading, then 3.7 - 4.7 h computes
    from 2 h to 3 h and completes at 4.7 h (no checkpoint at the end).
    Busy: 2.5 h + 1.2 h = 3.7 h; checkpoints 0.2 h; restart 0.2 h; lost 0.3 h (1 GPU).
    Its IT energy stops at the kill: 700 W x 3.7 h = 2590 Wh. The node draws nothing while down:
    site IT energy = 2590 Wh + 70 W x (6 h - 3.7 h - 1 h) = 2681 Wh.
    """
    raw = scenario("6h", [pool(nodes=1, per_node=1)], [checkpointed()], sample_every="30m")
    raw["outages"] = [POOL_OUTAGE]
    result = run(raw)
    job = job_row(result)
    assert job["status"] == "completed"
    assert job["end_s"] == pytest.approx(4.7 * H, rel=1e-12)
    assert job["start_s"] == 0.0
    assert job["restarts"] == 1
    assert job["run_s"] == pytest.approx(3.7 * H, rel=1e-12)
    assert job["lost_gpu_s"] == pytest.approx(0.3 * H, rel=1e-12)
    assert job["checkpoint_gpu_s"] == pytest.approx(0.2 * H, rel=1e-12)
    assert job["restart_gpu_s"] == pytest.approx(0.2 * H, rel=1e-12)
    s = result.summary
    assert s["workloads"]["ft"]["it_energy_mwh"] == pytest.approx(2590e-6, rel=1e-9)
    assert s["it_energy_mwh"] == pytest.approx(2681e-6, rel=1e-9)
    assert s["lost_gpu_hours"] == pytest.approx(0.3, rel=1e-9)
    assert s["goodput"] == pytest.approx((3.7 - 0.3 - 0.2 - 0.2) / 3.7, rel=1e-9)
    assert s["availability"] == pytest.approx(5 / 6, rel=1e-12)
    assert s["outage_hours"] == pytest.approx(1.0)

    nodes = result.frame("nodes")
    assert rows(nodes, ["state", "start_s", "end_s"]) == [
        ["up", 0.0, 2.5 * H],
        ["failed", 2.5 * H, 3.5 * H],
        ["up", 3.5 * H, None],
    ]
    assert nodes["cause"].tolist()[1] == "outages.0"
    outages = result.frame("outages")
    assert outages[["start_s", "end_s", "gpus_hit", "jobs_hit"]].values.tolist() == [
        [2.5 * H, 3.5 * H, 1, 1]
    ]
    events = result.frame("events")
    kill = events[events["event"] == "job_interrupted"]
    assert kill["time_s"].tolist() == [2.5 * H] and kill["detail"].tolist() == ["outages.0"]


def test_a_job_past_max_restarts_fails_at_the_kill() -> None:
    """The same job with max_restarts = 0: it ends ``failed`` at 2.5 h, its energy with it."""
    raw = scenario(
        "6h", [pool(nodes=1, per_node=1)], [checkpointed(max_restarts=0)], sample_every="30m"
    )
    raw["outages"] = [POOL_OUTAGE]
    result = run(raw)
    job = job_row(result)
    assert job["status"] == "failed"
    assert job["end_s"] == 2.5 * H
    assert job["restarts"] == 0
    assert job["progress"] == pytest.approx(2 / 3)  # rolled back to its last checkpoint
    assert result.summary["jobs_failed"] == 1
    assert result.summary["workloads"]["ft"]["it_energy_mwh"] == pytest.approx(1750e-6)


def test_without_checkpoints_a_kill_loses_everything() -> None:
    """No checkpoints: killed at 2.5 h with 2.5 h done, it starts over at 3.5 h and ends at 6.5 h
    (restart_cost 0), 2.5 GPU-hours lost."""
    raw = scenario("8h", [pool(nodes=1, per_node=1)], [training("ft", ["0s"], 1, "3h")])
    raw["outages"] = [POOL_OUTAGE]
    job = job_row(run(raw))
    assert job["end_s"] == pytest.approx(6.5 * H, rel=1e-12)
    assert job["lost_gpu_s"] == pytest.approx(2.5 * H, rel=1e-12)


# -- 2. grid and cooling outages ------------------------------------------------------------------
def busy_site(**facility: Any) -> dict[str, Any]:
    """Two nodes of 4 H100; an inference service (one replica, a 1.5 s request every 2 s from
    1 s) and a 2-GPU training job of 2 h at 0; grid limit 1 MW; a grid outage from 1 h to 1.5 h.
    """
    raw = scenario(
        "3h",
        [pool(nodes=2, per_node=4, overhead=100.0)],
        [inference("chat", "2s", "1.5s", "1s"), training("ft", ["0s"], 2, "2h")],
        {"grid_mw": 1.0, **facility},
        sample_every="5m",
    )
    raw["outages"] = [{"target": "grid", "at": "1h", "duration": "30m"}]
    return raw


def test_a_grid_outage_without_backup_stops_everything() -> None:
    result = run(busy_site())
    ts = result.frame("timeseries")
    during = ts[(ts["time_s"] > H) & (ts["time_s"] < 1.5 * H)]
    assert len(during) == 5
    assert (during["it_power_kw"] == 0).all() and (during["facility_power_kw"] == 0).all()
    assert (during["gpus_up"] == 0).all() and (during["nodes_down"] == 2).all()
    assert (during["requests_in_service"] == 0).all() and (during["jobs_running"] == 0).all()
    assert (during["limit_source"] == "no_power").all()
    after = ts[ts["time_s"] >= 1.5 * H]
    assert (after["gpus_up"] == 8).all()
    nodes = result.frame("nodes")
    dark = nodes[nodes["state"] == "no_power"]
    assert dark[["start_s", "end_s"]].values.tolist() == [[H, 1.5 * H]] * 2
    job = job_row(result)
    assert job["restarts"] == 1 and job["lost_gpu_s"] == pytest.approx(2 * H)
    assert job["end_s"] == pytest.approx(3.5 * H) or job["status"] == "unfinished"
    req = result.frame("requests")
    arrived_dark = req[(req["arrival_s"] >= H) & (req["arrival_s"] < 1.5 * H)]
    assert (arrived_dark["start_s"] >= 1.5 * H).all()  # they waited for the power
    cut = req[(req["start_s"] < H) & (req["arrival_s"] < H) & (req["attempts"] == 1)]
    assert (cut["end_s"] <= H).all()
    # The request in service at 1 h (the one arriving at 3599 s) failed: no retries.
    lost = req[req["status"] == "failed"]
    assert lost["arrival_s"].tolist() == [H - 1] and lost["end_s"].tolist() == [H]


def test_a_large_generator_keeps_the_work_going() -> None:
    """UPS 5 min and a 1 MW generator starting after 1 min: nothing stops, the outputs of the
    work are those of the run without an outage."""
    with_backup = run(
        busy_site(backup={"ups_minutes": 5, "generator_mw": 1.0, "generator_start": "1m"})
    )
    raw = busy_site()
    raw["outages"] = []
    without = run(raw)
    for table in ("jobs", "requests"):
        pd.testing.assert_frame_equal(with_backup.frame(table), without.frame(table))
    ts = with_backup.frame("timeseries")
    assert (ts["gpus_up"] == 8).all()
    during = ts[(ts["time_s"] > H + 60) & (ts["time_s"] < 1.5 * H)]
    assert (during["limit_source"] == "generator").all()
    assert (during["power_limit_kw"] == 1000.0).all()


def test_a_generator_slower_than_the_ups_leaves_a_dark_gap() -> None:
    """UPS 1 min, generator after 10 min: no power from 1 h 1 min to 1 h 10 min."""
    result = run(
        busy_site(backup={"ups_minutes": 1, "generator_mw": 1.0, "generator_start": "10m"})
    )
    nodes = result.frame("nodes")
    dark = nodes[nodes["state"] == "no_power"]
    assert dark[["start_s", "end_s"]].values.tolist() == [[H + 60, H + 600]] * 2
    assert job_row(result)["restarts"] == 1


def test_a_small_generator_powers_off_nodes_then_the_ladder_sheds() -> None:
    """A generator for 1.5 nodes' idle draw (IT budget 570 W at PUE 1.3; a node idles at
    4 x 70 + 100 = 380 W). Best fit put the replica and the job on node 0, so node 1 is empty
    and is powered off first. Node 0 still needs 380 + 3 x 630 W busy; at the lowest caps
    (200 W: 130 W above idle) the job's 260 W more would not fit with the replica's 130 W
    (380 + 390 > 570), so the ladder suspends the job (kept, not killed) and the replica serves,
    capped; after the outage the job resumes where it stopped.
    """
    node_w = 4 * 70 + 100
    gen_mw = (node_w * 1.5) * 1.3 / 1e6
    result = run(busy_site(backup={"generator_mw": gen_mw}))
    nodes = result.frame("nodes")
    dark = nodes[nodes["state"] == "no_power"]
    assert dark["node"].tolist() == [1]
    assert dark[["start_s", "end_s"]].values.tolist() == [[H, 1.5 * H]]
    job = job_row(result)
    assert job["restarts"] == 0 and job["suspended_s"] == pytest.approx(0.5 * H)
    assert job["end_s"] == pytest.approx(2.5 * H)
    req = result.frame("requests")
    assert (req["status"] != "failed").all()


def test_a_cooling_trip_is_a_falling_capacity() -> None:
    """Cooling capacity 10 kW; from 1 h to 1.5 h only 20 % remains (2 kW of IT heat): the idle
    site (2 x 380 W) fits, the training job's 2 x 630 W does not all fit, so the ladder caps or
    suspends; nothing is powered off."""
    raw = busy_site(cooling={"kind": "air", "capacity_mw": 0.01})
    raw["outages"] = [{"target": "cooling", "at": "1h", "duration": "30m", "capacity_left": 0.2}]
    result = run(raw)
    ts = result.frame("timeseries")
    during = ts[(ts["time_s"] > H) & (ts["time_s"] < 1.5 * H)]
    np.testing.assert_allclose(during["cooling_capacity_kw"], 2.0)
    assert (during["it_power_kw"] <= 2.0 + 1e-9).all()
    assert (during["gpus_up"] == 8).all()
    check_limited_run(result, statuses=True)


# -- 3. inference: retries, re-placement, timeouts ---------------------------------------------
def two_pools_one_replica(retries: int) -> dict[str, Any]:
    """Pools A and B of one 1-GPU node each; one replica (placed on A, the first pool); one
    request of 1 h at 0; an outage of pool A from 0.5 h for 2 h."""
    service = {**inference("chat", "10h", "1h"), "retries": retries}
    raw = scenario("3h", [pool(name="a"), pool(name="b")], [service], sample_every="10m")
    raw["outages"] = [{"target": "pool:a", "at": "30m", "duration": "2h"}]
    return raw


def test_a_request_lost_with_its_replica_is_retried_on_the_moved_replica() -> None:
    """The replica moves to pool B at once; the request starts again there at 0.5 h and ends
    at 1.5 h, its second attempt."""
    result = run(two_pools_one_replica(retries=1))
    req = result.frame("requests").iloc[0]
    assert (req["status"], req["attempts"]) == ("ok", 2)
    assert (req["start_s"], req["end_s"]) == (0.5 * H, 1.5 * H)
    assert req["pool"] == "b"
    events = result.frame("events")
    moves = events[events["event"].isin(["replica_down", "replica_up"])]
    assert moves[["event", "pool", "time_s"]].astype(str).values.tolist() == [
        ["replica_down", "a", str(0.5 * H)],
        ["replica_up", "b", str(0.5 * H)],
    ]
    assert result.summary["lost_gpu_hours"] == pytest.approx(0.5)


def test_without_retries_the_request_fails() -> None:
    result = run(two_pools_one_replica(retries=0))
    req = result.frame("requests").iloc[0]
    assert (req["status"], req["attempts"], req["end_s"]) == ("failed", 1, 0.5 * H)
    assert math.isnan(req["latency_s"]) and req["sla_met"] is pd.NA
    assert result.summary["requests_failed"] == 1


def test_a_request_waiting_past_its_timeout_ends_timeout() -> None:
    """One replica, 1 h requests every 20 min, timeout 30 min, horizon 2 h 10 min.

    0: served 0 - 60 min. 20 min: its deadline, 50 min, passes while the replica is busy: it
    ends ``timeout`` at 50 min. 40 min: starts at 60 (waited 20), served to 120. 60 and 80 min:
    deadlines 90 and 110 pass: timeout. 100 min: starts at 120 (waited 20), unfinished at the
    horizon. 120 min: waiting at the horizon, its deadline (150) not reached: unfinished.
    """
    service = {**inference("chat", "20m", "1h"), "timeout": "30m"}
    result = run(scenario("2h10m", [pool()], [service], sample_every="10m"))
    req = result.frame("requests")
    assert req["status"].astype(str).tolist() == [
        "ok",
        "timeout",
        "ok",
        "timeout",
        "timeout",
        "unfinished",
        "unfinished",
    ]
    assert req["end_s"].tolist()[:5] == [H, 50 * 60, 2 * H, 90 * 60, 110 * 60]
    assert req["start_s"].tolist()[5] == 2 * H
    assert result.summary["requests_timed_out"] == 3


def test_a_retried_request_takes_an_idle_replica_at_once() -> None:
    """Two replicas, on pools A and B; 1 h requests every 50 min; pool A out from 30 min.

    Request 0 (on A) is lost at 30 min and starts again at once on the idle replica on B; the
    replica from A finds no room (B's one GPU is taken) and waits. Request 0's row says it ran
    on B, the pool it was served in; the replica that served it before is replica 0.
    """
    service = {**inference("chat", "50m", "1h"), "retries": 1, "replicas": 2}
    raw = scenario("3h", [pool(name="a"), pool(name="b")], [service], sample_every="10m")
    raw["outages"] = [{"target": "pool:a", "at": "30m", "duration": "2h"}]
    req = run(raw).frame("requests")
    first = req.iloc[0]
    assert (first["start_s"], first["end_s"], first["attempts"]) == (1800.0, 1800.0 + H, 2)
    assert (first["replica"], first["pool"]) == (1, "b")
    assert req.iloc[1]["start_s"] == 1800.0 + H  # it waited for request 0: FIFO kept


def test_a_request_row_names_the_pool_it_was_served_in() -> None:
    """One replica moves from A to B at 32 min: requests served before stay on A."""
    service = inference("chat", "10m", "5m")
    raw = scenario("1h", [pool(name="a"), pool(name="b")], [service], sample_every="10m")
    raw["outages"] = [{"target": "pool:a", "at": "32m", "duration": "1h"}]
    req = run(raw).frame("requests")
    assert req["pool"].astype(str).tolist() == ["a", "a", "a", "a", "b", "b"]
    assert req["status"].astype(str).tolist()[3] == "failed"


def test_overlapping_outages_keep_a_node_down_until_the_last_ends() -> None:
    """Outages of the same node from 30 min to 1.5 h and from 1 h to 3 h: down 30 min - 3 h
    (its row's cause is the latest window that holds it down)."""
    raw = scenario("6h", [pool()], [training("a", ["0s"], 1, "2h")], sample_every="30m")
    raw["outages"] = [
        {"target": "pool:hall", "at": "1h", "duration": "2h"},
        {"target": "nodes:hall:1", "at": "30m", "duration": "1h"},
    ]
    result = run(raw)
    nodes = result.frame("nodes")
    assert rows(nodes, ["state", "start_s", "end_s", "cause"]) == [
        ["up", 0.0, 1800.0, None],
        ["failed", 1800.0, H, "outages.1"],
        ["failed", H, 3 * H, "outages.0"],
        ["up", 3 * H, None, None],
    ]
    assert job_row(result)["end_s"] == 5 * H


# -- 4. maintenance ----------------------------------------------------------------------------
def maintained(drain: bool) -> dict[str, Any]:
    """One 1-GPU node; a 2 h job at 0; maintenance at 1 h for 1 h."""
    raw = scenario("5h", [pool()], [training("ft", ["0s"], 1, "2h")], sample_every="10m")
    raw["maintenance"] = [{"target": "pool:hall", "at": "1h", "duration": "1h", "drain": drain}]
    return raw


def test_maintenance_with_drain_waits_for_the_job() -> None:
    """Draining from 1 h, the node goes down when the job ends at 2 h and is back at 3 h."""
    result = run(maintained(drain=True))
    nodes = result.frame("nodes")
    assert rows(nodes, ["state", "start_s", "end_s"]) == [
        ["up", 0.0, H],
        ["draining", H, 2 * H],
        ["maintenance", 2 * H, 3 * H],
        ["up", 3 * H, None],
    ]
    assert job_row(result)["end_s"] == 2 * H
    assert result.frame("outages")[["start_s", "end_s"]].values.tolist() == [[H, 3 * H]]
    assert result.summary["maintenance_hours"] == pytest.approx(2.0)


def test_maintenance_without_drain_interrupts_the_job() -> None:
    """Down at 1 h (the job loses its hour), back at 2 h; the job runs again 2 - 4 h."""
    result = run(maintained(drain=False))
    job = job_row(result)
    assert (job["restarts"], job["end_s"]) == (1, 4 * H)
    assert job["lost_gpu_s"] == H


def test_a_draining_node_that_fails_stays_out_of_service_until_its_maintenance_ends() -> None:
    """Draining from 1 h (the 2 h job runs on), the node fails with its pool at 1.5 h (job
    killed, node empty): its maintenance starts then, under the failure, and ends at 2.5 h; a
    job submitted at 1.75 h must not start on it in between."""
    raw = maintained(drain=True)
    raw["workloads"].append(training("late", ["105m"], 1, "10m"))
    raw["outages"] = [{"target": "pool:hall", "at": "90m", "duration": "15m"}]
    result = run(raw)
    nodes = result.frame("nodes")
    assert rows(nodes, ["state", "start_s", "end_s"]) == [
        ["up", 0.0, H],
        ["draining", H, 1.5 * H],
        ["failed", 1.5 * H, 1.75 * H],
        ["maintenance", 1.75 * H, 2.5 * H],
        ["up", 2.5 * H, None],
    ]
    jobs = result.frame("jobs").set_index("job_id")
    assert jobs.loc[1, "start_s"] >= 2.5 * H and jobs.loc[0, "start_s"] == 0.0


def test_a_drain_timeout_interrupts_what_is_left() -> None:
    raw = maintained(drain=True)
    raw["maintenance"][0]["drain_timeout"] = "30m"
    result = run(raw)
    nodes = result.frame("nodes")
    assert nodes["state"].astype(str).tolist() == ["up", "draining", "maintenance", "up"]
    assert nodes["start_s"].tolist()[2] == 1.5 * H
    assert job_row(result)["restarts"] == 1


# -- 5. availability against theory --------------------------------------------------------------
def test_availability_matches_mtbf_over_mtbf_plus_mttr() -> None:
    """200 nodes, exponential failures (MTBF 100 h) and repairs (mean 10 h), 2000 h.

    A = 100 / 110. Each node is an alternating renewal process; its up time over T has variance
    about T (σu² μd² + σd² μu²) / (μu + μd)³ = 1.503 T h², so the estimate's standard deviation
    is sqrt(1.503 / (200 × 2000)) = 0.0019; allow 4 of them. The mean repair of about 3600
    repairs has a standard deviation of 10 / 60 h; allow 4.
    """
    raw = scenario(
        "2000h",
        [pool(nodes=200, per_node=1, mtbf="100h", repair={"dist": "exponential", "mean": "10h"})],
        sample_every="100h",
        seed=7,
    )
    s = run(raw).summary
    assert s["availability"] == pytest.approx(100 / 110, abs=4 * 0.0019)
    assert s["mttr_s"] / H == pytest.approx(10.0, abs=4 * 10 / 60)
    assert s["node_failures"] == pytest.approx(200 * 2000 / 110, rel=0.1)


# -- 6. invariants ---------------------------------------------------------------------------------
@st.composite
def unreliable_scenarios(draw: st.DrawFn) -> dict[str, Any]:
    """Small sites with random failures, outages, maintenance, checkpoints, retries, timeouts."""
    pools = [
        pool(
            name=f"p{i}",
            nodes=draw(st.integers(2, 4)),
            per_node=draw(st.sampled_from([2, 4])),
            overhead=100.0,
            mtbf=draw(st.sampled_from(["2h", "6h", "1d"])),
            repair=draw(st.sampled_from(["20m", {"dist": "exponential", "mean": "1h"}])),
        )
        for i in range(draw(st.integers(1, 2)))
    ]
    workloads: list[dict[str, Any]] = [
        {
            "name": "chat",
            "kind": "inference",
            "replicas": draw(st.integers(1, 2)),
            "arrival": {"process": "poisson", "rate_per_s": draw(st.sampled_from([0.05, 0.5]))},
            "service": {"dist": "exponential", "mean": draw(st.sampled_from(["1s", "30s"]))},
            "retries": draw(st.integers(0, 2)),
            **({"timeout": "5m"} if draw(st.booleans()) else {}),
        },
        {
            "name": "train",
            "kind": "training",
            "gpus": draw(st.sampled_from([1, 2, 4])),
            "arrival": {"process": "poisson", "rate_per_h": draw(st.sampled_from([1, 4]))},
            "duration": {"dist": "exponential", "mean": draw(st.sampled_from(["30m", "2h"]))},
            "checkpoint_every": draw(st.sampled_from(["10m", "1h"])),
            "checkpoint_cost": "1m",
            "restart_cost": draw(st.sampled_from([0, "5m"])),
            "max_restarts": draw(st.sampled_from([0, 3, 100])),
        },
    ]
    facility: dict[str, Any] = {"grid_mw": 1.0}
    if draw(st.booleans()):
        facility["backup"] = {
            "ups_minutes": draw(st.sampled_from([0, 1, 10])),
            "generator_mw": draw(st.sampled_from([0, 0.0005, 0.002, 1.0])),
            "generator_start": draw(st.sampled_from(["30s", "5m"])),
        }
    outages: list[dict[str, Any]] = [
        {"target": "grid", "mtbf": "4h", "duration": {"dist": "exponential", "mean": "20m"}},
    ]
    if draw(st.booleans()):
        outages.append({"target": "cooling", "at": "2h", "duration": "30m"})
    outages.append({"target": "nodes:p0:1", "every": "3h", "at": "1h", "duration": "40m"})
    raw = scenario(
        "12h",
        pools,
        workloads,
        facility,
        seed=draw(st.integers(0, 2**32 - 1)),
        sample_every="10m",
    )
    raw["outages"] = outages
    raw["maintenance"] = [
        {
            "target": "pool:p0",
            "at": "5h",
            "duration": "1h",
            "drain": draw(st.booleans()),
            "drain_timeout": "1h",
        }
    ]
    return raw


def check_unreliable_run(result: Any) -> None:
    """What every run with failures satisfies (besides the ledger's audit of the nodes)."""
    check_limited_run(result, statuses=True)
    ts = result.frame("timeseries")
    assert (ts["gpus_busy"] <= ts["gpus_allocated"]).all()
    assert (ts["gpus_allocated"] <= ts["gpus_up"]).all()
    assert ((ts["gpus_up"] > 0) | (ts["it_power_kw"] == 0)).all(), "draw without power"
    dark = (ts["limit_source"] == "no_power").to_numpy()
    assert (ts.loc[dark, "it_power_kw"] == 0).all()
    for name in ("lost_gpu_hours", "checkpoint_gpu_hours", "restart_gpu_hours"):
        assert (np.diff(ts[name].to_numpy()) >= -1e-9).all(), name
    nodes = result.frame("nodes")
    for _, rows in nodes.groupby(["pool", "node"], observed=True):
        starts, ends = rows["start_s"].to_numpy(), rows["end_s"].to_numpy()
        assert starts[0] == 0.0 and math.isnan(ends[-1])
        np.testing.assert_array_equal(starts[1:], ends[:-1])  # contiguous, no overlap
        shown = list(zip(rows["state"].astype(str), rows["cause"].fillna(""), strict=True))
        assert all(a != b for a, b in itertools.pairwise(shown)), shown
    jobs = result.frame("jobs")
    assert (jobs["lost_gpu_s"] >= 0).all() and (jobs["checkpoint_gpu_s"] >= 0).all()
    busy = jobs["run_s"] * jobs["gpus"]
    overhead = jobs["lost_gpu_s"] + jobs["checkpoint_gpu_s"] + jobs["restart_gpu_s"]
    assert (overhead <= busy * (1 + 1e-9) + 1e-6).all()
    req = result.frame("requests")
    assert (req["attempts"] >= 1).all()
    served = req[req["status"] == "ok"].sort_values(["workload", "replica", "start_s"])
    for _, one in served.groupby(["workload", "replica"], observed=True):
        starts, ends = one["start_s"].to_numpy(), one["end_s"].to_numpy()
        assert (starts[1:] >= ends[:-1] - 1e-9).all(), "a replica served two requests at once"
    s = result.summary
    assert 0.0 <= s["availability"] <= 1.0
    assert s["goodput"] is None or 0.0 <= s["goodput"] <= 1.0


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(raw=unreliable_scenarios())
def test_runs_with_failures_and_outages_satisfy_the_invariants(raw: dict[str, Any]) -> None:
    check_unreliable_run(run(raw))


@pytest.mark.slow
@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(raw=unreliable_scenarios())
def test_many_runs_with_failures_and_outages_satisfy_the_invariants(raw: dict[str, Any]) -> None:
    check_unreliable_run(run(raw))


FOUND_BY_HYPOTHESIS = {
    "scenario": {"name": "facility", "duration": "12h", "seed": 4294967294, "sample_every": "10m"},
    "pools": [
        {
            "name": "p0",
            "gpu_type": "H100-SXM",
            "nodes": 3,
            "gpus_per_node": 4,
            "node_overhead_w": 100.0,
            "mtbf": "2h",
            "repair": {"dist": "exponential", "mean": "1h"},
        },
        {
            "name": "p1",
            "gpu_type": "H100-SXM",
            "nodes": 2,
            "gpus_per_node": 2,
            "node_overhead_w": 100.0,
            "mtbf": "2h",
            "repair": "20m",
        },
    ],
    "workloads": [
        {
            "name": "chat",
            "kind": "inference",
            "replicas": 1,
            "arrival": {"process": "poisson", "rate_per_s": 0.05},
            "service": {"dist": "exponential", "mean": "1s"},
            "retries": 0,
        },
        {
            "name": "train",
            "kind": "training",
            "gpus": 1,
            "arrival": {"process": "poisson", "rate_per_h": 4},
            "duration": {"dist": "exponential", "mean": "30m"},
            "checkpoint_every": "10m",
            "checkpoint_cost": "1m",
            "restart_cost": 0,
            "max_restarts": 0,
        },
    ],
    "facility": {
        "grid_mw": 1.0,
        "backup": {"ups_minutes": 1, "generator_mw": 0.002, "generator_start": "30s"},
    },
    "outages": [
        {"target": "grid", "mtbf": "4h", "duration": {"dist": "exponential", "mean": "20m"}},
        {"target": "nodes:p0:1", "every": "3h", "at": "1h", "duration": "40m"},
    ],
    "maintenance": [
        {"target": "pool:p0", "at": "5h", "duration": "1h", "drain": True, "drain_timeout": "1h"}
    ],
}
"""At 6 h a grid outage's generator cannot carry p1's node 0, which is powered off and on again
at the same instant (the maintenance of p0 frees the power)."""


def test_a_node_off_and_on_at_one_instant_shows_one_interval_not_two() -> None:
    result = run(FOUND_BY_HYPOTHESIS)
    check_unreliable_run(result)
    nodes = result.frame("nodes")
    mine = nodes[(nodes["pool"] == "p1") & (nodes["node"] == 0)]
    assert not ((mine["start_s"] < 21600.0) & (mine["end_s"] == 21600.0)).any()
    events = result.frame("events")
    at = events[(events["time_s"] == 21600.0) & (events["pool"] == "p1")]
    assert {"node_down", "node_up"} <= set(at["event"].astype(str)), "the case still arises"


# -- 7. bad input ---------------------------------------------------------------------------------
BASE = """
[scenario]
name = "bad"
duration = "1h"

[[pools]]
name = "hall"
gpu_type = "H100-SXM"
nodes = 2
"""


@pytest.mark.parametrize(
    ("extra", "key", "words"),
    [
        ('[[outages]]\ntarget = "pool:hal"\nduration = "1h"', "outages.0.target", "'hall'"),
        ('[[outages]]\ntarget = "nodes:hall:5"\nduration = "1h"', "outages.0.target", "has 2"),
        (
            '[[outages]]\ntarget = "cooling"\nduration = "1h"\ncapacity_left = 0.5',
            "outages.0.capacity_left",
            "capacity_mw",
        ),
        ('[[outages]]\ntarget = "moon"\nduration = "1h"', "outages.0.target", '"grid"'),
        ('[[maintenance]]\ntarget = "grid"\nduration = "1h"', "maintenance.0.target", "pool:"),
        (
            '[[maintenance]]\ntarget = "pool:hall"\nevery = "2h"\nduration = "1h"',
            "maintenance.0",
            "within every",
        ),
        ("[facility.backup]\ngenerator_mw = -1", "facility.backup.generator_mw", "0"),
    ],
)
def test_bad_outages_are_refused_with_their_key(
    tmp_path: Path, extra: str, key: str, words: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(BASE + "\n" + extra + "\n")
    out = CliRunner().invoke(cli, ["validate", str(path)])
    assert out.exit_code == 2, out.output
    assert key in out.output and words in out.output, out.output
    assert str(path) in out.output


def test_a_failing_pool_needs_a_repair_time() -> None:
    with pytest.raises(ScenarioError, match="repair"):
        validate_scenario(scenario("1h", [pool(mtbf="10h")]), "test")


def test_runs_with_failures_are_byte_identical_for_a_seed(tmp_path: Path) -> None:
    """The shipped outages scenario for two days, with failures every few hours: twice."""
    scenario_file = Path(__file__).resolve().parent.parent / "scenarios" / "outages.toml"
    args = [
        "--set",
        "scenario.duration=2d",
        "--set",
        "pools.hall-a.mtbf=100h",
        "--set",
        "pools.hall-b.mtbf=50h",
        "--set",
        "outages.0.at=1d",
        "--set",
        "maintenance.0.at=12h",
    ]
    for out in ("a", "b"):
        result = CliRunner().invoke(
            cli, ["run", str(scenario_file), "--quiet", "--out", str(tmp_path / out), *args]
        )
        assert result.exit_code == 0, result.output
    summary = (tmp_path / "a" / "summary.json").read_text()
    assert '"node_failures": 0,' not in summary
    for name in ("nodes", "outages", "jobs", "events", "requests", "timeseries"):
        a = (tmp_path / "a" / f"{name}.parquet").read_bytes()
        assert a == (tmp_path / "b" / f"{name}.parquet").read_bytes(), name
    assert summary == (tmp_path / "b" / "summary.json").read_text()


def test_a_ups_alone_rides_through_its_minutes_then_the_site_goes_dark() -> None:
    """UPS 5 min, no generator: the site runs on from 1 h to 1 h 5 min, then is dark to 1.5 h."""
    result = run(busy_site(backup={"ups_minutes": 5}))
    nodes = result.frame("nodes")
    dark = nodes[nodes["state"] == "no_power"]
    assert dark[["start_s", "end_s"]].values.tolist() == [[H + 300, 1.5 * H]] * 2
    ts = result.frame("timeseries")
    assert at_time(ts, H + 300)["it_power_kw"] == 0.0
    assert at_time(ts, H)["it_power_kw"] > 0.0
    assert job_row(result)["lost_gpu_s"] == pytest.approx(2 * (H + 300))


def test_a_total_cooling_loss_powers_every_node_off() -> None:
    """capacity_left = 0 with no rated capacity: every node off from 1 h to 1.5 h (a thermal
    shutdown), the energy of that half hour nothing but the other load (none here)."""
    raw = busy_site()
    raw["outages"] = [{"target": "cooling", "at": "1h", "duration": "30m"}]
    result = run(raw)
    nodes = result.frame("nodes")
    dark = nodes[nodes["state"] == "no_power"]
    assert dark[["start_s", "end_s"]].values.tolist() == [[H, 1.5 * H]] * 2
    assert set(dark["cause"]) == {"outages.0 (cooling)"}
    ts = result.frame("timeseries")
    e = ts.set_index("time_s")["it_energy_kwh"]
    assert e[1.5 * H] == pytest.approx(e[H], abs=1e-12)
    assert result.frame("outages")["gpus_hit"].tolist() == [8]


# -- 8. checkpoints computed, not simulated ----------------------------------------------------
def _bare_job(work: float, every: float, cost: float, restart: float, speed: float) -> Any:
    from sim.model.pools import Demand
    from sim.model.training import COMPUTE, RESTART, Job, JobPolicy

    policy = JobPolicy(every, cost, restart)
    job = Job(0, 0, 0, Demand(1, ()), 0, work, 0.0, policy)
    job.speed = speed
    job.gpus = 1
    if restart > 0:
        job.phase, job.phase_left = RESTART, restart
    else:
        job.phase = COMPUTE
    return job


def _stepper() -> Any:
    from sim.model.training import TrainingScheduler

    sched = TrainingScheduler.__new__(TrainingScheduler)
    sched.checkpoint_gpu_s = sched.restart_gpu_s = 0.0
    return sched


@settings(max_examples=300, deadline=None)
@given(
    work=st.floats(1.0, 1e5),
    every=st.floats(1.0, 2e4),
    cost=st.floats(0.0, 500.0),
    restart=st.sampled_from([0.0, 60.0]),
    speed=st.sampled_from([0.28, 0.5, 1.0]),
    cuts=st.lists(st.floats(0.0, 1.0), max_size=6),
)
def test_checkpoint_cycles_add_up_whatever_the_segments(
    work: float, every: float, cost: float, restart: float, speed: float, cuts: list[float]
) -> None:
    """A job's time to its end is its work at its speed plus its reload plus one checkpoint per
    ``every`` of progress strictly before the end; advancing its state through that time in any
    pieces (a cap, a suspension cut a segment anywhere) ends exactly there, with every
    checkpoint counted once."""
    from sim.model.training import COMPUTE, _checkpoints_left

    job = _bare_job(work, every, cost, restart, speed)
    n = _checkpoints_left(work, 0.0, job.policy)
    expected_n = sum(1 for k in range(1, int(work / every) + 2) if k * every < work)
    assert n == expected_n
    total = restart + work / speed + n * cost
    sched = _stepper()
    at = sorted(c * total for c in cuts)
    previous = 0.0
    for t in [*at, total]:
        sched._advance(job, t - previous)
        previous = t
        assert job.done_s <= work * (1 + 1e-12)
    assert job.done_s == pytest.approx(work, rel=1e-9)
    assert job.phase == COMPUTE
    assert job.checkpoint_s == pytest.approx(n * cost, rel=1e-9, abs=1e-6)
    assert job.restart_s == pytest.approx(restart, abs=1e-9)
    sched._advance(job, total)  # past the end, nothing more happens
    assert job.done_s == pytest.approx(work, rel=1e-9)
    assert job.checkpoint_s == pytest.approx(n * cost, rel=1e-9, abs=1e-6)
