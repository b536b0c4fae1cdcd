"""Invariants of LLM serving with continuous batching, checked with hypothesis.

Each example is a small site of 1-2 pools (H100-SXM, A100-80GB or RTX-3090 nodes), one or two
``kind = "llm"`` workloads of Llama-3-8B with random ``max_batch``, token counts, arrival rates,
queue limits and timeouts, and, at random, node failures with retries and a grid limit that
binds (the power ladder caps and pauses replicas). Every example must satisfy:

- every request ends in exactly one terminal status, with consistent times: arrival <= start
  <= first token <= end for served ones, TPOT >= 0;
- at every instant, each replica holds at most ``max_batch`` requests, and their tokens fit in
  its KV memory;
- requests are admitted in arrival order within a workload (FIFO) when none are retried;
- no replica holds requests while the run says its GPUs are not allocated: busy <= allocated
  <= up <= total at every sample, and the facility never draws more than its limit.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

import sim
from sim.config import validate_scenario
from sim.config.catalogue import BUILTIN_GPU_TYPES
from sim.config.interconnect import link_of
from sim.config.models import BUILTIN_MODELS
from sim.config.serving import serving_times
from sim.runner import RunResult

SETTINGS = settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
GPUS = ("H100-SXM", "A100-80GB", "RTX-3090")
TERMINAL = {"ok", "rejected", "unfinished", "failed", "timeout"}


@st.composite
def token_counts(draw: st.DrawFn) -> Any:
    """A fixed count, or a lognormal spread (rounded to whole tokens by the model)."""
    if draw(st.booleans()):
        return draw(st.sampled_from([1, 2, 50, 400, 3000]))
    mean = draw(st.sampled_from([20.0, 200.0, 1500.0]))
    return {"dist": "lognormal", "mean": mean, "sd": mean * draw(st.sampled_from([0.5, 1.5]))}


@st.composite
def llm_scenarios(draw: st.DrawFn) -> dict[str, Any]:
    failures = draw(st.booleans())
    pools = []
    for i in range(draw(st.integers(1, 2))):
        pool: dict[str, Any] = {
            "name": f"p{i}",
            "gpu_type": draw(st.sampled_from(GPUS)),
            "nodes": draw(st.integers(1, 3)),
            "gpus_per_node": draw(st.sampled_from([1, 2])),
            "node_overhead_w": 100.0,
        }
        if failures:
            pool |= {"mtbf": draw(st.sampled_from(["20m", "2h"])), "repair": "5m"}
        pools.append(pool)
    gpus = sum(p["nodes"] * p["gpus_per_node"] for p in pools)
    workloads = []
    for i in range(draw(st.integers(1, 2))):
        replicas = draw(st.integers(1, max(1, gpus // 2)))
        if i == 1 and replicas + workloads[0]["replicas"] > gpus:
            break
        wl: dict[str, Any] = {
            "name": f"chat{i}",
            "kind": "llm",
            "model": "llama-3-8b",
            "replicas": replicas,
            "max_batch": draw(st.sampled_from([1, 2, 8, 64])),
            "arrival": {
                "process": "poisson",
                "rate_per_s": draw(st.sampled_from([0.05, 0.5, 3.0, 20.0])),
            },
            "input_tokens": draw(token_counts()),
            "output_tokens": draw(token_counts()),
        }
        if draw(st.booleans()):
            wl["sla"] = {"ttft": "1s", "tpot": "50ms"}
        if draw(st.booleans()):
            wl["max_queue"] = draw(st.integers(0, 20))
        if draw(st.booleans()):
            wl["timeout"] = draw(st.sampled_from(["10s", "2m"]))
        if failures:
            wl["retries"] = draw(st.integers(0, 2))
        workloads.append(wl)
    facility: dict[str, Any] = {"pue": 1.2}
    if draw(st.booleans()):  # a grid that cannot feed every GPU busy: the ladder binds
        busy_kw = sum(
            p["nodes"] * (p["gpus_per_node"] * BUILTIN_GPU_TYPES[p["gpu_type"]].peak_w + 100)
            for p in pools
        )
        facility["grid_mw"] = round(busy_kw * 1.2 * draw(st.sampled_from([0.4, 0.7])) / 1e6, 6)
    return {
        "scenario": {
            "name": "llm-invariants",
            "seed": draw(st.integers(0, 2**32 - 1)),
            "duration": draw(st.sampled_from([600, 1800])),
            "sample_every": 60,
        },
        "facility": facility,
        "pools": pools,
        "workloads": workloads,
    }


def floats(series: pd.Series) -> np.ndarray:
    return series.to_numpy(dtype=np.float64, na_value=np.nan)


def kv_tokens(result: RunResult) -> dict[str, int]:
    """Each pool's KV capacity (tokens) for a Llama-3-8B replica of one GPU."""
    model = BUILTIN_MODELS["llama-3-8b"]
    out = {}
    for pool in result.scenario.pools:
        gpu = result.scenario.pool_gpu(pool)
        link = link_of(pool.link_name(gpu))
        out[pool.name] = serving_times(model, "fp16", gpu, 1, link).kv_capacity_tokens
    return out


def check_statuses(req: pd.DataFrame, horizon: float) -> None:
    status = req["status"].astype(str).to_numpy()
    assert set(status) <= TERMINAL
    assert req["request_id"].is_unique
    arrival, start, end = floats(req["arrival_s"]), floats(req["start_s"]), floats(req["end_s"])
    ttft, tpot = floats(req["ttft_s"]), floats(req["tpot_s"])
    ok = status == "ok"
    first = arrival + ttft
    assert not np.isnan(ttft[ok]).any()
    assert (arrival[ok] <= start[ok]).all()
    assert (start[ok] <= first[ok] + 1e-9).all()
    assert (first[ok] <= end[ok] + 1e-9).all() and (end[ok] < horizon).all()
    multi = ok & (req["output_tokens"].to_numpy(dtype=np.int64) > 1)
    assert (tpot[multi] >= 0).all() and np.isnan(tpot[ok & ~multi]).all()
    assert np.isnan(start[status == "rejected"]).all()
    assert np.isnan(end[status == "unfinished"]).all()


def check_batches(req: pd.DataFrame, max_batch: int, kv: dict[str, int], horizon: float) -> None:
    """At every admission, the replica's requests then held fit its places and KV memory."""
    held = req[req["start_s"].notna()]
    start, end = floats(held["start_s"]), floats(held["end_s"])
    end = np.where(np.isnan(end), horizon, end)
    tokens = (held["input_tokens"] + held["output_tokens"]).to_numpy(dtype=np.int64)
    replica = held["replica"].to_numpy(dtype=np.int64)
    pools = held["pool"].astype(str).to_numpy()
    for r in np.unique(replica):
        mine = replica == r
        s, e, tok, pool = start[mine], end[mine], tokens[mine], pools[mine]
        for j in range(len(s)):
            # Requests on the replica at the instant request j is admitted: [start, end).
            on = (s <= s[j]) & (e > s[j]) & (pool == pool[j])
            assert on.sum() <= max_batch, (r, s[j], on.sum())
            assert tok[on].sum() <= kv[pool[j]], (r, s[j], tok[on].sum(), kv[pool[j]])


def check_fifo(req: pd.DataFrame) -> None:
    """Without retries, requests start in the order they arrived (nothing overtakes the head)."""
    if (req["attempts"] > 1).any():
        return
    started = req[req["start_s"].notna()].sort_values(["arrival_s", "request_id"])
    assert (np.diff(floats(started["start_s"])) >= 0).all()


def check_site(result: RunResult) -> None:
    ts = result.frame("timeseries")
    busy, allocated = ts["gpus_busy"].to_numpy(), ts["gpus_allocated"].to_numpy()
    up, total = ts["gpus_up"].to_numpy(), ts["gpus_total"].to_numpy()
    assert ((busy >= 0) & (busy <= allocated) & (allocated <= up) & (up <= total)).all()
    limit = floats(ts["power_limit_kw"])
    bound = ~np.isnan(limit)
    assert (floats(ts["facility_power_kw"])[bound] <= limit[bound] * (1 + 1e-9) + 1e-9).all()


@SETTINGS
@given(raw=llm_scenarios())
def test_every_llm_run_satisfies_the_invariants(raw: dict[str, Any]) -> None:
    note(f"scenario: {raw}")
    result = sim.run(validate_scenario(raw, "test"), audit=True)
    horizon = result.scenario.scenario.duration_s
    req = result.frame("requests")
    check_statuses(req, horizon)
    kv = kv_tokens(result)
    for wl in result.scenario.workloads:
        mine = req[req["workload"] == wl.name]
        check_batches(mine, wl.max_batch, kv, horizon)  # type: ignore[union-attr]
        check_fifo(mine)
    check_site(result)
    summary = result.summary
    for name, figures in summary["workloads"].items():
        batch = figures["mean_batch"]
        assert batch is None or batch >= 1.0 - 1e-9, (name, batch)
