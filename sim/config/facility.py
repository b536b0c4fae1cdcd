"""The ``[facility]`` section: grid, cooling, ambient temperature, prices and curtailments.

Everything here is known before the run starts (no randomness), so the model turns it into one
piecewise-constant timeline of site conditions (``sim.model.site``). Cooling kinds carry cited
defaults (``COOLING_DEFAULTS``) that a scenario may override key by key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import Field, ValidationInfo, field_validator, model_validator

from sim.config.base import Frozen, resolve_data_path
from sim.config.reliability import Backup
from sim.config.units import Duration

PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegativeFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Celsius = Annotated[float, Field(ge=-80, le=70, allow_inf_nan=False)]


class SeriesFile(Frozen):
    """A time series read from a CSV or Parquet file, held constant from each point to the next.

    The time column holds timestamps (aligned to ``scenario.start``, which is then required;
    timestamps without an offset are UTC) or numbers of seconds since the scenario start.
    """

    kind: Literal["series"]
    path: Path
    """The file, relative to the scenario file's folder (``.csv`` or ``.parquet``)."""
    time_column: str = "time"
    """The column of times: timestamps, or seconds since the scenario start."""
    value_column: str = "value"
    """The column of values."""

    @field_validator("path")
    @classmethod
    def _resolve(cls, path: Path, info: ValidationInfo) -> Path:
        return resolve_data_path(path, info)


class PueCurve(Frozen):
    """PUE as a function of ambient temperature: linear between points, constant beyond them."""

    ambient_c: tuple[Celsius, ...] = Field(min_length=1)
    """Ambient temperatures (°C), increasing."""
    value: tuple[Annotated[float, Field(ge=1.0, le=5.0, allow_inf_nan=False)], ...] = Field(
        min_length=1
    )
    """PUE at each of those temperatures (≥ 1)."""

    @model_validator(mode="after")
    def _matching(self) -> PueCurve:
        if len(self.ambient_c) != len(self.value):
            raise ValueError(
                f"ambient_c and value need the same number of points "
                f"({len(self.ambient_c)} and {len(self.value)})"
            )
        if any(b <= a for a, b in zip(self.ambient_c, self.ambient_c[1:], strict=False)):
            raise ValueError("ambient_c must be strictly increasing")
        return self


COOLING_DEFAULTS: dict[str, dict[str, Any]] = {
    # Sources and what is assumed: README, "Cooling kinds".
    "air": {
        "design_ambient_c": 35.0,
        "derate_per_c": 0.03,
        "pue": {"ambient_c": [0.0, 20.0, 30.0, 40.0], "value": [1.20, 1.35, 1.50, 1.70]},
    },
    "evaporative": {
        "design_ambient_c": 38.0,
        "derate_per_c": 0.02,
        "pue": {"ambient_c": [0.0, 20.0, 30.0, 40.0], "value": [1.06, 1.08, 1.12, 1.20]},
    },
    "immersion": {
        "design_ambient_c": 40.0,
        "derate_per_c": 0.015,
        "pue": {"ambient_c": [0.0, 20.0, 30.0, 40.0], "value": [1.02, 1.03, 1.04, 1.06]},
    },
}
"""Per cooling kind, the values a scenario leaves out."""


class Cooling(Frozen):
    """``[facility.cooling]``: heat rejection and its overhead, both depending on ambient."""

    kind: Literal["air", "evaporative", "immersion"]
    """The cooling plant: sets the defaults of the other keys (README, "Cooling kinds")."""
    capacity_mw: PositiveFloat | None = None
    """IT heat it can reject at or below ``design_ambient_c`` (MW); no limit when left out."""
    design_ambient_c: Celsius
    """Ambient temperature up to which the full capacity is available (°C)."""
    derate_per_c: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
    """Share of the capacity lost per degree above the design ambient."""
    pue: PueCurve
    """PUE by ambient temperature: cooling power = IT power × (PUE − 1)."""

    @model_validator(mode="before")
    @classmethod
    def _kind_defaults(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("kind") in COOLING_DEFAULTS:
            return {**COOLING_DEFAULTS[data["kind"]], **data}
        return data

    def capacity_w(self, ambient_c: float) -> float:
        """Heat it can reject at ``ambient_c`` (W); infinite without a ``capacity_mw``."""
        if self.capacity_mw is None:
            return float("inf")
        lost = max(ambient_c - self.design_ambient_c, 0.0) * self.derate_per_c
        return self.capacity_mw * 1e6 * max(1.0 - lost, 0.0)


class AmbientConstant(Frozen):
    """One ambient temperature for the whole run."""

    kind: Literal["constant"]
    value_c: Celsius
    """The temperature (°C)."""


class AmbientDaily(Frozen):
    """A daily cosine between ``mean_c - amplitude_c`` and ``mean_c + amplitude_c``.

    Held constant over each ``step`` (evaluated at the step's middle), so it is piecewise
    constant like every site condition. Hours are UTC hours of ``scenario.start`` when given,
    else hours since the start (the run starts at midnight).
    """

    kind: Literal["daily"]
    mean_c: Celsius
    """Daily mean (°C)."""
    amplitude_c: Annotated[float, Field(ge=0, le=40, allow_inf_nan=False)]
    """Half the daily swing (°C)."""
    peak_hour: Annotated[float, Field(ge=0, lt=24, allow_inf_nan=False)] = 15.0
    """Hour of the day's maximum."""
    step_s: Duration = Field(default=900.0, alias="step", gt=0)
    """How long each value is held (a duration)."""


class AmbientSeries(SeriesFile):
    """Ambient temperatures (°C) from a file."""


Ambient = Annotated[
    Union[AmbientConstant, AmbientDaily, AmbientSeries],  # noqa: UP007
    Field(discriminator="kind"),
]
"""``[facility.ambient]``, chosen by ``kind``."""


class TariffPeriod(Frozen):
    """A daily period of a time-of-use tariff."""

    hours: tuple[
        Annotated[float, Field(ge=0, le=24, allow_inf_nan=False)],
        Annotated[float, Field(ge=0, le=24, allow_inf_nan=False)],
    ]
    """[from, to) hours of the day; wraps past midnight when from > to (``[22, 6]``)."""
    usd_per_mwh: float = Field(allow_inf_nan=False)
    """The price in that period (USD/MWh)."""

    @model_validator(mode="after")
    def _not_empty(self) -> TariffPeriod:
        if self.hours[0] == self.hours[1]:
            raise ValueError("hours must span some time: from and to differ")
        return self


class PriceBase(Frozen):
    """What every price kind shares: demand charge and price-triggered curtailment."""

    demand_charge_usd_per_kw_month: NonNegativeFloat = 0.0
    """Charged on each billing month's peak demand: the highest facility kW averaged over a
    ``demand_interval``."""
    demand_interval_s: Duration = Field(default=900.0, alias="demand_interval", gt=0)
    """The averaging interval of the billed peak demand (utilities meter 15 minutes)."""
    curtail_above_usd_per_mwh: float | None = Field(default=None, allow_inf_nan=False)
    """While the price is above this, the site sheds load down to ``curtail_to_mw``."""
    curtail_to_mw: NonNegativeFloat | None = None
    """Facility power limit while the price is above ``curtail_above_usd_per_mwh`` (MW)."""

    @model_validator(mode="after")
    def _curtail_pair(self) -> PriceBase:
        if (self.curtail_above_usd_per_mwh is None) != (self.curtail_to_mw is None):
            raise ValueError(
                "curtail_above_usd_per_mwh and curtail_to_mw go together: give both or neither"
            )
        return self


class PriceFlat(PriceBase):
    """One price for every hour."""

    kind: Literal["flat"]
    usd_per_mwh: float = Field(allow_inf_nan=False)
    """The price (USD/MWh)."""


class PriceTimeOfUse(PriceBase):
    """A daily tariff: ``usd_per_mwh`` except in its ``periods``."""

    kind: Literal["time_of_use"]
    usd_per_mwh: float = Field(allow_inf_nan=False)
    """The price outside every period (USD/MWh)."""
    periods: tuple[TariffPeriod, ...] = Field(min_length=1)
    """Daily periods with their own price; hours are UTC hours of ``scenario.start`` when
    given, else hours since the start. Where periods overlap, the later one applies."""


class PriceSeries(SeriesFile, PriceBase):
    """Prices (USD/MWh) from a file."""


Price = Annotated[
    Union[PriceFlat, PriceTimeOfUse, PriceSeries],  # noqa: UP007
    Field(discriminator="kind"),
]
"""``[facility.price]``, chosen by ``kind``."""


class Curtailment(Frozen):
    """A ``[[facility.curtailments]]`` entry: the grid asks the site to stay under a limit."""

    at_s: Duration = Field(default=0.0, alias="at")
    """When it starts (with ``every``: the first one's offset), a duration from the start."""
    every_s: Duration | None = Field(default=None, alias="every", gt=0)
    """Repeat at this interval (a duration); once when left out."""
    duration_s: Duration = Field(alias="duration", gt=0)
    """How long each lasts (a duration)."""
    limit_mw: NonNegativeFloat
    """Facility power limit meanwhile (MW)."""

    @model_validator(mode="after")
    def _fits_period(self) -> Curtailment:
        if self.every_s is not None and self.duration_s > self.every_s:
            raise ValueError("duration must not be longer than every")
        return self


class OtherLoadSeries(SeriesFile):
    """Other load (MW) from a file."""


class Facility(Frozen):
    """The ``[facility]`` table: grid connection, cooling, weather, prices and curtailments."""

    grid_mw: PositiveFloat | None = None
    """Grid interconnect limit on facility power (MW): IT, cooling and other load together."""
    other_load_mw: NonNegativeFloat | OtherLoadSeries = 0.0
    """Load besides IT and cooling (MW): offices, remaining mining gear; a number or a series."""
    pue: float = Field(default=1.3, ge=1.0, le=5.0, allow_inf_nan=False)
    """A constant PUE, when there is no ``[facility.cooling]``: cooling = IT × (pue − 1)."""
    cooling: Cooling | None = None
    """The cooling plant; its PUE curve replaces ``pue``."""
    ambient: Ambient | None = None
    """Outdoor temperature; a constant 20 °C when left out."""
    price: Price | None = None
    """Electricity price; no cost is computed when left out."""
    curtailments: tuple[Curtailment, ...] = ()
    """Times when the grid asks the site to stay under a lower limit."""
    backup: Backup | None = None
    """UPS and generators that carry the site through grid outages; none when left out."""

    @model_validator(mode="after")
    def _pue_or_cooling(self) -> Facility:
        if self.cooling is not None and "pue" in self.model_fields_set:
            raise ValueError(
                "pue applies only without [facility.cooling]; set facility.cooling.pue instead"
            )
        return self
