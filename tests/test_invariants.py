"""Invariants of any run, checked with hypothesis on small random scenarios.

Each example is a scenario of 1-3 pools (random GPU types, nodes, GPUs per node, node
overhead), 0-2 inference workloads whose replicas fit, 0-2 training workloads (random GPUs,
some too large for any pool; Poisson, periodic or listed arrivals; random durations), random
``max_queue``, policy fifo or priority, a 5-30 minute horizon and a random seed. Every example
must satisfy, in every table:

- GPU counts: 0 <= busy <= allocated <= up <= total at every sample; facility power = IT
  power × PUE; cumulative columns never decrease; pool rows add up to the site row.
- Requests: one terminal status each, with consistent fields; FIFO within a workload; at most
  one request per replica at a time; a request is rejected only when ``max_queue`` wait.
- Jobs: one terminal status each, with consistent fields; a completed job ran work / speed;
  rejected exactly when it can never fit; the GPUs held by running jobs plus the replicas
  never exceed a pool's GPUs; policy order (strict FIFO, or priority then FIFO).
- Integrals: busy and allocated GPU-hours and IT energy agree with the requests and jobs.
- Same scenario and seed, same tables; another seed, other requests.
"""

from __future__ import annotations

import math
import tomllib
from typing import Any

import numpy as np
import pandas as pd
import pytest
from conftest import SCENARIOS
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st

import sim
from sim.config import validate_scenario
from sim.config.catalogue import BUILTIN_GPU_TYPES
from sim.model.inference import FLUSH_ROWS
from sim.runner import RunResult

GPU_TYPES = sorted(BUILTIN_GPU_TYPES)
SETTINGS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
COUNTS = ("gpus_busy", "gpus_allocated", "gpus_up", "gpus_total")
CUMULATIVE = ("it_energy_kwh", "gpu_busy_hours", "gpu_allocated_hours", "gpu_up_hours")
REL = 1e-9


# -- scenarios ------------------------------------------------------------------------------------
def seconds(draw: st.DrawFn, low: float, high: float) -> float:
    """A duration in seconds, rounded to milliseconds (as a scenario file would give it)."""
    return round(draw(st.floats(low, high)), 3)


def _take(free: list[int], gpus: int, per_node: int) -> bool:
    """Take a replica of ``gpus`` GPUs from nodes with ``free`` GPUs (``per_node`` each when
    empty), as the capacity object places replicas; False, taking nothing, if it does not fit."""
    if gpus <= per_node:
        fitting = [k for k, f in enumerate(free) if f >= gpus]
        if not fitting:
            return False
        best = min(fitting, key=lambda k: (free[k], -k))
        free[best] -= gpus
        return True
    if sum(free) < gpus:
        return False
    need = gpus
    while need:
        whole = [k for k, f in enumerate(free) if f == per_node]
        if need >= per_node and whole:
            free[whole[-1]] = 0
            need -= per_node
            continue
        fitting = [k for k, f in enumerate(free) if f >= need]
        if fitting:
            free[min(fitting, key=lambda k: free[k])] -= need
            return True
        largest = max((k for k, f in enumerate(free) if f > 0), key=lambda k: free[k])
        need -= free[largest]
        free[largest] = 0
    return True


@st.composite
def service_dists(draw: st.DrawFn) -> dict[str, Any]:
    """A request service-time distribution (seconds on H100-SXM)."""
    kind = draw(st.sampled_from(["exponential", "deterministic", "lognormal", "uniform", "round"]))
    mean = seconds(draw, 0.05, 3.0)
    if kind == "round":  # whole values: completions tie with periodic arrivals (or are instant)
        return {"dist": "deterministic", "value": draw(st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.0]))}
    if kind == "exponential":
        return {"dist": "exponential", "mean": mean}
    if kind == "deterministic":
        return {"dist": "deterministic", "value": mean}
    if kind == "lognormal":
        return {"dist": "lognormal", "mean": mean, "sd": seconds(draw, 0.01, 4.0)}
    return {"dist": "uniform", "low": 0.0, "high": 2 * mean}


@st.composite
def job_dists(draw: st.DrawFn) -> dict[str, Any]:
    """A training-job duration distribution (seconds on H100-SXM)."""
    kind = draw(st.sampled_from(["exponential", "deterministic", "uniform", "round"]))
    mean = seconds(draw, 20.0, 900.0)
    if kind == "round":  # whole values: completions tie with listed submissions
        return {"dist": "deterministic", "value": draw(st.sampled_from([0.0, 60.0, 120.0, 300.0]))}
    if kind == "exponential":
        return {"dist": "exponential", "mean": mean}
    if kind == "deterministic":
        return {"dist": "deterministic", "value": mean}
    return {"dist": "uniform", "low": 0.0, "high": 2 * mean}


def job_gpus(biggest: int) -> st.SearchStrategy[int]:
    """GPUs of a training job: mostly small enough to share a pool, sometimes too many."""
    return st.sampled_from(["small", "any", "too many"]).flatmap(
        lambda size: (
            st.integers(1, max(1, biggest // 2))
            if size == "small"
            else st.integers(1, biggest)
            if size == "any"
            else st.integers(biggest + 1, biggest + 8)
        )
    )


@st.composite
def scenarios(
    draw: st.DrawFn, inference: tuple[int, int] = (0, 2), training: tuple[int, int] = (0, 2)
) -> dict[str, Any]:
    """A small random scenario as a raw dict (what a TOML file would parse to), with the given
    ranges of inference and training workloads."""
    duration = draw(st.integers(5, 30)) * 60
    warmup = draw(st.sampled_from([0, 30, 60, 125, 240]))
    pools = []
    for i in range(draw(st.integers(1, 3))):
        pools.append(
            {
                "name": f"p{i}",
                "gpu_type": draw(st.sampled_from(GPU_TYPES)),
                "nodes": draw(st.integers(1, 4)),
                "gpus_per_node": draw(st.sampled_from([1, 2, 4, 8])),
                "node_overhead_w": float(draw(st.sampled_from([0, 150, 500]))),
            }
        )
    # Free GPUs per node; replicas go to the first pool with room, a replica that fits in a
    # node within one node (best fit), a larger one over whole free nodes first.
    nodes_free = [[p["gpus_per_node"]] * p["nodes"] for p in pools]
    workloads: list[dict[str, Any]] = []
    for i in range(draw(st.integers(*inference))):
        gpr = draw(st.integers(1, 4))
        placed = 0
        for _ in range(draw(st.integers(1, 6))):
            if not any(
                _take(free, gpr, p["gpus_per_node"])
                for free, p in zip(nodes_free, pools, strict=True)
            ):
                break
            placed += 1
        if placed == 0:
            break
        replicas = placed
        kind = draw(st.sampled_from(["poisson", "deterministic", "round"]))
        if kind == "poisson":
            arrival = {"process": "poisson", "rate_per_s": round(draw(st.floats(0.05, 15.0)), 3)}
        elif kind == "round":
            arrival = {"process": "deterministic", "interval": draw(st.sampled_from([0.5, 1.0]))}
        else:
            arrival = {
                "process": "deterministic",
                "interval": seconds(draw, 0.1, 5.0),
                "offset": seconds(draw, 0.0, 5.0),
            }
        wl: dict[str, Any] = {
            "name": f"inf{i}",
            "kind": "inference",
            "replicas": replicas,
            "gpus_per_replica": gpr,
            "arrival": arrival,
            "service": draw(service_dists()),
        }
        if draw(st.booleans()):
            wl["sla"] = {"latency": seconds(draw, 0.5, 10.0)}
        max_queue = draw(st.one_of(st.none(), st.integers(0, 10)))
        if max_queue is not None:
            wl["max_queue"] = max_queue
        workloads.append(wl)
    biggest = max(p["nodes"] * p["gpus_per_node"] for p in pools)
    for i in range(draw(st.integers(*training))):
        kind = draw(st.sampled_from(["poisson", "deterministic", "at"]))
        if kind == "poisson":
            arrival = {"process": "poisson", "rate_per_h": round(draw(st.floats(10.0, 400.0)), 3)}
        elif kind == "deterministic":
            arrival = {"process": "deterministic", "interval": seconds(draw, 10.0, 300.0)}
        else:  # bunched, some at the same instant, some past the horizon
            times = draw(st.lists(st.integers(0, duration + 60) | st.just(60), max_size=12))
            times = times or [0]
            arrival = {"process": "at", "times": [float(t) for t in times]}
        wl = {
            "name": f"train{i}",
            "kind": "training",
            "gpus": draw(job_gpus(biggest)),
            "arrival": arrival,
            "duration": draw(job_dists()),
            "priority": draw(st.integers(0, 3)),
        }
        candidates = pools
        if draw(st.integers(0, 3)) == 0:
            wl["pool"] = draw(st.sampled_from([p["name"] for p in pools]))
            candidates = [p for p in pools if p["name"] == wl["pool"]]
        if draw(st.integers(0, 3)) == 0:  # only pools with this much memory per GPU are eligible
            memory = [BUILTIN_GPU_TYPES[p["gpu_type"]].memory_gb for p in candidates]
            wl["memory_gb_per_gpu"] = draw(st.sampled_from(memory))
        workloads.append(wl)
    return {
        "scenario": {
            "name": "prop",
            "seed": draw(st.integers(0, 2**32 - 1)),
            "duration": float(duration),
            "warmup": float(warmup),
            "sample_every": draw(st.sampled_from([7.0, 30.0, 60.0, 90.0])),
        },
        "facility": {"pue": draw(st.sampled_from([1.0, 1.1, 1.3, 1.75]))},
        "pools": pools,
        "workloads": workloads,
        "scheduler": {"policy": draw(st.sampled_from(["fifo", "priority"]))},
    }


def run_raw(raw: dict[str, Any], seed: int | None = None) -> RunResult:
    note(f"scenario: {raw}")
    return sim.run(validate_scenario(raw, "test"), seed=seed)


def floats(series: pd.Series) -> np.ndarray:
    return series.to_numpy(dtype=np.float64, na_value=np.nan)


def ordered(values: np.ndarray) -> bool:
    """Non-decreasing (infinities allowed)."""
    return bool((values[1:] >= values[:-1]).all())


# -- time series ---------------------------------------------------------------------------------
def check_timeseries(result: RunResult) -> None:
    meta = result.scenario.scenario
    pue = result.scenario.facility.pue
    ts = result.frame("timeseries")
    pts = result.frame("pool_timeseries")
    times = floats(ts["time_s"])
    assert times[0] == 0.0
    assert times[-1] == meta.duration_s
    assert (np.diff(times) > 0).all()
    grid = np.arange(0.0, meta.duration_s, meta.sample_every_s)
    assert np.isin(grid, times).all()
    if meta.warmup_s > 0:
        assert meta.warmup_s in times

    for frame in (ts, pts):
        c = {name: frame[name].to_numpy() for name in COUNTS}
        assert (c["gpus_busy"] >= 0).all()
        assert (c["gpus_busy"] <= c["gpus_allocated"]).all()
        assert (c["gpus_allocated"] <= c["gpus_up"]).all()
        assert (c["gpus_up"] <= c["gpus_total"]).all()
    np.testing.assert_allclose(ts["facility_power_kw"], ts["it_power_kw"] * pue, rtol=1e-12)
    np.testing.assert_allclose(ts["facility_energy_kwh"], ts["it_energy_kwh"] * pue, rtol=1e-12)
    assert ts["power_limit_kw"].isna().all()

    def non_decreasing(values: np.ndarray) -> bool:
        return bool((np.diff(values) >= -1e-12 * np.abs(values[1:])).all())

    for name in (*CUMULATIVE, "facility_energy_kwh"):
        assert non_decreasing(floats(ts[name])), name
    for _pool, rows in pts.groupby("pool", observed=True):
        assert np.array_equal(floats(rows["time_s"]), times)
        for name in CUMULATIVE:
            assert non_decreasing(floats(rows[name])), name

    # Pools add up to the site.
    summed = pts.groupby("time_s")[[*COUNTS, "it_power_kw", *CUMULATIVE]].sum()
    for name in COUNTS:
        assert np.array_equal(summed[name].to_numpy(), ts[name].to_numpy()), name
    for name in ("it_power_kw", *CUMULATIVE):
        np.testing.assert_allclose(summed[name], ts[name], rtol=1e-9, atol=1e-12)


def _weighted_count(
    values: np.ndarray, weights: np.ndarray, t: np.ndarray, side: str
) -> np.ndarray:
    """Σ weights of values < t (side 'left') or <= t (side 'right'), for each t."""
    order = np.argsort(values, kind="stable")
    cum = np.concatenate([[0.0], np.cumsum(weights[order])])
    return cum[np.searchsorted(values[order], t, side=side)]  # type: ignore[call-overload]


def inside(
    a: np.ndarray, b: np.ndarray, t: np.ndarray, w: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted counts of intervals (a <= b) with a < t < b (lower) and a <= t <= b (upper).

    At a time where something happens the order of simultaneous events is not recorded, so a
    sample taken then may see the state before or after: the truth lies in [lower, upper].
    lower = #{a < t} - #{b <= t} + #{a = b = t};  upper = #{a <= t} - #{b < t}.
    """
    w = np.ones(len(a)) if w is None else w
    point = a == b
    lower = (
        _weighted_count(a, w, t, "left")
        - _weighted_count(b, w, t, "right")
        + _weighted_count(a[point], w[point], t, "right")
        - _weighted_count(a[point], w[point], t, "left")
    )
    upper = _weighted_count(a, w, t, "right") - _weighted_count(b, w, t, "left")
    return lower, upper


def check_sampled_state(result: RunResult) -> None:
    """The queue, service and job counts and busy GPUs of every sample, from the records."""
    scn = result.scenario
    ts = result.frame("timeseries")
    t = floats(ts["time_s"])
    req, jobs = result.frame("requests"), result.frame("jobs")
    gpr = {w.name: w.gpus_per_replica for w in scn.workloads if w.kind == "inference"}  # type: ignore[union-attr]

    def bounded(name: str, lower: np.ndarray, upper: np.ndarray) -> None:
        value = ts[name].to_numpy(dtype=np.float64)
        assert ((lower <= value) & (value <= upper)).all(), name

    kept = (req["status"] != "rejected").to_numpy()
    arrival = floats(req["arrival_s"])[kept]
    start = np.nan_to_num(floats(req["start_s"])[kept], nan=np.inf)
    end = np.nan_to_num(floats(req["end_s"])[kept], nan=np.inf)
    bounded("requests_waiting", *inside(arrival, start, t))
    started = np.isfinite(start)
    bounded("requests_in_service", *inside(start[started], end[started], t))
    req_gpus = req["workload"].astype(object).map(gpr).to_numpy(dtype=np.float64)[kept][started]
    busy_lo, busy_hi = inside(start[started], end[started], t, req_gpus)

    kept = (jobs["status"] != "rejected").to_numpy()
    submit = floats(jobs["submit_s"])[kept]
    start = np.nan_to_num(floats(jobs["start_s"])[kept], nan=np.inf)
    end = np.nan_to_num(floats(jobs["end_s"])[kept], nan=np.inf)
    bounded("jobs_queued", *inside(submit, start, t))
    started = np.isfinite(start)
    bounded("jobs_running", *inside(start[started], end[started], t))
    job_gpus = floats(jobs["gpus"])[kept][started]
    lo, hi = inside(start[started], end[started], t, job_gpus)
    bounded("gpus_busy", busy_lo + lo, busy_hi + hi)


# -- requests ------------------------------------------------------------------------------------
def check_requests(result: RunResult) -> None:
    horizon = result.scenario.scenario.duration_s
    req = result.frame("requests")
    assert req["request_id"].is_unique
    assert set(req["status"].astype(str)) <= {"ok", "rejected", "unfinished"}
    status = req["status"].astype(str).to_numpy()
    arrival, start, end = floats(req["arrival_s"]), floats(req["start_s"]), floats(req["end_s"])
    ok, rejected, unfinished = status == "ok", status == "rejected", status == "unfinished"

    assert ((arrival >= 0) & (arrival < horizon)).all()
    assert not np.isnan(start[ok]).any() and not np.isnan(end[ok]).any()
    assert (arrival[ok] <= start[ok]).all() and (start[ok] <= end[ok]).all()
    assert (end[ok] < horizon).all()
    assert np.array_equal(floats(req["latency_s"])[ok], end[ok] - arrival[ok])
    assert np.isnan(start[rejected]).all() and np.isnan(end[rejected]).all()
    assert np.isnan(end[unfinished]).all()
    assert (start[unfinished & ~np.isnan(start)] < horizon).all()
    started = ~np.isnan(start)
    assert np.array_equal(floats(req["wait_s"])[started], start[started] - arrival[started])
    assert req.loc[~started, "replica"].isna().all() and req.loc[~started, "pool"].isna().all()
    assert req.loc[started, "replica"].notna().all()

    for wl in result.scenario.workloads:
        if wl.kind != "inference":
            continue
        mine = req[req["workload"] == wl.name].sort_values(["arrival_s", "request_id"])
        check_one_queue(mine, wl.replicas, wl.max_queue, horizon)  # type: ignore[union-attr]


def check_one_queue(df: pd.DataFrame, replicas: int, max_queue: int | None, horizon: float) -> None:
    """FIFO, one request per replica at a time, no idle replica while one waits, and
    rejection only by a full queue."""
    status = df["status"].astype(str).to_numpy()
    arrival, start, end = floats(df["arrival_s"]), floats(df["start_s"]), floats(df["end_s"])
    kept = status != "rejected"
    if max_queue is None:
        assert kept.all()

    # FIFO: among requests not rejected, in arrival order, starts never go back (never
    # started = +inf, so nothing may start after an earlier request that is still waiting).
    s = np.where(np.isnan(start), np.inf, start)[kept]
    assert ordered(s), "a request overtook an earlier one"

    # One request at a time per replica; collect each replica's idle gaps on the way.
    replica = df["replica"].to_numpy(dtype=np.float64, na_value=np.nan)
    assert ((replica[~np.isnan(replica)] >= 0) & (replica[~np.isnan(replica)] < replicas)).all()
    gaps: list[tuple[float, float]] = []
    for r in range(replicas):
        on = replica == r
        order = np.argsort(start[on], kind="stable")
        st_, en = start[on][order], np.where(np.isnan(end[on]), horizon, end[on])[order]
        assert (st_[1:] >= en[:-1]).all(), f"replica {r} served two requests at once"
        bounds = np.concatenate([[0.0], np.column_stack([st_, en]).ravel(), [horizon]])
        gaps.extend((a, b) for a, b in bounds.reshape(-1, 2) if b > a)

    # No replica idles while a request waits: no idle gap (a, b) meets a (non-empty) waiting
    # interval (arrival, start). Waiting intervals in arrival order also end in order (FIFO), so the
    # last one opening before b reaches furthest.
    close = np.where(np.isnan(start), horizon, start)
    waited = kept & (close > arrival)
    w_open, w_close = arrival[waited], close[waited]
    for a, b in gaps:
        k = np.searchsorted(w_open, b, side="left")
        assert k == 0 or w_close[:k].max() <= a, f"a replica idled in ({a}, {b}) while one waited"

    # The queue at each arrival, bounded from its own records (ties at one instant are
    # ambiguous): L counts earlier kept requests certainly waiting, U those possibly waiting.
    n = len(df)
    idx = np.arange(n)
    before_kept = np.cumsum(kept) - kept  # kept requests before each one
    starts_sorted = np.sort(s)
    lt = np.searchsorted(starts_sorted, arrival, side="left")
    le = np.searchsorted(starts_sorted, arrival, side="right")
    # Kept requests j >= i with start_j == arrival_i (then arrival_j == arrival_i too).
    zero_wait = kept & (start == arrival)
    z = np.concatenate([[0], np.cumsum(zero_wait)])
    block_end = np.searchsorted(arrival, arrival, side="right")
    same_instant = z[block_end] - z[idx]
    lower = before_kept - (le - same_instant)
    upper = before_kept - lt
    assert (lower <= upper).all()
    if max_queue is not None:
        rej = ~kept
        assert (upper[rej] >= max_queue).all(), "rejected while the queue had room"
        queued = kept & ~(start == arrival)
        assert (lower[queued] < max_queue).all(), "queued beyond max_queue"


# -- jobs ----------------------------------------------------------------------------------------
def check_jobs(result: RunResult) -> None:
    scn = result.scenario
    horizon = scn.scenario.duration_s
    catalogue = scn.gpu_catalogue()
    speed = {p.name: catalogue[p.gpu_type].speed for p in scn.pools}
    pool_gpus = {p.name: p.gpus for p in scn.pools}
    jobs = result.frame("jobs").sort_values("job_id")
    assert jobs["job_id"].is_unique
    status = jobs["status"].astype(str).to_numpy()
    assert set(status) <= {"completed", "rejected", "unfinished"}
    submit, start, end = floats(jobs["submit_s"]), floats(jobs["start_s"]), floats(jobs["end_s"])
    work, run = floats(jobs["work_s"]), floats(jobs["run_s"])
    done, rej, unf = status == "completed", status == "rejected", status == "unfinished"
    assert (np.diff(submit) >= 0).all(), "job ids follow submission order"
    assert ((submit >= 0) & (submit < horizon)).all()

    assert not np.isnan(start[done]).any() and not np.isnan(end[done]).any()
    assert (submit[done] <= start[done]).all() and (start[done] <= end[done]).all()
    assert (end[done] < horizon).all()
    job_speed = np.array([speed.get(p, np.nan) for p in jobs["pool"].astype(object)])
    np.testing.assert_allclose(
        (end - start)[done], work[done] / job_speed[done], rtol=REL, atol=1e-9
    )
    np.testing.assert_allclose(run[done], (end - start)[done], rtol=REL, atol=1e-9)
    assert np.isnan(start[rej]).all() and jobs.loc[rej, "reason"].notna().all()
    assert jobs.loc[~rej, "reason"].isna().all()
    assert np.isnan(end[unf]).all()
    running_at_end = unf & ~np.isnan(start)
    np.testing.assert_allclose(run[running_at_end], horizon - start[running_at_end], rtol=REL)
    started = ~np.isnan(start)
    assert jobs.loc[started, "pool"].notna().all()
    np.testing.assert_array_equal(floats(jobs["wait_s"])[started], (start - submit)[started])

    # Rejected exactly when no eligible pool can ever hold the job beside the replicas: a job
    # no larger than a node needs that many GPUs free of replicas in one node.
    events = result.frame("events")
    placed = events[events["event"] == "replica_placed"]
    pinned = placed.groupby("pool", observed=True)["gpus"].sum().to_dict()
    per_node = {p.name: p.gpus_per_node for p in scn.pools}
    node_pins: dict[tuple[str, int], int] = {}
    for pool, detail in zip(placed["pool"].astype(str), placed["detail"], strict=True):
        for part in detail.split(", "):
            node, count = part.removeprefix("node ").split(" x")
            node_pins[pool, int(node)] = node_pins.get((pool, int(node)), 0) + int(count)

    def room(pool: str, gpus: int) -> int:
        if gpus > per_node[pool]:
            return pool_gpus[pool] - int(pinned.get(pool, 0))
        nodes = pool_gpus[pool] // per_node[pool]
        busiest = [node_pins.get((pool, n), 0) for n in range(nodes)]
        return per_node[pool] - min(busiest)

    for row in jobs.itertuples():
        wl = scn.workload_named(row.workload)
        eligible = [
            p.name
            for p in scn.pools
            if wl.pool in (None, p.name) and catalogue[p.gpu_type].memory_gb >= wl.memory_gb_per_gpu  # type: ignore[union-attr]
        ]
        fits = any(row.gpus <= room(p, row.gpus) for p in eligible)
        assert (row.status == "rejected") == (not fits), row
        if not pd.isna(row.start_s):
            assert row.pool in eligible

    # GPUs held never exceed the pool: sweep job start/end per pool, replicas held throughout.
    for pool, gpus in pool_gpus.items():
        on = (jobs["pool"].astype(object) == pool).to_numpy() & started
        stop = np.where(np.isnan(end), horizon, end)
        times = np.concatenate([start[on], stop[on]])
        deltas = np.concatenate([jobs["gpus"].to_numpy()[on], -jobs["gpus"].to_numpy()[on]])
        order = np.lexsort((deltas, times))  # at one instant, releases before takes
        held = int(pinned.get(pool, 0)) + np.cumsum(deltas[order])
        assert (held <= gpus).all(), f"pool {pool} over-committed"

    # Policy order among jobs not rejected (in job_id = submission order); never started = inf.
    kept = ~rej
    s = np.where(np.isnan(start), np.inf, start)
    prio = jobs["priority"].to_numpy()
    if scn.scheduler.policy == "fifo":
        assert ordered(s[kept]), "a job overtook an earlier one under fifo"
    else:
        for p in np.unique(prio[kept]):
            assert ordered(s[kept & (prio == p)]), "overtaken within a priority"
        # No job starts while a higher-priority job submitted earlier is still waiting.
        for i in np.flatnonzero(kept & started):
            waiting = kept & (prio > prio[i]) & (submit < s[i]) & (s > s[i])
            assert not waiting.any(), "a job started ahead of a waiting higher-priority job"


# -- integrals -----------------------------------------------------------------------------------
def check_integrals(result: RunResult) -> None:
    """Busy/allocated GPU-hours and energy at the horizon from the requests and jobs."""
    scn = result.scenario
    horizon = scn.scenario.duration_s
    catalogue = scn.gpu_catalogue()
    req = result.frame("requests")
    jobs = result.frame("jobs")
    pts = result.frame("pool_timeseries")
    final = pts[pts["time_s"] == horizon].set_index("pool")
    gpr = {w.name: w.gpus_per_replica for w in scn.workloads if w.kind == "inference"}  # type: ignore[union-attr]
    events = result.frame("events")
    placed = events[events["event"] == "replica_placed"]
    for pool in scn.pools:
        gpu = catalogue[pool.gpu_type]
        mine = req[(req["pool"].astype(object) == pool.name)]
        start, end = floats(mine["start_s"]), floats(mine["end_s"])
        end = np.where(np.isnan(end), horizon, end)
        per = mine["workload"].astype(object).map(gpr).to_numpy(dtype=np.float64)
        busy_s = float(np.sum((end - start) * per))
        j = jobs[jobs["pool"].astype(object) == pool.name]
        job_gpu_s = float(np.sum(floats(j["run_s"]) * floats(j["gpus"])))
        busy_s += job_gpu_s
        pinned = float(placed.loc[placed["pool"] == pool.name, "gpus"].sum())
        row = final.loc[pool.name]
        assert row["gpu_busy_hours"] * 3600 == pytest.approx(busy_s, rel=1e-6, abs=1e-6)
        alloc_s = pinned * horizon + job_gpu_s
        assert row["gpu_allocated_hours"] * 3600 == pytest.approx(alloc_s, rel=1e-6, abs=1e-6)
        assert row["gpu_up_hours"] * 3600 == pytest.approx(pool.gpus * horizon, rel=1e-12)
        static_w = pool.gpus * gpu.idle_w + pool.nodes * pool.node_overhead_w
        energy_j = static_w * horizon + (gpu.peak_w - gpu.idle_w) * row["gpu_busy_hours"] * 3600
        assert row["it_energy_kwh"] * 3.6e6 == pytest.approx(energy_j, rel=1e-9)


def describe(result: RunResult) -> None:
    """Label the example for ``--hypothesis-show-statistics``."""
    req, jobs = result.frame("requests"), result.frame("jobs")
    event(f"policy {result.scenario.scheduler.policy}")
    for label, present in (
        ("requests served", (req["status"] == "ok").any()),
        ("requests queued", (req["wait_s"] > 0).any()),
        ("requests rejected", (req["status"] == "rejected").any()),
        ("requests unfinished", (req["status"] == "unfinished").any()),
        ("jobs completed", (jobs["status"] == "completed").any()),
        ("jobs waited", (jobs["wait_s"] > 0).any()),
        ("jobs rejected", (jobs["status"] == "rejected").any()),
        ("jobs never started", (jobs["start_s"].isna() & (jobs["status"] != "rejected")).any()),
    ):
        if present:
            event(label)


def check_all(result: RunResult) -> None:
    """Every invariant of one run."""
    check_timeseries(result)
    check_sampled_state(result)
    check_requests(result)
    check_jobs(result)
    check_integrals(result)


# -- the properties ------------------------------------------------------------------------------
@SETTINGS
@given(raw=scenarios())
def test_every_run_satisfies_the_invariants(raw: dict[str, Any]) -> None:
    result = run_raw(raw)
    describe(result)
    check_all(result)


@SETTINGS
@given(raw=scenarios(inference=(0, 1), training=(1, 2)))
def test_training_heavy_runs_satisfy_the_invariants(raw: dict[str, Any]) -> None:
    """As above, with contention for GPUs between training jobs (and fewer requests)."""
    result = run_raw(raw)
    describe(result)
    check_all(result)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=scenarios(), other=st.integers(0, 2**32 - 1))
def test_same_seed_same_tables_other_seed_other_requests(raw: dict[str, Any], other: int) -> None:
    seed = raw["scenario"]["seed"]
    first, again = run_raw(raw), run_raw(raw)
    for name, table in first.tables.items():
        assert table.equals(again.tables[name]), name
    assert first.summary == again.summary
    if other == seed:
        return
    moved = run_raw(raw, seed=other)
    random_inference = [
        w
        for w in first.scenario.workloads
        if w.kind == "inference"
        and (w.arrival.process == "poisson" or w.service.dist != "deterministic")  # type: ignore[union-attr]
    ]
    served = (
        first.frame("requests")["workload"].astype(object).isin([w.name for w in random_inference])
    )
    if served.sum() >= 2:
        assert not first.tables["requests"].equals(moved.tables["requests"])


# -- beyond the random scenarios ------------------------------------------------------------
LONG_TOML = """
[scenario]
name = "long"
duration = "6h"
warmup = "10m"

[[pools]]
name = "hall"
gpu_type = "H100-SXM"
nodes = 2
gpus_per_node = 8

[[workloads]]
name = "chat"
kind = "inference"
replicas = 8
arrival = { process = "poisson", rate_per_s = 7.2 }
service = { dist = "exponential", mean = "1s" }

[[workloads]]
name = "small"
kind = "inference"
replicas = 2
gpus_per_replica = 2
max_queue = 2
arrival = { process = "poisson", rate_per_s = 4 }
service = { dist = "exponential", mean = "0.4s" }

[[workloads]]
name = "train"
kind = "training"
gpus = 2
arrival = { process = "poisson", rate_per_h = 20 }
duration = { dist = "exponential", mean = "20m" }
"""


def test_invariants_hold_across_request_recording_blocks() -> None:
    """A long run whose requests reach the recorder in several blocks (FLUSH_ROWS each)."""
    result = sim.run(validate_scenario(tomllib.loads(LONG_TOML), "test"), seed=4)
    counts = result.frame("requests")["workload"].value_counts()
    assert counts["chat"] > 1.1 * FLUSH_ROWS
    assert (result.frame("requests")["status"] == "rejected").any()
    assert (result.frame("jobs")["status"] == "completed").any()
    check_timeseries(result)
    check_sampled_state(result)
    check_requests(result)
    check_jobs(result)
    check_integrals(result)


def test_overrides_on_a_scenario_object_match_overrides_on_its_file() -> None:
    """The same scenario with the same --set overrides gives the same run, file or object."""
    path = SCENARIOS / "mmc.toml"
    overrides = [
        'scenario.duration="10m"',
        "scenario.warmup=0",
        "workloads.chat.max_queue=0",
        "pools.0.nodes=9",
    ]
    from_file = sim.run(path, seed=2, overrides=overrides)
    from_object = sim.run(sim.load_scenario(path), seed=2, overrides=overrides)
    assert from_object.scenario == from_file.scenario
    for name, table in from_file.tables.items():
        assert table.equals(from_object.tables[name]), name


def _queue(arrival: list[float], start: list[float], end: list[float], **kw: Any) -> pd.DataFrame:
    """Requests of one workload for check_one_queue; NaN start = never started."""
    status = kw.pop("status", None) or ["ok" if not math.isnan(e) else "unfinished" for e in end]
    replica = kw.pop("replica")
    return pd.DataFrame(
        {
            "arrival_s": arrival,
            "start_s": start,
            "end_s": end,
            "status": status,
            "replica": pd.array(replica, dtype="Int64"),
        }
    )


NAN = float("nan")


@pytest.mark.parametrize(
    ("frame", "replicas", "max_queue", "message"),
    [
        (_queue([0, 1], [3, 2], [4, 5], replica=[0, 1]), 2, None, "overtook"),
        (_queue([0, 1], [0, 1], [2, 3], replica=[0, 0]), 2, None, "at once"),
        (_queue([0, 1], [0, 2], [3, 4], replica=[0, 1]), 2, None, "idled"),
        (_queue([0, 1, 2], [0, 3, 4], [3, 4, 5], replica=[0, 0, 0]), 1, 0, "beyond max_queue"),
        (
            _queue(
                [0, 1, 2],
                [0, NAN, 3],
                [3, NAN, 4],
                replica=[0, None, 0],
                status=["ok", "rejected", "ok"],
            ),
            1,
            1,
            "had room",
        ),
    ],
    ids=["fifo", "replica-overlap", "idle-while-waiting", "queue-too-long", "rejected-with-room"],
)
def test_request_checks_are_not_vacuous(
    frame: pd.DataFrame, replicas: int, max_queue: int | None, message: str
) -> None:
    with pytest.raises(AssertionError, match=message):
        check_one_queue(frame, replicas=replicas, max_queue=max_queue, horizon=10.0)


# -- preemption and autoscaling ------------------------------------------------------------------
@st.composite
def elastic_scenarios(draw: st.DrawFn) -> dict[str, Any]:
    """A random scenario with ``preempt = true``, autoscaled inference beside training jobs of
    several priorities (with checkpoints and restart costs sometimes)."""
    raw = draw(scenarios(inference=(1, 2), training=(1, 2)))
    raw["scheduler"] = {
        "policy": draw(st.sampled_from(["fifo", "priority", "backfill"])),
        "preempt": True,
    }
    for wl in raw["workloads"]:
        if wl["kind"] == "inference":
            n = wl["replicas"]
            wl["autoscale"] = {
                "min_replicas": draw(st.integers(1, n)),
                "max_replicas": n + draw(st.integers(0, 6)),
                "target": draw(st.sampled_from([0.5, 1.0, 2.0])),
                "interval": draw(st.sampled_from([15.0, 60.0, 120.0])),
                "load_time": draw(st.sampled_from([0.0, 30.0, 90.0])),
                "down_window": draw(st.sampled_from([0.0, 120.0])),
            }
        elif draw(st.booleans()):
            wl["checkpoint_every"] = seconds(draw, 30.0, 600.0)
            wl["restart_cost"] = seconds(draw, 0.0, 60.0)
    return raw


ALLOCATE = {"job_started": 1, "job_completed": -1, "job_interrupted": -1}
REPLICA = {"replica_placed": 1, "replica_added": 1, "replica_removed": -1}


def check_gpus_held(result: RunResult) -> None:
    """GPUs held, rebuilt from the events (replicas placed, added and removed; jobs started,
    completed and killed), are never above the GPUs up (all of them: nothing fails here) and
    match the sampled ``gpus_allocated``."""
    ev = result.frame("events")
    kinds = ev["event"].astype(str)
    sign = kinds.map({**ALLOCATE, **REPLICA}).fillna(0).to_numpy(dtype=np.int64)
    held = np.cumsum(sign * ev["gpus"].fillna(0).to_numpy(dtype=np.int64))
    ts = result.frame("timeseries")
    total = int(ts["gpus_total"].iloc[0])
    assert (held <= total).all(), "more GPUs held than up"
    assert (held >= 0).all()
    times = floats(ev["time_s"])
    for t, allocated in zip(floats(ts["time_s"]), ts["gpus_allocated"], strict=True):
        k = int(np.searchsorted(times, t, side="right"))
        assert (held[k - 1] if k else 0) == allocated, t


@SETTINGS
@given(raw=elastic_scenarios())
def test_preemption_and_autoscaling_keep_gpus_within_those_up(raw: dict[str, Any]) -> None:
    """With preemption and autoscaling: the GPUs held, rebuilt from the events, never exceed
    the GPUs up and match the samples, whose counts hold. (``check_integrals`` and the request
    and job checks assume fixed replicas and jobs that run once: not here.)"""
    result = run_raw(raw)
    describe(result)
    check_timeseries(result)
    check_gpus_held(result)
