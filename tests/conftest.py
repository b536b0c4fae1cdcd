"""Shared helpers for the tests: write a scenario to a temporary folder and run it."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import sim
from sim.runner import RunResult

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "scenarios"

MMC = """
[scenario]
name = "mmc"
seed = 1
duration = "{duration}"
warmup = "{warmup}"

[[pools]]
name = "hall"
gpu_type = "H100-SXM"
nodes = {c}
gpus_per_node = 1

[[workloads]]
name = "chat"
kind = "inference"
replicas = {c}
arrival = {{ process = "poisson", rate_per_s = {rate} }}
service = {{ dist = "exponential", mean = {mean} }}
sla = {{ latency = "5s" }}
"""


def mmc_text(
    c: int = 4, rate: float = 3.0, mean: float = 1.0, duration: str = "2h", warmup: str = "10m"
) -> str:
    """An M/M/c scenario: c replicas on c H100 GPUs, Poisson arrivals, exponential service."""
    return MMC.format(c=c, rate=rate, mean=mean, duration=duration, warmup=warmup)


@pytest.fixture
def write_scenario(tmp_path: Path) -> Callable[..., Path]:
    """Write TOML text (dedented) to ``tmp_path/<name>.toml`` and return the path."""

    def write(text: str, name: str = "scenario") -> Path:
        path = tmp_path / f"{name}.toml"
        path.write_text(textwrap.dedent(text))
        return path

    return write


@pytest.fixture
def run_text(write_scenario: Callable[..., Path]) -> Callable[..., RunResult]:
    """Run TOML text in-process with ``sim.run`` and return the RunResult."""

    def run(text: str, **kwargs: Any) -> RunResult:
        return sim.run(write_scenario(text), **kwargs)

    return run
