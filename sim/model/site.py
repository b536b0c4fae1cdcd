"""The site's conditions over time: ambient, PUE, cooling capacity, other load, price and limit.

Everything in ``[facility]`` is known before the run (no randomness), so it becomes one
timeline, computed once: at each of its breakpoints the ambient temperature, the PUE, the heat
the cooling can reject, the other load, the price, any curtailment and the resulting facility
power limit, each held constant until the next breakpoint. The model walks it with one clock
entry per breakpoint.

The limit on facility power is the least of the grid connection, any active curtailment
(scheduled or price-triggered) and what the cooling allows: IT heat up to its derated capacity,
plus that heat's cooling power, plus the other load. The IT budget is what IT may draw under
it: ``(limit - other load) / PUE``.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from sim.config.facility import (
    AmbientConstant,
    AmbientDaily,
    Facility,
    PriceFlat,
    PriceTimeOfUse,
    SeriesFile,
)
from sim.config.scenario import Scenario
from sim.errors import Problem
from sim.inputs import Inputs
from sim.model.outages import Window
from sim.record import codes

INF = math.inf
DEFAULT_AMBIENT_C = 20.0
"""Ambient temperature when ``[facility.ambient]`` is left out (°C)."""

Step = tuple[np.ndarray, np.ndarray]
"""A step function: (times, values); the value at t is that of the last time ≤ t."""


def _constant(value: float) -> Step:
    return np.array([0.0]), np.array([float(value)])


def _seconds_of_day(start: datetime | None) -> float:
    """Seconds from midnight (UTC) to the scenario start; 0 without a calendar start."""
    if start is None:
        return 0.0
    return start.hour * 3600.0 + start.minute * 60.0 + start.second + start.microsecond / 1e6


def _series(spec: SeriesFile, inputs: Inputs, scale: float = 1.0) -> Step:
    series = inputs.series_of(spec)
    return series.times_s, series.values * scale


def _daily_ambient(spec: AmbientDaily, horizon_s: float, offset_s: float) -> Step:
    times = np.arange(0.0, horizon_s, spec.step_s)
    hours = ((offset_s + times + spec.step_s / 2) / 3600.0) % 24.0
    values = spec.mean_c + spec.amplitude_c * np.cos(2 * np.pi * (hours - spec.peak_hour) / 24.0)
    return times, values


def _time_of_use(spec: PriceTimeOfUse, horizon_s: float, offset_s: float) -> Step:
    """Prices at every period boundary of every day of the run."""
    bounds = sorted({h for p in spec.periods for h in p.hours} | {0.0})
    times = [0.0]
    first_day = math.floor(offset_s / 86400.0)
    last_day = math.ceil((offset_s + horizon_s) / 86400.0)
    for day in range(first_day, last_day + 1):
        for hour in bounds:
            t = day * 86400.0 + hour * 3600.0 - offset_s
            if 0.0 < t < horizon_s:
                times.append(t)
    grid = np.array(sorted(set(times)))
    hours = ((offset_s + grid) / 3600.0) % 24.0
    prices = np.full(len(grid), spec.usd_per_mwh)
    for period in spec.periods:  # later periods win where they overlap
        lo, hi = period.hours
        inside = (hours >= lo) & (hours < hi) if lo < hi else (hours >= lo) | (hours < hi)
        prices[inside] = period.usd_per_mwh
    return grid, prices


def _curtailment_windows(facility: Facility, horizon_s: float) -> Step:
    """The least scheduled curtailment limit (W) at each time; inf where none is active."""
    changes: list[tuple[float, int, float]] = []  # (time, +1 start / -1 end, limit)
    for c in facility.curtailments:
        t = c.at_s
        while t < horizon_s:
            changes.append((t, 1, c.limit_mw * 1e6))
            changes.append((t + c.duration_s, -1, c.limit_mw * 1e6))
            if c.every_s is None:
                break
            t += c.every_s
    changes.sort(key=lambda x: (x[0], x[1]))
    times, values = [0.0], [INF]
    active: list[float] = []
    ended: dict[float, int] = {}
    i = 0
    while i < len(changes):
        t = changes[i][0]
        while i < len(changes) and changes[i][0] == t:
            _, kind, limit = changes[i]
            if kind == 1:
                heapq.heappush(active, limit)
            else:
                ended[limit] = ended.get(limit, 0) + 1
            i += 1
        while active and ended.get(active[0], 0):
            ended[active[0]] -= 1
            heapq.heappop(active)
        times.append(t)
        values.append(active[0] if active else INF)
    return np.array(times), np.array(values)


def _at(step: Step, times: np.ndarray) -> np.ndarray:
    """The step function's value at each of ``times`` (its first value before its first time)."""
    t, v = step
    index = np.searchsorted(t, times, side="right") - 1
    values: np.ndarray = v[np.clip(index, 0, len(v) - 1)]
    return values


@dataclass(frozen=True)
class SiteTimeline:
    """The site's conditions, constant from each breakpoint to the next (arrays per breakpoint)."""

    times: np.ndarray
    """Breakpoints (s), from 0, increasing, before the horizon."""
    ambient_c: np.ndarray
    pue: np.ndarray
    cooling_w: np.ndarray
    """Heat the cooling can reject (W); inf without a cooling capacity."""
    other_w: np.ndarray
    """Load besides IT and cooling (W)."""
    price: np.ndarray
    """Electricity price (USD/MWh); NaN without a price."""
    curtail_w: np.ndarray
    """The active curtailment's limit (W); inf when none is."""
    limit_w: np.ndarray
    """The binding facility power limit (W); inf when there is none."""
    source: np.ndarray
    """Which limit binds (``codes.LIMIT_SOURCES``)."""
    it_budget_w: np.ndarray
    """What IT may draw under the limit (W)."""
    curtailed: np.ndarray
    """Whether a curtailment is active."""
    outage: np.ndarray
    """Whether a grid or cooling outage is under way."""
    backup: np.ndarray
    """During grid outages, what carries the site: 0 the grid, 1 the UPS, 2 the generator,
    3 nothing (no power)."""


def _merged(windows: Sequence[Window], kind: str) -> list[tuple[float, float, float]]:
    """The windows of one kind as (start, end, least capacity left), overlaps merged."""
    spans = sorted((w.start_s, w.end_s, w.capacity_left) for w in windows if w.kind == kind)
    merged: list[tuple[float, float, float]] = []
    for a, b, left in spans:
        if merged and a <= merged[-1][1]:
            a0, b0, left0 = merged[-1]
            merged[-1] = (a0, max(b, b0), min(left, left0))
        else:
            merged.append((a, b, left))
    return merged


def _grid_steps(facility: Facility, windows: Sequence[Window], horizon: float) -> tuple[Step, Step]:
    """During grid outages: the grid limit's replacement, and what carries the site.

    The first is in W (inf where the grid is up); the second is 0 grid, 1 the UPS, 2 the
    generator, 3 nothing (no power).

    The UPS carries the whole site for its minutes; the generator takes over after its start
    delay, up to its MW; where neither covers, the site has no power.
    """
    backup = facility.backup
    ups_s = backup.ups_minutes * 60.0 if backup is not None else 0.0
    gen_w = backup.generator_mw * 1e6 if backup is not None else 0.0
    gen_start = backup.generator_start_s if backup is not None else 0.0
    times, limits, states = [0.0], [INF], [0.0]
    for a, b, _ in _merged(windows, "grid"):
        pieces: list[tuple[float, float, float]] = []  # (from, limit, state)
        carried_until = a + ups_s
        if gen_w > 0:
            if gen_start <= ups_s:
                pieces += [(a, INF, 1.0), (a + gen_start, gen_w, 2.0)]
            else:
                pieces += [(a, INF, 1.0), (carried_until, 0.0, 3.0), (a + gen_start, gen_w, 2.0)]
        else:
            pieces += [(a, INF, 1.0), (carried_until, 0.0, 3.0)]
        for start, limit, state in pieces:
            if start < b and (start > a or start == a):
                if start == times[-1]:
                    limits[-1], states[-1] = limit, state
                else:
                    times.append(start)
                    limits.append(limit)
                    states.append(state)
        times.append(b)
        limits.append(INF)
        states.append(0.0)
    keep = [i for i, t in enumerate(times) if t < horizon or i == 0]
    t_arr = np.array([times[i] for i in keep])
    return (t_arr, np.array([limits[i] for i in keep])), (
        t_arr,
        np.array([states[i] for i in keep]),
    )


def _cooling_left(windows: Sequence[Window]) -> Step:
    """The share of cooling capacity left at each time (1 outside cooling outages)."""
    times, values = [0.0], [1.0]
    for a, b, left in _merged(windows, "cooling"):
        if a == times[-1]:
            values[-1] = left
        else:
            times.append(a)
            values.append(left)
        times.append(b)
        values.append(1.0)
    return np.array(times), np.array(values)


def build_timeline(scn: Scenario, inputs: Inputs, windows: Sequence[Window] = ()) -> SiteTimeline:
    """The site's conditions over the scenario's horizon, with the outages in ``windows``."""
    facility = scn.facility
    horizon = scn.scenario.duration_s
    offset = _seconds_of_day(scn.scenario.start)

    ambient = facility.ambient
    if ambient is None:
        ambient_step = _constant(DEFAULT_AMBIENT_C)
    elif isinstance(ambient, AmbientConstant):
        ambient_step = _constant(ambient.value_c)
    elif isinstance(ambient, AmbientDaily):
        ambient_step = _daily_ambient(ambient, horizon, offset)
    else:
        ambient_step = _series(ambient, inputs)

    price = facility.price
    if price is None:
        price_step = _constant(math.nan)
    elif isinstance(price, PriceFlat):
        price_step = _constant(price.usd_per_mwh)
    elif isinstance(price, PriceTimeOfUse):
        price_step = _time_of_use(price, horizon, offset)
    else:
        price_step = _series(price, inputs)

    other = facility.other_load_mw
    other_step = (
        _constant(other * 1e6) if isinstance(other, float | int) else _series(other, inputs, 1e6)
    )
    curtail_step = _curtailment_windows(facility, horizon)
    grid_step, backup_step = _grid_steps(facility, windows, horizon)
    left_step = _cooling_left(windows)

    edges = np.concatenate(
        [s[0] for s in (ambient_step, price_step, other_step, curtail_step, grid_step, left_step)]
    )
    times = np.unique(np.concatenate([[0.0], edges[(edges > 0) & (edges < horizon)]]))
    ambient_c = _at(ambient_step, times)
    prices = _at(price_step, times)
    other_w = _at(other_step, times)
    curtail_w = _at(curtail_step, times)
    backup_state = _at(backup_step, times)
    outage_grid_w = _at(grid_step, times)
    cooling_left = _at(left_step, times)
    dark = backup_state == 3.0
    other_w = np.where(dark, 0.0, other_w)  # no power: the whole site is dark
    if price is not None and price.curtail_above_usd_per_mwh is not None:
        assert price.curtail_to_mw is not None
        triggered = prices > price.curtail_above_usd_per_mwh
        curtail_w = np.where(triggered, np.minimum(curtail_w, price.curtail_to_mw * 1e6), curtail_w)

    cooling = facility.cooling
    if cooling is None:
        pue = np.full(len(times), facility.pue)
        cooling_w = np.full(len(times), INF)
    else:
        pue = np.interp(ambient_c, cooling.pue.ambient_c, cooling.pue.value)
        cooling_w = np.array([cooling.capacity_w(a) for a in ambient_c])
    # A cooling outage leaves a share of the rated capacity; with no rated capacity, only a
    # total loss is meaningful (the checks refuse a partial one).
    with np.errstate(invalid="ignore"):  # inf × 0 where the capacity is unlimited
        cooling_w = np.where(
            cooling_left < 1.0,
            np.where(cooling_left > 0.0, cooling_w * cooling_left, 0.0),
            cooling_w,
        )

    grid_w = facility.grid_mw * 1e6 if facility.grid_mw is not None else INF
    candidates = np.stack(
        [
            np.full(len(times), INF),
            np.where(backup_state >= 2.0, outage_grid_w, grid_w),
            curtail_w,
            np.where(np.isfinite(cooling_w), cooling_w * pue + other_w, INF),
        ]
    )
    source = np.argmin(candidates, axis=0).astype(np.int64)
    limit_w = candidates[source, np.arange(len(times))]
    on_backup = source == codes.LIMIT_GRID
    source = np.where(on_backup & (backup_state == 2.0), codes.LIMIT_GENERATOR, source)
    source = np.where(dark, codes.LIMIT_NO_POWER, source)
    it_budget_w = np.where(np.isfinite(limit_w), np.maximum(limit_w - other_w, 0.0) / pue, INF)
    return SiteTimeline(
        times=times,
        ambient_c=ambient_c,
        pue=pue,
        cooling_w=cooling_w,
        other_w=other_w,
        price=prices,
        curtail_w=curtail_w,
        limit_w=limit_w,
        source=source,
        it_budget_w=it_budget_w,
        curtailed=np.isfinite(curtail_w),
        outage=(backup_state != 0.0) | (cooling_left < 1.0),
        backup=backup_state.astype(np.int64),
    )


LIMIT_KEYS = {
    codes.LIMIT_GRID: "facility.grid_mw",
    codes.LIMIT_CURTAILMENT: "facility.curtailments",
    codes.LIMIT_COOLING: "facility.cooling.capacity_mw",
}
"""The scenario key behind each kind of limit, for messages."""


def idle_floor_w(scn: Scenario) -> float:
    """IT power with every GPU idle and every node on (W): what the power ladder cannot shed."""
    return sum(p.nodes * p.node_overhead_w + p.gpus * scn.pool_gpu(p).idle_w for p in scn.pools)


def floor_problems(scn: Scenario, timeline: SiteTimeline) -> list[Problem]:
    """A problem if the limit ever falls below the site's idle draw (which nothing can shed)."""
    floor = idle_floor_w(scn)
    need = floor * timeline.pue + timeline.other_w
    # During outages the site powers nodes off (README, "Outages"); elsewhere that is an error.
    short = np.flatnonzero((need > timeline.limit_w * (1 + 1e-12)) & ~timeline.outage)
    if not len(short):
        return []
    k = int(short[0])
    t = float(timeline.times[k])
    source = int(timeline.source[k])
    key = LIMIT_KEYS.get(source, "facility")
    if source == codes.LIMIT_CURTAILMENT:
        key = _curtailment_key(scn, t, float(timeline.curtail_w[k]))
    when = f"{t:g} s"
    if scn.scenario.start is not None:
        when += f" ({(scn.scenario.start + timedelta(seconds=t)):%Y-%m-%d %H:%M} UTC)"
    return [
        Problem(
            key,
            f"at {when} the facility limit is {timeline.limit_w[k] / 1000:.1f} kW "
            f"({codes.LIMIT_SOURCES[source]}), below the site's idle draw of "
            f"{need[k] / 1000:.1f} kW (every GPU idle, every node on, with cooling and other "
            f"load; {len(short)} such period(s) in all). The power ladder holds, caps and "
            "suspends work but cannot shed idle draw: raise the limit or remove nodes",
        )
    ]


def _curtailment_key(scn: Scenario, t: float, limit_w: float) -> str:
    """The key of the curtailment that sets ``limit_w`` at ``t``."""
    price = scn.facility.price
    if (
        price is not None
        and price.curtail_to_mw is not None
        and price.curtail_to_mw * 1e6 == limit_w
    ):
        return "facility.price.curtail_to_mw"
    for i, c in enumerate(scn.facility.curtailments):
        offset = t - c.at_s
        if c.limit_mw * 1e6 == limit_w and offset >= 0:
            phase = offset % c.every_s if c.every_s is not None else offset
            if phase < c.duration_s:
                return f"facility.curtailments.{i}.limit_mw"
    return "facility.curtailments"


def hold_warnings(scn: Scenario, timeline: SiteTimeline) -> list[Problem]:
    """Training workloads whose jobs never fit the IT budget at their pools' own caps.

    The ladder holds new work before it caps running work, so such a job waits for ever (on
    an otherwise idle site) unless the pool's ``power_cap_w`` is lowered.
    """
    from sim.config.scenario import TrainingWorkload

    most = float(np.max(timeline.it_budget_w))
    floor = idle_floor_w(scn)
    warnings = []
    for wl in scn.workloads:
        if not isinstance(wl, TrainingWorkload):
            continue
        pools = [p for p in scn.pools if wl.pool is None or p.name == wl.pool]
        extras = []
        for p in pools:
            gpu = scn.pool_gpu(p)
            # Jobs of varying size: the smallest, one GPU.
            extras.append(((p.cap_w(gpu) - gpu.idle_w) * (wl.fixed_gpus or 1), p.name))
        if not extras:
            continue
        extra, name = min(extras)
        if floor + extra > most:
            warnings.append(
                Problem(
                    f"workloads.{wl.name}.gpus",
                    f"a job draws {extra / 1000:.1f} kW more than the idle site at its pool's "
                    f"cap ({name}), more than the IT budget ever leaves "
                    f"({max(most - floor, 0.0) / 1000:.1f} kW above the idle draw): its jobs "
                    "will never start, since the power ladder holds new work before it caps "
                    "running work. Lower the pool's power_cap_w or raise the limit",
                    related=(f"pools.{name}.power_cap_w",),
                )
            )
    return warnings
