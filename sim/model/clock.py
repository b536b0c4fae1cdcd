"""The one clock: every subsystem schedules through it, and simultaneous events follow one rule.

``Clock`` is a SimPy ``Environment`` whose queue also holds plain timed callbacks, so a
wake-up costs one heap entry, not an event object and a generator. Every entry carries a
priority made of a *phase* and a *key*; at one instant entries run in phase order:

1. ``FREE``: work ends and frees resources (requests and jobs complete);
2. ``SITE``: the site's state changes (failures, repairs, limits);
3. ``ARRIVE``: requests and jobs arrive;
4. ``DECIDE``: the scheduler decides, once, over everything that arrived or was freed;
5. ``OBSERVE``: observers (the sampler, the warm-up marker, the progress bar) look.

Within a phase, entries run by key, a workload's rank in the name-sorted list of workloads
(so the order of ``[[workloads]]`` in a file never matters), then in the order they were
scheduled. SimPy processes may still be used for rare actors; they wait on ``clock.at(...)``
events, which carry a phase like everything else.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from heapq import heappop, heappush
from types import MethodType
from typing import Any, cast

import simpy
from simpy.core import EmptySchedule
from simpy.events import Event

INF = float("inf")

FREE, SITE, ARRIVE, DECIDE, OBSERVE = range(2, 7)
"""Phases, in the order they run at one instant (after SimPy's own URGENT 0 and NORMAL 1)."""

Entry = tuple[float, int, int, Any]
"""A queue entry: (time, priority, sequence number, what): a SimPy event, a callable, or an
(alarm, generation) pair."""
KEY_BITS = 24


def priority(phase: int, key: int = 0) -> int:
    """The queue priority of an entry of ``phase`` with tie-break ``key`` (0 ≤ key < 2**24)."""
    return (phase << KEY_BITS) | key


def name_ranks(names: Sequence[str]) -> list[int]:
    """Each name's rank in sorted order: the tie-break keys of workloads, independent of order."""
    order = sorted(range(len(names)), key=lambda i: names[i])
    ranks = [0] * len(names)
    for rank, i in enumerate(order):
        ranks[i] = rank + 1  # 0 is left for site-wide entries
    return ranks


class Alarm:
    """A callback that can be set, reset and cancelled; only its latest setting fires.

    Setting it again retires the previous entry through a generation number, so waking an
    engine from outside never starts a second chain of wake-ups.
    """

    __slots__ = ("_clock", "callback", "generation", "priority", "time")

    def __init__(self, clock: Clock, callback: Callable[[], Any], prio: int) -> None:
        self._clock = clock
        self.callback = callback
        self.priority = prio
        self.generation = 0
        self.time = INF

    def set(self, t: float, prio: int | None = None) -> None:
        """Fire at ``t`` (now if earlier), with ``prio`` if given; any earlier setting is void."""
        if prio is not None:
            self.priority = prio
        self.generation += 1
        clock = self._clock
        self.time = t if t > clock._now else clock._now
        entry: Entry = (self.time, self.priority, next(clock._eid), (self, self.generation))
        heappush(clock.entries, entry)

    def cancel(self) -> None:
        """Void the current setting."""
        self.generation += 1
        self.time = INF


class Clock(simpy.Environment):
    """The simulation's clock and queue: SimPy events and plain timed callbacks, in one order."""

    @property
    def entries(self) -> list[Entry]:
        """The queue (a heap of entries), shared with SimPy."""
        return cast(list[Entry], self._queue)

    def call_at(self, t: float, prio: int, callback: Callable[[], Any]) -> None:
        """Call ``callback()`` at time ``t`` (now if earlier) with queue priority ``prio``."""
        heappush(self._queue, (t if t > self._now else self._now, prio, next(self._eid), callback))  # type: ignore[misc]

    def alarm(self, callback: Callable[[], Any], prio: int) -> Alarm:
        """A resettable callback (see ``Alarm``), not yet set."""
        return Alarm(self, callback, prio)

    def at(self, t: float, prio: int) -> Event:
        """A SimPy event that fires at ``t`` with ``prio``: what SimPy processes should wait on."""
        event = Event(self)
        event._ok = True
        event._value = None
        entry: Entry = (max(t, self._now), prio, next(self._eid), event)
        heappush(self.entries, entry)
        return event

    def head(self) -> tuple[float, int]:
        """Time and priority of the next entry, or (inf, 0) if there is none."""
        q = self._queue
        if q:
            entry = q[0]
            return entry[0], entry[1]
        return INF, 0

    def step(self) -> None:
        """Process the next entry of the queue."""
        try:
            self._now, _, _, item = heappop(self._queue)
        except IndexError:
            raise EmptySchedule from None
        self._fire(item)

    def _fire(self, item: Any) -> None:
        if isinstance(item, tuple):
            alarm, generation = item
            if generation == alarm.generation:
                alarm.time = INF
                alarm.callback()
        elif isinstance(item, Event):
            callbacks = item.callbacks
            item.callbacks = None  # type: ignore[assignment]  # SimPy marks processed events so
            for callback in callbacks:
                callback(item)
            if not item._ok and not hasattr(item, "_defused"):
                exc = type(item._value)(*item._value.args)
                exc.__cause__ = item._value
                raise exc
        else:
            item()

    def run_until(self, horizon: float) -> None:
        """Process every entry before ``horizon`` (entries at the horizon do not happen)."""
        q = self.entries
        fire = self._fire
        while q and q[0][0] < horizon:
            self._now, _, _, item = heappop(q)
            # ``_fire``'s two commonest cases, inlined: this loop runs for every entry.
            kind = type(item)
            if kind is tuple:
                alarm, generation = item
                if generation == alarm.generation:
                    alarm.time = INF
                    alarm.callback()
            elif kind is partial or kind is MethodType:
                item()
            else:
                fire(item)
        self._now = horizon
