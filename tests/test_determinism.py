"""Randomness: same seed, same bytes; streams per workload are independent of each other."""

from __future__ import annotations

from click.testing import CliRunner
from conftest import SCENARIOS, mmc_text

import sim
from sim.cli import cli

TABLES = ("events", "requests", "jobs", "timeseries", "pool_timeseries")


def test_same_seed_gives_byte_identical_files(tmp_path):
    runner = CliRunner()
    for out in ("a", "b"):
        result = runner.invoke(
            cli,
            [
                "run",
                str(SCENARIOS / "default.toml"),
                "--quiet",
                "--out",
                str(tmp_path / out),
                "--set",
                "scenario.duration=40m",
                "--set",
                "scenario.warmup=5m",
            ],
        )
        assert result.exit_code == 0, result.output
    for name in [f"{t}.parquet" for t in TABLES] + ["summary.json"]:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_different_seed_gives_different_results(write_scenario):
    path = write_scenario(mmc_text(duration="10m", warmup="0s"))
    a = sim.run(path, seed=1).tables["requests"]
    b = sim.run(path, seed=2).tables["requests"]
    assert not a.equals(b)


def test_adding_a_workload_does_not_change_another_ones_draws(write_scenario):
    """Each workload draws from its own named stream: a second workload on its own pool leaves
    the first one's requests unchanged, value for value."""
    base = mmc_text(duration="20m")
    other = """
    [[pools]]
    name = "other"
    gpu_type = "L40S"
    nodes = 2
    gpus_per_node = 1

    [[workloads]]
    name = "batch"
    kind = "inference"
    pool = "other"
    replicas = 2
    arrival = { process = "poisson", rate_per_s = 1 }
    service = { dist = "exponential", mean = "0.2s" }
    """
    alone = sim.run(write_scenario(base, "alone")).frame("requests")
    both = sim.run(write_scenario(base + other, "both")).frame("requests")
    chat = both[both.workload == "chat"].reset_index(drop=True)
    for column in ("arrival_s", "start_s", "end_s", "replica"):
        assert chat[column].equals(alone[column]), column


def test_a_progress_callback_changes_nothing(write_scenario):
    """Progress reports are end-of-instant observers: outputs are the same with or without."""
    path = write_scenario(mmc_text(duration="20m", warmup="1m"))
    seen: list[float] = []
    watched = sim.run(path, progress=seen.append)
    plain = sim.run(path)
    for name, table in plain.tables.items():
        assert table.equals(watched.tables[name]), name
    assert seen == sorted(seen) and seen[-1] == 1200.0 and len(seen) == 100
