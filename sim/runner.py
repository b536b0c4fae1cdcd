"""Running a scenario from Python: ``sim.run(scenario, seed=...)`` returns the tables and summary.

A run is a pure function of a validated scenario and a seed, so notebooks and the sweep runner
call it in-process; ``write_run`` writes its run directory.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sim.config import Scenario, apply_overrides, check_scenario
from sim.config.loading import blame_overrides, parse_scenario, read_scenario
from sim.config.scenario import InferenceWorkload
from sim.errors import Problem, ScenarioError
from sim.version import __version__

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from sim.inputs import Inputs


@dataclass(frozen=True)
class RunResult:
    """The outcome of one run: the output tables (Arrow), the summary, and how it was made."""

    scenario: Scenario
    seed: int
    tables: dict[str, pa.Table]
    summary: dict[str, Any]
    meta: dict[str, Any]
    wall_time_s: float
    source: str | None = None
    overrides: tuple[str, ...] = ()

    def frame(self, name: str) -> pd.DataFrame:
        """One output table as a pandas DataFrame (``"requests"``, ``"jobs"``, ...)."""
        from sim.analysis.summary import to_frame

        return to_frame(self.tables[name])


@dataclass(frozen=True)
class Prepared:
    """A scenario that passed every check, with the data it refers to, ready to run."""

    scenario: Scenario
    source: str
    inputs: Inputs
    warnings: tuple[Problem, ...] = ()
    overrides: tuple[str, ...] = ()


def _parse(
    scenario: Scenario | str | os.PathLike[str], overrides: tuple[str, ...], source: str | None
) -> tuple[Scenario, str]:
    if not isinstance(scenario, Scenario):
        return read_scenario(scenario, overrides)
    source = source or "scenario"
    if not overrides:
        return scenario, source
    raw = apply_overrides(scenario.model_dump(mode="json", by_alias=True), overrides)
    try:
        return parse_scenario(raw, source), source
    except ScenarioError as error:
        raise ScenarioError(source, blame_overrides(error.problems, overrides)) from None


def prepare(
    scenario: Scenario | str | os.PathLike[str],
    overrides: Iterable[str] = (),
    source: str | None = None,
) -> Prepared:
    """Check a scenario (a file path or a Scenario) and read its data files.

    First every key and value; then, together, how the sections fit, the scheduler policy,
    the replicas' placement and the data files. Raises ScenarioError listing every problem of
    the stage that failed, each with its key path (``source`` names a Scenario object's file).
    """
    from sim.inputs import read_inputs
    from sim.model.placement import check_model

    overrides = tuple(overrides)
    scn, source = _parse(scenario, overrides, source)
    checked = check_scenario(scn)
    problems, warnings = list(checked.problems), list(checked.warnings)
    if not checked.problems:
        model = check_model(scn)
        problems += model.problems
        warnings += model.warnings
    inputs, input_problems = read_inputs(scn)
    problems += input_problems
    if problems:
        raise ScenarioError(source, blame_overrides(problems, overrides))
    return Prepared(scn, source, inputs, tuple(blame_overrides(warnings, overrides)), overrides)


def load_scenario(path: str | os.PathLike[str], overrides: Iterable[str] = ()) -> Scenario:
    """Load a scenario file with ``KEY=VALUE`` overrides, checked as ``sim run`` checks it.

    That is keys, values, references, replica placement, policy and data files.
    """
    return prepare(path, overrides).scenario


def run_meta(scn: Scenario, seed: int) -> dict[str, Any]:
    """What the summary needs to know of the scenario; stored in the manifest as ``run``."""
    catalogue = scn.gpu_catalogue()
    return {
        "scenario": scn.scenario.name,
        "seed": seed,
        "duration_s": scn.scenario.duration_s,
        "warmup_s": scn.scenario.warmup_s,
        "sample_every_s": scn.scenario.sample_every_s,
        "start": scn.scenario.start.isoformat() if scn.scenario.start else None,
        "pue": scn.facility.pue,
        "workloads": [
            {
                "name": w.name,
                "kind": w.kind,
                "sla_latency_s": w.sla.latency_s
                if isinstance(w, InferenceWorkload) and w.sla
                else None,
            }
            for w in scn.workloads
        ],
        "pools": [
            {
                "name": p.name,
                "gpu_type": p.gpu_type,
                "nodes": p.nodes,
                "gpus": p.gpus,
                "speed": catalogue[p.gpu_type].speed,
            }
            for p in scn.pools
        ],
    }


def run(
    scenario: Prepared | Scenario | str | os.PathLike[str],
    *,
    seed: int | None = None,
    overrides: Iterable[str] = (),
    progress: Callable[[float], None] | None = None,
    source: str | None = None,
) -> RunResult:
    """Simulate a scenario (a file path, a ``Scenario`` or a ``Prepared``) and summarise it.

    ``seed`` replaces ``scenario.seed``; ``overrides`` are ``KEY=VALUE`` strings as for
    ``sim run --set``; ``progress`` is called with the simulated time as the run advances;
    ``source`` names a Scenario object's file in messages. Raises ScenarioError for bad input.
    """
    from sim.analysis.summary import summarize, to_frame
    from sim.model.world import simulate
    from sim.record.recorder import Recorder

    if isinstance(scenario, Prepared):
        if overrides:
            raise ValueError("apply overrides when preparing the scenario, not when running it")
        prepared = scenario
    else:
        prepared = prepare(scenario, overrides, source)
    scn = prepared.scenario
    seed = scn.scenario.seed if seed is None else seed
    if seed < 0:
        problem = Problem("scenario.seed", f"must be >= 0 (got {seed})")
        raise ScenarioError(prepared.source, [problem])
    recorder = Recorder(
        workloads=[w.name for w in scn.workloads],
        pools=[p.name for p in scn.pools],
        sla_s=[
            w.sla.latency_s if isinstance(w, InferenceWorkload) and w.sla else None
            for w in scn.workloads
        ],
        horizon_s=scn.scenario.duration_s,
        warmup_s=scn.scenario.warmup_s,
        start=scn.scenario.start,
    )
    began = time.perf_counter()
    simulate(scn, prepared.inputs, recorder, seed, progress)
    tables = recorder.tables()
    meta = run_meta(scn, seed)
    summary = summarize(lambda name, cols: to_frame(tables[name].select(list(cols))), meta)
    return RunResult(
        scenario=scn,
        seed=seed,
        tables=tables,
        summary=summary,
        meta=meta,
        wall_time_s=time.perf_counter() - began,
        source=prepared.source,
        overrides=prepared.overrides,
    )


def default_out_dir(result: RunResult) -> Path:
    """``outputs/<scenario name>/seed=<seed>``, relative to the working directory."""
    return Path("outputs") / result.scenario.scenario.name / f"seed={result.seed}"


def write_run(result: RunResult, out_dir: str | os.PathLike[str] | None = None) -> Path:
    """Write the run directory (Parquet tables, summary.json, then manifest.json); return it."""
    from sim.record.schemas import SCHEMA_VERSION
    from sim.record.writer import write_run_dir

    out = Path(out_dir) if out_dir is not None else default_out_dir(result)
    manifest = {
        "simulator": "sim",
        "version": __version__,
        "schema_version": SCHEMA_VERSION,
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "scenario_file": result.source,
        "overrides": list(result.overrides),
        "seed": result.seed,
        "wall_time_s": round(result.wall_time_s, 3),
        "rows": {name: table.num_rows for name, table in result.tables.items()},
        "run": result.meta,
        "scenario": result.scenario.model_dump(mode="json", by_alias=True),
    }
    write_run_dir(out, result.tables, result.summary, manifest)
    return out
