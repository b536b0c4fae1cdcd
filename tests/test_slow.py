"""Slow tests (``make test-all``): many more random scenarios, and full-size shipped runs."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import ROOT, SCENARIOS
from hypothesis import HealthCheck, given, settings
from test_invariants import check_all, run_raw, scenarios
from test_theory import (
    batch_ci,
    erlang_c,
    mmc_wq,
    steady_requests,
    time_batch_ci,
    utilization_slices,
)

import sim

pytestmark = pytest.mark.slow


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(raw=scenarios(inference=(0, 3), training=(0, 3)))
def test_many_random_runs_satisfy_the_invariants(raw: dict[str, Any]) -> None:
    check_all(run_raw(raw))


def test_the_million_request_benchmark_agrees_with_erlang_c():
    """benchmarks/mmc_1m.toml: M/M/8 at ρ = 0.9 over 1,000,000 requests. Erlang C gives
    P(wait) = 0.7015 and Wq = 0.877 s, and the utilisation is ρ.

    As in test_theory.py: each theory value must lie in the 99 % confidence interval of the
    batch means (BATCHES batches of steady requests by arrival; TIME_BATCHES time slices for
    the utilisation), and so must the summary's figure, which covers the same requests (plus
    the last TAIL_MARGIN_S seconds' worth) and the same window. A million requests pin
    P(wait) to about ±1.2 %, Wq to about ±9 % (waits are strongly correlated at ρ = 0.9) and
    the utilisation to about ±0.003.
    """
    result = sim.run(ROOT / "benchmarks" / "mmc_1m.toml")
    s = result.summary
    assert s["requests_total"] > 950_000
    c, lam, mu = 8, 7.2, 1.0
    wait = steady_requests(result)["wait_s"].to_numpy(dtype=float)

    p_wait, p_half = batch_ci((wait > 0).astype(float))
    p_theory = erlang_c(c, lam / mu)
    assert abs(p_wait - p_theory) <= p_half, (p_wait, p_half, p_theory)
    assert abs(s["request_wait_probability"] - p_theory) <= p_half
    assert p_half < 0.02 * p_theory

    wq, wq_half = batch_ci(wait)
    wq_theory = mmc_wq(c, lam, mu)
    assert abs(wq - wq_theory) <= wq_half, (wq, wq_half, wq_theory)
    assert abs(s["request_wait_mean_s"] - wq_theory) <= wq_half
    assert wq_half < 0.1 * wq_theory

    util, util_half = time_batch_ci(utilization_slices(result))
    assert abs(util - lam / mu / c) <= util_half, (util, util_half)
    assert abs(s["gpu_utilization"] - lam / mu / c) <= util_half
    assert util_half < 0.01


@pytest.mark.parametrize("path", sorted(SCENARIOS.glob("*.toml")), ids=lambda p: p.name)
def test_shipped_scenarios_run_in_full_and_summarize_back(path, tmp_path):
    """Every shipped scenario, its whole horizon, written and summarised from its Parquet."""
    from sim.analysis.rundir import summarize_run_dir

    result = sim.run(path)
    out = sim.write_run(result, tmp_path / "run")
    assert summarize_run_dir(out) == result.summary


@pytest.mark.parametrize("path", sorted(SCENARIOS.parent.joinpath("sweeps").glob("*.toml")))
def test_shipped_sweeps_run_in_full(path, tmp_path):
    """Every shipped sweep, every run: one summary row each, and a CI row per point."""
    import pandas as pd

    from sim.sweep import make_plan, run_sweep

    plan = make_plan(path, tmp_path)
    report = run_sweep(plan, workers=2)
    assert not report.failed and report.ran == len(plan.tasks)
    summary = pd.read_parquet(report.summary_path)
    assert len(summary) == len(plan.tasks) and (summary["status"] == "ok").all()
    ci = pd.read_parquet(report.ci_path)
    assert len(ci) == len(plan.points)
    assert (ci["sla_attainment.ci95_low"] <= ci["sla_attainment.mean"]).all()
