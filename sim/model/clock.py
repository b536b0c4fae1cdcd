"""Calling a function at a simulated time, without a SimPy process: the cheap way to wake up.

The inference dispatchers and the samplers use it: one small event per wake-up, no generator.
``END_OF_INSTANT`` runs a call after everything else that happens at the same instant, so
observers (the sampler, the progress bar) see the state the instant ends with.
"""

from __future__ import annotations

from collections.abc import Callable

import simpy
from simpy.events import NORMAL, EventPriority

END_OF_INSTANT = EventPriority(NORMAL + 1)
"""After SimPy's URGENT and NORMAL events of the same time (SimPy orders its queue by time,
then priority, then creation)."""


class _Wakeup(simpy.Event):
    """An event that is already triggered, to be put on the queue at a chosen time."""

    def __init__(self, env: simpy.Environment, callback: Callable[[simpy.Event], None]) -> None:
        super().__init__(env)
        self._ok = True
        self._value = None
        self.callbacks.append(callback)


def call_at(
    env: simpy.Environment,
    t: float,
    callback: Callable[[simpy.Event], None],
    priority: EventPriority = NORMAL,
) -> None:
    """Call ``callback(event)`` at time ``t`` (now if ``t`` is in the past)."""
    env.schedule(_Wakeup(env, callback), priority=priority, delay=max(t - env.now, 0.0))
