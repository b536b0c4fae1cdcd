"""The run summary: pure functions from a run's tables to utilisation, SLA, job and energy figures.

``sim run`` and ``sim summarize`` both call ``summarize``: the first on the tables in memory,
the second on the Parquet files, so the two always agree. Statistics cover requests and jobs
arriving at or after the warm-up, and time-based figures (utilisation, energy, PUE) cover the
window from the warm-up to the end of the horizon.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

Loader = Callable[[str, Sequence[str]], pd.DataFrame]
"""Reads columns of one output table (``"requests"``, ...) as a DataFrame."""


def to_frame(table: pa.Table) -> pd.DataFrame:
    """An Arrow table as pandas, keeping nullable booleans as the ``boolean`` dtype."""
    frame: pd.DataFrame = table.to_pandas(types_mapper={pa.bool_(): pd.BooleanDtype()}.get)
    return frame


CUMULATIVE = ("it_energy_kwh", "gpu_busy_hours", "gpu_allocated_hours", "gpu_up_hours")


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


def _percentiles(values: np.ndarray) -> dict[str, float | None]:
    if len(values) == 0:
        return {"p50": None, "p95": None, "p99": None}
    p50, p95, p99 = np.percentile(values, [50, 95, 99])
    return {"p50": float(p50), "p95": float(p95), "p99": float(p99)}


def _floats(series: pd.Series) -> np.ndarray:
    """A column as float64 with NaN for nulls."""
    return series.to_numpy(dtype=np.float64, na_value=np.nan)


def _is(series: pd.Series, value: str) -> np.ndarray:
    """Where a (categorical or string) column equals ``value``."""
    return np.asarray(series == value, dtype=bool)


def request_stats(
    df: pd.DataFrame, window_s: float, rows: np.ndarray | None = None
) -> dict[str, Any]:
    """Counts, SLA attainment, waits and latency percentiles of requests (``rows``: a mask)."""
    if rows is None:
        rows = np.ones(len(df), dtype=bool)
    status = df["status"]
    served = _is(status, "ok") & rows
    latency = _floats(df["latency_s"])[served]
    wait = _floats(df["wait_s"])[rows]
    wait = wait[~np.isnan(wait)]
    sla = _floats(df["sla_met"])[rows]
    sla = sla[~np.isnan(sla)]
    pct = _percentiles(latency)
    n_served = int(served.sum())
    return {
        "requests_total": int(rows.sum()),
        "requests_served": n_served,
        "requests_rejected": int((_is(status, "rejected") & rows).sum()),
        "requests_unfinished": int((_is(status, "unfinished") & rows).sum()),
        "throughput_per_s": _ratio(float(n_served), window_s),
        "sla_attainment": float(sla.mean()) if len(sla) else None,
        "request_wait_mean_s": float(wait.mean()) if len(wait) else None,
        "request_wait_probability": float((wait > 0).mean()) if len(wait) else None,
        "request_latency_mean_s": float(latency.mean()) if len(latency) else None,
        "request_latency_p50_s": pct["p50"],
        "request_latency_p95_s": pct["p95"],
        "request_latency_p99_s": pct["p99"],
    }


def job_stats(df: pd.DataFrame) -> dict[str, Any]:
    """Counts and waits of a set of training jobs."""
    status = df["status"]
    wait = _floats(df["wait_s"])
    wait = wait[~np.isnan(wait)]
    gpu_s = _floats(df["run_s"]) * _floats(df["gpus"])
    return {
        "jobs_submitted": len(df),
        "jobs_started": len(wait),
        "jobs_completed": int(_is(status, "completed").sum()),
        "jobs_rejected": int(_is(status, "rejected").sum()),
        "jobs_unfinished": int(_is(status, "unfinished").sum()),
        "job_wait_mean_s": float(wait.mean()) if len(wait) else None,
        "job_wait_p95_s": float(np.percentile(wait, 95)) if len(wait) else None,
        "job_gpu_hours": float(np.nansum(gpu_s) / 3600.0),
    }


def summarize(load: Loader, meta: Mapping[str, Any]) -> dict[str, Any]:
    """The summary of a run, from its tables and its metadata (``run_meta``)."""
    warmup, end = float(meta["warmup_s"]), float(meta["duration_s"])
    window_s = end - warmup
    pue = float(meta["pue"])

    series = load("timeseries", ["time_s", *CUMULATIVE, "facility_energy_kwh"])
    site = _window_delta(series, warmup, end, [*CUMULATIVE, "facility_energy_kwh"])
    pool_series = load("pool_timeseries", ["time_s", "pool", *CUMULATIVE])

    requests = load(
        "requests", ["workload", "arrival_s", "wait_s", "latency_s", "status", "sla_met"]
    )
    counted = requests["arrival_s"].to_numpy() >= warmup
    jobs = load("jobs", ["workload", "submit_s", "wait_s", "run_s", "gpus", "status"])
    jobs = jobs[jobs["submit_s"].to_numpy() >= warmup]

    it_kwh, facility_kwh = site["it_energy_kwh"], site["facility_energy_kwh"]
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
    req = request_stats(requests, window_s, counted)
    summary.update({k: v for k, v in req.items() if k != "throughput_per_s"})
    jb = job_stats(jobs)
    summary.update(
        {
            k: jb[k]
            for k in (
                "jobs_submitted",
                "jobs_completed",
                "jobs_rejected",
                "jobs_unfinished",
                "job_wait_mean_s",
            )
        }
    )
    summary.update(
        {
            "energy_mwh": facility_kwh / 1000.0,
            "it_energy_mwh": it_kwh / 1000.0,
            "pue": _ratio(facility_kwh, it_kwh) if it_kwh > 0 else pue,
            "it_power_mean_kw": _ratio(it_kwh * 3600.0, window_s),
            "facility_power_mean_kw": _ratio(facility_kwh * 3600.0, window_s),
        }
    )

    workloads: dict[str, Any] = {}
    for wl in meta["workloads"]:
        name = wl["name"]
        if wl["kind"] == "inference":
            mine = counted & _is(requests["workload"], name)
            workloads[name] = {
                "kind": "inference",
                "sla_latency_s": wl.get("sla_latency_s"),
                **request_stats(requests, window_s, mine),
            }
        else:
            mine = jobs[_is(jobs["workload"], name)]
            workloads[name] = {"kind": "training", **job_stats(mine)}
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
        }
    summary["pools"] = pools
    cleaned: dict[str, Any] = _clean(summary)
    return cleaned


def _clean(value: Any) -> Any:
    """Make a summary JSON-safe: NumPy scalars to Python, NaN and infinities to None."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return _num(value)
    return value
