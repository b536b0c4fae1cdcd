"""Arrival processes, by name (``process = "poisson"``): their parameters and checks.

The model's arrival streams (``sim.model.arrivals``) are registered under the same names.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal, Union

from pydantic import Field, ValidationInfo, field_validator, model_validator

from sim.config.base import Frozen, resolve_data_path
from sim.config.units import Duration
from sim.registry import Registry

ARRIVALS: Registry[type[ArrivalBase]] = Registry("arrival process")

RATE_KEYS = ("rate_per_s", "rate_per_h", "rate_per_d")
"""A Poisson process takes exactly one of these."""

TOKEN_MARKS = ("input_tokens", "output_tokens")
"""Marks of an LLM request: token counts (integers >= 0)."""
JOB_MARKS = ("gpus", "duration", "requested")
"""Marks of a training job: its GPUs (an integer >= 1), its run time and the user's requested
run time (seconds > 0)."""
TRACE_MARKS = (*TOKEN_MARKS, *JOB_MARKS)
"""The marks a trace's ``columns`` may map to columns of its file."""


class ArrivalBase(Frozen):
    """A process that says when requests or jobs arrive."""

    def mean_rate_hz(self) -> float | None:
        """The long-run arrivals per second, where the process has one."""
        return None


class _Rated(ArrivalBase):
    """A process with a rate given by exactly one of the three rate keys."""

    rate_per_s: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    """Arrivals per second."""
    rate_per_h: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    """Arrivals per hour."""
    rate_per_d: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    """Arrivals per day."""

    @model_validator(mode="after")
    def _one_rate(self) -> _Rated:
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


@ARRIVALS.register("poisson")
class Poisson(_Rated):
    """Poisson arrivals at a constant rate: give exactly one of the three rate keys."""

    process: Literal["poisson"]

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


def _some_positive(values: tuple[float, ...], what: str) -> tuple[float, ...]:
    """``values`` if all are finite and >= 0 and one at least is > 0 (``what``: for messages)."""
    if any(not (v >= 0 and v < float("inf")) for v in values):
        raise ValueError(f"{what}s must be finite numbers >= 0")
    if not any(v > 0 for v in values):
        raise ValueError(f"at least one {what} must be > 0")
    return values


def _mean(values: tuple[float, ...]) -> float:
    return sum(values) / len(values)


@ARRIVALS.register("daily")
class Daily(_Rated):
    """A Poisson process whose rate follows the local hour of day and the weekday.

    The rate at time t is the base rate × ``hourly[hour]`` × ``weekdays[weekday]`` of the
    local time at t (``scenario.start`` in ``scenario.timezone``, UTC without one; without a
    start, hour 0 of day 0 is the scenario start and day 0 is a Monday). Drawn by thinning.
    """

    process: Literal["daily"]
    hourly: tuple[float, ...] = Field(min_length=24, max_length=24)
    """24 factors (>= 0, one at least > 0) for the local hours 0 to 23."""
    weekdays: tuple[float, ...] = Field(default=(1.0,) * 7, min_length=7, max_length=7)
    """7 factors (>= 0, one at least > 0), Monday first (default: all 1)."""

    @field_validator("hourly", "weekdays")
    @classmethod
    def _factors(cls, values: tuple[float, ...]) -> tuple[float, ...]:
        return _some_positive(values, "factor")

    @property
    def peak_hz(self) -> float:
        """The highest rate of any hour (the thinning's bound)."""
        return self.rate_hz * max(self.hourly) * max(self.weekdays)

    def mean_rate_hz(self) -> float:
        """Base rate × mean hourly factor × mean weekday factor: the rate over whole weeks."""
        return self.rate_hz * _mean(self.hourly) * _mean(self.weekdays)


@ARRIVALS.register("mmpp")
class Mmpp(ArrivalBase):
    """A Markov-modulated Poisson process: bursts.

    In state i arrivals are Poisson at ``rates_per_s[i]``; the process stays in a state for an
    exponential time of mean ``mean_sojourn[i]``, then jumps to one of the other states, chosen
    uniformly at random.
    """

    process: Literal["mmpp"]
    rates_per_s: tuple[float, ...] = Field(min_length=2)
    """Arrivals per second in each state (>= 0, one at least > 0)."""
    mean_sojourn_s: tuple[Duration, ...] = Field(alias="mean_sojourn", min_length=2)
    """Mean time in each state (durations > 0), as many as rates."""
    initial_state: int = Field(default=0, ge=0)
    """The state at the scenario start (default 0)."""

    @field_validator("rates_per_s")
    @classmethod
    def _rates(cls, values: tuple[float, ...]) -> tuple[float, ...]:
        return _some_positive(values, "rate")

    @field_validator("mean_sojourn_s")
    @classmethod
    def _sojourns(cls, values: tuple[float, ...]) -> tuple[float, ...]:
        if any(not (v > 0 and v < float("inf")) for v in values):
            raise ValueError("mean sojourns must be finite durations > 0")
        return values

    @model_validator(mode="after")
    def _states(self) -> Mmpp:
        n = len(self.rates_per_s)
        if len(self.mean_sojourn_s) != n:
            raise ValueError(
                f"give one mean_sojourn per rate ({n} rates, {len(self.mean_sojourn_s)} sojourns)"
            )
        if self.initial_state >= n:
            raise ValueError(f"initial_state {self.initial_state} is not a state (0 to {n - 1})")
        return self

    def mean_rate_hz(self) -> float:
        """The stationary mean rate.

        With uniform jumps the chain of visited states is symmetric, so every state is visited
        equally often in the long run and the share of time in state i is proportional to its
        mean sojourn: Σ rate_i × sojourn_i / Σ sojourn_i.
        """
        pairs = zip(self.rates_per_s, self.mean_sojourn_s, strict=True)
        return sum(r * m for r, m in pairs) / sum(self.mean_sojourn_s)


@ARRIVALS.register("trace")
class Trace(ArrivalBase):
    """Arrival times replayed from a column of a CSV or Parquet file, one arrival per row.

    Row r arrives at ``offset + (t_r - t_first) / speedup``, where t_first is the earliest time
    of the file; rows may come in any order and may share an instant. With ``loop`` the trace
    repeats every span + one median gap (of the sorted times), divided by ``speedup``.
    """

    process: Literal["trace"]
    path: Path
    """The file, relative to the scenario file's folder (``.csv`` or ``.parquet``)."""
    time_column: str
    """The column of times: numbers (seconds) or timestamps (text or Parquet timestamps)."""
    speedup: float = Field(default=1.0, gt=0, allow_inf_nan=False)
    """Replay this many times faster (> 0, default 1)."""
    offset_s: Duration = Field(default=0.0, alias="offset", ge=0)
    """Time of the first row's arrival (a duration, default 0)."""
    loop: bool = False
    """Repeat the trace for as long as the run lasts."""
    columns: dict[str, str] = Field(default_factory=dict)
    """Marks read from the file, each row's: mark name -> column (``{ gpus = "num_gpu" }``).
    Marks: ``input_tokens``, ``output_tokens`` (integers >= 0), ``gpus`` (integer >= 1),
    ``duration``, ``requested`` (seconds > 0)."""

    @field_validator("path")
    @classmethod
    def _resolve(cls, path: Path, info: ValidationInfo) -> Path:
        return resolve_data_path(path, info)

    @field_validator("columns")
    @classmethod
    def _marks(cls, columns: dict[str, str]) -> dict[str, str]:
        unknown = [m for m in columns if m not in TRACE_MARKS]
        if unknown:
            raise ValueError(
                f"unknown mark(s) {', '.join(map(repr, unknown))} in columns; expected some of "
                f"{', '.join(TRACE_MARKS)}"
            )
        return columns

    def marks(self) -> tuple[tuple[str, str], ...]:
        """The (mark, column) pairs, sorted by mark: a hashable key of what is read."""
        return tuple(sorted(self.columns.items()))


if TYPE_CHECKING:
    Arrival = ArrivalBase
else:
    Arrival = Annotated[
        Union[tuple(ARRIVALS[n] for n in ARRIVALS.names())],  # noqa: UP007
        Field(discriminator="process"),
    ]
"""Any registered arrival process, chosen by its ``process`` key."""
