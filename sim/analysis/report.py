"""The summary as a readable text table for the terminal."""

from __future__ import annotations

from typing import Any


def _fmt(value: Any, kind: str = "") -> str:
    if value is None:
        return "-"
    if kind == "pct":
        return f"{100 * value:.1f} %"
    if kind == "s":
        if value >= 3600:
            return f"{value / 3600:.2f} h"
        if value >= 60:
            return f"{value / 60:.1f} min"
        if value >= 1:
            return f"{value:.2f} s"
        return f"{value * 1000:.0f} ms"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 100 else f"{value:,.1f}"
    return str(value)


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = "  ".join(
        h.ljust(w) if i == 0 else h.rjust(w)
        for i, (h, w) in enumerate(zip(headers, widths, strict=True))
    )
    out = [line, "  ".join("-" * w for w in widths)]
    for row in rows:
        out.append(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    return out


def _llm_lines(s: dict[str, Any]) -> list[str]:
    """The LLM workloads' token figures: TTFT, TPOT, attainment, tokens and batch size."""
    llm = {k: v for k, v in s["workloads"].items() if v["kind"] == "llm"}
    if not llm:
        return []
    rows = [
        [
            name,
            _fmt(w["ttft_p50_s"], "s"),
            _fmt(w["ttft_p99_s"], "s"),
            _fmt(w["tpot_p50_s"], "s"),
            _fmt(w["tpot_p99_s"], "s"),
            _fmt(w["sla_ttft_attainment"], "pct"),
            _fmt(w["sla_tpot_attainment"], "pct"),
            _fmt(w["tokens_per_s_per_gpu"]),
            _fmt(w["tokens_per_kwh"]),
            _fmt(w["mean_batch"]),
        ]
        for name, w in llm.items()
    ]
    headers = [
        "llm",
        "TTFT p50",
        "p99",
        "TPOT p50",
        "p99",
        "TTFT met",
        "TPOT met",
        "tokens/s/GPU",
        "tokens/kWh",
        "mean batch",
    ]
    return ["", *_table(headers, rows)]


def format_summary(summary: dict[str, Any]) -> str:
    """Site figures, then one row per inference workload, training workload and pool."""
    s = summary
    lines = [
        f"scenario {s['scenario']}  seed {s['seed']}  horizon {_fmt(s['duration_s'], 's')}  "
        f"(statistics after warm-up {_fmt(s['warmup_s'], 's')})",
        "",
    ]
    site = [
        ["GPUs", _fmt(s["gpus"])],
        ["GPU utilisation (busy)", _fmt(s["gpu_utilization"], "pct")],
        ["GPU allocation (held)", _fmt(s["gpu_allocation"], "pct")],
        ["facility energy", f"{_fmt(s['energy_mwh'])} MWh"],
        ["IT energy", f"{_fmt(s['it_energy_mwh'])} MWh"],
        ["mean facility power", f"{_fmt(s['facility_power_mean_kw'])} kW"],
        ["PUE", _fmt(s["pue"])],
        ["peak demand (15-min mean)", f"{_fmt(s['peak_facility_kw'])} kW"],
        ["least headroom to limit", f"{_fmt(s['limit_headroom_min_kw'])} kW"],
    ]
    if s.get("energy_cost_usd") is not None:
        site += [
            ["energy cost", f"$ {_fmt(s['energy_cost_usd'])}"],
            ["demand charge", f"$ {_fmt(s['demand_charge_usd'])}"],
        ]
    if s.get("throttled_gpu_hours") or s.get("suspended_gpu_hours"):
        site += [
            ["GPU-hours throttled", _fmt(s["throttled_gpu_hours"])],
            ["GPU-hours suspended", _fmt(s["suspended_gpu_hours"])],
        ]
    if s.get("curtailment_hours"):
        site += [
            ["hours curtailed", _fmt(s["curtailment_hours"])],
            ["energy shed in curtailments", f"{_fmt(s['curtailment_energy_shed_mwh'])} MWh"],
        ]
    if s.get("node_failures") or s.get("outage_hours") or s.get("maintenance_hours"):
        site += [
            ["availability (GPU-time up)", _fmt(s["availability"], "pct")],
            ["node failures", _fmt(s["node_failures"])],
            ["mean time to repair", _fmt(s["mttr_s"], "s")],
            ["outage hours", _fmt(s["outage_hours"])],
            ["maintenance hours", _fmt(s["maintenance_hours"])],
            ["GPU-hours lost to interruptions", _fmt(s["lost_gpu_hours"])],
            ["goodput (useful / busy)", _fmt(s["goodput"], "pct")],
        ]
    lines += _table(["site", "value"], site)
    inference = {k: v for k, v in s["workloads"].items() if v["kind"] in ("inference", "llm")}
    if inference:
        rows = [
            [
                name,
                _fmt(w["requests_total"]),
                _fmt(w["requests_served"]),
                _fmt(
                    w["requests_rejected"]
                    + w["requests_unfinished"]
                    + w["requests_failed"]
                    + w["requests_timed_out"]
                ),
                _fmt(w["sla_attainment"], "pct"),
                _fmt(w["request_wait_mean_s"], "s"),
                _fmt(w["request_latency_p50_s"], "s"),
                _fmt(w["request_latency_p95_s"], "s"),
                _fmt(w["request_latency_p99_s"], "s"),
            ]
            for name, w in inference.items()
        ]
        lines += [
            "",
            *_table(
                [
                    "inference",
                    "requests",
                    "served",
                    "not served",
                    "SLA met",
                    "wait mean",
                    "latency p50",
                    "p95",
                    "p99",
                ],
                rows,
            ),
        ]
    lines += _llm_lines(s)
    training = {k: v for k, v in s["workloads"].items() if v["kind"] == "training"}
    if training:
        rows = [
            [
                name,
                _fmt(w["jobs_submitted"]),
                _fmt(w["jobs_started"]),
                _fmt(w["jobs_completed"]),
                _fmt(w["jobs_rejected"]),
                _fmt(w["jobs_failed"]),
                _fmt(w["job_restarts"]),
                _fmt(w["job_wait_mean_s"], "s"),
                _fmt(w["job_gpu_hours"]),
            ]
            for name, w in training.items()
        ]
        lines += [
            "",
            *_table(
                [
                    "training",
                    "jobs",
                    "started",
                    "completed",
                    "rejected",
                    "failed",
                    "restarts",
                    "wait mean",
                    "GPU-hours",
                ],
                rows,
            ),
        ]
    rows = [
        [
            name,
            p["gpu_type"],
            _fmt(p["gpus"]),
            _fmt(p["gpu_utilization"], "pct"),
            _fmt(p["gpu_allocation"], "pct"),
            f"{_fmt(p['it_energy_mwh'])}",
        ]
        for name, p in s["pools"].items()
    ]
    lines += ["", *_table(["pool", "GPU", "GPUs", "busy", "held", "IT MWh"], rows)]
    return "\n".join(lines)


POINT_FIGURES = (
    ("sla_attainment", "SLA met", "pct"),
    ("request_latency_p99_s", "p99 latency", "s"),
    ("gpu_utilization", "GPU busy", "pct"),
    ("energy_mwh", "MWh", ""),
)
"""The figures ``format_points`` shows per point: key, heading, format."""


def format_points(points: Any, axes: list[str]) -> str:
    """A sweep's points (``summary_ci.parquet`` as a DataFrame) as a text table.

    The axes, the finished runs, and the main figures' means with the half-width of their
    95 % intervals (``±``, left out with a single run).
    """
    shown = [(k, h, f) for k, h, f in POINT_FIGURES if f"{k}.mean" in points.columns]
    headers = ["point", *axes, "runs", *(h for _, h, _ in shown)]
    rows: list[list[str]] = []
    for _, row in points.iterrows():
        cells = [str(row["point"]), *(_cell(row[a]) for a in axes), str(row["runs"])]
        for key, _, kind in shown:
            mean, high = _value(row[f"{key}.mean"]), _value(row[f"{key}.ci95_high"])
            text = _fmt(mean, kind)
            if mean is not None and high is not None:
                text += f" ± {_fmt(high - mean, kind)}"
            cells.append(text)
        rows.append(cells)
    return "\n".join(_table(headers, rows))


def _value(x: Any) -> float | None:
    """A float, or None for a null (NaN, NA)."""
    try:
        value = float(x)
    except (TypeError, ValueError):
        return None
    return None if value != value else value


def _cell(x: Any) -> str:
    """An axis value: text as it is, numbers without a needless ``.0``, ``-`` for null."""
    if isinstance(x, str):
        return x
    value = _value(x)
    if value is None:
        return "-"
    return f"{value:g}"
