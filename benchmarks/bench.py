"""`make bench`: the simulator's speed and memory, measured as whole processes.

Each command runs as its own child process (``subprocess.Popen``); its wall time is taken
around it, its CPU time and peak resident memory come from ``os.wait4`` (``ru_maxrss``, KiB on
Linux). CPU per request or per job is the process's CPU time less the start-up run's (a
one-minute run of ``scenarios/mmc.toml``), divided by the requests or jobs. Measurements, with
the targets of docs/design.md ("Performance"):

a. the M/M/8 queue of ``benchmarks/mmc_1m.toml`` (about 1,000,000 requests, all Parquet
   output written) against ciw 3.2.7 simulating the same queue (``benchmarks/ciw_mmc.py``):
   sim must be at least 4x faster per request (aim 8x), use less memory, and stay under
   250 MiB;
b. memory against horizon: two services of 64 replicas (``benchmarks/two_services.toml``) at
   about 1,000,000 and 10,000,000 requests, every request recorded: peak memory within 1.2x
   and under 400 MiB;
c. scaling: a month of a 2,000-node training cluster (``benchmarks/training_month.toml``)
   against a 200-node month with a tenth of every arrival rate; time should grow with the
   work (about 10x), not with work x cluster size (100x);
d. the default scenario's wall time (``scenarios/default.toml``);
e. CPU per request at a real site's shape, each within 1.5x of the M/M/8 queue's: 16 services
   of 8 replicas (``services_16.toml``), one service of 2,048 replicas (``replicas_2048.toml``),
   the M/M/8 queue beside a busy training cluster (``beside_training.toml``, less the same run
   with almost no requests);
f. CPU per training job (the 2,000-node month) at most 7x the CPU per request of the M/M/8 queue;
g. a site-day: ``scenarios/site-week.toml`` for one day (20 services, about 4,250 replicas,
   training beside them, about 22 million requests): requests per second and peak memory;
h. a site-year: ``benchmarks/year_site.toml``, 2,000 nodes (1,200 of 8 H100, 800 of 8 RTX
   3090) for 365 days of hourly ambient and 15-minute prices, with a cooling plant that binds
   on hot afternoons, price-triggered and weekly scheduled curtailments, a demand charge, about
   a million training jobs and 3 million requests (no request rows): wall time, peak memory and
   simulated events per second. Its 365-day price file is generated first (``year_prices``:
   the shipped 300 days of ERCOT prices with their first 65 days repeated after their end,
   moved onto the calendar of 2023) into ``outputs/bench-year-site/``, never into the repo.
   Simulated events, counted from the run's own outputs and inputs: one per request simulated
   (``manifest.json`` ``simulated.requests``; a request's arrival, start and end are one
   event here, as in the other cases' "per s"), one per row of ``events.parquet`` (every job's
   submission, start and completion, every suspension and resumption, every limit, cap and
   curtailment change), one per breakpoint of the site's timeline (each change of ambient,
   price or curtailment: ``sim.model.site.build_timeline``), one per demand interval closed
   and one per site sample (``timeseries.parquet`` rows). Events per second divide them by the
   whole process's wall time. With ``--quick`` it runs January to March only (91.25 days), when
   the cooling never binds;
i. the site-year with failures: ``benchmarks/year_site_failures.toml``, the same site, year and
   work with node failures and repairs in both halls (mtbf 6,300 h and 4,500 h), checkpoints
   and restarts of every training workload, a UPS and an 8 MW generator through a 4-hour grid
   outage, a 2-hour cooling trip and monthly maintenance of 80 rigs: wall time, CPU, peak
   memory, simulated events and events per second, counted as the site-year's plus one per
   row of ``nodes.parquet`` (each interval of a node in one state) and of ``outages.parquet``
   (each outage or maintenance window), beside the reliability figures of its summary
   (availability, node failures, lost GPU-hours, goodput, failed jobs) and, when both run,
   its ratios to the site-year measured in the same run. Checkpoints written are reported,
   not counted as events. It reads the site-year's price file; ``--skip-year`` skips it too
   and ``--quick`` shortens it the same way.

j. a sweep: ``sim sweep benchmarks/sweep_16.toml`` (16 runs of the M/M/8 queue for two days,
   about 1.2 million requests each) with 1 local worker and with 2, each from an empty output
   folder: wall times and the speed-up, at least 1.7x on a 2-core machine.
k. a month of the mixed cluster (``scenarios/mixed-cluster.toml`` for 30 days: autoscaled
   inference beside training with backfill and preemption): wall and CPU time, jobs per second.
l. LLM serving: ``benchmarks/llm_day.toml``, a day of 512 batched Llama-3-8B replicas on
   H100s replaying the Azure conversation trace 18 times faster, looped (about 100 requests/s,
   8.5 million requests with their own token counts; no request rows): wall time, requests per
   second and peak memory.

With ``--repeat N`` the commands alternate, round by round, and medians are reported.
``--only KEY,...`` measures only those runs (keys: startup, mmc, ciw, two_1m, two_10m,
train_2000, train_200, default, mixed_month, services_16, replicas_2048, beside, beside_alone,
site_day, year_site, year_failures, sweep_1, sweep_2, llm_day) and reports only the figures they
give.
Everything is written to ``benchmarks/.work/results.json`` (with ``--only``, to
``results-<keys>.json`` beside it).

Usage: python benchmarks/bench.py [--repeat N] [--skip-ciw] [--quick] [--skip-site]
       [--skip-year] [--skip-sweep] [--skip-llm] [--only KEY,...] [--year-prices]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / ".work"
PYTHON = sys.executable
SIM = str(Path(sys.executable).parent / "sim")

MMC = HERE / "mmc_1m.toml"
TRAINING = HERE / "training_month.toml"
TWO = HERE / "two_services.toml"
SERVICES_16 = HERE / "services_16.toml"
REPLICAS_2048 = HERE / "replicas_2048.toml"
BESIDE = HERE / "beside_training.toml"
DEFAULT = ROOT / "scenarios" / "default.toml"
MIXED = ROOT / "scenarios" / "mixed-cluster.toml"
SITE = ROOT / "scenarios" / "site-week.toml"
SMALL_MMC = ROOT / "scenarios" / "mmc.toml"
YEAR = HERE / "year_site.toml"
YEAR_FAILURES = HERE / "year_site_failures.toml"  # the same site-year with failures and outages
LLM_DAY = HERE / "llm_day.toml"  # a day of 512 batched LLM replicas at ~100 requests/s
SWEEP = HERE / "sweep_16.toml"  # 16 runs of the M/M/8 queue, for sim sweep with 1 and 2 workers
ERCOT = ROOT / "scenarios" / "data" / "ercot_hb_south_2024_15min_prices.parquet"
YEAR_DATA = ROOT / "outputs" / "bench-year-site"  # generated data: outputs/ is not in git
YEAR_PRICES = YEAR_DATA / "ercot_hb_south_2023_365d_15min_prices.parquet"  # year_site.toml's

MMC_HORIZON_S = 138_889.0  # benchmarks/mmc_1m.toml: about 1,000,000 requests at 7.2/s
TWO_HORIZON_S = 8_681.0  # benchmarks/two_services.toml: about 1,000,000 requests at 115.2/s
TRAINING_NODES_LARGE = 2000  # training_month.toml
TRAINING_NODES_SMALL = 200  # against the 2,000 of training_month.toml
SCALE_DOWN = 10  # the small cluster gets a tenth of every arrival rate

# Targets (docs/design.md, "Performance").
SPEEDUP_MIN = 4.0  # sim per request vs ciw, with all Parquet output written
SPEEDUP_AIM = 8.0
MMC_MEMORY_MIB = 250.0  # the million-request M/M/8 run
FLAT_MEMORY_RATIO = 1.2  # 10M requests vs 1M
FLAT_MEMORY_MIB = 400.0
SHAPE_RATIO = 1.5  # CPU per request at a site's shape vs the M/M/8 queue
JOB_RATIO = 7.0  # CPU per training job vs per request
ERLANG_C_WAIT_S = 0.877  # M/M/8, lambda 7.2, mu 1: C = 0.7015, W = C / (c mu - lambda)
# Scaling: work x cluster size would give a time ratio of ~100; a ratio within twice the
# work ratio (so <= ~20) passes as "grows with the work".
SCALING_SLACK = 2.0
SWEEP_SPEEDUP_MIN = 1.7  # 2 local workers against 1 on a 2-core machine

MIB = 1024 * 1024


@dataclass
class Sample:
    """One run of one command."""

    wall_s: float
    cpu_s: float
    peak_rss_mib: float
    extra: dict[str, Any]


@dataclass
class Command:
    """A command measured as a whole process, and how to read what it did."""

    key: str
    label: str
    argv: list[str]
    out_dir: Path | None = None  # a sim run directory, read for rows and wall_time_s
    scenario: Path | None = None  # the scenario of a sim run, and its --set items
    overrides: list[str] = field(default_factory=list)
    json_stdout: bool = False  # ciw_mmc.py prints one JSON line
    fresh: Path | None = None  # removed before each run (a sweep would resume, not run again)
    samples: list[Sample] = field(default_factory=list)

    def median(self, name: str) -> float:
        """The median of a figure over the samples (a Sample field or an ``extra`` key)."""
        values = [s.extra[name] if name in s.extra else getattr(s, name) for s in self.samples]
        return float(statistics.median(v for v in values if v is not None))

    def has(self, name: str) -> bool:
        """Whether the samples carry a figure (in ``extra``) with a value."""
        return any(s.extra.get(name) is not None for s in self.samples)


def sim_run(key: str, label: str, scenario: Path, *overrides: str) -> Command:
    """A ``sim run --quiet`` of ``scenario`` into ``benchmarks/.work/<key>`` (scratch: replaced
    whatever run it holds, as after a change of the scenario schema)."""
    out = WORK / key
    argv = [SIM, "run", "--quiet", str(scenario), "--out", str(out), "--overwrite"]
    for item in overrides:
        argv += ["--set", item]
    return Command(key, label, argv, out_dir=out, scenario=scenario, overrides=list(overrides))


def sim_sweep(workers: int) -> Command:
    """``sim sweep`` of ``sweep_16.toml`` with ``workers`` local workers, from nothing."""
    out = WORK / f"sweep_{workers}"
    argv = [SIM, "sweep", str(SWEEP), "--out", str(out), "--workers", str(workers), "--quiet"]
    return Command(f"sweep_{workers}", f"sweep, 16 runs, {workers} worker(s)", argv, fresh=out)


def measure(cmd: Command) -> Sample:
    """Run ``cmd`` as a child process; its wall time, CPU time and peak RSS."""
    WORK.mkdir(parents=True, exist_ok=True)
    if cmd.fresh is not None:
        shutil.rmtree(cmd.fresh, ignore_errors=True)
    stdout_path = WORK / f"{cmd.key}.stdout"
    stderr_path = WORK / f"{cmd.key}.stderr"
    with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
        began = time.perf_counter()
        proc = subprocess.Popen(
            cmd.argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL, cwd=ROOT
        )
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - began
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.stderr.write(stderr_path.read_text(errors="replace")[-4000:])
        raise SystemExit(f"bench: {' '.join(cmd.argv)} exited with {proc.returncode}")
    extra: dict[str, Any] = {}
    if cmd.out_dir is not None:
        manifest = json.loads((cmd.out_dir / "manifest.json").read_text())
        summary = json.loads((cmd.out_dir / "summary.json").read_text())
        extra = {
            "rows": manifest["rows"],
            "rows_total": sum(manifest["rows"].values()),
            "requests": manifest["rows"].get("requests", 0),
            "requests_total": manifest["simulated"]["requests"],
            "jobs": manifest["rows"].get("jobs", 0),
            "inproc_s": manifest["wall_time_s"],
            "gpu_utilization": summary.get("gpu_utilization"),
            "request_wait_mean_s": summary.get("request_wait_mean_s"),
            "job_wait_mean_s": summary.get("job_wait_mean_s"),
        }
    if cmd.json_stdout:
        lines = stdout_path.read_text().strip().splitlines()
        extra = json.loads(lines[-1])
        extra["requests"] = extra["customers"]
        extra["inproc_s"] = extra["simulate_s"]
    return Sample(
        wall_s=wall,
        cpu_s=usage.ru_utime + usage.ru_stime,
        peak_rss_mib=usage.ru_maxrss * 1024 / MIB,
        extra=extra,
    )


def year_prices(path: Path = YEAR_PRICES) -> Path:
    """Write the site-year's 365 days of 15-minute prices (``year_site.toml`` reads them).

    The shipped ERCOT file covers 300 days, 2024-06-01 00:00 to 2025-03-27 23:45. Its first 65
    days are repeated after its end, their timestamps shifted by 300 days (so 2025-03-28 to
    05-31 hold the prices of 2024-06-01 to 08-04): 365 days, June to May. Each day then moves
    to the same month and day of 2023, the nominal year of the ambient series the scenario
    also reads (2024's June to December back 366 days, 2025's January to May back 731), so the
    file runs 2023-01-01 00:00 to 12-31 23:45 (35,040 intervals) and the summer's price spikes
    fall in the summer's heat. Columns as the source's; written to ``outputs/``, never into
    the repo.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    with pq.ParquetFile(ERCOT) as file:
        src = file.read()
    day_us = 86_400 * 10**6
    per_day = 96
    stamps = src.column("interval_start").combine_chunks().cast(pa.int64()).to_numpy()
    if len(stamps) != 300 * per_day or not np.all(np.diff(stamps) == day_us // per_day):
        raise SystemExit(f"bench: {ERCOT} is not 300 days of 15-minute prices")
    repeat = 65 * per_day
    stamps = np.concatenate([stamps, stamps[:repeat] + 300 * day_us])
    new_year_2025 = 1_735_689_600 * 10**6  # 2025-01-01 00:00 UTC, in microseconds
    stamps = np.where(stamps < new_year_2025, stamps - 366 * day_us, stamps - 731 * day_us)
    order = np.argsort(stamps, kind="stable")
    columns: dict[str, Any] = {
        "interval_start": pa.array(stamps[order], pa.int64()).cast(pa.timestamp("us"))
    }
    for name in ("dam_usd_per_mwh", "rtm_usd_per_mwh"):
        values = src.column(name).combine_chunks().to_numpy()
        columns[name] = pa.array(np.concatenate([values, values[:repeat]])[order], pa.float64())
    table = pa.table(columns)
    first_2023 = 1_672_531_200 * 10**6  # 2023-01-01 00:00 UTC
    assert table.num_rows == 365 * per_day and int(stamps[order][0]) == first_2023
    assert np.all(np.diff(stamps[order]) == day_us // per_day)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp, compression="zstd")
    tmp.replace(path)
    return path


def site_events(cmd: Command) -> dict[str, int]:
    """What a sim run simulated besides requests and event rows: timeline breakpoints, demand
    intervals, samples (from its scenario, inputs and run directory)."""
    from sim.inputs import read_inputs
    from sim.model.site import build_timeline
    from sim.runner import load_scenario

    assert cmd.scenario is not None and cmd.out_dir is not None
    scn = load_scenario(cmd.scenario, cmd.overrides)
    inputs, problems = read_inputs(scn)
    if problems:
        raise SystemExit(f"bench: {cmd.scenario}: {problems[0]}")
    timeline = build_timeline(scn, inputs)
    price = scn.facility.price
    interval = price.demand_interval_s if price is not None else 900.0
    manifest = json.loads((cmd.out_dir / "manifest.json").read_text())
    return {
        "breakpoints": len(timeline.times),
        "demand_intervals": math.ceil(scn.scenario.duration_s / interval),
        "samples": manifest["rows"]["timeseries"],
    }


def training_small_overrides() -> list[str]:
    """``--set`` items for the 200-node month: the pool's nodes, a tenth of every rate."""
    scn = tomllib.loads(TRAINING.read_text())
    items = [f"pools.{p['name']}.nodes={TRAINING_NODES_SMALL}" for p in scn["pools"]]
    for wl in scn["workloads"]:
        arrival = wl["arrival"]
        for rate_key in ("rate_per_s", "rate_per_h", "rate_per_d"):
            if rate_key in arrival:
                rate = arrival[rate_key] / SCALE_DOWN
                items.append(f"workloads.{wl['name']}.arrival.{rate_key}={rate:g}")
    return items


def count(n: float) -> str:
    """A round count for a label: 1M, 250k, 62k."""
    return f"{n / 1e6:g}M" if n >= 1e6 * 0.995 else f"{n / 1e3:.0f}k"


def build_commands(args: argparse.Namespace) -> dict[str, Command]:
    """Every command to measure, by key, in the order of one round."""
    scale = 0.25 if args.quick else 1.0
    mmc_full = MMC_HORIZON_S * scale
    two_small, two_large = TWO_HORIZON_S * scale, 10 * TWO_HORIZON_S * scale
    days = 30 * scale
    full_set = [f"scenario.duration={mmc_full:g}"] if args.quick else []
    month_set = [f"scenario.duration={days:g}d"] if args.quick else []
    shape_set = [f"scenario.duration={543 * scale:g}"] if args.quick else []
    n_full = count(mmc_full * 7.2)
    cmds = [
        sim_run(
            "startup",
            "start-up (mmc.toml, 60 s)",
            SMALL_MMC,
            "scenario.duration=60",
            "scenario.warmup=0",
        ),
        sim_run("mmc", f"sim M/M/8, {n_full} req", MMC, *full_set),
    ]
    if not args.skip_ciw:
        cmds.append(
            Command(
                "ciw",
                f"ciw M/M/8, {n_full} cust",
                [PYTHON, str(HERE / "ciw_mmc.py"), "--horizon", f"{mmc_full:g}"],
                json_stdout=True,
            )
        )
    cmds += [
        sim_run(
            "two_1m",
            f"2 x 64 replicas, {count(two_small * 115.2)} req",
            TWO,
            f"scenario.duration={two_small:g}",
        ),
        sim_run(
            "two_10m",
            f"2 x 64 replicas, {count(two_large * 115.2)} req",
            TWO,
            f"scenario.duration={two_large:g}",
        ),
        sim_run(
            "train_2000", f"training {days:g}d, {TRAINING_NODES_LARGE} nodes", TRAINING, *month_set
        ),
        sim_run(
            "train_200",
            f"training {days:g}d, {TRAINING_NODES_SMALL} nodes",
            TRAINING,
            *month_set,
            *training_small_overrides(),
        ),
        sim_run("default", "default scenario", DEFAULT),
        sim_run("mixed_month", "a month of the mixed cluster", MIXED, "scenario.duration=30d"),
        sim_run(
            "services_16",
            "16 services x 8 replicas",
            SERVICES_16,
            *([f"scenario.duration={8681 * scale:g}"] if args.quick else []),
        ),
        sim_run("replicas_2048", "1 service x 2,048 replicas", REPLICAS_2048, *shape_set),
        sim_run("beside", "M/M/8 beside 2,000 training nodes", BESIDE, *full_set),
        sim_run(
            "beside_alone",
            "... the same, almost no requests",
            BESIDE,
            *full_set,
            "workloads.chat.arrival.rate_per_s=1e-6",
        ),
    ]
    if not args.skip_site:
        cmds.append(
            sim_run(
                "site_day",
                "site-week.toml, one day",
                SITE,
                f"scenario.duration={24 * scale:g}h",
            )
        )
    if not args.skip_llm:
        cmds.append(
            sim_run(
                "llm_day",
                "LLM, 512 batched replicas, trace at ~100 req/s",
                LLM_DAY,
                f"scenario.duration={24 * scale:g}h",
            )
        )
    if not args.skip_year:
        year_set = [f"scenario.duration={365 * scale:g}d"] if args.quick else []
        cmds.append(
            sim_run("year_site", f"site-year, 2,000 nodes, {365 * scale:g}d", YEAR, *year_set)
        )
        cmds.append(
            sim_run(
                "year_failures",
                f"site-year with failures, {365 * scale:g}d",
                YEAR_FAILURES,
                *year_set,
            )
        )
    if not args.skip_sweep:
        cmds += [sim_sweep(1), sim_sweep(2)]
    if args.only:
        # every other round may run backwards, so the order of the keys does not matter
        cmds = [c for c in cmds if c.key in args.only]
    return {c.key: c for c in cmds}


def verdict(ok: bool) -> str:
    """PASS or FAIL."""
    return "PASS" if ok else "FAIL"


def cpu_per(cmd: Command, startup: Command, unit: str) -> float:
    """CPU seconds per request or job (``unit``), start-up CPU taken out."""
    return (cmd.median("cpu_s") - startup.median("cpu_s")) / cmd.median(unit)


def analyse(cmds: dict[str, Command]) -> dict[str, Any]:
    """The figures and verdicts derived from the medians (of the runs measured)."""
    res: dict[str, Any] = {}
    startup = cmds.get("startup")
    if startup is not None:
        res["startup"] = {
            "wall_s": startup.median("wall_s"),
            "cpu_s": startup.median("cpu_s"),
            "peak_rss_mib": startup.median("peak_rss_mib"),
        }

    per_request: float | None = None
    if startup is not None and "mmc" in cmds:
        sim = cmds["mmc"]
        sim_req = sim.median("requests")
        sim_rate = sim_req / sim.median("wall_s")
        per_request = cpu_per(sim, startup, "requests")
        a: dict[str, Any] = {
            "sim_requests": sim_req,
            "sim_wall_s": sim.median("wall_s"),
            "sim_cpu_s": sim.median("cpu_s"),
            "sim_inproc_s": sim.median("inproc_s"),
            "sim_requests_per_s": sim_rate,
            "sim_cpu_us_per_request": per_request * 1e6,
            "sim_peak_rss_mib": sim.median("peak_rss_mib"),
            "sim_wait_mean_s": sim.median("request_wait_mean_s"),
            "memory_target_mib": MMC_MEMORY_MIB,
            "memory_target_verdict": verdict(sim.median("peak_rss_mib") < MMC_MEMORY_MIB),
        }
        if "ciw" in cmds:
            ciw = cmds["ciw"]
            ciw_req = ciw.median("requests")
            ciw_rate = ciw_req / ciw.median("wall_s")
            speedup = sim_rate / ciw_rate
            a |= {
                "ciw_customers": ciw_req,
                "ciw_wall_s": ciw.median("wall_s"),
                "ciw_inproc_s": ciw.median("inproc_s"),
                "ciw_customers_per_s": ciw_rate,
                "ciw_peak_rss_mib": ciw.median("peak_rss_mib"),
                "ciw_wait_mean_s": ciw.median("wait_mean_s"),
                "speedup": speedup,
                "speedup_target": SPEEDUP_MIN,
                "speedup_aim": SPEEDUP_AIM,
                "speed_verdict": verdict(speedup >= SPEEDUP_MIN),
                "speed_aim_met": speedup >= SPEEDUP_AIM,
                "memory_ratio": a["sim_peak_rss_mib"] / ciw.median("peak_rss_mib"),
                "memory_verdict": verdict(a["sim_peak_rss_mib"] < ciw.median("peak_rss_mib")),
            }
        res["a_vs_ciw"] = a

    if "two_1m" in cmds and "two_10m" in cmds:
        small, large = cmds["two_1m"], cmds["two_10m"]
        mem_ratio = large.median("peak_rss_mib") / small.median("peak_rss_mib")
        res["b_memory_vs_horizon"] = {
            "small_requests": small.median("requests"),
            "small_peak_rss_mib": small.median("peak_rss_mib"),
            "small_wall_s": small.median("wall_s"),
            "large_requests": large.median("requests"),
            "large_peak_rss_mib": large.median("peak_rss_mib"),
            "large_wall_s": large.median("wall_s"),
            "large_requests_per_s": large.median("requests") / large.median("wall_s"),
            "memory_ratio": mem_ratio,
            "verdict": verdict(
                mem_ratio <= FLAT_MEMORY_RATIO and large.median("peak_rss_mib") < FLAT_MEMORY_MIB
            ),
        }

    if "train_2000" in cmds and "train_200" in cmds:
        big, small_cluster = cmds["train_2000"], cmds["train_200"]
        work_ratio = big.median("jobs") / small_cluster.median("jobs")
        wall_ratio = big.median("wall_s") / small_cluster.median("wall_s")
        inproc_ratio = big.median("inproc_s") / small_cluster.median("inproc_s")
        res["c_scaling"] = {
            "large_nodes": TRAINING_NODES_LARGE,
            "small_nodes": TRAINING_NODES_SMALL,
            "large_jobs": big.median("jobs"),
            "small_jobs": small_cluster.median("jobs"),
            "large_events": big.samples[-1].extra["rows"]["events"],
            "small_events": small_cluster.samples[-1].extra["rows"]["events"],
            "large_wall_s": big.median("wall_s"),
            "small_wall_s": small_cluster.median("wall_s"),
            "large_inproc_s": big.median("inproc_s"),
            "small_inproc_s": small_cluster.median("inproc_s"),
            "large_jobs_per_s": big.median("jobs") / big.median("wall_s"),
            "small_jobs_per_s": small_cluster.median("jobs") / small_cluster.median("wall_s"),
            "large_peak_rss_mib": big.median("peak_rss_mib"),
            "small_peak_rss_mib": small_cluster.median("peak_rss_mib"),
            "large_gpu_utilization": big.median("gpu_utilization"),
            "small_gpu_utilization": small_cluster.median("gpu_utilization"),
            "work_ratio": work_ratio,
            "wall_ratio": wall_ratio,
            "inproc_ratio": inproc_ratio,
            "verdict": verdict(inproc_ratio <= SCALING_SLACK * work_ratio),
        }

    if "default" in cmds:
        default = cmds["default"]
        res["d_default"] = {
            "wall_s": default.median("wall_s"),
            "inproc_s": default.median("inproc_s"),
            "peak_rss_mib": default.median("peak_rss_mib"),
            "rows": default.samples[-1].extra["rows"],
        }

    if "mixed_month" in cmds:
        mixed = cmds["mixed_month"]
        jobs = mixed.median("jobs")
        res["k_mixed_month"] = {
            "wall_s": mixed.median("wall_s"),
            "cpu_s": mixed.median("cpu_s"),
            "peak_rss_mib": mixed.median("peak_rss_mib"),
            "requests": mixed.median("requests"),
            "jobs": jobs,
            "jobs_per_s": jobs / mixed.median("wall_s"),
        }

    if startup is not None and per_request is not None:
        shapes: dict[str, Any] = {"baseline_cpu_us_per_request": per_request * 1e6}
        for key in ("services_16", "replicas_2048"):
            if key not in cmds:
                continue
            cmd = cmds[key]
            cost = cpu_per(cmd, startup, "requests")
            shapes[key] = {
                "requests": cmd.median("requests"),
                "cpu_us_per_request": cost * 1e6,
                "requests_per_s": cmd.median("requests") / cmd.median("wall_s"),
                "peak_rss_mib": cmd.median("peak_rss_mib"),
                "ratio": cost / per_request,
                "verdict": verdict(cost / per_request <= SHAPE_RATIO),
            }
        if "beside" in cmds and "beside_alone" in cmds:
            beside, alone = cmds["beside"], cmds["beside_alone"]
            extra_requests = beside.median("requests") - alone.median("requests")
            cost = (beside.median("cpu_s") - alone.median("cpu_s")) / extra_requests
            shapes["beside_training"] = {
                "requests": beside.median("requests"),
                "jobs": beside.median("jobs"),
                "cpu_us_per_request": cost * 1e6,
                "peak_rss_mib": beside.median("peak_rss_mib"),
                "ratio": cost / per_request,
                "verdict": verdict(cost / per_request <= SHAPE_RATIO),
            }
        if len(shapes) > 1:
            res["e_site_shapes"] = shapes

        if "train_2000" in cmds:
            per_job = cpu_per(cmds["train_2000"], startup, "jobs")
            res["f_training_job"] = {
                "cpu_us_per_job": per_job * 1e6,
                "cpu_us_per_request": per_request * 1e6,
                "ratio": per_job / per_request,
                "verdict": verdict(per_job / per_request <= JOB_RATIO),
            }

    if "site_day" in cmds:
        site = cmds["site_day"]
        res["g_site_day"] = {
            "requests": site.median("requests_total"),
            "requests_recorded": site.median("requests"),
            "jobs": site.median("jobs"),
            "wall_s": site.median("wall_s"),
            "requests_per_s": site.median("requests_total") / site.median("wall_s"),
            "peak_rss_mib": site.median("peak_rss_mib"),
        }

    if "llm_day" in cmds:
        llm = cmds["llm_day"]
        res["l_llm_day"] = {
            "requests": llm.median("requests_total"),
            "wall_s": llm.median("wall_s"),
            "cpu_s": llm.median("cpu_s"),
            "requests_per_s": llm.median("requests_total") / llm.median("wall_s"),
            "peak_rss_mib": llm.median("peak_rss_mib"),
        }

    if "sweep_1" in cmds and "sweep_2" in cmds:
        one, two = cmds["sweep_1"], cmds["sweep_2"]
        speedup = one.median("wall_s") / two.median("wall_s")
        res["j_sweep"] = {
            "runs": 16,
            "one_worker_wall_s": one.median("wall_s"),
            "two_workers_wall_s": two.median("wall_s"),
            "one_worker_cpu_s": one.median("cpu_s"),
            "two_workers_cpu_s": two.median("cpu_s"),
            "speedup": speedup,
            "speedup_target": SWEEP_SPEEDUP_MIN,
            "verdict": verdict(speedup >= SWEEP_SPEEDUP_MIN),
        }
    if "year_site" in cmds:
        res["h_site_year"] = site_year(cmds["year_site"])
    if "year_failures" in cmds:
        res["i_site_year_failures"] = site_year_failures(
            cmds["year_failures"], res.get("h_site_year")
        )
    return res


def site_year(cmd: Command) -> dict[str, Any]:
    """The site-year's figures: wall time, peak memory, simulated events and their rate."""
    last = cmd.samples[-1].extra
    site = site_events(cmd)
    requests = int(cmd.median("requests_total"))
    event_rows = int(last["rows"]["events"])
    events = requests + event_rows + sum(site.values())
    wall, inproc = cmd.median("wall_s"), cmd.median("inproc_s")
    assert cmd.out_dir is not None
    summary = json.loads((cmd.out_dir / "summary.json").read_text())
    held = summary.get("held_back") or {}
    return {
        "wall_s": wall,
        "cpu_s": cmd.median("cpu_s"),
        "inproc_s": inproc,
        "peak_rss_mib": cmd.median("peak_rss_mib"),
        "requests": requests,
        "jobs": int(cmd.median("jobs")),
        "event_rows": event_rows,
        **site,
        "events": events,
        "events_per_s": events / wall,
        "events_per_inproc_s": events / inproc,
        "jobs_per_s": cmd.median("jobs") / wall,
        "gpu_utilization": summary.get("gpu_utilization"),
        "curtailment_hours": summary.get("curtailment_hours"),
        "cooling_shedding_hours": (held.get("cooling") or {}).get("shedding_hours"),
        "throttled_gpu_hours": summary.get("throttled_gpu_hours"),
        "suspended_gpu_hours": summary.get("suspended_gpu_hours"),
        "energy_cost_usd": summary.get("energy_cost_usd"),
        "demand_charge_usd": summary.get("demand_charge_usd"),
    }


def checkpoints_written(cmd: Command) -> int:
    """Checkpoints the run's training jobs wrote (``jobs.parquet``): each job's checkpoint time
    over its workload's ``checkpoint_cost`` (one cut short by an interruption counts in part)."""
    import pyarrow.parquet as pq

    from sim.config.scenario import TrainingWorkload
    from sim.runner import load_scenario

    assert cmd.scenario is not None and cmd.out_dir is not None
    scn = load_scenario(cmd.scenario, cmd.overrides)
    cost = {
        w.name: w.checkpoint_cost_s
        for w in scn.workloads
        if isinstance(w, TrainingWorkload) and w.checkpoint_cost_s > 0
    }
    jobs = pq.read_table(
        cmd.out_dir / "jobs.parquet", columns=["workload", "gpus", "checkpoint_gpu_s"]
    ).to_pydict()
    total = 0.0
    for name, gpus, gpu_s in zip(
        jobs["workload"], jobs["gpus"], jobs["checkpoint_gpu_s"], strict=True
    ):
        if name in cost and gpu_s:
            total += gpu_s / gpus / cost[name]
    return round(total)


def site_year_failures(cmd: Command, plain: dict[str, Any] | None) -> dict[str, Any]:
    """The site-year with failures: the site-year's figures, its events plus one per row of
    ``nodes.parquet`` and ``outages.parquet``, its reliability figures and, given the plain
    site-year's figures (``plain``, the same run), the ratios to them."""
    res = site_year(cmd)
    rows = cmd.samples[-1].extra["rows"]
    node_rows, outage_rows = int(rows.get("nodes", 0)), int(rows.get("outages", 0))
    events = res["events"] + node_rows + outage_rows
    wall = res["wall_s"]
    assert cmd.out_dir is not None
    summary = json.loads((cmd.out_dir / "summary.json").read_text())
    restarts = sum(w.get("job_restarts") or 0 for w in (summary.get("workloads") or {}).values())
    res |= {
        "node_rows": node_rows,
        "outage_rows": outage_rows,
        "events": events,
        "events_per_s": events / wall,
        "events_per_inproc_s": events / res["inproc_s"],
        "checkpoints": checkpoints_written(cmd),
        "availability": summary.get("availability"),
        "node_failures": summary.get("node_failures"),
        "mttr_s": summary.get("mttr_s"),
        "outage_hours": summary.get("outage_hours"),
        "maintenance_hours": summary.get("maintenance_hours"),
        "lost_gpu_hours": summary.get("lost_gpu_hours"),
        "checkpoint_gpu_hours": summary.get("checkpoint_gpu_hours"),
        "restart_gpu_hours": summary.get("restart_gpu_hours"),
        "goodput": summary.get("goodput"),
        "jobs_failed": summary.get("jobs_failed"),
        "job_restarts": restarts,
        "requests_failed": summary.get("requests_failed"),
        "requests_timed_out": summary.get("requests_timed_out"),
    }
    if plain is not None:
        res["vs_site_year"] = {
            "wall_ratio": wall / plain["wall_s"],
            "cpu_ratio": res["cpu_s"] / plain["cpu_s"],
            "peak_rss_ratio": res["peak_rss_mib"] / plain["peak_rss_mib"],
            "events_ratio": events / plain["events"],
            "events_per_s_ratio": res["events_per_s"] / plain["events_per_s"],
        }
    return res


def table(rows: list[tuple[str, ...]]) -> str:
    """Rows as a text table with aligned columns (first column left, the rest right)."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def report(cmds: dict[str, Command], res: dict[str, Any]) -> str:
    """The readable report printed at the end."""
    rows: list[tuple[str, ...]] = [
        ("run", "wall s", "cpu s", "peak MiB", "requests", "jobs", "per s", "util")
    ]
    for cmd in cmds.values():
        req = cmd.median("requests_total") if cmd.has("requests_total") else 0
        jobs = cmd.median("jobs") if cmd.has("jobs") else 0
        wall = cmd.median("wall_s")
        rows.append(
            (
                cmd.label,
                f"{wall:.2f}",
                f"{cmd.median('cpu_s'):.2f}",
                f"{cmd.median('peak_rss_mib'):.0f}",
                f"{req:,.0f}" if req else "",
                f"{jobs:,.0f}" if jobs else "",
                f"{(req + jobs) / wall:,.0f}" if req + jobs else "",
                f"{cmd.median('gpu_utilization'):.3f}" if cmd.has("gpu_utilization") else "",
            )
        )
    out = [
        table(rows),
        "wall s, cpu s and peak MiB: the whole process, Parquet output written; requests: every"
        " request simulated (rows",
        "recorded may be fewer); per s: (requests + jobs) / wall s.",
        "",
    ]
    a = res.get("a_vs_ciw", {})
    if not a:
        pass
    elif "speedup" in a:
        aim = "aim 8x met" if a["speed_aim_met"] else "aim 8x not met"
        out.append(
            f"a. speed: sim {a['sim_requests_per_s']:,.0f} req/s vs ciw "
            f"{a['ciw_customers_per_s']:,.0f} cust/s = {a['speedup']:.1f}x "
            f"(target >= {SPEEDUP_MIN:g}x, {aim}) {a['speed_verdict']}"
        )
        out.append(
            f"   memory: sim {a['sim_peak_rss_mib']:.0f} MiB vs ciw {a['ciw_peak_rss_mib']:.0f} "
            f"MiB = {a['memory_ratio']:.2f}x (target < 1) {a['memory_verdict']}"
        )
        out.append(
            f"   mean wait: sim {a['sim_wait_mean_s']:.3f} s, ciw {a['ciw_wait_mean_s']:.3f} s "
            f"(Erlang C: {ERLANG_C_WAIT_S} s)"
        )
    else:
        out.append(f"a. speed: sim {a['sim_requests_per_s']:,.0f} req/s (ciw skipped)")
    if a:
        out.append(
            f"   sim peak memory {a['sim_peak_rss_mib']:.0f} MiB (target < {MMC_MEMORY_MIB:g}) "
            f"{a['memory_target_verdict']}; {a['sim_cpu_us_per_request']:.2f} us CPU per request"
        )
    if "b_memory_vs_horizon" in res:
        b = res["b_memory_vs_horizon"]
        out.append(
            f"b. memory vs horizon: {b['small_requests']:,.0f} -> {b['large_requests']:,.0f} "
            f"requests: peak memory {b['small_peak_rss_mib']:.0f} -> "
            f"{b['large_peak_rss_mib']:.0f} MiB (x{b['memory_ratio']:.2f}; target <= "
            f"x{FLAT_MEMORY_RATIO:g} and < {FLAT_MEMORY_MIB:g} MiB) {b['verdict']}; "
            f"{b['large_requests_per_s']:,.0f} req/s"
        )
    if "c_scaling" in res:
        c = res["c_scaling"]
        naive = c["work_ratio"] * c["large_nodes"] / c["small_nodes"]
        out.append(
            f"c. scaling 2000 vs {c['small_nodes']} nodes: jobs x{c['work_ratio']:.2f}, "
            f"wall time x{c['wall_ratio']:.2f}"
            f" (in-process x{c['inproc_ratio']:.2f}; work x nodes would be ~{naive:.0f})"
            f" {c['verdict']}"
        )
        out.append(
            f"   jobs/s: {c['large_jobs_per_s']:,.0f} vs {c['small_jobs_per_s']:,.0f}; "
            f"peak memory {c['large_peak_rss_mib']:.0f} vs {c['small_peak_rss_mib']:.0f} MiB; "
            f"gpu_utilization {c['large_gpu_utilization']:.3f} vs "
            f"{c['small_gpu_utilization']:.3f}"
        )
    if "d_default" in res:
        d = res["d_default"]
        out.append(
            f"d. default scenario: {d['wall_s']:.2f} s wall ({d['inproc_s']:.2f} s in-process), "
            f"{d['peak_rss_mib']:.0f} MiB"
        )
    if "e_site_shapes" in res:
        e = res["e_site_shapes"]
        out.append(
            f"e. CPU per request vs the M/M/8 queue ({e['baseline_cpu_us_per_request']:.2f} us), "
            f"target <= x{SHAPE_RATIO:g}:"
        )
        for key, label in (
            ("services_16", "16 services x 8 replicas"),
            ("replicas_2048", "one service x 2,048 replicas"),
            ("beside_training", "M/M/8 beside 2,000 training nodes"),
        ):
            if key not in e:
                continue
            x = e[key]
            out.append(
                f"   {label}: {x['cpu_us_per_request']:.2f} us = x{x['ratio']:.2f}, "
                f"{x['peak_rss_mib']:.0f} MiB {x['verdict']}"
            )
    if "f_training_job" in res:
        f = res["f_training_job"]
        out.append(
            f"f. CPU per training job {f['cpu_us_per_job']:.1f} us = x{f['ratio']:.1f} a request "
            f"(target <= x{JOB_RATIO:g}) {f['verdict']}"
        )
    if "g_site_day" in res:
        g = res["g_site_day"]
        out.append(
            f"g. site-day: {g['requests']:,.0f} requests ({g['requests_recorded']:,.0f} rows), "
            f"{g['jobs']:,.0f} jobs in {g['wall_s']:.0f} s = {g['requests_per_s']:,.0f} req/s, "
            f"{g['peak_rss_mib']:.0f} MiB"
        )
    if "l_llm_day" in res:
        k = res["l_llm_day"]
        out.append(
            f"l. LLM day: {k['requests']:,.0f} requests in {k['wall_s']:.0f} s "
            f"({k['cpu_s']:.0f} s CPU) = {k['requests_per_s']:,.0f} req/s, "
            f"{k['peak_rss_mib']:.0f} MiB"
        )
    if "h_site_year" in res:
        h = res["h_site_year"]
        out.append(
            f"h. site-year: {h['wall_s']:.1f} s wall ({h['inproc_s']:.1f} s in-process), "
            f"{h['peak_rss_mib']:.0f} MiB peak; {h['events']:,} simulated events = "
            f"{h['events_per_s']:,.0f} events/s"
        )
        out.append(
            f"   events: {h['requests']:,} requests + {h['event_rows']:,} events.parquet rows + "
            f"{h['breakpoints']:,} timeline breakpoints + {h['demand_intervals']:,} demand "
            f"intervals + {h['samples']:,} samples; {h['jobs']:,} jobs = {h['jobs_per_s']:,.0f}/s"
        )
        out.append(
            f"   gpu_utilization {h['gpu_utilization']:.3f}; curtailed {h['curtailment_hours']:.1f}"
            f" h, cooling shedding {h['cooling_shedding_hours']:.1f} h; throttled "
            f"{h['throttled_gpu_hours']:,.0f} and suspended {h['suspended_gpu_hours']:,.0f} GPU-h"
        )
    if "i_site_year_failures" in res:
        i = res["i_site_year_failures"]
        out.append(
            f"i. site-year with failures: {i['wall_s']:.1f} s wall ({i['inproc_s']:.1f} s "
            f"in-process), {i['cpu_s']:.1f} s CPU, {i['peak_rss_mib']:.0f} MiB peak; "
            f"{i['events']:,} simulated events = {i['events_per_s']:,.0f} events/s"
        )
        out.append(
            f"   events: as h. ({i['requests']:,} requests + {i['event_rows']:,} events.parquet "
            f"rows + {i['breakpoints']:,} breakpoints + {i['demand_intervals']:,} demand "
            f"intervals + {i['samples']:,} samples) + {i['node_rows']:,} nodes.parquet rows + "
            f"{i['outage_rows']:,} outages.parquet rows; {i['jobs']:,} jobs; "
            f"{i['checkpoints']:,} checkpoints written (not counted)"
        )
        out.append(
            f"   availability {i['availability']:.4f}; {i['node_failures']:,} node failures; "
            f"lost {i['lost_gpu_hours']:,.0f} GPU-h; goodput {i['goodput']:.4f}; "
            f"{i['jobs_failed']:,} jobs failed, {i['job_restarts']:,} restarts"
        )
        if "vs_site_year" in i:
            v = i["vs_site_year"]
            out.append(
                f"   vs the site-year (same run): wall x{v['wall_ratio']:.2f}, CPU "
                f"x{v['cpu_ratio']:.2f}, peak memory x{v['peak_rss_ratio']:.2f}, events "
                f"x{v['events_ratio']:.3f}, events/s x{v['events_per_s_ratio']:.2f}"
            )
    if "j_sweep" in res:
        j = res["j_sweep"]
        out.append(
            f"j. sweep of 16 runs: 1 worker {j['one_worker_wall_s']:.1f} s, 2 workers "
            f"{j['two_workers_wall_s']:.1f} s: speed-up x{j['speedup']:.2f} (target "
            f">= {j['speedup_target']:.1f}): {j['verdict']}"
        )
    if "startup" in res:
        s = res["startup"]
        out.append(f"   start-up (a 60 s run): {s['wall_s']:.2f} s, {s['peak_rss_mib']:.0f} MiB")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Measure sim's speed and memory as whole processes (see the module doc)."
    )
    parser.add_argument("--repeat", type=int, default=1, help="rounds; medians are reported")
    parser.add_argument("--skip-ciw", action="store_true", help="skip the ~20 s ciw run")
    parser.add_argument("--quick", action="store_true", help="a quarter of every horizon")
    parser.add_argument("--skip-site", action="store_true", help="skip the site-day run (~90 s)")
    parser.add_argument(
        "--skip-year",
        action="store_true",
        help="skip the site-year runs, with and without failures (~1-2 min each, ~270 MiB)",
    )
    parser.add_argument(
        "--only",
        type=lambda s: [k.strip() for k in s.split(",") if k.strip()],
        default=None,
        metavar="KEY,...",
        help="measure only these runs (e.g. year_site, or startup,mmc); "
        "results go to results-<keys>.json",
    )
    parser.add_argument(
        "--skip-sweep", action="store_true", help="skip the 16-run sweeps (~1 min together)"
    )
    parser.add_argument(
        "--skip-llm", action="store_true", help="skip the day of LLM serving (~2 min)"
    )
    parser.add_argument(
        "--year-prices",
        action="store_true",
        help=f"only write the site-year's price file ({YEAR_PRICES.relative_to(ROOT)}) and exit",
    )
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.year_prices:
        print(f"wrote {year_prices().relative_to(ROOT)}")
        return
    if not Path(SIM).exists():
        parser.error(f"{SIM} not found: run with the project's venv python (make bench)")
    if args.only is not None:
        known = set(build_commands(argparse.Namespace(**{**vars(args), "only": None})))
        unknown = [k for k in args.only if k not in known]
        if unknown or not args.only:
            parser.error(
                f"--only: unknown or skipped run(s) {', '.join(unknown) or '(none given)'}; "
                f"runs: {', '.join(sorted(known))}"
            )

    cmds = build_commands(args)
    if "year_site" in cmds or "year_failures" in cmds:
        print(f"site-year prices: {year_prices().relative_to(ROOT)}", flush=True)
    order = list(cmds.values())
    for round_no in range(args.repeat):
        # Alternate the commands; every other round backwards, so none always runs first.
        for cmd in order if round_no % 2 == 0 else order[::-1]:
            print(f"[{round_no + 1}/{args.repeat}] {cmd.label} ...", end=" ", flush=True)
            sample = measure(cmd)
            cmd.samples.append(sample)
            print(f"{sample.wall_s:.2f} s, {sample.peak_rss_mib:.0f} MiB", flush=True)

    res = analyse(cmds)
    text = report(cmds, res)
    if args.quick:
        text += "\n(--quick: a quarter of every horizon; the targets are set for the full sizes)"
    print()
    print(text)
    results = {
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
        },
        "args": vars(args),
        "units": {"wall_s": "s", "cpu_s": "s", "peak_rss_mib": "MiB (ru_maxrss)"},
        "runs": {
            key: {
                "label": cmd.label,
                "argv": cmd.argv,
                "samples": [
                    {
                        "wall_s": s.wall_s,
                        "cpu_s": s.cpu_s,
                        "peak_rss_mib": s.peak_rss_mib,
                        **s.extra,
                    }
                    for s in cmd.samples
                ],
                "median_wall_s": cmd.median("wall_s"),
                "median_peak_rss_mib": cmd.median("peak_rss_mib"),
            }
            for key, cmd in cmds.items()
        },
        "results": res,
        "report": text,
    }
    # a partial run does not replace the whole bench's results
    path = WORK / ("results.json" if args.only is None else f"results-{'-'.join(args.only)}.json")
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nresults: {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
