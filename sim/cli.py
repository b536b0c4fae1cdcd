"""The ``sim`` command line: thin click commands over the library.

Bad input exits with code 2 and a message naming the file, the key and what was expected,
never a traceback. Heavy libraries are imported inside the commands that need them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

import click

from sim.errors import UserError

if TYPE_CHECKING:
    from sim.runner import Prepared
from sim.version import __version__

EXIT_BAD_INPUT = 2


def _fail(error: UserError) -> NoReturn:
    click.echo(f"error: {error.render()}", err=True)
    sys.exit(EXIT_BAD_INPUT)


class _Group(click.Group):
    """Turns UserError (bad input) into exit code 2 with a one-paragraph message."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except UserError as error:
            _fail(error)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sim")
def cli() -> None:
    """Simulate a crypto-mining site converted to host AI compute.

    Write a scenario file (see scenarios/ and the README), then `sim run scenario.toml`.
    Each run writes a directory of Parquet files (events, requests, jobs, timeseries,
    pool_timeseries, workload_timeseries, workload_stats, histograms), summary.json and
    manifest.json.
    """


_SET_HELP = (
    "Override a scenario key, e.g. --set scenario.duration=2d or "
    "--set workloads.chat.arrival.rate_per_s=40 (array entries by name). Repeatable."
)


@cli.command()
@click.argument("scenario", type=click.Path(path_type=Path))
@click.option("--seed", type=click.IntRange(min=0), help="Seed; replaces scenario.seed.")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    help="Run directory to write [default: outputs/<scenario name>/[<key>=<value>/...]"
    "seed=<seed>, a folder per --set].",
)
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=_SET_HELP)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace a run directory that holds a different run (another scenario, other "
    "overrides or another seed).",
)
@click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors.")
@click.option(
    "--json", "as_json", is_flag=True, help="Print the summary as JSON instead of a table."
)
def run(
    scenario: Path,
    seed: int | None,
    out: Path | None,
    overrides: tuple[str, ...],
    overwrite: bool,
    quiet: bool,
    as_json: bool,
) -> None:
    """Run one simulation of SCENARIO and write its run directory.

    Prints the run's estimated size and time first (on stderr), then a summary table (with
    --json, the summary.json content). A progress bar over simulated time shows on a terminal;
    with --quiet, or when stderr is not a terminal, there is none. A run that cannot fit this
    machine's memory or the disk of its run directory is refused (exit 2) before it starts,
    and so is a run directory holding a different run, unless --overwrite.
    """
    from sim import runner

    prepared = runner.prepare(scenario, overrides, out_dir=out)
    scn = prepared.scenario
    if not quiet:
        if prepared.estimate is not None:
            click.echo(prepared.estimate.line(), err=True)
        _warn(prepared)
    actual_seed = scn.scenario.seed if seed is None else seed
    target = out or runner.default_out_dir(scn.scenario.name, actual_seed, overrides)
    bar = _progress_bar(scn.scenario.name, scn.scenario.duration_s) if not quiet else None
    try:
        result = runner.run(
            prepared,
            seed=actual_seed,
            progress=bar.update_to if bar else None,
            out=target,
            overwrite=overwrite,
        )
    finally:
        if bar is not None:
            bar.close()
    written = result.run_dir
    if quiet:
        return
    if as_json:
        click.echo(json.dumps(result.summary, indent=2))
        return
    from sim.analysis.report import format_summary

    click.echo(format_summary(result.summary))
    click.echo(f"\nrun directory: {written}")


def _warn(prepared: Prepared) -> None:
    for warning in prepared.warnings:
        click.echo(f"warning: {warning.render(prepared.source)}", err=True)


BAR_FORMAT = "{desc}: {percentage:3.0f}%|{bar}| {n:.1f}/{total:.1f} {unit} [{elapsed}<{remaining}]"


class _Bar(Protocol):
    def update_to(self, t: float) -> None: ...

    def close(self) -> None: ...


def _progress_bar(name: str, horizon_s: float) -> _Bar | None:
    """A tqdm bar over simulated time, in minutes, hours or days; None if stderr is no terminal."""
    if not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    unit, size = next(
        (u, s)
        for u, s in (("d", 86400.0), ("h", 3600.0), ("min", 60.0), ("s", 1.0))
        if horizon_s >= 2 * s or s == 1.0
    )

    class Bar(tqdm):  # type: ignore[misc]
        def update_to(self, t: float) -> None:
            self.update(min(t, horizon_s) / size - self.n)

    return Bar(
        total=horizon_s / size,
        desc=name,
        unit=f"sim-{unit}",
        bar_format=BAR_FORMAT,
        leave=False,
    )


@cli.command()
@click.argument("sweep_file", metavar="SWEEP", type=click.Path(path_type=Path))
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("outputs"),
    show_default=True,
    help="Folder holding the sweep's folder (<out>/<sweep name>/).",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    help="Local worker processes [default: the CPUs this process may use].",
)
@click.option(
    "--scheduler",
    metavar="ADDRESS",
    help="Run on a Dask distributed cluster (tcp://host:port) instead of locally.",
)
@click.option("--dry-run", is_flag=True, help="List the points and runs; run nothing.")
@click.option("--overwrite", is_flag=True, help="Replace run folders that hold a different run.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors.")
def sweep(
    sweep_file: Path,
    out: Path,
    workers: int | None,
    scheduler: str | None,
    dry_run: bool,
    overwrite: bool,
    quiet: bool,
) -> None:
    """Run a parameter sweep: every point of SWEEP's grid, zip and samples, for each seed.

    Every point is checked before anything runs (exit 2 naming the point and the key). Runs
    already done (their manifest matches) are not redone, so an interrupted sweep continues
    where it stopped. Writes <out>/<name>/<axis>=<value>/.../seed=<n>/ run directories, then
    summary.parquet (one row per run) and summary_ci.parquet (mean and 95 % confidence
    interval per point). Exit code 1 if some runs failed (their errors are in the summary).
    """
    from sim.sweep import make_plan, run_sweep, status

    plan = make_plan(sweep_file, out)
    if dry_run:
        _list_plan(plan, status(plan))
        return
    progress = None if quiet else _run_bar(plan.name)
    report = run_sweep(
        plan, workers=workers, scheduler=scheduler, overwrite=overwrite, progress=progress
    )
    if not quiet:
        import pandas as pd

        from sim.analysis.report import format_points

        click.echo(format_points(pd.read_parquet(report.ci_path), list(plan.axes)))
        click.echo(
            f"\nsweep {plan.name}: {report.runs} runs, {report.ran} run now, {report.skipped} "
            f"done before, {len(report.failed)} failed"
        )
        click.echo(f"summary: {report.summary_path}")
        click.echo(f"per point: {report.ci_path}")
        if report.strays:
            click.echo(
                f"warning: {len(report.strays)} run folder(s) under {plan.root} are not runs of "
                f"this sweep (e.g. {report.strays[0]}); a dataset read of the folder includes "
                "them",
                err=True,
            )
    for run_dir, error in report.failed.items():
        click.echo(f"failed: {run_dir}: {error}", err=True)
    if report.failed:
        sys.exit(1)


def _list_plan(plan: Any, where: Any) -> None:
    state = {t.index: "done" for t in where.done}
    state.update({t.index: "to run" for t in where.todo})
    state.update({t.index: "different run (needs --overwrite)" for t, _ in where.different})
    click.echo(
        f"sweep {plan.name}: {len(plan.points)} points, {len(plan.tasks)} runs -> {plan.root}"
    )
    for task in plan.tasks:
        click.echo(f"  point {task.point}  {task.relative}  [{state[task.index]}]")


def _run_bar(name: str) -> Any:
    """A tqdm bar over runs (with the time left) on a terminal; None otherwise."""
    if not sys.stderr.isatty():
        return None

    def start(total: int, done: int) -> Any:
        from tqdm import tqdm

        bar = tqdm(total=total, initial=done, desc=name, unit="run", leave=False)

        def tick(outcome: Any) -> None:
            bar.update(1)
            if bar.n >= total:
                bar.close()

        return tick

    return start


@cli.command()
@click.argument("scenarios", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=_SET_HELP)
@click.option("-q", "--quiet", is_flag=True, help="Print only problems.")
def validate(scenarios: tuple[Path, ...], overrides: tuple[str, ...], quiet: bool) -> None:
    """Check scenario files (and sweep files, every point) without running them.

    Checks every key and value; that the run fits this machine's memory and the free disk of
    its default run directory; then, all at once, the references between sections (GPU
    types, pools), that replicas fit in memory and in the pools, the scheduler policy, and that
    data files can be read. Prints every problem with its key path; exits 2 if any file has
    one. Warnings (e.g. jobs too large for any pool) do not fail. For each good file, prints
    the estimate of its run: requests, rows, jobs, peak memory, disk and time.
    """
    from sim.config.sweep import is_sweep_file
    from sim.runner import prepare

    failed = 0
    for path in scenarios:
        if is_sweep_file(path):
            failed += _validate_sweep(path, overrides, quiet)
            continue
        try:
            prepared = prepare(path, overrides)
        except UserError as error:
            failed += 1
            click.echo(f"error: {error.render()}", err=True)
            continue
        _warn(prepared)
        if not quiet:
            click.echo(f"ok: {path}")
            if prepared.estimate is not None:
                click.echo(f"  {prepared.estimate.line()}")
    if failed:
        sys.exit(EXIT_BAD_INPUT)


def _validate_sweep(path: Path, overrides: tuple[str, ...], quiet: bool) -> int:
    """Check every point of a sweep file; 1 if it has problems, else 0."""
    from sim.sweep import make_plan

    if overrides:
        click.echo(f"error: {path}: --set does not apply to a sweep file; edit its axes", err=True)
        return 1
    try:
        plan = make_plan(path)
    except UserError as error:
        click.echo(f"error: {error.render()}", err=True)
        return 1
    if not quiet:
        click.echo(f"ok: {path} (a sweep: {len(plan.points)} points, {len(plan.tasks)} runs)")
    return 0


@cli.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def summarize(run_dir: Path, as_json: bool) -> None:
    """Recompute and print the summary of RUN_DIR from its Parquet files.

    Uses the same code as `sim run`, so the result matches the run's summary.json.
    """
    from sim.analysis.rundir import summarize_run_dir

    summary = summarize_run_dir(run_dir)
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        from sim.analysis.report import format_summary

        click.echo(format_summary(summary))


@cli.command()
@click.argument("source", metavar="RUN_OR_SWEEP_DIR", type=click.Path(path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "parquet"]),
    default="csv",
    show_default=True,
    help="File format: CSV, or flat Parquet (plain strings, no partition folders).",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    help="Folder to write [default: RUN_OR_SWEEP_DIR-<format> beside it].",
)
def export(source: Path, fmt: str, out: Path | None) -> None:
    """Write a run directory or a sweep folder as flat files, one per table.

    A sweep's runs are stacked into one file per table, each row led by its run folder
    (`run`), axis values and `seed`; the sweep's summary and summary_ci tables come too.
    """
    from sim.analysis.export import export as export_dir

    click.echo(f"exported to {export_dir(source, fmt, out)}")


@cli.command()
@click.option("--out", type=click.Path(path_type=Path), help="Write to a file instead of stdout.")
def schema(out: Path | None) -> None:
    """Print the JSON Schema of scenario files.

    Editors use it to complete and check scenario files: e.g. with the "Even Better TOML"
    extension, add `#:schema ./scenario.schema.json` at the top of a scenario.
    """
    from sim.config import scenario_json_schema

    text = json.dumps(scenario_json_schema(), indent=2)
    if out is None:
        click.echo(text)
        return
    try:
        out.write_text(text + "\n")
    except OSError as exc:
        raise UserError(f"{out}: cannot write ({exc.strerror or exc})") from None


def main() -> None:
    """Entry point of the ``sim`` console script."""
    cli(prog_name="sim")
