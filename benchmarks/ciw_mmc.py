"""The benchmark queue of ``benchmarks/mmc_1m.toml`` simulated with ciw 3.2.7.

M/M/8 at utilisation 0.9: Poisson arrivals at 7.2/s, exponential service with mean 1 s, 8
servers, for 138,889 s (about 1,000,000 customers). Collects every record, as a user of ciw
would, and prints one JSON line: customers simulated, served, mean wait (after the warm-up)
and the time spent simulating. `benchmarks/bench.py` runs it as a whole process to compare
its wall time and peak memory with `sim run benchmarks/mmc_1m.toml`.

Usage: python benchmarks/ciw_mmc.py [--horizon S] [--seed N]
"""

from __future__ import annotations

import argparse
import json
import time

import ciw

ARRIVAL_RATE = 7.2  # per second
SERVICE_RATE = 1.0  # per second: mean service 1 s
SERVERS = 8
HORIZON_S = 138_889.0  # as benchmarks/mmc_1m.toml: about 1,000,000 arrivals
WARMUP_S = 3600.0  # as benchmarks/mmc_1m.toml: warmup = "1h"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--horizon", type=float, default=HORIZON_S, help="simulated seconds")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    t0 = time.perf_counter()
    ciw.seed(args.seed)
    network = ciw.create_network(
        arrival_distributions=[ciw.dists.Exponential(rate=ARRIVAL_RATE)],
        service_distributions=[ciw.dists.Exponential(rate=SERVICE_RATE)],
        number_of_servers=[SERVERS],
    )
    simulation = ciw.Simulation(network)
    simulation.simulate_until_max_time(args.horizon)
    records = simulation.get_all_records()
    t1 = time.perf_counter()

    customers = len(simulation.get_all_individuals())
    waits = [r.waiting_time for r in records if r.arrival_date >= WARMUP_S]
    print(
        json.dumps(
            {
                "engine": f"ciw {ciw.__version__}",
                "horizon_s": args.horizon,
                "customers": customers,
                "served": len(records),
                "wait_mean_s": sum(waits) / len(waits) if waits else None,
                "simulate_s": round(t1 - t0, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
