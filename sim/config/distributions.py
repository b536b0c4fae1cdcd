"""Distributions of durations, by name (``dist = "lognormal"``): their parameters and checks.

Each class here is one named distribution; the model's samplers (``sim.model.sampling``) are
registered under the same names. Every parameter that is a duration is in seconds.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal, Union

from pydantic import Field, ValidationInfo, field_validator, model_validator

from sim.config.base import Frozen, resolve_data_path
from sim.config.units import Duration
from sim.registry import Registry

DISTRIBUTIONS: Registry[type[DistributionBase]] = Registry("distribution")


class DistributionBase(Frozen):
    """A distribution of durations in seconds."""

    def expected_s(self) -> float | None:
        """The mean in seconds, where it is known without reading data."""
        return None


@DISTRIBUTIONS.register("deterministic")
class Deterministic(DistributionBase):
    """Always the same value."""

    dist: Literal["deterministic"]
    value_s: Duration = Field(alias="value")
    """The value (a duration)."""

    def expected_s(self) -> float:
        """The value itself."""
        return self.value_s


@DISTRIBUTIONS.register("exponential")
class Exponential(DistributionBase):
    """Exponential with the given mean."""

    dist: Literal["exponential"]
    mean_s: Duration = Field(alias="mean", gt=0)
    """The mean (a duration > 0)."""

    def expected_s(self) -> float:
        """The mean."""
        return self.mean_s


@DISTRIBUTIONS.register("lognormal")
class Lognormal(DistributionBase):
    """Log-normal, given by the mean and standard deviation of the values (not of their log)."""

    dist: Literal["lognormal"]
    mean_s: Duration = Field(alias="mean", gt=0)
    """The mean (a duration > 0)."""
    sd_s: Duration = Field(alias="sd", gt=0)
    """The standard deviation (a duration > 0)."""

    def expected_s(self) -> float:
        """The mean."""
        return self.mean_s

    def log_params(self) -> tuple[float, float]:
        """The (mu, sigma) of the underlying normal distribution."""
        sigma2 = math.log1p((self.sd_s / self.mean_s) ** 2)
        return math.log(self.mean_s) - sigma2 / 2, math.sqrt(sigma2)


@DISTRIBUTIONS.register("gamma")
class Gamma(DistributionBase):
    """Gamma, given by its mean and standard deviation."""

    dist: Literal["gamma"]
    mean_s: Duration = Field(alias="mean", gt=0)
    """The mean (a duration > 0)."""
    sd_s: Duration = Field(alias="sd", gt=0)
    """The standard deviation (a duration > 0)."""

    def expected_s(self) -> float:
        """The mean."""
        return self.mean_s

    def shape_scale(self) -> tuple[float, float]:
        """The (shape k, scale theta) parameters."""
        return (self.mean_s / self.sd_s) ** 2, self.sd_s**2 / self.mean_s


@DISTRIBUTIONS.register("weibull")
class Weibull(DistributionBase):
    """Weibull with a shape (no unit) and a scale (a duration)."""

    dist: Literal["weibull"]
    shape: float = Field(gt=0, allow_inf_nan=False)
    """The shape parameter k (> 0; 1 is exponential)."""
    scale_s: Duration = Field(alias="scale", gt=0)
    """The scale parameter (a duration > 0)."""

    def expected_s(self) -> float:
        """Scale × Γ(1 + 1/shape) (infinite where that overflows: a shape near 0)."""
        try:
            return self.scale_s * math.gamma(1 + 1 / self.shape)
        except OverflowError:
            return math.inf


@DISTRIBUTIONS.register("uniform")
class Uniform(DistributionBase):
    """Uniform between low and high."""

    dist: Literal["uniform"]
    low_s: Duration = Field(alias="low")
    """The lower bound (a duration)."""
    high_s: Duration = Field(alias="high")
    """The upper bound (a duration ≥ low)."""

    @model_validator(mode="after")
    def _ordered(self) -> Uniform:
        if self.high_s < self.low_s:
            raise ValueError("high must not be below low")
        return self

    def expected_s(self) -> float:
        """The midpoint."""
        return (self.low_s + self.high_s) / 2


@DISTRIBUTIONS.register("empirical")
class Empirical(DistributionBase):
    """Values drawn at random (with replacement) from a column of a CSV or Parquet file."""

    dist: Literal["empirical"]
    path: Path
    """The file, relative to the scenario file's folder (``.csv`` or ``.parquet``)."""
    column: str | None = None
    """The column holding the values; may be left out when the file has one column."""
    unit: Literal["ms", "s", "m", "h", "d"] = "s"
    """The unit of the values in the file."""

    @field_validator("path")
    @classmethod
    def _resolve(cls, path: Path, info: ValidationInfo) -> Path:
        return resolve_data_path(path, info)


if TYPE_CHECKING:
    Distribution = DistributionBase
else:
    Distribution = Annotated[
        Union[tuple(DISTRIBUTIONS[n] for n in DISTRIBUTIONS.names())],  # noqa: UP007
        Field(discriminator="dist"),
    ]
"""Any registered distribution, chosen by its ``dist`` key."""
