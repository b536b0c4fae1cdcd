"""A sweep's plan: its points, every point's scenario checked, and one task per run.

Runs go to ``<out>/<sweep name>/<axis>=<value>/.../seed=<n>/``, each a normal run directory,
so a sweep reads as one hive-partitioned dataset. Seeds are ``scenario.seed + r`` for
replication ``r``: every point sees the same seeds (common random numbers), which sharpens
comparisons between points.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sim.config.sweep import (
    Sample,
    SweepSection,
    Value,
    axis_names,
    folder,
    format_value,
    override,
    read_sweep,
)
from sim.errors import Problem, ScenarioError, UserError

SAMPLE_DIGITS = 6
"""Significant digits a sampled float keeps, so folder names and tables stay readable."""


@dataclass(frozen=True)
class Task:
    """One run of a sweep: what a worker needs, and nothing it would have to read first."""

    index: int
    """The run's number in the sweep (points in order, replications within each)."""
    point: int
    """The point's number."""
    values: tuple[tuple[str, Value], ...]
    """The axis values of the point."""
    seed: int
    scenario_path: str
    """The scenario file, absolute (workers on other machines need it at the same path)."""
    overrides: tuple[str, ...]
    run_dir: str
    """The run directory, absolute."""
    relative: str
    """The run directory relative to the sweep's folder (``axis=value/.../seed=n``)."""
    identity: dict[str, Any]
    """The run's identity (``sim.record.writer.run_identity``): resumption skips a run whose
    folder holds it, and the worker checks the scenario it reads still gives it."""
    memory_bytes: float
    """The run's estimated peak memory."""
    disk_bytes: float
    """The run's estimated run-directory size."""


@dataclass(frozen=True)
class Plan:
    """A checked sweep: its folder, axes, points and the runs to make."""

    name: str
    source: str
    """The sweep file, for messages."""
    root: Path
    """``<out>/<sweep name>``."""
    scenario_path: Path
    axes: tuple[str, ...]
    points: tuple[dict[str, Value], ...]
    tasks: tuple[Task, ...]
    spec: SweepSection


def _label(values: dict[str, Value]) -> str:
    """``key=value, ...`` of a point, for messages."""
    return ", ".join(f"{k}={format_value(v)}" for k, v in values.items()) or "the scenario"


def _round(x: float, low: float, high: float, n: int) -> float:
    """``x`` kept to ``SAMPLE_DIGITS`` significant digits, never outside ``[low, high]``.

    A range whose strata are narrower than that keeps apart gets three digits more than
    the strata need.
    """
    width = (high - low) / n
    digits = SAMPLE_DIGITS
    if width > 0:
        digits = max(digits, math.ceil(math.log10(max(abs(low), abs(high)) / width)) + 3)
    return min(max(float(f"{x:.{min(digits, 17)}g}"), low), high)


def latin_hypercube(sample: Sample) -> list[dict[str, Value]]:
    """``sample.n`` points, one value per stratum of every range, paired at random.

    Integer ranges (both bounds integers) give integers, each from ``low`` to ``high``
    inclusive; float values keep ``SAMPLE_DIGITS`` significant digits.
    """
    rng = np.random.default_rng(sample.seed)
    n = sample.n
    columns: dict[str, list[Value]] = {}
    for key, (low, high) in sample.ranges.items():
        u = (rng.permutation(n) + rng.random(n)) / n
        if isinstance(low, int) and isinstance(high, int):
            columns[key] = [min(high, low + int(x * (high - low + 1))) for x in u]
        else:
            columns[key] = [_round(low + x * (high - low), low, high, n) for x in u]
    return [{key: columns[key][i] for key in columns} for i in range(n)]


def points(spec: SweepSection) -> list[dict[str, Value]]:
    """Every point: the product of the grid, the zip rows and the samples, in file order.

    A point listed twice (integer samples can repeat) is kept once.
    """
    grid = [dict(zip(spec.grid, c, strict=True)) for c in itertools.product(*spec.grid.values())]
    n_zip = len(next(iter(spec.zip.values()))) if spec.zip else 0
    zipped = [{k: v[i] for k, v in spec.zip.items()} for i in range(n_zip)] or [{}]
    sampled = latin_hypercube(spec.sample) if spec.sample else [{}]
    unique: dict[str, dict[str, Value]] = {}
    for g, z, s in itertools.product(grid, zipped, sampled):
        values = {**g, **z, **s}
        unique.setdefault(repr(sorted(values.items())), values)
    return list(unique.values())


def make_plan(sweep_file: str | Path, out: str | Path = "outputs") -> Plan:
    """Read a sweep file, expand its points and check every point's scenario.

    Raises a ScenarioError naming each bad point with its values and every problem of its
    scenario, before anything runs.
    """
    from sim.record.writer import run_identity
    from sim.runner import prepare

    sweep_file = Path(sweep_file)
    source = str(sweep_file)
    spec = read_sweep(sweep_file).sweep
    scenario_path = (sweep_file.resolve().parent / spec.scenario).resolve()
    root = (Path(out) / spec.name).resolve()
    values = points(spec)
    tasks: list[Task] = []
    folders: dict[Path, int] = {}
    problems: list[Problem] = []
    for p, point in enumerate(values):
        overrides = tuple(override(k, v) for k, v in point.items())
        here = Path(*(folder(k, v) for k, v in point.items()))
        label = _label(point)
        try:
            prepared = prepare(scenario_path, overrides, out_dir=root / here)
        except ScenarioError as error:
            problems += [
                Problem(f"point {p} ({label})", problem.render(error.source))
                for problem in error.problems
            ]
            continue
        except UserError as error:
            problems.append(Problem(f"point {p} ({label})", error.render()))
            continue
        dump = prepared.scenario.model_dump(mode="json", by_alias=True)
        base = prepared.scenario.scenario.seed
        size = prepared.estimate
        for r in range(spec.replications):
            seed = base + r
            relative = here / f"seed={seed}"
            tasks.append(
                Task(
                    index=len(tasks),
                    point=p,
                    values=tuple(point.items()),
                    seed=seed,
                    scenario_path=str(scenario_path),
                    overrides=overrides,
                    run_dir=str(root / relative),
                    relative=relative.as_posix(),
                    identity=run_identity(dump, seed),
                    memory_bytes=size.memory_bytes if size else 0.0,
                    disk_bytes=size.disk_bytes if size else 0.0,
                )
            )
        first = folders.setdefault(here, p)
        if first != p:
            problems.append(
                Problem(
                    f"point {p} ({label})",
                    f"writes to the same folder as point {first}; give the values their types "
                    'consistently (8 and "8" name the same folder)',
                )
            )
    if problems:
        raise ScenarioError(source, problems)
    return Plan(
        name=spec.name,
        source=source,
        root=root,
        scenario_path=scenario_path,
        axes=tuple(axis_names(spec)),
        points=tuple(values),
        tasks=tuple(tasks),
        spec=spec,
    )
