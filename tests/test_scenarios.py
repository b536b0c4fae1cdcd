"""Smoke tests of the shipped scenarios and of the core example scenario.

Every file in ``scenarios/`` validates with ``sim validate`` and runs a short horizon in-process
with a sane summary; so does the core example scenario (an M/M/8 queue and fine-tuning jobs).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from click.testing import CliRunner

import sim
from sim.cli import cli
from sim.config.scenario import ServedWorkload, TrainingWorkload
from sim.runner import RunResult

ROOT = Path(__file__).resolve().parent.parent
SCENARIO_FILES = sorted((ROOT / "scenarios").glob("*.toml"))
SHORT = ("scenario.duration=20m", "scenario.warmup=0s")

# The core example scenario: the first scenario the simulator was specified with.
CORE_EXAMPLE = """\
[scenario]
name = "mmc-demo"        # [a-z0-9_-]+ ; used in output paths
seed = 7
duration = "2h"
warmup = "10m"           # requests/jobs arriving before this are excluded from statistics

[[pools]]
name = "hall-a"
gpu_type = "H100-SXM"    # built-in catalogue; [[gpu_types]] may add or override types
nodes = 8
gpus_per_node = 1

[[workloads]]
name = "chat"
kind = "inference"       # one replica serves one request at a time unless batching is configured
replicas = 8
gpus_per_replica = 1
arrival = { process = "poisson", rate_per_s = 7.2 }
service = { dist = "exponential", mean = "1s" }
sla = { latency = "5s" }

[[workloads]]
name = "finetune"
kind = "training"
arrival = { process = "poisson", rate_per_h = 2 }
gpus = 8
duration = { dist = "lognormal", mean = "6h", sd = "12h" }
"""


def test_there_are_scenarios() -> None:
    names = {p.name for p in SCENARIO_FILES}
    assert {"default.toml", "mmc.toml"} <= names


def check_summary(result: RunResult) -> dict[str, Any]:
    """Checks that hold for every run: counts add up, ratios in range, energy spent."""
    s = result.summary
    scn = result.scenario
    for key in ("gpu_utilization", "sla_attainment"):
        if s[key] is not None:
            assert 0 <= s[key] <= 1, key
    assert 0 <= s["requests_served"] <= s["requests_total"]
    assert 0 <= s["jobs_completed"] <= s["jobs_submitted"]
    assert s["energy_mwh"] > 0
    assert s["pue"] >= 1
    for key in ("request_latency_p50_s", "request_latency_p95_s", "request_latency_p99_s"):
        assert s[key] is None or (math.isfinite(s[key]) and s[key] >= 0), key
    if s["request_latency_p50_s"] is not None:
        assert s["request_latency_p50_s"] <= s["request_latency_p95_s"]
        assert s["request_latency_p95_s"] <= s["request_latency_p99_s"]
    inference = [w.name for w in scn.workloads if isinstance(w, ServedWorkload)]
    training = [w.name for w in scn.workloads if isinstance(w, TrainingWorkload)]
    if inference:
        assert s["requests_served"] > 0
        assert s["gpu_utilization"] > 0
        for name in inference:
            assert s["workloads"][name]["requests_served"] > 0, name
    else:
        assert s["requests_total"] == 0
    if not training:
        assert s["jobs_submitted"] == 0
    # the tables agree with the summary (every request has a row unless the scenario samples)
    requests = result.tables["requests"]
    assert requests.num_rows == s["requests_recorded"]
    if scn.output.requests == "all":
        assert requests.num_rows >= s["requests_total"]
    assert set(s["workloads"]) == {w.name for w in scn.workloads}
    return s


@pytest.mark.parametrize("path", SCENARIO_FILES, ids=lambda p: p.name)
def test_scenario_file_validates(path: Path) -> None:
    result = CliRunner().invoke(cli, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    assert f"ok: {path}" in result.stdout
    assert "Traceback" not in result.output


@pytest.mark.parametrize("path", SCENARIO_FILES, ids=lambda p: p.name)
def test_scenario_file_runs_short_horizon(path: Path) -> None:
    result = sim.run(path, overrides=list(SHORT))
    assert result.scenario.scenario.duration_s == 1200
    assert result.scenario.scenario.warmup_s == 0
    check_summary(result)
    series = result.tables["timeseries"]
    assert series.num_rows >= 2
    assert max(series.column("time_s").to_pylist()) <= 1200


def test_default_scenario_short_run() -> None:
    """The default scenario uses every core feature: two pools, training, empirical data, start."""
    result = sim.run(ROOT / "scenarios" / "default.toml", overrides=list(SHORT))
    s = check_summary(result)
    assert s["jobs_submitted"] > 0
    assert set(s["pools"]) == {"hall-a", "hall-b"}
    # a calendar start adds UTC timestamps beside the times
    ts = result.tables["timeseries"].schema.field("timestamp").type
    assert ts == pa.timestamp("us", tz="UTC")
    assert "arrival_ts" in result.tables["requests"].schema.names


def test_design_example_validates(tmp_path: Path) -> None:
    path = tmp_path / "design.toml"
    path.write_text(CORE_EXAMPLE)
    result = CliRunner().invoke(cli, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    assert f"ok: {path}" in result.stdout
    # its 8-GPU training jobs cannot fit beside the 8 chat replicas on 8 GPUs: a warning only
    assert "warning:" in result.stderr
    assert "workloads.finetune.gpus" in result.stderr


def test_design_example_runs(tmp_path: Path) -> None:
    """The example as written (2 h, 10 min warm-up): M/M/8 at utilisation 7.2 / 8 = 0.9."""
    path = tmp_path / "design.toml"
    path.write_text(CORE_EXAMPLE)
    result = sim.run(path)
    s = check_summary(result)
    assert result.seed == 7
    assert s["requests_total"] > 30_000  # about 7.2/s for 110 minutes: 47,520
    assert s["gpu_utilization"] == pytest.approx(0.9, abs=0.05)
    # the training jobs are all rejected: none can ever get 8 GPUs
    assert s["jobs_submitted"] > 0
    assert s["jobs_completed"] == 0
    out = sim.write_run(result, tmp_path / "run")
    assert (out / "manifest.json").exists()


SWEEP_FILES = sorted((ROOT / "sweeps").glob("*.toml"))


@pytest.mark.parametrize("path", SWEEP_FILES, ids=lambda p: p.name)
def test_shipped_sweeps_validate_every_point(path: Path) -> None:
    result = CliRunner().invoke(cli, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    assert "a sweep:" in result.output
