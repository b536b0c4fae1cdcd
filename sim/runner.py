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

from sim.config import Scenario, apply_overrides, check_scenario, load_scenario, validate_scenario
from sim.config.scenario import InferenceWorkload
from sim.errors import Problem, ScenarioError
from sim.version import __version__

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa


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


def policy_names() -> tuple[str, ...]:
    """The registered scheduler policies, for validating ``scheduler.policy``."""
    from sim.model.policies import QUEUE_POLICIES

    return QUEUE_POLICIES.names()


def resolve(
    scenario: Scenario | str | os.PathLike[str],
    overrides: Iterable[str] = (),
    source: str | None = None,
) -> tuple[Scenario, str]:
    """A validated scenario and the name of its source (for messages), from a path or a Scenario."""
    overrides = tuple(overrides)
    if isinstance(scenario, Scenario):
        source = source or "scenario"
        if not overrides:
            return scenario, source
        raw = apply_overrides(scenario.model_dump(mode="json", by_alias=True), overrides)
        return validate_scenario(raw, source, policy_names=policy_names()), source
    return load_scenario(scenario, overrides, policy_names=policy_names()), str(scenario)


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
    scenario: Scenario | str | os.PathLike[str],
    *,
    seed: int | None = None,
    overrides: Iterable[str] = (),
    progress: Callable[[float], None] | None = None,
    source: str | None = None,
) -> RunResult:
    """Simulate a scenario (a file path or a validated ``Scenario``) and summarise it.

    ``seed`` replaces ``scenario.seed``; ``overrides`` are ``KEY=VALUE`` strings as for
    ``sim run --set``; ``progress`` is called with the simulated time as the run advances;
    ``source`` names a Scenario object's file in messages. Raises ScenarioError for bad input.
    """
    from sim.analysis.summary import summarize, to_frame
    from sim.inputs import load_inputs
    from sim.model.world import simulate
    from sim.record.recorder import Recorder

    overrides = tuple(overrides)
    scn, source = resolve(scenario, overrides, source)
    checked = check_scenario(scn)
    if checked.problems:
        raise ScenarioError(source, checked.problems)
    seed = scn.scenario.seed if seed is None else seed
    if seed < 0:
        raise ScenarioError(source, [Problem("scenario.seed", f"must be >= 0 (got {seed})")])
    inputs = load_inputs(scn, source)
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
    simulate(scn, inputs, recorder, seed, progress)
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
        source=source,
        overrides=overrides,
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
