"""Arrival streams for the scenario's arrival processes, registered by their specs' names.

A stream hands out absolute arrival times (seconds, ascending) in chunks, so that high-volume
workloads draw them with one NumPy call per chunk; an empty chunk means no more arrivals.
Chunks grow (256, 1024, ... up to 8,192) so short runs do not draw far past their horizon.

Every stream factory takes the spec, its random generator and a ``StreamContext``: the run's
data files (a trace's times) and its local calendar (a daily profile's hours), built only when
a stream asks for it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Any, Protocol

import numpy as np

from sim.calendar import LocalCalendar
from sim.config import arrivals as a
from sim.config.arrivals import TRACE_MARKS as TRACE_MARKS  # the mark names, re-exported
from sim.inputs import Inputs, trace_period
from sim.registry import Registry

FIRST_CHUNK = 256
LARGEST_CHUNK = 8192


class ArrivalStream(Protocol):
    """Arrival times in ascending chunks."""

    def next_chunk(self) -> list[float]:
        """The next arrival times; empty when the process has no more."""
        ...


NO_START = datetime(1970, 1, 5, tzinfo=UTC)
"""The calendar of a scenario without ``start``: a Monday, 00:00 UTC."""


@dataclass
class StreamContext:
    """What a stream may need of the run besides its spec and generator."""

    inputs: Inputs = field(default_factory=Inputs)
    """The data files read for the run (a trace's times)."""
    start: datetime | None = None
    """``scenario.start``; None: the run starts on a Monday at 00:00 (``NO_START``)."""
    timezone: str | None = None
    """``scenario.timezone`` (None: UTC)."""
    horizon_s: float = 0.0
    """The run's horizon, to prepare the calendar for."""

    @cached_property
    def calendar(self) -> LocalCalendar:
        """The local calendar of the run, built on first use."""
        return LocalCalendar(self.start or NO_START, self.timezone, self.horizon_s)


StreamFactory = Callable[[Any, np.random.Generator, StreamContext], ArrivalStream]
ARRIVAL_STREAMS: Registry[StreamFactory] = Registry("arrival stream")


class _Chunks:
    """Chunk sizes that grow by four up to LARGEST_CHUNK."""

    def __init__(self) -> None:
        self.size = FIRST_CHUNK

    def take(self) -> int:
        size = self.size
        self.size = min(size * 4, LARGEST_CHUNK)
        return size


@ARRIVAL_STREAMS.register("poisson")
class PoissonStream:
    """Exponential gaps at a constant rate."""

    def __init__(self, spec: a.Poisson, rng: np.random.Generator, ctx: StreamContext) -> None:
        self.mean_gap = 1.0 / spec.rate_hz
        self.rng = rng
        self.last = 0.0
        self.chunks = _Chunks()

    def next_chunk(self) -> list[float]:
        """The next chunk of arrival times."""
        times = np.cumsum(self.rng.exponential(self.mean_gap, self.chunks.take())) + self.last
        self.last = float(times[-1])
        out: list[float] = times.tolist()
        return out


@ARRIVAL_STREAMS.register("deterministic")
class PeriodicStream:
    """``offset + k × interval`` for k = 0, 1, 2, ..."""

    def __init__(self, spec: a.Periodic, rng: np.random.Generator, ctx: StreamContext) -> None:
        self.spec = spec
        self.k = 0
        self.chunks = _Chunks()

    def next_chunk(self) -> list[float]:
        """The next chunk of arrival times."""
        n = self.chunks.take()
        ks = np.arange(self.k, self.k + n, dtype=np.float64)
        self.k += n
        out: list[float] = (self.spec.offset_s + ks * self.spec.interval_s).tolist()
        return out


@ARRIVAL_STREAMS.register("at")
class ListedStream:
    """The listed times, sorted, then nothing."""

    def __init__(self, spec: a.At, rng: np.random.Generator, ctx: StreamContext) -> None:
        self.times: list[float] = sorted(spec.times_s)

    def next_chunk(self) -> list[float]:
        """All times at once, then an empty chunk."""
        times, self.times = self.times, []
        return times


@ARRIVAL_STREAMS.register("daily")
class DailyStream:
    """Thinning: candidates at the peak rate, each kept with probability rate(t) / peak.

    The local hour and weekday of every candidate come from the run's calendar in one
    vectorised lookup per chunk (DST-correct).
    """

    def __init__(self, spec: a.Daily, rng: np.random.Generator, ctx: StreamContext) -> None:
        self.peak = spec.peak_hz
        self.mean_gap = 1.0 / self.peak
        # Acceptance probability by (weekday, hour), flattened: weekday * 24 + hour.
        factors = np.outer(np.asarray(spec.weekdays), np.asarray(spec.hourly))
        self.keep = (factors * spec.rate_hz / self.peak).ravel()
        self.calendar = ctx.calendar
        self.start_us = round(self.calendar.start_epoch * 1e6)
        self.rng = rng
        self.last = 0.0
        self.chunks = _Chunks()

    def next_chunk(self) -> list[float]:
        """The next chunk of arrival times (never empty: the rate is > 0 some hour each week)."""
        while True:
            times = np.cumsum(self.rng.exponential(self.mean_gap, self.chunks.take())) + self.last
            self.last = float(times[-1])
            u = self.rng.random(len(times))
            local_us = self.calendar.local_epoch_us(np.floor(times * 1e6) + self.start_us)
            hour = local_us // 3_600_000_000 % 24
            weekday = (local_us // 86_400_000_000 + 3) % 7  # 1970-01-01 was a Thursday
            kept = times[u < self.keep[weekday * 24 + hour]]
            if len(kept):
                out: list[float] = kept.tolist()
                return out


@ARRIVAL_STREAMS.register("mmpp")
class MmppStream:
    """State sojourns drawn in batches; each sojourn's arrivals as a Poisson count, uniform.

    The states visited are a cumulative sum of uniform jumps (1 to n - 1 states on, modulo n),
    so a batch of sojourns costs a few NumPy calls. Sojourns expected to hold more than
    ``LARGEST_CHUNK`` arrivals are cut into pieces (the counts of disjoint pieces are
    independent), and pieces are handed out until a chunk's expected size is reached.
    """

    SOJOURNS = 64

    def __init__(self, spec: a.Mmpp, rng: np.random.Generator, ctx: StreamContext) -> None:
        self.rates = np.asarray(spec.rates_per_s, dtype=np.float64)
        self.sojourns = np.asarray(spec.mean_sojourn_s, dtype=np.float64)
        self.n = len(self.rates)
        self.state = spec.initial_state
        self.rng = rng
        self.t = 0.0
        self.chunks = _Chunks()
        empty = np.empty(0)
        self.starts, self.lengths, self.piece_rates = empty, empty, empty

    def _more_pieces(self) -> None:
        """Draw the next batch of sojourns (the first in the current state), as pieces."""
        rng, n = self.rng, self.n
        jumps = 1 + rng.integers(0, n - 1, self.SOJOURNS - 1)
        states = (self.state + np.concatenate(([0], np.cumsum(jumps)))) % n
        self.state = int((states[-1] + 1 + rng.integers(0, n - 1)) % n)
        lengths = rng.exponential(self.sojourns[states])
        rates = self.rates[states]
        starts = self.t + np.concatenate(([0.0], np.cumsum(lengths)[:-1]))
        self.t = float(starts[-1] + lengths[-1])
        pieces = np.maximum(1, np.ceil(rates * lengths / LARGEST_CHUNK)).astype(np.int64)
        if int(pieces.max()) > 1:
            idx = np.repeat(np.arange(len(states)), pieces)
            first = np.concatenate(([0], np.cumsum(pieces)[:-1]))
            part = np.arange(len(idx)) - np.repeat(first, pieces)
            size = lengths[idx] / pieces[idx]
            starts, lengths, rates = starts[idx] + part * size, size, rates[idx]
        self.starts = np.concatenate((self.starts, starts))
        self.lengths = np.concatenate((self.lengths, lengths))
        self.piece_rates = np.concatenate((self.piece_rates, rates))

    def next_chunk(self) -> list[float]:
        """The next chunk of arrival times."""
        target = self.chunks.take()
        while True:
            if not len(self.starts):
                self._more_pieces()
            expected = np.cumsum(self.piece_rates * self.lengths)
            k = min(int(np.searchsorted(expected, target)) + 1, len(self.starts))
            starts, lengths, rates = self.starts[:k], self.lengths[:k], self.piece_rates[:k]
            self.starts, self.lengths = self.starts[k:], self.lengths[k:]
            self.piece_rates = self.piece_rates[k:]
            counts = self.rng.poisson(rates * lengths)
            total = int(counts.sum())
            if total:
                times = np.repeat(starts, counts) + np.repeat(lengths, counts) * self.rng.random(
                    total
                )
                out: list[float] = np.sort(times).tolist()  # pieces are disjoint and ascending
                return out


@ARRIVAL_STREAMS.register("trace")
class TraceStream:
    """The file's times, shifted and scaled, in chunks; with ``loop``, again and again.

    With ``columns``, ``chunk_marks()`` gives the marks of the rows of the last chunk.
    """

    def __init__(self, spec: a.Trace, rng: np.random.Generator, ctx: StreamContext) -> None:
        self.relative = ctx.inputs.trace_of(spec)
        self.marks = ctx.inputs.marks_of(spec)
        self.rows = slice(0, 0)
        self.offset = spec.offset_s
        self.speedup = spec.speedup
        self.period = trace_period(self.relative) if spec.loop else math.inf
        self.rep = 0
        self.i = 0
        self.chunks = _Chunks()

    def next_chunk(self) -> list[float]:
        """The next chunk of arrival times; empty after the last row (without ``loop``)."""
        if self.i >= len(self.relative):
            if not math.isfinite(self.period):
                self.rows = slice(0, 0)
                return []
            self.rep += 1
            self.i = 0
        j = min(self.i + self.chunks.take(), len(self.relative))
        self.rows = slice(self.i, j)
        rows = self.relative[self.rows]
        self.i = j
        shift = self.rep * self.period if self.rep else 0.0
        out: list[float] = (self.offset + (rows + shift) / self.speedup).tolist()
        return out

    def chunk_marks(self) -> dict[str, np.ndarray]:
        """The marks (float64) of the rows of the chunk ``next_chunk`` last returned, by name.

        Same order and length as that chunk; a looped trace repeats its rows' marks. Empty
        without ``columns``.
        """
        rows = self.rows
        return {mark: values[rows] for mark, values in self.marks.items()}


def marks_of(stream: ArrivalStream) -> dict[str, np.ndarray]:
    """The marks of the rows of ``stream``'s last chunk (``TraceStream.chunk_marks``).

    ``{}`` for streams without marks.
    """
    chunk_marks = getattr(stream, "chunk_marks", None)
    if chunk_marks is None:
        return {}
    marks: dict[str, np.ndarray] = chunk_marks()
    return marks


def make_stream(
    spec: Any, rng: np.random.Generator, ctx: StreamContext | None = None
) -> ArrivalStream:
    """The arrival stream for an arrival-process spec (``ctx``: the run's data and calendar)."""
    return ARRIVAL_STREAMS[spec.process](spec, rng, ctx if ctx is not None else StreamContext())
