"""Reliability: node failures and repairs, backup power, outages and maintenance windows.

Failure and repair times are distributions (``sim.config.distributions``); a fixed duration is
accepted wherever a distribution is, and means that value every time. Targets name what an
outage or a maintenance window takes down: ``"grid"``, ``"cooling"``, ``"pool:<name>"`` (every
node of a pool) or ``"nodes:<pool>:<count>"`` (that many of its nodes, drawn at random each
time).
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import Field, field_validator, model_validator

from sim.config.base import Frozen
from sim.config.distributions import Deterministic, Distribution
from sim.config.units import Duration, parse_duration

NonNegativeFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]

TARGET_HINT = '"grid", "cooling", "pool:<name>" or "nodes:<pool>:<count>"'
_NAME = r"[A-Za-z0-9][A-Za-z0-9_-]*"
_NODE_TARGET = re.compile(rf"^(pool):({_NAME})$|^(nodes):({_NAME}):([1-9][0-9]*)$")


def as_distribution(value: Any) -> Any:
    """A fixed duration (``"6h"`` or seconds) as a deterministic distribution; else unchanged."""
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return {"dist": "deterministic", "value": parse_duration(value)}
    return value


def parse_target(target: str) -> tuple[str, str | None, int | None]:
    """(kind, pool, count) of a target: ``("grid", None, None)``, ``("nodes", "hall-b", 4)``."""
    if target in ("grid", "cooling"):
        return target, None, None
    m = _NODE_TARGET.match(target)
    if m is None:
        raise ValueError(f"expected {TARGET_HINT}, got {target!r}")
    if m.group(1):
        return "pool", m.group(2), None
    return "nodes", m.group(4), int(m.group(5))


class Backup(Frozen):
    """``[facility.backup]``: what carries the site through a grid outage."""

    ups_minutes: NonNegativeFloat = 0.0
    """Minutes the UPS carries the whole site at full load (0: no UPS). The battery is taken as
    drained at its full-load rate whatever the load."""
    generator_mw: NonNegativeFloat = 0.0
    """Facility power the generators supply once started (MW; 0: no generator)."""
    generator_start_s: Duration = Field(default=0.0, alias="generator_start")
    """Time from the loss of the grid until the generators carry load (a duration)."""


class Schedule(Frozen):
    """When a window happens: once at ``at``, every ``every`` from ``at``, or at random."""

    at_s: Duration = Field(default=0.0, alias="at")
    """The start (with ``every``: the first one's; with ``mtbf``: the earliest), a duration."""
    every_s: Duration | None = Field(default=None, alias="every", gt=0)
    """Repeat at this interval (a duration)."""


class Outage(Schedule):
    """An ``[[outages]]`` entry: an unplanned loss of the grid, the cooling or some nodes."""

    target: str
    """What fails: ``"grid"``, ``"cooling"``, ``"pool:<name>"`` or ``"nodes:<pool>:<count>"``."""
    mtbf_s: Duration | None = Field(default=None, alias="mtbf", gt=0)
    """Random outages, instead of ``every``: the time from the end of one to the start of the
    next (the first counted from ``at``) is exponential with this mean (a duration)."""
    duration: Distribution
    """How long each lasts: a duration, or a distribution of durations."""
    capacity_left: float = Field(default=0.0, ge=0, le=1, allow_inf_nan=False)
    """For ``target = "cooling"``: the share of cooling capacity that remains."""

    @field_validator("target")
    @classmethod
    def _target(cls, value: str) -> str:
        parse_target(value)
        return value

    @field_validator("duration", mode="before")
    @classmethod
    def _fixed(cls, value: Any) -> Any:
        return as_distribution(value)

    @model_validator(mode="after")
    def _consistent(self) -> Outage:
        if self.every_s is not None and self.mtbf_s is not None:
            raise ValueError("give every or mtbf, not both")
        if "capacity_left" in self.model_fields_set and self.target != "cooling":
            raise ValueError('capacity_left applies only to target = "cooling"')
        if self.every_s is not None:
            longest = _longest(self.duration)
            if longest is not None and longest > self.every_s:
                raise ValueError("duration must not be longer than every")
        return self

    @property
    def kind(self) -> str:
        """``"grid"``, ``"cooling"``, ``"pool"`` or ``"nodes"``."""
        return parse_target(self.target)[0]


class Maintenance(Schedule):
    """A ``[[maintenance]]`` entry: planned downtime of nodes, drained first."""

    target: str
    """What is taken down: ``"pool:<name>"`` or ``"nodes:<pool>:<count>"``."""
    duration_s: Duration = Field(alias="duration", gt=0)
    """How long each node stays down once taken down (a duration)."""
    drain: bool = True
    """Stop placing work on the nodes at the start and take each down once its work has ended
    (or at ``drain_timeout``); without it, the nodes go down at once, interrupting their
    work."""
    drain_timeout_s: Duration = Field(default=4 * 3600.0, alias="drain_timeout")
    """The longest a node drains; work still on it then is interrupted (a duration)."""

    @field_validator("target")
    @classmethod
    def _target(cls, value: str) -> str:
        if parse_target(value)[0] not in ("pool", "nodes"):
            raise ValueError(f'expected "pool:<name>" or "nodes:<pool>:<count>", got {value!r}')
        return value

    @model_validator(mode="after")
    def _fits_period(self) -> Maintenance:
        if self.every_s is not None and self.duration_s + self.drain_timeout_s * self.drain > (
            self.every_s
        ):
            raise ValueError("duration (plus drain_timeout when draining) must fit within every")
        return self


def _longest(dist: Any) -> float | None:
    """The largest value a distribution can take, where it is bounded and known."""
    if isinstance(dist, Deterministic):
        return dist.value_s
    high = getattr(dist, "high_s", None)
    return high if isinstance(high, float) else None
