"""Running a scenario from Python: ``sim.run(scenario, seed=...)`` returns the tables and summary.

A run is a pure function of a validated scenario and a seed, so notebooks and the sweep runner
call it in-process; ``write_run`` writes its run directory.
"""

from __future__ import annotations

import os
import platform
import shutil
import tempfile
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sim.config import Scenario, apply_overrides, check_scenario
from sim.config import estimate as sizing
from sim.config.loading import blame_overrides, parse_scenario, read_scenario
from sim.config.scenario import LLMWorkload, ServedWorkload, SlaLimits, Workload
from sim.errors import Problem, ScenarioError, UserError
from sim.version import __version__

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    from sim.inputs import Inputs


class RunTables(Mapping[str, "pa.Table"]):
    """The output tables of a run directory, each read from its Parquet file when asked for.

    It keeps its ``RunResult`` alive, so a temporary run directory outlives every reader.
    """

    def __init__(self, result: RunResult) -> None:
        self.result = result
        self.run_dir = result.run_dir

    def __getitem__(self, name: str) -> pa.Table:
        from sim.record.schemas import TABLES

        if name not in TABLES:
            raise KeyError(name)
        import pyarrow.parquet as pq

        return pq.read_table(self.run_dir / f"{name}.parquet")

    def __iter__(self) -> Iterator[str]:
        from sim.record.schemas import TABLES

        return iter(TABLES)

    def __len__(self) -> int:
        from sim.record.schemas import TABLES

        return len(TABLES)


@dataclass(frozen=True)
class RunResult:
    """The outcome of one run: its run directory, the summary, and how it was made.

    ``tables`` reads the output tables (Arrow) from the run directory when asked for; an
    in-process run without ``out`` writes to a temporary directory removed with the result.
    """

    scenario: Scenario
    seed: int
    run_dir: Path
    summary: dict[str, Any]
    meta: dict[str, Any]
    wall_time_s: float
    rows: dict[str, int]
    source: str | None = None
    overrides: tuple[str, ...] = ()
    temporary: bool = False

    @property
    def tables(self) -> RunTables:
        """The output tables by name (``"requests"``, ``"jobs"``, ...), read on access."""
        return RunTables(self)

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
    estimate: sizing.Estimate | None = None
    """The run's expected requests, rows, peak memory, disk and time (``sim.config.estimate``)."""


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
    out_dir: str | os.PathLike[str] | None = None,
) -> Prepared:
    """Check a scenario (a file path or a Scenario) and read its data files.

    First every key and value; then the run's size is estimated (``sim.config.estimate``) and
    a run that cannot fit is refused before anything is built: more memory than this machine
    has available, a run directory larger than the free disk of ``out_dir``'s file system
    (default ``outputs/<name>/seed=<seed>``), or more nodes, GPUs or replicas than sim takes.
    Then, together, how the sections fit, the scheduler policies, the replicas' placement and
    the data files; last, that the facility's limit never falls below the site's idle draw.
    Raises ScenarioError listing every problem of the stage that failed, each with its key
    path (``source`` names a Scenario object's file).
    """
    overrides = tuple(overrides)
    scn, source = _parse(scenario, overrides, source)
    from sim.inputs import trace_counts

    size = sizing.estimate(scn, counts=trace_counts(scn))
    target = (
        Path(out_dir)
        if out_dir is not None
        else default_out_dir(scn.scenario.name, scn.scenario.seed, overrides)
    )
    too_big = sizing.size_problems(scn, size, target)
    if too_big:
        raise ScenarioError(source, blame_overrides(too_big, overrides))

    from sim.inputs import read_inputs
    from sim.model.placement import check_model

    checked = check_scenario(scn, size)
    problems, warnings = list(checked.problems), list(checked.warnings)
    if checked.references_resolve:
        model = check_model(scn)
        problems += model.problems
        warnings += model.warnings
    inputs, input_problems = read_inputs(scn)
    problems += input_problems
    if not problems:
        from sim.model.site import build_timeline, floor_problems, hold_warnings

        timeline = build_timeline(scn, inputs)
        problems += floor_problems(scn, timeline)
        warnings += hold_warnings(scn, timeline)
    if problems:
        raise ScenarioError(source, blame_overrides(problems, overrides))
    return Prepared(
        scn, source, inputs, tuple(blame_overrides(warnings, overrides)), overrides, size
    )


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
        "priced": scn.facility.price is not None,
        "workloads": [
            {
                "name": w.name,
                "kind": w.kind,
                **_sla_keys(w),
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


def _sla_keys(w: Workload) -> dict[str, float | None]:
    """A workload's objectives for the run's metadata (and for LLMs its replicas' GPUs)."""
    limits = w.sla.limits if isinstance(w, ServedWorkload) and w.sla else SlaLimits()
    keys: dict[str, float | None] = {"sla_latency_s": limits.latency_s}
    if isinstance(w, LLMWorkload):
        keys |= {
            "sla_ttft_s": limits.ttft_s,
            "sla_tpot_s": limits.tpot_s,
            "gpus_per_replica": w.gpus_per_replica,
        }
    return keys


def default_out_dir(scenario_name: str, seed: int, overrides: Iterable[str] = ()) -> Path:
    """``outputs/<scenario name>/[<key>=<value>/...]seed=<seed>``, relative to the working dir.

    Each ``--set KEY=VALUE`` adds its folder, in order, as a sweep point with those values
    would, so a run with overrides never lands on the plain scenario's run.
    """
    from sim.config.sweep import override_folders

    return Path("outputs", scenario_name, *override_folders(overrides), f"seed={seed}")


def _request_recording(
    scn: Scenario, seed: int
) -> tuple[list[tuple[str, float]], list[np.random.Generator | None]]:
    """Each workload's request recording level, and the random stream of sampled ones."""
    from sim.model.rng import RandomStreams

    streams = RandomStreams(seed)
    levels: list[tuple[str, float]] = []
    rngs: list[np.random.Generator | None] = []
    for w in scn.workloads:
        level = scn.request_output(w).level if isinstance(w, ServedWorkload) else ("all", 1.0)
        levels.append(level)
        rngs.append(streams.stream("record", w.name) if level[0] == "sample" else None)
    return levels, rngs


def run(
    scenario: Prepared | Scenario | str | os.PathLike[str],
    *,
    seed: int | None = None,
    overrides: Iterable[str] = (),
    progress: Callable[[float], None] | None = None,
    source: str | None = None,
    out: str | os.PathLike[str] | None = None,
    audit: bool = False,
    overwrite: bool = False,
) -> RunResult:
    """Simulate a scenario (a file path, a ``Scenario`` or a ``Prepared``) into a run directory.

    ``seed`` replaces ``scenario.seed``; ``overrides`` are ``KEY=VALUE`` strings as for
    ``sim run --set``; ``progress`` is called with the simulated time as the run advances;
    ``source`` names a Scenario object's file in messages; ``out`` is the run directory (new,
    empty or a previous run's); without it the run goes to a temporary directory that lives as
    long as the result (``write_run`` copies it). ``out`` holding another run (another
    scenario, other overrides, another seed) is replaced only with ``overwrite``. ``audit``
    checks the power ledger at every change (slow; for tests). Raises ScenarioError for bad
    input, UserError for an ``out`` that cannot be written or holds another run.
    """
    from sim.analysis.rundir import load_table
    from sim.analysis.summary import summarize
    from sim.model.world import simulate
    from sim.record.recorder import Recorder
    from sim.record.schemas import SCHEMA_VERSION
    from sim.record.writer import finish_run_dir, prepare_out_dir, run_identity

    if isinstance(scenario, Prepared):
        if overrides:
            raise ValueError("apply overrides when preparing the scenario, not when running it")
        prepared = scenario
    else:
        prepared = prepare(
            scenario, overrides, source, out_dir=Path(out) if out is not None else None
        )
    scn = prepared.scenario
    seed = scn.scenario.seed if seed is None else seed
    if seed < 0:
        problem = Problem("scenario.seed", f"must be >= 0 (got {seed})")
        raise ScenarioError(prepared.source, [problem])
    temporary = out is None
    run_dir = Path(tempfile.mkdtemp(prefix="sim-run-")) if out is None else Path(out)
    dump = scn.model_dump(mode="json", by_alias=True)
    if not temporary:
        prepare_out_dir(run_dir, run_identity(dump, seed), overwrite)
    levels, rngs = _request_recording(scn, seed)
    recorder = Recorder(
        out_dir=run_dir,
        workloads=[w.name for w in scn.workloads],
        inference=[isinstance(w, ServedWorkload) for w in scn.workloads],
        llm=[isinstance(w, LLMWorkload) for w in scn.workloads],
        pools=[p.name for p in scn.pools],
        sla=[
            w.sla.limits if isinstance(w, ServedWorkload) and w.sla else None for w in scn.workloads
        ],
        horizon_s=scn.scenario.duration_s,
        warmup_s=scn.scenario.warmup_s,
        sample_every_s=scn.scenario.sample_every_s,
        start=scn.scenario.start,
        timezone=scn.scenario.timezone,
        request_levels=levels,
        sample_rngs=rngs,
    )
    began = time.perf_counter()
    try:
        try:
            simulate(scn, prepared.inputs, recorder, seed, progress, audit)
            rows = recorder.close()
        except BaseException:
            recorder.abort()
            raise
        recorder.commit()
        meta = run_meta(scn, seed)
        summary = summarize(lambda name, cols: load_table(run_dir, name, cols), meta)
        wall = time.perf_counter() - began
        manifest = {
            "simulator": "sim",
            "version": __version__,
            "schema_version": SCHEMA_VERSION,
            "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
            "python": platform.python_version(),
            "scenario_file": prepared.source,
            "overrides": list(prepared.overrides),
            "seed": seed,
            "wall_time_s": round(wall, 3),
            "rows": rows,
            "simulated": {"requests": recorder.requests_seen, "jobs": rows["jobs"]},
            "run": meta,
            "scenario": dump,
        }
        finish_run_dir(run_dir, rows, summary, manifest)
    except OSError as exc:
        if temporary:
            shutil.rmtree(run_dir, ignore_errors=True)
        reason = exc.strerror or str(exc)
        raise UserError(f"{run_dir}: cannot write the run directory ({reason})") from None
    except BaseException:
        if temporary:
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    result = RunResult(
        scenario=scn,
        seed=seed,
        run_dir=run_dir,
        summary=summary,
        meta=meta,
        wall_time_s=wall,
        rows=rows,
        source=prepared.source,
        overrides=prepared.overrides,
        temporary=temporary,
    )
    if temporary:
        weakref.finalize(result, shutil.rmtree, run_dir, True)
    return result


def write_run(
    result: RunResult, out_dir: str | os.PathLike[str] | None = None, overwrite: bool = False
) -> Path:
    """Copy a run's directory to ``out_dir`` (default as ``default_out_dir``).

    A run made with ``out`` is already written: asking for its own directory does nothing. A
    directory holding another run is replaced only with ``overwrite``.
    """
    from sim.record.writer import copy_run_dir, run_identity

    out = (
        Path(out_dir)
        if out_dir is not None
        else default_out_dir(result.scenario.scenario.name, result.seed, result.overrides)
    )
    if out.resolve() != result.run_dir.resolve():
        dump = result.scenario.model_dump(mode="json", by_alias=True)
        copy_run_dir(result.run_dir, out, run_identity(dump, result.seed), overwrite)
    return out
