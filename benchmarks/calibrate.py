"""Measure the constants of ``sim/config/estimate.py`` on this machine (about a minute).

Each measurement is a whole ``sim run --quiet`` child process on a scenario that isolates one
cost (many nodes and nothing else, a queue that grows without bound, a month of training
jobs...): its peak RSS comes from ``os.wait4`` (``ru_maxrss``), its CPU time from the same
call (user + system), and the run directory's size and rows from its ``manifest.json``.
A constant is fitted as what is left of the measured figure once the estimate's other parts
(with the constants fitted before it) are taken away, divided by the count it multiplies;
disk per row is a table's file size over its rows.

It prints each constant as measured beside the value in estimate.py and their ratio, then the
whole estimate against whole runs of the benchmark scenarios, and lines to paste into
estimate.py. It changes nothing and exits 0.

Usage: .venv/bin/python benchmarks/calibrate.py
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from sim.config import estimate as est_mod
from sim.config.estimate import CALIBRATED, Estimate, estimate, format_bytes
from sim.config.loading import read_scenario

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / ".work" / "calibrate"
SIM = str(Path(sys.executable).parent / "sim")

MMC = HERE / "mmc_1m.toml"
TRAINING = HERE / "training_month.toml"
REPLICAS = HERE / "replicas_2048.toml"
DEFAULT = ROOT / "scenarios" / "default.toml"

SITE = """
[scenario]
name = "calibrate-site"
duration = "1h"
sample_every = "10m"

[[pools]]
name = "hall"
gpu_type = "H100-SXM"
nodes = 1
gpus_per_node = 8

[[pools]]
name = "annex"
gpu_type = "H100-SXM"
nodes = 1
gpus_per_node = 8
"""
"""Two one-node pools and no workloads: the base, and with overrides nodes and samples."""

REPLICAS_ONLY = """
[scenario]
name = "calibrate-replicas"
duration = "1m"

[[pools]]
name = "hall"
gpu_type = "H100-SXM"
nodes = 250
gpus_per_node = 400

[[workloads]]
name = "chat"
kind = "inference"
replicas = 100000
arrival = { process = "poisson", rate_per_s = 1 }
service = { dist = "exponential", mean = "1s" }
"""
"""Many replicas and few requests (400 GPUs per node keep the O(nodes) pinning small)."""

JOB_QUEUE = """
[scenario]
name = "calibrate-job-queue"
duration = 3000

[[pools]]
name = "hall"
gpu_type = "H100-SXM"
nodes = 10
gpus_per_node = 8

[[workloads]]
name = "flood"
kind = "training"
arrival = { process = "poisson", rate_per_s = 200 }
gpus = 1
duration = { dist = "exponential", mean = "1h" }
"""
"""1-GPU jobs arriving 200 a second on 80 GPUs that finish one every 45 s: a queue of ~600,000."""


@dataclass
class Measured:
    """What one child process did."""

    peak_bytes: float
    cpu_s: float
    wall_s: float
    disk_bytes: float
    files: dict[str, int]
    rows: dict[str, int]

    def figure(self, name: str) -> float:
        """``memory``, ``disk`` or ``time`` (CPU seconds)."""
        return {"memory": self.peak_bytes, "disk": self.disk_bytes, "time": self.cpu_s}[name]


@dataclass
class Run:
    """A ``sim run --quiet`` of a scenario, and the constants fitted from it."""

    key: str
    scenario: Path
    overrides: list[str]
    fits: list[tuple[str, str]] = field(default_factory=list)
    """(figure or ``file:<table>``, constant): ``memory``, ``disk``, ``time`` are fitted as the
    residual of the estimate; ``file:requests`` is that table's bytes per row."""
    measured: Measured | None = None


def write(name: str, text: str) -> Path:
    """A generated scenario file under the work folder."""
    path = WORK / f"{name}.toml"
    path.write_text(text)
    return path


def measure(run: Run) -> Measured:
    """Run ``sim run --quiet`` as a child process; its peak RSS, CPU time and run directory."""
    out = WORK / run.key
    shutil.rmtree(out, ignore_errors=True)
    argv = [SIM, "run", "--quiet", str(run.scenario), "--out", str(out), "--overwrite"]
    for item in run.overrides:
        argv += ["--set", item]
    began = time.perf_counter()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT)
    assert proc.stderr is not None
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - began
    err = proc.stderr.read().decode(errors="replace")
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"calibrate: {' '.join(argv)} failed:\n{err[-4000:]}")
    manifest_path = out / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    files = {name: int(entry["bytes"]) for name, entry in manifest["files"].items()}
    disk = sum(files.values()) + manifest_path.stat().st_size
    measured = Measured(
        peak_bytes=usage.ru_maxrss * 1024.0,
        cpu_s=usage.ru_utime + usage.ru_stime,
        wall_s=wall,
        disk_bytes=float(disk),
        files=files,
        rows=dict(manifest["rows"]),
    )
    shutil.rmtree(out, ignore_errors=True)
    return measured


def estimate_of(run: Run, values: dict[str, float]) -> Estimate:
    """The estimate of a run's scenario, with the constants given."""
    scn, _ = read_scenario(run.scenario, run.overrides)
    return estimate(scn, values)


def fit(run: Run, figure: str, constant: str, values: dict[str, float]) -> float:
    """The constant that makes the estimate of ``figure`` match the measured run."""
    m = run.measured
    assert m is not None
    if figure.startswith("file:"):
        table = figure.removeprefix("file:")
        names = table.split("+")
        size = sum(m.files[f"{n}.parquet"] for n in names)
        rows = sum(m.rows[n] for n in names)
        return size / rows
    parts = getattr(estimate_of(run, values), figure)
    count = sum(p.count for p in parts if p.constant == constant)
    other = sum(p.amount for p in parts if p.constant != constant)
    return (m.figure(figure) - other) / count


def runs() -> list[Run]:
    """The measurements, in the order their constants are fitted."""
    site = write("site", SITE)
    return [
        Run(
            "base",
            site,
            [],
            [
                ("memory", "MEM_BASE_BYTES"),
                ("time", "CPU_STARTUP_S"),
                ("disk", "DISK_FIXED_BYTES"),
            ],
        ),
        Run(
            "nodes",
            site,
            ["pools.hall.nodes=2000000"],
            [("memory", "MEM_PER_NODE_BYTES"), ("time", "CPU_PER_NODE_S")],
        ),
        Run(
            "node_gpus",
            site,
            ["pools.hall.nodes=10", "pools.hall.gpus_per_node=1000000"],
            [("memory", "MEM_PER_NODE_GPU_BYTES"), ("time", "CPU_PER_NODE_GPU_S")],
        ),
        Run(
            "samples",
            site,
            ["scenario.duration=30d", "scenario.sample_every=5s"],
            [("memory", "MEM_PER_SAMPLE_ROW_BYTES"), ("time", "CPU_PER_SAMPLE_ROW_S")],
        ),
        Run(
            "replicas",
            WORK / "replicas.toml",
            [],
            [("memory", "MEM_PER_REPLICA_BYTES"), ("time", "CPU_PER_REPLICA_S")],
        ),
        Run(
            "backlog",
            MMC,
            ["scenario.duration=100000", "workloads.chat.replicas=4", 'output.requests="none"'],
            [("memory", "MEM_PER_PENDING_REQUEST_BYTES")],
        ),
        Run(
            "requests_none",
            MMC,
            ['output.requests="none"'],
            [("time", "CPU_PER_REQUEST_S")],
        ),
        Run(
            "llm",
            HERE / "llm_day.toml",
            ["scenario.duration=2h"],
            [("time", "CPU_PER_LLM_REQUEST_S")],
        ),
        Run(
            "requests",
            MMC,
            [],
            [
                ("memory", "MEM_PER_REQUEST_ROW_BYTES"),
                ("time", "CPU_PER_REQUEST_ROW_S"),
                ("file:requests", "DISK_PER_REQUEST_ROW_BYTES"),
            ],
        ),
        Run(
            "calendar",
            MMC,
            ["scenario.duration=69444", "scenario.start=2025-01-01T00:00:00Z"],
            [("file:requests", "DISK_PER_REQUEST_ROW_CALENDAR_BYTES")],
        ),
        Run(
            "local",
            MMC,
            [
                "scenario.duration=69444",
                "scenario.start=2025-01-01T00:00:00Z",
                "scenario.timezone=America/Chicago",
            ],
            [("file:requests", "DISK_PER_REQUEST_ROW_LOCAL_BYTES")],
        ),
        Run(
            "training",
            TRAINING,
            ["scenario.duration=10d", "scenario.warmup=0"],
            [
                ("memory", "MEM_PER_JOB_BYTES"),
                ("time", "CPU_PER_JOB_S"),
                ("file:jobs", "DISK_PER_JOB_ROW_BYTES"),
                ("file:events", "DISK_PER_EVENT_ROW_BYTES"),
                # a busy site's time series (an idle one's compress far better)
                ("file:timeseries+pool_timeseries", "DISK_PER_SAMPLE_ROW_BYTES"),
            ],
        ),
        Run(
            "job_queue",
            write("job_queue", JOB_QUEUE),
            [],
            [("memory", "MEM_PER_QUEUED_JOB_BYTES")],
        ),
    ]


def checks() -> list[Run]:
    """Whole benchmark scenarios, to compare the whole estimate with (nothing is fitted)."""
    return [
        Run("check_mmc_250k", MMC, ["scenario.duration=34722"]),
        Run("check_replicas_2048", REPLICAS, []),
        Run("check_training_month", TRAINING, []),
        Run("check_default", DEFAULT, []),
    ]


def significant(x: float) -> str:
    """Three significant digits, as Python source."""
    return f"{float(f'{x:.3g}'):_}" if abs(x) >= 1000 else f"{x:.3g}"


def main() -> None:
    """Measure, fit, compare, print."""
    WORK.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    current = {name: float(getattr(est_mod, name)) for name in CALIBRATED}
    fitted = dict(current)
    print(f"{'run':<22}{'peak RSS':>11}{'CPU s':>8}{'disk':>11}")
    for run in runs():
        run.measured = m = measure(run)
        print(f"{run.key:<22}{format_bytes(m.peak_bytes):>11}{m.cpu_s:>8.2f}"
              f"{format_bytes(m.disk_bytes):>11}")  # fmt: skip
        for figure, constant in run.fits:
            fitted[constant] = fit(run, figure, constant, fitted)

    print(f"\n{'constant':<38}{'estimate.py':>13}{'measured':>13}{'ratio':>8}")
    for name in CALIBRATED:
        ratio = fitted[name] / current[name] if current[name] else float("nan")
        print(f"{name:<38}{current[name]:>13.4g}{fitted[name]:>13.4g}{ratio:>8.2f}")

    print("\nwhole runs: estimate (with the measured constants) / measured")
    print(f"{'run':<22}{'memory':>24}{'disk':>24}{'CPU s':>18}")
    for run in checks():
        m = measure(run)
        e = estimate_of(run, fitted)
        cells = [
            (e.memory_bytes, m.peak_bytes, format_bytes),
            (e.disk_bytes, m.disk_bytes, format_bytes),
            (e.cpu_s, m.cpu_s, lambda s: f"{s:.1f}"),
        ]
        text = "".join(
            f"{show(est) + ' / ' + show(real):>{width}} {est / real:>4.2f}"
            for (est, real, show), width in zip(cells, (19, 19, 13), strict=True)
        )
        print(f"{run.key:<22}{text}")

    print("\nto paste into sim/config/estimate.py:")
    for name in CALIBRATED:
        print(f"{name} = {significant(fitted[name])}")
    print(f"\ncalibrate: {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
