"""Arrival processes, by name (``process = "poisson"``): their parameters and checks.

The model's arrival streams (``sim.model.arrivals``) are registered under the same names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal, Union

from pydantic import Field, model_validator

from sim.config.base import Frozen
from sim.config.units import Duration
from sim.registry import Registry

ARRIVALS: Registry[type[ArrivalBase]] = Registry("arrival process")

RATE_KEYS = ("rate_per_s", "rate_per_h", "rate_per_d")
"""A Poisson process takes exactly one of these."""


class ArrivalBase(Frozen):
    """A process that says when requests or jobs arrive."""

    def mean_rate_hz(self) -> float | None:
        """The long-run arrivals per second, where the process has one."""
        return None


@ARRIVALS.register("poisson")
class Poisson(ArrivalBase):
    """Poisson arrivals at a constant rate: give exactly one of the three rate keys."""

    process: Literal["poisson"]
    rate_per_s: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    """Arrivals per second."""
    rate_per_h: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    """Arrivals per hour."""
    rate_per_d: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    """Arrivals per day."""

    @model_validator(mode="after")
    def _one_rate(self) -> Poisson:
        given = [r for r in (self.rate_per_s, self.rate_per_h, self.rate_per_d) if r is not None]
        if len(given) != 1:
            raise ValueError(
                f"give exactly one of rate_per_s, rate_per_h, rate_per_d (got {len(given)})"
            )
        return self

    @property
    def rate_hz(self) -> float:
        """The rate in arrivals per second."""
        if self.rate_per_s is not None:
            return self.rate_per_s
        if self.rate_per_h is not None:
            return self.rate_per_h / 3600.0
        assert self.rate_per_d is not None
        return self.rate_per_d / 86400.0

    def mean_rate_hz(self) -> float:
        """The rate in arrivals per second."""
        return self.rate_hz


@ARRIVALS.register("deterministic")
class Periodic(ArrivalBase):
    """One arrival every ``interval``, the first at ``offset``."""

    process: Literal["deterministic"]
    interval_s: Duration = Field(alias="interval", gt=0)
    """Time between arrivals (a duration > 0)."""
    offset_s: Duration = Field(default=0.0, alias="offset")
    """Time of the first arrival (a duration, default 0)."""

    def mean_rate_hz(self) -> float:
        """One per interval."""
        return 1.0 / self.interval_s


@ARRIVALS.register("at")
class At(ArrivalBase):
    """Arrivals at the listed times (in any order)."""

    process: Literal["at"]
    times_s: tuple[Duration, ...] = Field(alias="times", min_length=1)
    """Arrival times since the scenario start (durations)."""


if TYPE_CHECKING:
    Arrival = ArrivalBase
else:
    Arrival = Annotated[
        Union[tuple(ARRIVALS[n] for n in ARRIVALS.names())],  # noqa: UP007
        Field(discriminator="process"),
    ]
"""Any registered arrival process, chosen by its ``process`` key."""
