"""The run summary: pure functions from a run's tables to utilisation, SLA, job and energy figures.

``sim run`` and ``sim summarize`` both call ``summarize`` on the run directory's small tables:
the exact per-workload aggregates (``workload_stats``), the log-bucket histograms
(``histograms``) and the time series, never the per-request rows, so the summary costs the
same whatever the recording level and the horizon. Statistics cover requests and jobs arriving
at or after the warm-up, and time-based figures (utilisation, energy, PUE) cover the window
from the warm-up to the end of the horizon. Percentiles are within 1 % (see
``sim.record.histogram``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from sim.record import histogram

Loader = Callable[[str, Sequence[str]], pd.DataFrame]
"""Reads columns of one output table (``"timeseries"``, ...) as a DataFrame (all if empty)."""


def to_frame(table: pa.Table) -> pd.DataFrame:
    """An output table as pandas, with the dtypes a plain ``pd.read_parquet`` of its file gives.

    Integers read as pandas' nullable ``Int32``/``Int64`` and booleans as ``boolean`` whether
    a column holds nulls or not (``sim.record.schemas.PANDAS_DTYPES``), also for a table
    without the pandas metadata the run's files carry.
    """
    mapping = {
        pa.int32(): pd.Int32Dtype(),
        pa.int64(): pd.Int64Dtype(),
        pa.bool_(): pd.BooleanDtype(),
    }
    frame: pd.DataFrame = table.to_pandas(types_mapper=mapping.get)
    return frame


CUMULATIVE = ("it_energy_kwh", "gpu_busy_hours", "gpu_allocated_hours", "gpu_up_hours")
SITE_CUMULATIVE = (
    "facility_energy_kwh",
    "cooling_energy_kwh",
    "other_energy_kwh",
    "energy_cost_usd",
    "throttled_gpu_hours",
    "suspended_gpu_hours",
    "curtailment_hours",
    "lost_gpu_hours",
    "checkpoint_gpu_hours",
    "restart_gpu_hours",
)
LIMIT_FIGURES = (
    "binding_hours",
    "shedding_hours",
    "throttled_gpu_hours",
    "suspended_gpu_hours",
    "requests_held",
    "jobs_held",
)


def _num(value: Any) -> float | None:
    """A JSON-safe float: None for missing or not finite."""
    if value is None:
        return None
    x = float(value)
    return x if math.isfinite(x) else None


def _ratio(a: float, b: float) -> float | None:
    return a / b if b > 0 else None


def _window_delta(
    series: pd.DataFrame, start: float, end: float, columns: Sequence[str]
) -> dict[str, float]:
    """Change of cumulative columns between the samples at ``start`` and ``end``."""
    times = series["time_s"].to_numpy()
    if len(times) == 0:
        return dict.fromkeys(columns, 0.0)
    i = int(np.argmin(np.abs(times - start)))
    j = int(np.argmin(np.abs(times - end)))
    return {c: float(series[c].iloc[j] - series[c].iloc[i]) for c in columns}


def _is(series: pd.Series, value: str) -> np.ndarray:
    """Where a (categorical or string) column equals ``value``."""
    return np.asarray(series == value, dtype=bool)


def _mean(total: float, count: float) -> float | None:
    return total / count if count > 0 else None


def _hist_percentiles(hist: pd.DataFrame) -> list[float | None]:
    """p50, p95, p99 of the histogram rows given (bucket, count; buckets may repeat)."""
    if hist.empty:
        return [None, None, None]
    merged = hist.groupby("bucket", observed=True)["count"].sum()
    return histogram.percentiles(merged.index.to_numpy(), merged.to_numpy(), (50, 95, 99))


def request_stats(stats: pd.DataFrame, latency: pd.DataFrame, window_s: float) -> dict[str, Any]:
    """Counts, SLA attainment, waits and latency percentiles from aggregate rows.

    ``stats`` holds ``workload_stats`` rows (summed), ``latency`` the matching latency
    histogram rows.
    """
    total = stats.sum(numeric_only=True)
    served = int(total["requests_served"])
    p50, p95, p99 = _hist_percentiles(latency)
    return {
        "requests_total": int(total["requests_total"]),
        "requests_served": served,
        "requests_rejected": int(total["requests_rejected"]),
        "requests_unfinished": int(total["requests_unfinished"]),
        "requests_failed": int(total["requests_failed"]),
        "requests_timed_out": int(total["requests_timed_out"]),
        "requests_recorded": int(total["requests_recorded"]),
        "throughput_per_s": _ratio(float(served), window_s),
        "sla_attainment": _mean(float(total["sla_met"]), float(total["sla_decided"])),
        "request_wait_mean_s": _mean(float(total["wait_sum_s"]), float(total["wait_count"])),
        "request_wait_probability": _mean(float(total["waited_count"]), float(total["wait_count"])),
        "request_latency_mean_s": _mean(
            float(total["latency_sum_s"]), float(total["latency_count"])
        ),
        "request_latency_p50_s": p50,
        "request_latency_p95_s": p95,
        "request_latency_p99_s": p99,
    }


def token_stats(
    stats: pd.DataFrame,
    ttft: pd.DataFrame,
    tpot: pd.DataFrame,
    window_s: float,
    gpus_per_replica: int,
    it_kwh: float,
) -> dict[str, Any]:
    """An LLM workload's TTFT and TPOT, attainment per objective, tokens and batch size.

    ``stats``: its ``workload_stats`` rows; ``ttft``/``tpot``: its histogram rows;
    ``it_kwh``: the IT energy of its busy GPUs after the warm-up. Tokens per GPU are over the
    GPUs of its replicas up, time-averaged (autoscaling and failures change them).
    """
    total = stats.sum(numeric_only=True)
    t50, t95, t99 = _hist_percentiles(ttft)
    p50, p95, p99 = _hist_percentiles(tpot)
    tokens = float(total["output_tokens"])
    per_s = _ratio(tokens, window_s)
    per_kwh = _ratio(tokens, it_kwh) if it_kwh > 0 else None
    return {
        "ttft_mean_s": _mean(float(total["ttft_sum_s"]), float(total["ttft_count"])),
        "ttft_p50_s": t50,
        "ttft_p95_s": t95,
        "ttft_p99_s": t99,
        "tpot_mean_s": _mean(float(total["tpot_sum_s"]), float(total["tpot_count"])),
        "tpot_p50_s": p50,
        "tpot_p95_s": p95,
        "tpot_p99_s": p99,
        **{
            f"sla_{part}_attainment": _mean(
                float(total[f"sla_{part}_met"]), float(total[f"sla_{part}_decided"])
            )
            for part in ("latency", "ttft", "tpot")
        },
        "input_tokens": int(total["input_tokens"]),
        "output_tokens": int(tokens),
        "tokens_per_s": per_s,
        "tokens_per_s_per_gpu": _ratio(tokens, float(total["replica_up_s"]) * gpus_per_replica),
        "tokens_per_kwh": per_kwh,
        "tokens_per_s_per_kw": per_kwh / 3600.0 if per_kwh is not None else None,
        "mean_batch": _mean(float(total["batch_request_s"]), float(total["batch_busy_s"])),
    }


def job_stats(stats: pd.DataFrame, waits: pd.DataFrame) -> dict[str, Any]:
    """Counts and waits of training jobs from aggregate rows (``waits``: job_wait histogram)."""
    total = stats.sum(numeric_only=True)
    started = int(total["jobs_started"])
    p50, p95, p99 = (
        histogram.percentiles(waits["bucket"].to_numpy(), waits["count"].to_numpy(), (50, 95, 99))
        if started
        else (None, None, None)
    )
    gpu_hours = float(total["job_gpu_s"]) / 3600.0
    return {
        "jobs_submitted": int(total["jobs_submitted"]),
        "jobs_started": started,
        "jobs_completed": int(total["jobs_completed"]),
        "jobs_rejected": int(total["jobs_rejected"]),
        "jobs_unfinished": int(total["jobs_unfinished"]),
        "jobs_failed": int(total["jobs_failed"]),
        "job_restarts": int(total["job_restarts"]),
        "job_lost_gpu_hours": float(total["job_lost_gpu_s"]) / 3600.0,
        "job_wait_mean_s": _mean(float(total["job_wait_sum_s"]), float(started)),
        "job_wait_p50_s": p50,
        "job_wait_p95_s": p95,
        "job_wait_p99_s": p99,
        "bounded_slowdown_mean": _mean(
            float(total["job_slowdown_sum"]), float(total["jobs_completed"])
        ),
        "job_gpu_hours": gpu_hours,
        "gpu_hours": gpu_hours,
    }


def _overlap_hours(start: np.ndarray, end: np.ndarray, lo: float, hi: float) -> float:
    """Hours of the intervals [start, end) (end NaN: open) within [lo, hi)."""
    end = np.where(np.isnan(end), hi, end)
    return float(np.clip(np.minimum(end, hi) - np.maximum(start, lo), 0.0, None).sum()) / 3600.0


def reliability(
    load: Loader, site: Mapping[str, float], gpus: int, warmup: float, end: float
) -> dict[str, Any]:
    """Availability, failures, repairs, outages, lost work and goodput over the window.

    ``site`` holds the window's changes of the site's cumulative columns.
    """
    nodes = load("nodes", ["state", "start_s", "end_s", "cause"])
    outages = load("outages", ["cause", "start_s", "end_s"])
    failed = nodes[_is(nodes["state"], "failed") & _is(nodes["cause"], "failure")]
    failed = failed[failed["start_s"].to_numpy() >= warmup]
    ended = failed[failed["end_s"].notna()]
    repaired = ended["end_s"].to_numpy() - ended["start_s"].to_numpy()
    cause = outages["cause"].astype(str)
    unplanned = outages[cause.str.startswith("outages.").to_numpy(dtype=bool)]
    planned = outages[cause.str.startswith("maintenance.").to_numpy(dtype=bool)]
    busy = site["gpu_busy_hours"]
    wasted = site["lost_gpu_hours"] + site["checkpoint_gpu_hours"] + site["restart_gpu_hours"]
    return {
        "availability": _ratio(site["gpu_up_hours"], gpus * (end - warmup) / 3600.0),
        "node_failures": len(failed),
        "mttr_s": float(repaired.mean()) if len(repaired) else None,
        "outage_hours": _overlap_hours(
            unplanned["start_s"].to_numpy(), unplanned["end_s"].to_numpy(), warmup, end
        ),
        "maintenance_hours": _overlap_hours(
            planned["start_s"].to_numpy(), planned["end_s"].to_numpy(), warmup, end
        ),
        "lost_gpu_hours": site["lost_gpu_hours"],
        "checkpoint_gpu_hours": site["checkpoint_gpu_hours"],
        "restart_gpu_hours": site["restart_gpu_hours"],
        "goodput": _ratio(busy - wasted, busy),
    }


def summarize(load: Loader, meta: Mapping[str, Any]) -> dict[str, Any]:
    """The summary of a run, from its aggregate tables and its metadata (``run_meta``)."""
    warmup, end = float(meta["warmup_s"]), float(meta["duration_s"])
    window_s = end - warmup
    pue = float(meta["pue"])

    series = load("timeseries", ["time_s", *CUMULATIVE, *SITE_CUMULATIVE, "headroom_min_kw"])
    site = _window_delta(series, warmup, end, [*CUMULATIVE, *SITE_CUMULATIVE])
    after = series[series["time_s"].to_numpy() > warmup]
    billing = load("billing", [])
    limits = load("limits", [])
    pool_series = load("pool_timeseries", ["time_s", "pool", *CUMULATIVE])
    stats = load("workload_stats", [])
    hists = load("histograms", [])
    latency = hists[_is(hists["measure"], "latency")]
    job_waits = hists[_is(hists["measure"], "job_wait")]
    ttft = hists[_is(hists["measure"], "ttft")]
    tpot = hists[_is(hists["measure"], "tpot")]

    kinds = {wl["name"]: wl["kind"] for wl in meta["workloads"]}
    inference = [name for name, kind in kinds.items() if kind in ("inference", "llm")]
    training = [name for name, kind in kinds.items() if kind == "training"]
    is_inference = np.isin(stats["workload"].astype(str), inference)
    is_training = np.isin(stats["workload"].astype(str), training)

    it_kwh, facility_kwh = site["it_energy_kwh"], site["facility_energy_kwh"]
    cooling_kwh = site["cooling_energy_kwh"]
    priced = bool(meta.get("priced", False))
    summary: dict[str, Any] = {
        "scenario": meta["scenario"],
        "seed": meta["seed"],
        "duration_s": end,
        "warmup_s": warmup,
        "window_s": window_s,
        "gpus": sum(int(p["gpus"]) for p in meta["pools"]),
        "gpu_utilization": _ratio(site["gpu_busy_hours"], site["gpu_up_hours"]),
        "gpu_allocation": _ratio(site["gpu_allocated_hours"], site["gpu_up_hours"]),
    }
    req = request_stats(stats[is_inference], latency, window_s)
    summary.update({k: v for k, v in req.items() if k != "throughput_per_s"})
    jb = job_stats(stats[is_training], job_waits)
    summary.update(
        {
            k: jb[k]
            for k in (
                "jobs_submitted",
                "jobs_completed",
                "jobs_rejected",
                "jobs_unfinished",
                "jobs_failed",
                "job_wait_mean_s",
            )
        }
    )
    summary.update(reliability(load, site, summary["gpus"], warmup, end))
    summary.update(
        {
            "energy_mwh": facility_kwh / 1000.0,
            "it_energy_mwh": it_kwh / 1000.0,
            "cooling_energy_mwh": cooling_kwh / 1000.0,
            "other_energy_mwh": site["other_energy_kwh"] / 1000.0,
            "pue": _ratio(it_kwh + cooling_kwh, it_kwh) if it_kwh > 0 else pue,
            "it_power_mean_kw": _ratio(it_kwh * 3600.0, window_s),
            "facility_power_mean_kw": _ratio(facility_kwh * 3600.0, window_s),
            "peak_facility_kw": float(billing["peak_demand_kw"].max()) if len(billing) else None,
            "limit_headroom_min_kw": float(after["headroom_min_kw"].min()) if len(after) else None,
            "energy_cost_usd": site["energy_cost_usd"] if priced else None,
            "demand_charge_usd": float(billing["demand_charge_usd"].sum()) if priced else None,
            "throttled_gpu_hours": site["throttled_gpu_hours"],
            "suspended_gpu_hours": site["suspended_gpu_hours"],
            "curtailment_hours": site["curtailment_hours"],
            "curtailment_energy_shed_mwh": float(limits["energy_shed_mwh"].sum())
            if len(limits)
            else 0.0,
            "held_back": {
                str(row["source"]): {k: row[k] for k in LIMIT_FIGURES}
                for _, row in limits.iterrows()
            },
        }
    )
    if priced:
        summary["total_energy_bill_usd"] = float(
            billing["energy_cost_usd"].sum() + billing["demand_charge_usd"].sum()
        )

    workloads: dict[str, Any] = {}
    for wl in meta["workloads"]:
        name = wl["name"]
        rows = stats[_is(stats["workload"], name)]
        energy = rows[["it_energy_kwh", "energy_cost_usd"]].sum(min_count=1)
        if wl["kind"] in ("inference", "llm"):
            workloads[name] = {
                "kind": wl["kind"],
                **{k: v for k, v in wl.items() if k.startswith("sla_")},
                **request_stats(rows, latency[_is(latency["workload"], name)], window_s),
            }
        else:
            waits = job_waits[_is(job_waits["workload"], name)]
            workloads[name] = {"kind": "training", **job_stats(rows, waits)}
        if wl["kind"] == "llm":
            workloads[name].update(
                token_stats(
                    rows,
                    ttft[_is(ttft["workload"], name)],
                    tpot[_is(tpot["workload"], name)],
                    window_s,
                    int(wl["gpus_per_replica"]),
                    float(energy["it_energy_kwh"]),
                )
            )
        workloads[name]["it_energy_mwh"] = float(energy["it_energy_kwh"]) / 1000.0
        workloads[name]["energy_cost_usd"] = float(energy["energy_cost_usd"]) if priced else None
    summary["workloads"] = workloads

    pools: dict[str, Any] = {}
    for pool in meta["pools"]:
        rows = pool_series[_is(pool_series["pool"], pool["name"])]
        delta = _window_delta(rows, warmup, end, CUMULATIVE)
        pools[pool["name"]] = {
            "gpu_type": pool["gpu_type"],
            "nodes": pool["nodes"],
            "gpus": pool["gpus"],
            "gpu_utilization": _ratio(delta["gpu_busy_hours"], delta["gpu_up_hours"]),
            "gpu_allocation": _ratio(delta["gpu_allocated_hours"], delta["gpu_up_hours"]),
            "it_energy_mwh": delta["it_energy_kwh"] / 1000.0,
            "it_power_mean_kw": _ratio(delta["it_energy_kwh"] * 3600.0, window_s),
            "availability": _ratio(delta["gpu_up_hours"], pool["gpus"] * window_s / 3600.0),
        }
    summary["pools"] = pools
    cleaned: dict[str, Any] = _clean(summary)
    return cleaned


SIGNIFICANT_DIGITS = 12
"""Digits a summary figure keeps: float sums carry noise in the 16th digit (a ``pue`` of
1.2999999999999998, an availability of 0.9999999999999998), far below any figure's meaning."""


def _tidy(x: float | None) -> float | None:
    """``x`` to ``SIGNIFICANT_DIGITS`` significant digits (None stays None)."""
    return None if x is None else float(f"{x:.{SIGNIFICANT_DIGITS}g}")


def _clean(value: Any) -> Any:
    """Make a summary JSON-safe and tidy.

    NumPy scalars become Python, NaN and infinities None, floats keep ``SIGNIFICANT_DIGITS``.
    """
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return _tidy(_num(value))
    return value
