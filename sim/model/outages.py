"""When outages and maintenance windows happen: every window of the run, drawn before it starts.

Outages and maintenance do not depend on the work (a grid fault does not wait for a quiet
hour), so every window is drawn up front from the run's random streams (one per entry): the
site's timeline takes the grid and cooling windows, and the node board takes the rest at their
times. Scheduled entries repeat ``every`` from ``at``; random ones (``mtbf``) start an
exponential time (mean ``mtbf``) after the previous one ended, the first counted from ``at``.
"""

from __future__ import annotations

from dataclasses import dataclass

from sim.config.reliability import Maintenance, Outage, parse_target
from sim.config.scenario import Scenario
from sim.inputs import Inputs
from sim.model.rng import RandomStreams
from sim.model.sampling import make_sampler


@dataclass(frozen=True, slots=True)
class Window:
    """One outage or maintenance window."""

    cause: str
    """The scenario entry: ``"outages.0"`` or ``"maintenance.1"``."""
    kind: str
    """``"grid"``, ``"cooling"``, ``"pool"`` or ``"nodes"``."""
    target: str
    """The entry's target as written."""
    start_s: float
    end_s: float
    """The scheduled end (maintenance: the start plus drain time and duration at the most)."""
    pool: int = -1
    """Pool index, for node targets."""
    nodes: tuple[int, ...] = ()
    """The nodes it takes down, for node targets."""
    capacity_left: float = 0.0
    """For cooling: the share of capacity that remains."""
    maintenance: Maintenance | None = None
    """The maintenance entry, for maintenance windows."""


def draw_windows(scn: Scenario, streams: RandomStreams, inputs: Inputs) -> list[Window]:
    """Every outage and maintenance window of the run, ordered by start (then entry)."""
    horizon = scn.scenario.duration_s
    pools = {p.name: i for i, p in enumerate(scn.pools)}
    windows: list[Window] = []
    entries: list[tuple[str, Outage | Maintenance]] = [
        (f"outages.{i}", o) for i, o in enumerate(scn.outages)
    ] + [(f"maintenance.{i}", m) for i, m in enumerate(scn.maintenance)]
    for cause, entry in entries:
        rng = streams.stream("outage", cause)
        kind, pool_name, count = parse_target(entry.target)
        draw = make_sampler(entry.duration, rng, inputs) if isinstance(entry, Outage) else None
        fixed = 0.0
        if isinstance(entry, Maintenance):
            fixed = entry.duration_s + (entry.drain_timeout_s if entry.drain else 0.0)
        pool = pools[pool_name] if pool_name is not None else -1
        mtbf = entry.mtbf_s if isinstance(entry, Outage) else None
        t = entry.at_s + (float(rng.exponential(mtbf)) if mtbf is not None else 0.0)
        k = 0
        while t < horizon:
            dur = float(draw(1)[0]) if draw is not None else fixed
            nodes: tuple[int, ...] = ()
            if kind == "pool":
                nodes = tuple(range(scn.pools[pool].nodes))
            elif kind == "nodes":
                assert count is not None
                chosen = rng.choice(scn.pools[pool].nodes, size=count, replace=False)
                nodes = tuple(sorted(int(n) for n in chosen))
            windows.append(
                Window(
                    cause,
                    kind,
                    entry.target,
                    t,
                    t + dur,
                    pool,
                    nodes,
                    entry.capacity_left if isinstance(entry, Outage) else 0.0,
                    entry if isinstance(entry, Maintenance) else None,
                )
            )
            k += 1
            if entry.every_s is not None:
                t = entry.at_s + k * entry.every_s
            elif mtbf is not None:
                t = t + dur + float(rng.exponential(mtbf))
            else:
                break
    windows.sort(key=lambda w: (w.start_s, w.cause))
    return windows
