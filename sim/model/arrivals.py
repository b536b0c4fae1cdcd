"""Arrival streams for the scenario's arrival processes, registered by their specs' names.

A stream hands out absolute arrival times (seconds, ascending) in chunks, so that high-volume
workloads draw them with one NumPy call per chunk; an empty chunk means no more arrivals.
Chunks grow (256, 1024, ... up to 8,192) so short runs do not draw far past their horizon.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from sim.config import arrivals as a
from sim.registry import Registry

FIRST_CHUNK = 256
LARGEST_CHUNK = 8192


class ArrivalStream(Protocol):
    """Arrival times in ascending chunks."""

    def next_chunk(self) -> list[float]:
        """The next arrival times; empty when the process has no more."""
        ...


StreamFactory = Callable[[Any, np.random.Generator], ArrivalStream]
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

    def __init__(self, spec: a.Poisson, rng: np.random.Generator) -> None:
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

    def __init__(self, spec: a.Periodic, rng: np.random.Generator) -> None:
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

    def __init__(self, spec: a.At, rng: np.random.Generator) -> None:
        self.times: list[float] = sorted(spec.times_s)

    def next_chunk(self) -> list[float]:
        """All times at once, then an empty chunk."""
        times, self.times = self.times, []
        return times


def make_stream(spec: Any, rng: np.random.Generator) -> ArrivalStream:
    """The arrival stream for an arrival-process spec."""
    return ARRIVAL_STREAMS[spec.process](spec, rng)
