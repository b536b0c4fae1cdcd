"""The bill: demand intervals and billing months, and curtailments' shed against a baseline.

Pure bookkeeping on the facility energy (J) and cost (USD) the power ledger settles: nothing
here schedules or reads the clock.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from sim.model.site import SiteTimeline

J_PER_MWH = 3.6e9
MONTH_S = 30 * 86400.0
"""A billing month without a calendar ``start``: 30 days from the start."""


class Billing:
    """Peak demand per billing month, from the facility energy at each demand interval's end.

    Intervals are on the clock (UTC multiples of the interval from the epoch) with a calendar
    start, from the run's start without one, and also end at each month's start, so no
    interval is billed to two months. Months are calendar months (UTC), or 30-day periods
    without a start. The demand charge is prorated by the share of the month simulated.
    """

    def __init__(self, start: datetime | None, interval_s: float, usd_per_kw_month: float) -> None:
        self.start = start
        self.interval_s = interval_s
        self.rate = usd_per_kw_month
        self.months: dict[str, list[float]] = {}
        """Per month: [start s, seconds simulated, peak kW, peak at s, facility J, cost USD,
        month length s]."""
        self._open = (0.0, 0.0, 0.0)  # the open interval's (start, facility J, cost)

    def month(self, t: float) -> tuple[str, float, float]:
        """The billing month holding ``t``: its label, start and length (s from the start)."""
        if self.start is None:
            m = int(t // MONTH_S)
            return f"month-{m + 1}", m * MONTH_S, MONTH_S
        when = self.start + timedelta(seconds=t)
        first = datetime(when.year, when.month, 1, tzinfo=UTC)
        nxt = datetime(when.year + when.month // 12, when.month % 12 + 1, 1, tzinfo=UTC)
        begin = (first - self.start).total_seconds()
        return f"{when.year:04d}-{when.month:02d}", begin, (nxt - first).total_seconds()

    def next_boundary(self, t: float) -> float:
        """The next end of a demand interval after ``t``."""
        iv = self.interval_s
        offset = self.start.timestamp() if self.start is not None else 0.0
        boundary = (math.floor((offset + t) / iv + 1e-9) + 1) * iv - offset
        _, begin, length = self.month(t)
        return min(boundary, begin + length)

    def close(self, t: float, facility_j: float, cost_usd: float) -> None:
        """End the open interval at ``t``, given the cumulative energy and cost there."""
        t0, e0, c0 = self._open
        if t <= t0:
            return
        kw = (facility_j - e0) / (t - t0) / 1000.0
        label, begin, length = self.month(t0)
        row = self.months.setdefault(label, [begin, 0.0, 0.0, t0, 0.0, 0.0, length])
        row[1] += t - t0
        if kw > row[2]:
            row[2], row[3] = kw, t0
        row[4] += facility_j - e0
        row[5] += cost_usd - c0
        self._open = (t, facility_j, cost_usd)

    def rows(self) -> Iterator[tuple[str, float, float, float, float, float, float, float]]:
        """(month, start s, simulated s, peak kW, peak at s, facility MWh, cost, demand charge)."""
        for label, (begin, seconds, peak, peak_at, energy, cost, length) in self.months.items():
            charge = peak * self.rate * seconds / length
            yield label, begin, seconds, peak, peak_at, energy / J_PER_MWH, cost, charge


class CurtailmentShed:
    """Facility energy each curtailment shed against the previous-window baseline.

    The baseline of a curtailment is the average facility power over the window of the same
    length just before it, as demand response measures it. Only curtailments starting after
    the warm-up with a full baseline window (from time 0 on) count.
    """

    def __init__(self, timeline: SiteTimeline, warmup_s: float, horizon_s: float) -> None:
        self.horizon = horizon_s
        self.runs: list[tuple[float, float]] = []
        curtailed = timeline.curtailed
        n = len(timeline.times)
        k = 0
        while k < n:
            if not curtailed[k]:
                k += 1
                continue
            j = k
            while j + 1 < n and curtailed[j + 1]:
                j += 1
            a = float(timeline.times[k])
            b = float(timeline.times[j + 1]) if j + 1 < n else horizon_s
            k = j + 1
            if a >= warmup_s and 2 * a - b >= 0:
                self.runs.append((a, b))
        self.energy_at: dict[float, float] = {}

    def marks(self) -> list[float]:
        """The times the facility energy must be recorded at (before the horizon)."""
        times = {t for a, b in self.runs for t in (2 * a - b, a, b)}
        return sorted(t for t in times if t < self.horizon)

    def record(self, t: float, facility_j: float) -> None:
        """The cumulative facility energy at one of the marks."""
        self.energy_at[t] = facility_j

    def total_j(self, final_facility_j: float) -> float:
        """The energy shed by every curtailment (J), given the energy at the horizon."""
        self.energy_at.setdefault(self.horizon, final_facility_j)
        total = 0.0
        for a, b in self.runs:
            before = self.energy_at[a] - self.energy_at[2 * a - b]
            during = self.energy_at[b] - self.energy_at[a]
            total += max(before - during, 0.0)
        return total
