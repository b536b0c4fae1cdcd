"""A sweep's tables: ``summary.parquet`` (one row per run) and ``summary_ci.parquet`` (per point).

``summary.parquet`` has ``run`` (the run directory under the sweep's folder), ``point``, one
typed column per axis (named by its dotted key), ``seed``, ``status`` (``ok`` or ``failed``),
``error``, then every figure of the run's ``summary.json`` flattened with dots
(``workloads.chat.sla_attainment``, ``pools.hall-a.availability``,
``held_back.grid.binding_hours``). ``summary_ci.parquet`` has, per point, its axes, ``runs``
(finished runs) and ``failed``, and for every numeric figure ``<figure>.mean``,
``<figure>.ci95_low`` and ``<figure>.ci95_high``: the mean over the point's finished runs that
have the figure and a 95 % Student-t confidence interval (null with fewer than two of them).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sim.record.writer import SUMMARY, write_atomically

if TYPE_CHECKING:
    import pandas as pd

    from sim.sweep.plan import Plan

SUMMARY_TABLE = "summary.parquet"
CI_TABLE = "summary_ci.parquet"
KEYS = ("run", "point", "seed", "status", "error")
"""The columns of ``summary.parquet`` that are not axes or figures."""


def flatten(summary: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested summary as one level: ``{"a": {"b": 1}}`` becomes ``{"a.b": 1}``."""
    flat: dict[str, Any] = {}
    for key, value in summary.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def _column(values: Sequence[Any]) -> pd.Series:
    """Values of one column with the narrowest pandas type that holds them all, nulls kept."""
    import pandas as pd

    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present):
        return pd.Series(values, dtype="boolean")
    if all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return pd.Series(values, dtype="Int64")
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
        return pd.Series([math.nan if v is None else float(v) for v in values], dtype="float64")
    return pd.Series([None if v is None else str(v) for v in values], dtype="string")


def summary_frame(plan: Plan, errors: Mapping[int, str]) -> pd.DataFrame:
    """One row per run of ``plan``.

    A finished run's figures come from its ``summary.json``; a failed run has its ``error``
    (``errors`` by task index).
    """
    import pandas as pd

    rows: list[dict[str, Any]] = []
    for task in plan.tasks:
        row: dict[str, Any] = {"run": task.relative, "point": task.point}
        row.update(dict(task.values))
        row.update(seed=task.seed, status="ok", error=None)
        if task.index in errors:
            row.update(status="failed", error=errors[task.index])
        else:
            summary = json.loads((Path(task.run_dir) / SUMMARY).read_text())
            for key, value in flatten(summary).items():
                row.setdefault(key, value)
        rows.append(row)
    names = list(dict.fromkeys(name for row in rows for name in row))
    data = {name: _column([row.get(name) for row in rows]) for name in names}
    data["run"] = data["run"].astype("string")
    data["status"] = data["status"].astype("string")
    data["error"] = data["error"].astype("string")
    return pd.DataFrame(data, index=pd.RangeIndex(len(rows)))


def t_quantile(p: float, dof: int) -> float:
    """The ``p`` quantile (p > 0.5) of Student's t with ``dof`` degrees of freedom."""
    low, high = 0.0, 1.0
    while _t_cdf(high, dof) < p:
        high *= 2.0
    for _ in range(200):
        mid = 0.5 * (low + high)
        if _t_cdf(mid, dof) < p:
            low = mid
        else:
            high = mid
    return 0.5 * (low + high)


def _t_cdf(t: float, dof: int) -> float:
    """P(T <= t) for t >= 0: 1 - I_x(dof/2, 1/2) / 2 with x = dof / (dof + t^2)."""
    x = dof / (dof + t * t)
    return 1.0 - 0.5 * _betainc(0.5 * dof, 0.5, x)


def _betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b) by its continued fraction."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    if x > (a + 1.0) / (a + b + 2.0):
        return 1.0 - _betainc(b, a, 1.0 - x)
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 400):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return math.exp(log_front) * h / a


def ci_frame(summary: pd.DataFrame, axes: Sequence[str]) -> pd.DataFrame:
    """Per point: its axes, ``runs``, ``failed``, and each numeric figure's mean and 95 % CI."""
    import numpy as np
    import pandas as pd

    figures = [
        name
        for name in summary.columns
        if name not in KEYS
        and name not in axes
        and pd.api.types.is_numeric_dtype(summary[name])
        and not pd.api.types.is_bool_dtype(summary[name])
    ]
    ok = summary["status"] == "ok"
    points = summary.drop_duplicates("point")[["point", *axes]].reset_index(drop=True)
    groups = summary[ok].groupby("point", sort=True)
    data: dict[str, Any] = {name: points[name] for name in ("point", *axes)}
    counts = groups.size().reindex(points["point"], fill_value=0).to_numpy()
    failed = (~ok).astype("int64").groupby(summary["point"]).sum().reindex(points["point"])
    data["runs"] = pd.Series(counts, dtype="Int64")
    data["failed"] = pd.Series(failed.to_numpy(), dtype="Int64")
    quantiles: dict[int, float] = {}
    for name in figures:
        # A figure may be null in some finished runs (no repair, no job ended): its interval
        # is over the runs that have it.
        values = groups[name].agg(["mean", "std", "count"]).reindex(points["point"])
        mean = values["mean"].to_numpy(dtype="float64", na_value=np.nan)
        sd = values["std"].to_numpy(dtype="float64", na_value=np.nan)
        n = values["count"].fillna(0).to_numpy(dtype="int64")
        for k in set(n.tolist()) - set(quantiles):
            quantiles[k] = t_quantile(0.975, k - 1) if k > 1 else math.nan
        t = np.array([quantiles[k] for k in n.tolist()], dtype="float64")
        half = t * sd / np.sqrt(np.maximum(n, 1))
        data[f"{name}.mean"] = mean
        data[f"{name}.ci95_low"] = mean - half
        data[f"{name}.ci95_high"] = mean + half
    return pd.DataFrame(data, index=pd.RangeIndex(len(points)))


def write_table(frame: pd.DataFrame, path: Path) -> None:
    """Write a frame to Parquet atomically, with pandas metadata so types read back as written."""
    write_atomically(path, lambda tmp: frame.to_parquet(tmp, index=False, compression="zstd"))
