"""Slow tests (``make test-all``): many more random scenarios, and full-size shipped runs."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import ROOT, SCENARIOS
from hypothesis import HealthCheck, given, settings
from test_invariants import check_all, run_raw, scenarios

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
    """benchmarks/mmc_1m.toml: M/M/8 at rho = 0.9 over 1,000,000 requests. Erlang C gives
    P(wait) = 0.7015 and Wq = 0.877 s; a million requests pin both to about 2 %."""
    s = sim.run(ROOT / "benchmarks" / "mmc_1m.toml").summary
    assert s["requests_total"] > 950_000
    assert s["request_wait_probability"] == pytest.approx(0.7015, rel=0.02)
    assert s["request_wait_mean_s"] == pytest.approx(0.877, rel=0.05)
    assert s["gpu_utilization"] == pytest.approx(0.9, rel=0.01)


@pytest.mark.parametrize("path", sorted(SCENARIOS.glob("*.toml")), ids=lambda p: p.name)
def test_shipped_scenarios_run_in_full_and_summarize_back(path, tmp_path):
    """Every shipped scenario, its whole horizon, written and summarised from its Parquet."""
    from sim.analysis.rundir import summarize_run_dir

    result = sim.run(path)
    out = sim.write_run(result, tmp_path / "run")
    assert summarize_run_dir(out) == result.summary
