"""The sweep file: a scenario, the keys to vary and how (grid, zip, Latin hypercube), and seeds.

```toml
[sweep]
name = "hall-sizing"
scenario = "default.toml"      # relative to the sweep file
replications = 5               # seeds scenario.seed, scenario.seed + 1, ...

[sweep.grid]                   # full factorial over dotted keys, as --set takes them
"pools.hall-a.nodes" = [32, 48, 64]

[sweep.zip]                    # axes that vary together (equal lengths)
"facility.grid_mw" = [0.8, 1.0]
"facility.cooling.capacity_mw" = [0.6, 0.8]

[sweep.sample]                 # Latin hypercube: n points over [low, high] per key
n = 20
seed = 1
ranges = { "workloads.chat.arrival.rate_per_s" = [10, 40] }
```

The points are the product of the grid, the zip rows and the samples. This module reads and
checks the file and names folders; ``sim.sweep.plan`` expands the points and checks each one.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from pydantic import Field, StrictFloat, StrictInt, model_validator

from sim.config.base import SCENARIO_NAME_PATTERN, Frozen
from sim.config.loading import read_toml
from sim.errors import Problem, ScenarioError

Value = bool | int | float | str
"""A value an axis takes: what ``--set KEY=VALUE`` takes."""


class Sample(Frozen):
    """``[sweep.sample]``: a Latin hypercube of ``n`` points over a range per key."""

    n: Annotated[int, Field(ge=1, le=100_000)]
    """How many points."""
    seed: Annotated[int, Field(ge=0)] = 0
    """Seed of the sampling (not of the runs)."""
    ranges: Annotated[
        dict[str, Annotated[list[StrictInt | StrictFloat], Field(min_length=2, max_length=2)]],
        Field(min_length=1),
    ]
    """``key = [low, high]``: integers when both bounds are integers, else floats."""

    @model_validator(mode="after")
    def _bounds(self) -> Sample:
        for key, (low, high) in self.ranges.items():
            try:
                finite = math.isfinite(low) and math.isfinite(high) and abs(low) < 1e300
            except OverflowError:
                finite = False
            if not finite or low > high or abs(high) >= 1e300:
                raise ValueError(f"ranges.{key}: expected [low, high], finite, low <= high")
        return self


class SweepSection(Frozen):
    """``[sweep]``."""

    name: Annotated[str, Field(pattern=SCENARIO_NAME_PATTERN, max_length=64)]
    """The sweep's folder under the output directory."""
    scenario: Path
    """The scenario file, relative to the sweep file."""
    replications: Annotated[int, Field(ge=1, le=10_000)] = 1
    """Runs per point, with seeds ``scenario.seed + 0, 1, ...``."""
    grid: dict[str, Annotated[list[Value], Field(min_length=1)]] = Field(default_factory=dict)
    """Full factorial: every combination of these keys' values."""
    zip: dict[str, Annotated[list[Value], Field(min_length=1)]] = Field(default_factory=dict)
    """Keys whose i-th values go together; all lists of one length."""
    sample: Sample | None = None
    """Latin hypercube samples."""

    @model_validator(mode="before")
    @classmethod
    def _quoted(cls, data: Any) -> Any:
        """A dotted key left unquoted reads as a nested table: say to quote it."""
        if isinstance(data, dict):
            for section in ("grid", "zip"):
                table = data.get(section)
                if not isinstance(table, dict):
                    continue
                for key, value in table.items():
                    if isinstance(value, dict):
                        raise ValueError(
                            f"{section}.{key}: a table, not a list of values: quote dotted keys, "
                            f'e.g. "{key}.{next(iter(value), "key")}" = [...]'
                        )
        return data

    @model_validator(mode="after")
    def _axes(self) -> SweepSection:
        lengths = {len(v) for v in self.zip.values()}
        if len(lengths) > 1:
            shown = ", ".join(f"{k} has {len(v)}" for k, v in self.zip.items())
            raise ValueError(f"zip: every key needs as many values ({shown})")
        seen: dict[str, str] = {}
        sample_keys = list(self.sample.ranges) if self.sample else []
        for section, keys in (("grid", self.grid), ("zip", self.zip), ("sample", sample_keys)):
            for key in keys:
                if key in seen:
                    raise ValueError(f"{section}.{key}: already varied in {seen[key]}")
                if key in ("scenario.seed", "scenario.name"):
                    raise ValueError(
                        f"{section}.{key}: cannot be varied (use replications for seeds; the "
                        "sweep's name names its folder)"
                    )
                if not key or any(not part for part in key.split(".")):
                    raise ValueError(f"{section}: {key!r} is not a dotted key")
                seen[key] = section
        for key, values in self.grid.items():
            if len(set(map(repr, values))) != len(values):
                raise ValueError(f"grid.{key}: a value is listed twice")
        return self


class SweepFile(Frozen):
    """A sweep file: one ``[sweep]`` table."""

    sweep: SweepSection


def read_sweep(path: str | Path) -> SweepFile:
    """Read and check a sweep file; a ScenarioError names the file and every bad key."""
    from pydantic import ValidationError

    from sim.config.loading import describe_error, key_path

    path = Path(path)
    source = str(path)
    raw = read_toml(path, source)
    try:
        return SweepFile.model_validate(raw)
    except ValidationError as exc:
        problems = [
            Problem(key_path(e["loc"], raw), describe_error(e, SweepFile))
            for e in exc.errors(include_url=False)
        ]
        raise ScenarioError(source, problems) from None


def axis_names(spec: SweepSection) -> list[str]:
    """The varied keys in order: grid, then zip, then sample."""
    sampled = list(spec.sample.ranges) if spec.sample else []
    return [*spec.grid, *spec.zip, *sampled]


def format_value(value: Any) -> str:
    """A value as folder names write it: ``32``, ``0.8``, ``true``, ``2d``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)


def override(key: str, value: Value) -> str:
    """The ``--set`` text giving ``key`` this value with its type (strings quoted as TOML)."""
    text = json.dumps(value, ensure_ascii=False) if isinstance(value, str) else format_value(value)
    return f"{key}={text}"


def folder(key: str, value: Value) -> str:
    """The hive-style folder segment of one axis: ``pools.hall-a.nodes=32``.

    Characters that folder names or hive partitioning cannot hold are percent-encoded.
    """
    return f"{quote(key, safe='+,@')}={quote(format_value(value), safe='+,@')}"


def override_folders(overrides: Iterable[str]) -> list[str]:
    """The folder segments of ``--set KEY=VALUE`` overrides, in order, as a sweep names them."""
    from sim.config.loading import parse_override

    return [folder(*parse_override(text)) for text in overrides]


def is_sweep_file(path: str | Path) -> bool:
    """Whether ``path`` is a TOML file with a ``[sweep]`` table (False if it cannot be read)."""
    try:
        raw = read_toml(Path(path), str(path))
    except ScenarioError:
        return False
    return "sweep" in raw
