"""`make bench`: the simulator's speed and memory, measured as whole processes.

Each command runs as its own child process (``subprocess.Popen``); its wall time is taken
around it and its peak resident memory comes from ``os.wait4`` (``ru_maxrss``, KiB on Linux).
Measurements, against the targets in DESIGN.md ("Performance"):

a. the M/M/8 queue of ``benchmarks/mmc_1m.toml`` (about 1,000,000 requests, all Parquet
   output written) against ciw 3.2.7 simulating the same queue (``benchmarks/ciw_mmc.py``):
   sim must be at least 4x faster per request (aim 8x) and use less memory;
b. memory against horizon: the same queue at about 250,000 and 1,000,000 requests; peak
   memory must grow no faster than the rows recorded;
c. scaling: a month of a 2,000-node training cluster (``benchmarks/training_month.toml``)
   against a 200-node month with a tenth of every arrival rate; time should grow with the
   work (about 10x), not with work x cluster size (100x);
d. the default scenario's wall time (``scenarios/default.toml``);

plus the start-up cost (a one-minute run of ``scenarios/mmc.toml``), to read the others by.
With ``--repeat N`` the commands alternate, round by round, and medians are reported.
Everything is written to ``benchmarks/.work/results.json``.

Usage: python benchmarks/bench.py [--repeat N] [--skip-ciw] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
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
DEFAULT = ROOT / "scenarios" / "default.toml"
SMALL_MMC = ROOT / "scenarios" / "mmc.toml"

MMC_HORIZON_S = 138_889.0  # benchmarks/mmc_1m.toml: about 1,000,000 requests at 7.2/s
MMC_QUARTER_S = 34_722.0  # about 250,000 requests
TRAINING_NODES_LARGE = 2000  # training_month.toml
TRAINING_NODES_SMALL = 200  # against the 2,000 of training_month.toml
SCALE_DOWN = 10  # the small cluster gets a tenth of every arrival rate

# Targets (DESIGN.md, "Performance").
SPEEDUP_MIN = 4.0  # sim per request vs ciw, with all Parquet output written
SPEEDUP_AIM = 8.0
# Scaling: work x cluster size would give a time ratio of ~100; a ratio within twice the
# work ratio (so <= ~20) passes as "grows with the work".
SCALING_SLACK = 2.0

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
    json_stdout: bool = False  # ciw_mmc.py prints one JSON line
    samples: list[Sample] = field(default_factory=list)

    def median(self, name: str) -> float:
        """The median of a figure over the samples (a Sample field or an ``extra`` key)."""
        values = [s.extra[name] if name in s.extra else getattr(s, name) for s in self.samples]
        return float(statistics.median(v for v in values if v is not None))

    def has(self, name: str) -> bool:
        """Whether the samples carry a figure (in ``extra``) with a value."""
        return any(s.extra.get(name) is not None for s in self.samples)


def sim_run(key: str, label: str, scenario: Path, *overrides: str) -> Command:
    """A ``sim run --quiet`` of ``scenario`` into ``benchmarks/.work/<key>``."""
    out = WORK / key
    argv = [SIM, "run", "--quiet", str(scenario), "--out", str(out)]
    for item in overrides:
        argv += ["--set", item]
    return Command(key, label, argv, out_dir=out)


def measure(cmd: Command) -> Sample:
    """Run ``cmd`` as a child process; its wall time, CPU time and peak RSS."""
    WORK.mkdir(parents=True, exist_ok=True)
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
    mmc_quarter = MMC_QUARTER_S * scale
    days = 30 * scale
    full_set = [f"scenario.duration={mmc_full:g}"] if args.quick else []
    month_set = [f"scenario.duration={days:g}d"] if args.quick else []
    n_full, n_quarter = count(mmc_full * 7.2), count(mmc_quarter * 7.2)
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
            "mmc_quarter", f"sim M/M/8, {n_quarter} req", MMC, f"scenario.duration={mmc_quarter:g}"
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
    ]
    return {c.key: c for c in cmds}


def verdict(ok: bool) -> str:
    """PASS or FAIL."""
    return "PASS" if ok else "FAIL"


def analyse(cmds: dict[str, Command]) -> dict[str, Any]:
    """The figures and verdicts derived from the medians."""
    res: dict[str, Any] = {}
    startup = cmds["startup"]
    res["startup"] = {
        "wall_s": startup.median("wall_s"),
        "peak_rss_mib": startup.median("peak_rss_mib"),
    }

    sim = cmds["mmc"]
    sim_req = sim.median("requests")
    sim_rate = sim_req / sim.median("wall_s")
    a: dict[str, Any] = {
        "sim_requests": sim_req,
        "sim_wall_s": sim.median("wall_s"),
        "sim_inproc_s": sim.median("inproc_s"),
        "sim_requests_per_s": sim_rate,
        "sim_peak_rss_mib": sim.median("peak_rss_mib"),
        "sim_wait_mean_s": sim.median("request_wait_mean_s"),
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

    quarter = cmds["mmc_quarter"]
    rows_ratio = sim.median("rows_total") / quarter.median("rows_total")
    mem_ratio = sim.median("peak_rss_mib") / quarter.median("peak_rss_mib")
    d_rows = sim.median("rows_total") - quarter.median("rows_total")
    d_mem = (sim.median("peak_rss_mib") - quarter.median("peak_rss_mib")) * MIB
    res["b_memory_vs_horizon"] = {
        "small_requests": quarter.median("requests"),
        "small_peak_rss_mib": quarter.median("peak_rss_mib"),
        "small_wall_s": quarter.median("wall_s"),
        "large_requests": sim_req,
        "large_peak_rss_mib": sim.median("peak_rss_mib"),
        "rows_ratio": rows_ratio,
        "memory_ratio": mem_ratio,
        "bytes_per_extra_row": d_mem / d_rows if d_rows else None,
        "verdict": verdict(mem_ratio <= rows_ratio),
    }

    big, small = cmds["train_2000"], cmds["train_200"]
    work_ratio = big.median("jobs") / small.median("jobs")
    wall_ratio = big.median("wall_s") / small.median("wall_s")
    inproc_ratio = big.median("inproc_s") / small.median("inproc_s")
    res["c_scaling"] = {
        "large_nodes": TRAINING_NODES_LARGE,
        "small_nodes": TRAINING_NODES_SMALL,
        "large_jobs": big.median("jobs"),
        "small_jobs": small.median("jobs"),
        "large_events": big.samples[-1].extra["rows"]["events"],
        "small_events": small.samples[-1].extra["rows"]["events"],
        "large_wall_s": big.median("wall_s"),
        "small_wall_s": small.median("wall_s"),
        "large_inproc_s": big.median("inproc_s"),
        "small_inproc_s": small.median("inproc_s"),
        "large_jobs_per_s": big.median("jobs") / big.median("wall_s"),
        "small_jobs_per_s": small.median("jobs") / small.median("wall_s"),
        "large_peak_rss_mib": big.median("peak_rss_mib"),
        "small_peak_rss_mib": small.median("peak_rss_mib"),
        "large_gpu_utilization": big.median("gpu_utilization"),
        "small_gpu_utilization": small.median("gpu_utilization"),
        "large_job_wait_mean_s": big.median("job_wait_mean_s"),
        "small_job_wait_mean_s": small.median("job_wait_mean_s"),
        "work_ratio": work_ratio,
        "wall_ratio": wall_ratio,
        "inproc_ratio": inproc_ratio,
        "verdict": verdict(inproc_ratio <= SCALING_SLACK * work_ratio),
    }

    default = cmds["default"]
    res["d_default"] = {
        "wall_s": default.median("wall_s"),
        "inproc_s": default.median("inproc_s"),
        "peak_rss_mib": default.median("peak_rss_mib"),
        "rows": default.samples[-1].extra["rows"],
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
        ("run", "wall s", "in-proc s", "peak MiB", "requests", "jobs", "per s", "util")
    ]
    for cmd in cmds.values():
        req = cmd.median("requests") if cmd.has("requests") else 0
        jobs = cmd.median("jobs") if cmd.has("jobs") else 0
        wall = cmd.median("wall_s")
        rows.append(
            (
                cmd.label,
                f"{wall:.2f}",
                f"{cmd.median('inproc_s'):.2f}" if cmd.has("inproc_s") else "",
                f"{cmd.median('peak_rss_mib'):.0f}",
                f"{req:,.0f}" if req else "",
                f"{jobs:,.0f}" if jobs else "",
                f"{(req + jobs) / wall:,.0f}" if req + jobs else "",
                f"{cmd.median('gpu_utilization'):.3f}" if cmd.has("gpu_utilization") else "",
            )
        )
    out = [
        table(rows),
        "wall s and peak MiB: the whole process; in-proc s: sim's manifest wall_time_s (simulation"
        " and summary,",
        "before Parquet writing), ciw's simulation and get_all_records; per s: (requests + jobs)"
        " / wall s.",
        "",
    ]
    a = res["a_vs_ciw"]
    if "speedup" in a:
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
            "(Erlang C: 0.883 s)"
        )
    else:
        out.append(f"a. speed: sim {a['sim_requests_per_s']:,.0f} req/s (ciw skipped)")
    b = res["b_memory_vs_horizon"]
    out.append(
        f"b. memory vs horizon: {b['small_requests']:,.0f} -> {b['large_requests']:,.0f} requests: "
        f"rows x{b['rows_ratio']:.2f}, peak memory x{b['memory_ratio']:.2f} "
        f"({b['small_peak_rss_mib']:.0f} -> {b['large_peak_rss_mib']:.0f} MiB, "
        f"{b['bytes_per_extra_row']:.0f} B per extra row) {b['verdict']}"
    )
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
        f"gpu_utilization {c['large_gpu_utilization']:.3f} vs {c['small_gpu_utilization']:.3f}"
    )
    d = res["d_default"]
    out.append(
        f"d. default scenario: {d['wall_s']:.2f} s wall ({d['inproc_s']:.2f} s in-process), "
        f"{d['peak_rss_mib']:.0f} MiB"
    )
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
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if not Path(SIM).exists():
        parser.error(f"{SIM} not found: run with the project's venv python (make bench)")

    cmds = build_commands(args)
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
    path = WORK / "results.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nresults: {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
