"""The run-size estimate and the refusals built on it (``sim.config.estimate``).

A run that cannot fit this machine (memory, the disk of its run directory) or any machine
(a billion nodes) is refused by ``sim validate`` and ``sim run`` with exit code 2, the key to
change and the estimate, before anything is allocated; a run that fits prints the estimate.
The estimate is checked against real runs of benchmarks/mmc_1m.toml.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import sim
from sim.cli import cli
from sim.config import estimate as est_mod
from sim.config.checks import check_scenario
from sim.config.estimate import Estimate, estimate, format_bytes, format_count
from sim.config.loading import read_scenario
from sim.errors import ScenarioError
from sim.runner import prepare

ROOT = Path(__file__).resolve().parent.parent
MMC_1M = ROOT / "benchmarks" / "mmc_1m.toml"
SIM = Path(sys.executable).parent / "sim"

# A forked child's ru_maxrss counts the parent's memory it started with (before exec), and this
# test process is big: measure the command as the child of a small launcher instead.
LAUNCHER = """
import json, os, subprocess, sys
proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
err = proc.stderr.read()
_, status, usage = os.wait4(proc.pid, 0)
print(json.dumps({"code": os.waitstatus_to_exitcode(status), "peak": usage.ru_maxrss * 1024,
                  "stderr": err.decode(errors="replace")}))
"""


def measured(*argv: object) -> tuple[int, float, str]:
    """Run a command as a whole process: (exit code, peak RSS in bytes, stderr)."""
    out = subprocess.run(
        [sys.executable, "-c", LAUNCHER, *map(str, argv)],
        capture_output=True,
        text=True,
        check=True,
    )
    report = json.loads(out.stdout)
    return report["code"], float(report["peak"]), report["stderr"]


GIB = 1 << 30

SMALL = """
[scenario]
name = "small"
seed = 1
duration = "10m"

[[pools]]
name = "hall"
gpu_type = "H100-SXM"
nodes = 2
gpus_per_node = 8

[[workloads]]
name = "chat"
kind = "inference"
replicas = 4
arrival = { process = "poisson", rate_per_s = 3 }
service = { dist = "exponential", mean = "1s" }

[[workloads]]
name = "train"
kind = "training"
arrival = { process = "poisson", rate_per_h = 30 }
gpus = 8
duration = { dist = "exponential", mean = "2m" }
"""

# Eight replicas of 1 ms at 7,200 requests a second (90 % load): a billion requests in two
# days, most of a terabyte of rows, in little memory.
HUGE = """
[scenario]
name = "huge"
duration = "2d"

[[pools]]
name = "hall"
gpu_type = "H100-SXM"
nodes = 8
gpus_per_node = 1

[[workloads]]
name = "chat"
kind = "inference"
replicas = 8
arrival = { process = "poisson", rate_per_s = 7200 }
service = { dist = "exponential", mean = "1ms" }
"""


def write(tmp_path: Path, text: str, name: str = "scenario") -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(textwrap.dedent(text))
    return path


def invoke(*args: str | Path) -> Result:
    """Run ``sim ARGS`` in-process."""
    return CliRunner().invoke(cli, [str(a) for a in args])


def assert_refused(result: Result, *expected: str) -> None:
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    for text in expected:
        assert text in result.stderr, f"{text!r} not in:\n{result.stderr}"


@pytest.fixture
def machine(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """A machine of known size: 16 GiB of memory available, 100 GiB of free disk."""
    size = {"memory": 16 * GIB, "disk": 100 * GIB}
    monkeypatch.setattr(est_mod, "available_memory_bytes", lambda: size["memory"])
    monkeypatch.setattr(est_mod, "free_disk_bytes", lambda path: (Path("/data"), size["disk"]))
    return size


def scenario_of(path: Path, *overrides: str) -> Estimate:
    scn, _ = read_scenario(path, overrides)
    return estimate(scn)


# --- absurd sizes: refused at once, whatever the machine ----------------------------------


@pytest.mark.parametrize("command", ["validate", "run"])
def test_a_billion_nodes_is_refused_quickly(command: str, tmp_path: Path) -> None:
    scenario = write(tmp_path, SMALL.replace("nodes = 2", "nodes = 1000000000"))
    out = tmp_path / "out"
    args = [command, scenario] + (["--out", out] if command == "run" else [])
    began = time.perf_counter()
    result = invoke(*args)
    elapsed = time.perf_counter() - began
    assert_refused(result, f"{scenario}: pools.hall.nodes", "1,000,000,000 nodes")
    assert elapsed < 20, f"took {elapsed:.1f} s"
    assert not out.exists()


def test_a_billion_nodes_needs_little_memory_to_refuse(tmp_path: Path) -> None:
    """The whole ``sim validate`` process stays small: nothing is allocated per node."""
    scenario = write(tmp_path, SMALL.replace("nodes = 2", "nodes = 1000000000"))
    began = time.perf_counter()
    code, peak, stderr = measured(SIM, "validate", scenario)
    elapsed = time.perf_counter() - began
    assert code == 2, stderr
    assert "pools.hall.nodes" in stderr
    assert "Traceback" not in stderr
    assert elapsed < 20, f"took {elapsed:.1f} s"
    assert peak < 400 * (1 << 20)  # peak RSS under 400 MiB


def test_limits_hold_on_any_machine(tmp_path: Path, machine: dict[str, int]) -> None:
    machine["memory"] = 1 << 50  # a petabyte of memory does not make 20 million nodes sane
    scenario = write(tmp_path, SMALL)
    result = invoke(
        "validate",
        scenario,
        "--set",
        "pools.hall.nodes=20000000",
        "--set",
        "workloads.chat.replicas=20000000",
    )
    assert_refused(
        result,
        "pools.hall.nodes: 20,000,000 nodes are more than sim takes in one pool (at most "
        "10,000,000, whatever the machine) (from --set pools.hall.nodes)",
        "workloads.chat.replicas: 20,000,000 replicas are more than sim takes",
    )


# --- memory: refused when it cannot fit this machine ---------------------------------------


def test_memory_refusal_names_the_key_and_the_estimate(
    tmp_path: Path, machine: dict[str, int]
) -> None:
    machine["memory"] = 300 << 20
    scenario = write(tmp_path, SMALL.replace("nodes = 2", "nodes = 2000000"))
    est = scenario_of(scenario)
    result = invoke("validate", scenario)
    assert_refused(
        result,
        f"{scenario}: pools.hall.nodes: the run needs about {format_bytes(est.memory_bytes)} "
        "of memory to simulate, 165 MiB of it for 2,000,000 nodes; this machine has 300 MiB "
        "available and sim takes at most 80% of it (reduce pools.hall.nodes)",
    )
    # with the memory to spare, the same file passes
    machine["memory"] = 16 * GIB
    assert invoke("validate", scenario).exit_code == 0


def test_a_queue_that_grows_for_ever_is_counted(tmp_path: Path, machine: dict[str, int]) -> None:
    """Arrivals faster than the replicas serve them, for a year: the queue holds billions."""
    scenario = write(tmp_path, SMALL)
    overloaded = [
        "--set",
        "workloads.chat.arrival.rate_per_s=100",
        "--set",
        "scenario.duration=365d",
        "--set",
        'output.requests="none"',
    ]
    result = invoke("validate", scenario, *overloaded)
    assert_refused(
        result,
        "workloads.chat.max_queue: ~3,",
        "waiting requests (they arrive faster than 4 replicas serve them)",
        "set workloads.chat.max_queue, add replicas or lower the rate",
        "(from --set workloads.chat.arrival.rate_per_s and --set scenario.duration)",
    )
    # a bounded queue keeps the memory small
    bounded = invoke("validate", scenario, *overloaded, "--set", "workloads.chat.max_queue=100")
    assert bounded.exit_code == 0, bounded.output


# --- disk: the request rows must fit the output folder ------------------------------------


def test_rows_that_do_not_fit_on_disk_are_refused(tmp_path: Path, machine: dict[str, int]) -> None:
    machine["disk"] = GIB
    scenario = write(tmp_path, HUGE)
    est = scenario_of(scenario)
    assert est.request_rows > 1e9
    assert est.memory_bytes < GIB  # it is the disk, not the memory
    for args in (["validate", scenario], ["run", scenario, "--out", tmp_path / "out"]):
        result = invoke(*args)
        assert_refused(
            result,
            f"{scenario}: output.requests: {format_count(est.request_rows)} request rows need "
            f"about {format_bytes(est.disk_bytes)} of disk in all; /data has 1.0 GiB free",
            '[output] requests = "none", or "sample" with a sample_rate',
            "shorten scenario.duration",
        )
    assert not (tmp_path / "out").exists()


def test_no_request_rows_pass_the_disk_check(tmp_path: Path, machine: dict[str, int]) -> None:
    machine["disk"] = GIB
    scenario = write(tmp_path, HUGE)
    prepared = prepare(scenario, ['output.requests="none"'], out_dir=tmp_path / "out")
    assert prepared.estimate is not None
    assert prepared.estimate.request_rows == 0
    assert prepared.estimate.disk_bytes < GIB / 10
    assert prepared.estimate.requests_total > 1e9  # simulated all the same
    # a 1 % sample fits too, and the override is what gets blamed when it does not
    sample = ['output.requests="sample"', "output.sample_rate=0.01"]
    prepare(scenario, sample)
    with pytest.raises(ScenarioError) as error:
        prepare(scenario, [*sample, "scenario.duration=300d"])
    assert "output.requests: " in str(error.value)
    blamed = "--set output.requests and --set output.sample_rate and --set scenario.duration"
    assert f"(from {blamed})" in str(error.value)


def test_free_disk_is_read_where_the_run_goes(tmp_path: Path) -> None:
    """The nearest existing folder of a run directory that does not exist yet."""
    where = est_mod.free_disk_bytes(tmp_path / "a" / "b" / "seed=1")
    assert where is not None
    assert where[0] == tmp_path
    assert where[1] > 0


def test_available_memory_is_read() -> None:
    memory = est_mod.available_memory_bytes()
    assert memory is not None and memory > 0


# --- the estimate against real runs --------------------------------------------------------


def test_mmc_1m_estimate_matches_a_real_run(tmp_path: Path) -> None:
    """Rows within a few per cent of a real (shorter) run; peak memory within 2x."""
    full = scenario_of(MMC_1M)
    assert full.requests == {"chat": pytest.approx(1_000_000, rel=1e-3)}
    assert full.request_rows == full.requests_total
    assert full.jobs == 0

    short = ["scenario.duration=34722"]  # about 250,000 requests
    est = scenario_of(MMC_1M, *short)
    result = sim.run(MMC_1M, overrides=short)
    rows = result.rows
    assert rows["requests"] == pytest.approx(est.request_rows, rel=0.05)
    series = rows["timeseries"] + rows["pool_timeseries"] + rows["workload_timeseries"]
    assert series == pytest.approx(est.samples, abs=4)
    assert rows["events"] == pytest.approx(est.events, abs=12)
    assert rows["jobs"] == 0
    written = sum(p.stat().st_size for p in result.run_dir.iterdir())
    assert 0.5 < est.disk_bytes / written < 2

    # peak memory of a whole process, which the full run's does not outgrow (rows stream)
    code, peak, stderr = measured(
        SIM, "run", "--quiet", MMC_1M, "--out", tmp_path / "mem", "--set", *short
    )
    assert code == 0, stderr
    assert 0.5 < est.memory_bytes / peak < 2, (format_bytes(est.memory_bytes), peak)
    assert 0.5 < full.memory_bytes / peak < 2, (format_bytes(full.memory_bytes), peak)
    assert full.memory_bytes < 1.5 * est.memory_bytes  # not proportional to the horizon


def test_estimate_is_pure_arithmetic_on_absurd_input(tmp_path: Path) -> None:
    scenario = write(tmp_path, SMALL.replace("nodes = 2", "nodes = 1000000000"))
    scn, _ = read_scenario(
        scenario, ["scenario.duration=1000000000d", "workloads.chat.arrival.rate_per_s=1e12"]
    )
    began = time.perf_counter()
    est = estimate(scn)
    assert time.perf_counter() - began < 1
    for value in (est.memory_bytes, est.disk_bytes, est.cpu_s, est.requests_total):
        assert value == value and value < float("inf")
    assert est_mod.biggest(est.memory) is not None
    assert "requests" in est.line()


def test_recording_levels_set_the_rows(tmp_path: Path) -> None:
    scenario = write(tmp_path, SMALL)
    everything = scenario_of(scenario)
    assert everything.requests["chat"] == pytest.approx(1800)
    assert everything.request_rows == pytest.approx(1800)
    assert everything.jobs == pytest.approx(5)
    sampled = scenario_of(scenario, 'output.requests="sample"', "output.sample_rate=0.1")
    assert sampled.request_rows == pytest.approx(180)
    none = scenario_of(scenario, 'output.requests="none"')
    assert none.request_rows == 0
    assert none.requests_total == pytest.approx(1800)
    assert none.disk_bytes < everything.disk_bytes


def test_a_run_of_hours_is_a_warning(tmp_path: Path) -> None:
    scenario = write(tmp_path, HUGE)
    scn, _ = read_scenario(scenario, ['output.requests="none"', "scenario.duration=30d"])
    warnings = check_scenario(scn).warnings
    assert [w.key for w in warnings] == ["workloads.chat.arrival"]
    assert "this run will take about" in warnings[0].message
    assert "on this machine" in warnings[0].message


# --- what is printed -----------------------------------------------------------------------


def test_validate_prints_the_estimate(tmp_path: Path) -> None:
    scenario = write(tmp_path, SMALL)
    result = invoke("validate", scenario)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"ok: {scenario}"
    assert lines[1].startswith("  estimate: 1,800 requests (1,800 rows), 5 jobs; peak memory ~")
    assert " MiB, disk ~" in lines[1]
    assert lines[1].endswith(" on this machine")
    assert invoke("validate", "-q", scenario).stdout == ""


def test_run_prints_the_estimate_unless_quiet(tmp_path: Path) -> None:
    scenario = write(tmp_path, SMALL)
    loud = invoke("run", scenario, "--out", tmp_path / "a")
    assert loud.exit_code == 0, loud.output
    assert loud.stderr.startswith("estimate: 1,800 requests (1,800 rows), 5 jobs; peak memory ~")
    quiet = invoke("run", scenario, "--out", tmp_path / "b", "--quiet")
    assert quiet.exit_code == 0, quiet.output
    assert "estimate" not in quiet.output


def test_prepared_carries_the_estimate(tmp_path: Path) -> None:
    prepared = prepare(write(tmp_path, SMALL))
    assert isinstance(prepared.estimate, Estimate)
    assert prepared.estimate.requests == {"chat": pytest.approx(1800)}


def test_the_estimates_facts_of_the_code_match_the_code() -> None:
    """The config layer cannot import the model or the recorder, so the estimate repeats a few
    of their sizes: they must not drift apart."""
    from sim.model.arrivals import LARGEST_CHUNK
    from sim.model.inference import FLUSH_ROWS
    from sim.record.sink import ROW_GROUP_ROWS

    assert est_mod.ROW_GROUP_ROWS == ROW_GROUP_ROWS
    assert est_mod.PENDING_ROWS == LARGEST_CHUNK + FLUSH_ROWS
