"""Sweeps: points, layout, resumption, failures, the Dask path, DuckDB and the per-point CIs."""

from __future__ import annotations

import json
import math
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from sim.cli import cli
from sim.config.sweep import Sample, SweepSection
from sim.record.writer import MANIFEST
from sim.sweep import make_plan, run_sweep
from sim.sweep.plan import latin_hypercube, points
from sim.sweep.tables import ci_frame, t_quantile

SIM = str(Path(sys.executable).with_name("sim"))

SCENARIO = """
[scenario]
name = "tiny"
seed = 3
duration = "{duration}"
warmup = "1m"

[[pools]]
name = "hall-a"
gpu_type = "H100-SXM"
nodes = 8
gpus_per_node = 1

[[workloads]]
name = "chat"
kind = "inference"
replicas = 8
gpus_per_replica = 1
arrival = {{ process = "poisson", rate_per_s = 6 }}
service = {{ dist = "exponential", mean = "1s" }}
sla = {{ latency = "5s" }}
"""

GRID = """
[sweep]
name = "grid"
scenario = "tiny.toml"
replications = {replications}

[sweep.grid]
"workloads.chat.replicas" = [7, 8]
"workloads.chat.arrival.rate_per_s" = [4.5, 6.0]
"""


def _write(tmp_path: Path, duration: str = "20m", replications: int = 2) -> Path:
    (tmp_path / "tiny.toml").write_text(SCENARIO.format(duration=duration))
    sweep = tmp_path / "grid.toml"
    sweep.write_text(GRID.format(replications=replications))
    return sweep


def _manifests(root: Path) -> dict[str, float]:
    return {
        str(p.parent.relative_to(root)): p.stat().st_mtime_ns for p in sorted(root.rglob(MANIFEST))
    }


def test_grid_gives_one_typed_row_per_run_and_a_second_invocation_redoes_nothing(
    tmp_path: Path,
) -> None:
    sweep = _write(tmp_path)
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["sweep", str(sweep), "--out", str(out), "--workers", "2"])
    assert result.exit_code == 0, result.output
    root = out / "grid"
    runs = _manifests(root)
    assert len(runs) == 8
    assert "workloads.chat.replicas=7/workloads.chat.arrival.rate_per_s=4.5/seed=4" in runs, sorted(
        runs
    )
    summary = pd.read_parquet(root / "summary.parquet")
    assert len(summary) == 8
    assert str(summary["workloads.chat.replicas"].dtype) == "Int64"
    assert str(summary["workloads.chat.arrival.rate_per_s"].dtype) == "float64"
    assert str(summary["seed"].dtype) == "Int64"
    assert sorted(summary["seed"].unique()) == [3, 4]
    assert (summary["status"] == "ok").all()
    # Each row holds its own run's figures, flattened, per workload and per pool too.
    for row in summary.itertuples(index=False):
        own = json.loads((root / row.run / "summary.json").read_text())
        assert row.requests_total == own["requests_total"]
        assert (
            summary.loc[summary.run == row.run, "workloads.chat.sla_attainment"].item()
            == (own["workloads"]["chat"]["sla_attainment"])
        )
        assert (
            summary.loc[summary.run == row.run, "pools.hall-a.gpu_utilization"].item()
            == (own["pools"]["hall-a"]["gpu_utilization"])
        )
    # More load, more requests: the axis columns are the runs' own values.
    by_rate = summary.groupby("workloads.chat.arrival.rate_per_s")["requests_total"].mean()
    assert by_rate[6.0] > by_rate[4.5] * 1.2

    assert "SLA met" in result.output and "runs" in result.output  # the table of points

    # A run written before an optional key existed (null here) is still the same run.
    first = root / summary["run"][0] / MANIFEST
    manifest = json.loads(first.read_text())
    assert manifest["scenario"]["scenario"].pop("timezone", "missing") is None
    first.write_text(json.dumps(manifest))
    runs[summary["run"][0]] = first.stat().st_mtime_ns

    again = CliRunner().invoke(cli, ["sweep", str(sweep), "--out", str(out)])
    assert again.exit_code == 0, again.output
    assert "0 run now, 8 done before" in again.output
    assert _manifests(root) == runs
    pd.testing.assert_frame_equal(pd.read_parquet(root / "summary.parquet"), summary)


def test_sweep_killed_midway_completes_on_rerun_with_every_run_intact(tmp_path: Path) -> None:
    sweep = _write(tmp_path, duration="3h")
    out = tmp_path / "out"
    root = out / "grid"
    cmd = [SIM, "sweep", str(sweep), "--out", str(out), "--workers", "1", "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while len(_manifests(root)) < 2 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = _manifests(root)
    assert 2 <= len(finished) < 8, "kill the sweep while runs remain"
    time.sleep(1.0)  # an orphan worker would go on writing; it must have died with its parent
    assert _manifests(root) == finished
    assert not (root / "summary.parquet").exists()

    rerun = subprocess.run([*cmd[:-1]], capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{8 - len(finished)} run now, {len(finished)} done before" in rerun.stdout
    runs = _manifests(root)
    assert len(runs) == 8
    assert all(runs[k] == v for k, v in finished.items()), "a finished run was redone"
    for run in runs:
        manifest = json.loads((root / run / MANIFEST).read_text())
        files = manifest["files"]
        present = {p.name for p in (root / run).iterdir()}
        assert present == {*files, MANIFEST}, f"{run}: stray or missing files"
    summary = pd.read_parquet(root / "summary.parquet")
    assert sorted(summary["run"]) == sorted(runs)


def test_local_pool_and_dask_cluster_give_the_same_summary(tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")
    sweep = _write(tmp_path, replications=1)
    local = make_plan(sweep, tmp_path / "local")
    run_sweep(local, workers=2)
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
    ) as cluster:
        remote = make_plan(sweep, tmp_path / "dask")
        report = run_sweep(remote, scheduler=cluster.scheduler_address)
    assert report.ran == 4 and not report.failed
    for table in ("summary.parquet", "summary_ci.parquet"):
        pd.testing.assert_frame_equal(
            pd.read_parquet(local.root / table), pd.read_parquet(remote.root / table)
        )
    for task in local.tasks:
        mine = Path(task.run_dir) / "requests.parquet"
        theirs = remote.root / task.relative / "requests.parquet"
        assert mine.read_bytes() == theirs.read_bytes()


def test_duckdb_reads_a_sweep_as_one_hive_partitioned_dataset(tmp_path: Path) -> None:
    duckdb = pytest.importorskip("duckdb")
    sweep = _write(tmp_path, replications=2)
    plan = make_plan(sweep, tmp_path / "out")
    run_sweep(plan, workers=2)
    pattern = str(plan.root / "**" / "requests.parquet")
    rows = duckdb.sql(
        f"""select "workloads.chat.replicas" as replicas, seed, count(*) as n
        from read_parquet('{pattern}', hive_partitioning = true) group by all"""
    ).fetchall()
    assert len(rows) == 4  # replicas x seeds, over both rates
    got = {(r, s): n for r, s, n in rows}
    want: dict[tuple[int, int], int] = {}
    for task in plan.tasks:
        manifest = json.loads((Path(task.run_dir) / MANIFEST).read_text())
        key = (dict(task.values)["workloads.chat.replicas"], task.seed)
        want[key] = want.get(key, 0) + manifest["rows"]["requests"]
    assert got == want
    types = duckdb.sql(
        f"""select typeof("workloads.chat.replicas"), typeof(seed)
        from read_parquet('{pattern}', hive_partitioning = true) limit 1"""
    ).fetchall()[0]
    assert types[0] in ("BIGINT", "INTEGER") and types[1] in ("BIGINT", "INTEGER")


def test_summary_ci_is_the_student_t_interval_by_hand() -> None:
    assert t_quantile(0.975, 1) == pytest.approx(12.7062047, rel=1e-7)
    assert t_quantile(0.975, 2) == pytest.approx(4.30265273, rel=1e-7)
    assert t_quantile(0.975, 4) == pytest.approx(2.77644511, rel=1e-7)
    assert t_quantile(0.975, 30) == pytest.approx(2.04227246, rel=1e-7)
    assert t_quantile(0.975, 10_000) == pytest.approx(1.96020124, rel=1e-6)
    summary = pd.DataFrame(
        {
            "run": ["a", "b", "c", "d", "e", "f"],
            "point": pd.array([0, 0, 0, 1, 1, 2], dtype="Int64"),
            "x": [1.0, 1.0, 1.0, 2.0, 2.0, 3.0],
            "seed": pd.array([1, 2, 3, 1, 2, 1], dtype="Int64"),
            "status": ["ok", "ok", "ok", "ok", "failed", "ok"],
            "error": [None, None, None, None, "boom", None],
            "y": [2.0, 4.0, 9.0, 5.0, math.nan, 7.0],
            "n": pd.array([10, 20, 60, 5, None, 1], dtype="Int64"),
        }
    )
    ci = ci_frame(summary, ["x"])
    assert ci["point"].tolist() == [0, 1, 2]
    assert ci["x"].tolist() == [1.0, 2.0, 3.0]
    assert ci["runs"].tolist() == [3, 1, 1]
    assert ci["failed"].tolist() == [0, 1, 0]
    y = [2.0, 4.0, 9.0]
    half = 4.30265273 * statistics.stdev(y) / math.sqrt(3)
    assert ci.loc[0, "y.mean"] == pytest.approx(5.0)
    assert ci.loc[0, "y.ci95_low"] == pytest.approx(5.0 - half, rel=1e-7)
    assert ci.loc[0, "y.ci95_high"] == pytest.approx(5.0 + half, rel=1e-7)
    assert ci.loc[0, "n.mean"] == pytest.approx(30.0)
    assert ci.loc[1, "y.mean"] == 5.0 and math.isnan(ci.loc[1, "y.ci95_low"])
    # A figure null in one finished run: the interval is over the two that have it.
    summary.loc[2, "y"] = math.nan
    ci = ci_frame(summary, ["x"])
    assert ci.loc[0, "y.mean"] == pytest.approx(3.0)
    half = 12.7062047 * statistics.stdev([2.0, 4.0]) / math.sqrt(2)
    assert ci.loc[0, "y.ci95_high"] == pytest.approx(3.0 + half, rel=1e-7)
    assert "seed.mean" not in ci.columns and "x.mean" not in ci.columns


def test_points_grid_zip_and_latin_hypercube() -> None:
    spec = SweepSection.model_validate(
        {
            "name": "s",
            "scenario": "x.toml",
            "grid": {"a": [1, 2]},
            "zip": {"b": [10, 20, 30], "c": ["x", "y", "z"]},
        }
    )
    got = points(spec)
    assert len(got) == 6
    assert got[0] == {"a": 1, "b": 10, "c": "x"} and got[-1] == {"a": 2, "b": 30, "c": "z"}
    assert all((p["b"], p["c"]) in ((10, "x"), (20, "y"), (30, "z")) for p in got)

    sample = Sample.model_validate({"n": 10, "seed": 4, "ranges": {"u": [0.0, 1.0], "k": [1, 10]}})
    rows = latin_hypercube(sample)
    strata = sorted(int(r["u"] * 10) for r in rows)  # type: ignore[operator]
    assert strata == list(range(10)), "one sample in each tenth"
    assert sorted(r["k"] for r in rows) == list(range(1, 11))  # type: ignore[type-var]
    assert all(isinstance(r["k"], int) for r in rows)
    assert latin_hypercube(sample) == rows


def test_bad_points_stop_the_sweep_before_anything_runs(tmp_path: Path) -> None:
    _write(tmp_path)
    sweep = tmp_path / "bad.toml"
    sweep.write_text(
        '[sweep]\nname = "bad"\nscenario = "tiny.toml"\n'
        '[sweep.grid]\n"workloads.chat.replicas" = [8, 9]\n"workloads.chat.sla.latency" = ["5s"]\n'
    )
    result = CliRunner().invoke(cli, ["sweep", str(sweep), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "point 1 (workloads.chat.replicas=9, workloads.chat.sla.latency=5s)" in result.output
    assert "workloads.chat.replicas: only 8 of 9 replicas" in result.output
    assert "point 0" not in result.output
    assert not (tmp_path / "out").exists()

    sweep.write_text(
        '[sweep]\nname = "bad"\nscenario = "tiny.toml"\n'
        '[sweep.grid]\n"workloads.chat.arrival.rate_per_s" = [6, "6"]\n'
    )
    result = CliRunner().invoke(cli, ["sweep", str(sweep), "--dry-run"])
    assert result.exit_code == 2 and "writes to the same folder as" in result.output

    sweep.write_text(
        '[sweep]\nname = "bad"\nscenario = "tiny.toml"\n[sweep.grid]\npools.hall-a.nodes = [8]\n'
    )
    result = CliRunner().invoke(cli, ["sweep", str(sweep)])
    assert result.exit_code == 2 and "quote dotted keys" in result.output

    sweep.write_text('[sweep]\nname = "bad"\nscenario = "tiny.toml"\nreplicatons = 2\n')
    result = CliRunner().invoke(cli, ["sweep", str(sweep)])
    assert result.exit_code == 2
    assert "sweep.replicatons: unknown key; did you mean 'replications'?" in result.output

    sweep.write_text(
        '[sweep]\nname = "bad"\nscenario = "tiny.toml"\n[sweep.zip]\na = [1, 2]\nb = [1]\n'
    )
    result = CliRunner().invoke(cli, ["sweep", str(sweep)])
    assert result.exit_code == 2 and "zip: every key needs as many values" in result.output


def test_a_failing_run_is_recorded_and_does_not_stop_the_others(tmp_path: Path) -> None:
    sweep = _write(tmp_path, replications=1)
    out = tmp_path / "out"
    plan = make_plan(sweep, out)
    victim = Path(plan.tasks[1].run_dir)
    victim.parent.mkdir(parents=True)
    victim.write_text("not a folder")
    result = CliRunner().invoke(cli, ["sweep", str(sweep), "--out", str(out), "--workers", "2"])
    assert result.exit_code == 1, result.output
    assert "exists and is not a directory" in result.output
    summary = pd.read_parquet(plan.root / "summary.parquet")
    assert summary["status"].tolist() == ["ok", "failed", "ok", "ok"]
    assert "not a directory" in summary.loc[1, "error"]
    assert pd.isna(summary.loc[1, "requests_total"])
    assert summary.loc[[0, 2, 3], "error"].isna().all()
    ci = pd.read_parquet(plan.root / "summary_ci.parquet")
    assert ci["failed"].tolist() == [0, 1, 0, 0]


def test_a_changed_scenario_needs_overwrite_to_replace_its_runs(tmp_path: Path) -> None:
    sweep = _write(tmp_path, replications=1)
    out = tmp_path / "out"
    run_sweep(make_plan(sweep, out), workers=1)
    (tmp_path / "tiny.toml").write_text(SCENARIO.format(duration="25m"))
    result = CliRunner().invoke(cli, ["sweep", str(sweep), "--out", str(out)])
    assert result.exit_code == 2
    assert "4 run folder(s) hold a different run" in result.output
    assert "--overwrite" in result.output
    dry = CliRunner().invoke(cli, ["sweep", str(sweep), "--out", str(out), "--dry-run"])
    assert dry.exit_code == 0 and dry.output.count("different run") == 4
    result = CliRunner().invoke(cli, ["sweep", str(sweep), "--out", str(out), "--overwrite"])
    assert result.exit_code == 0, result.output
    summary = pd.read_parquet(out / "grid" / "summary.parquet")
    assert (summary["duration_s"] == 1500.0).all()


def test_sim_run_with_set_gets_the_folders_a_sweep_point_would(tmp_path: Path) -> None:
    sweep = _write(tmp_path, replications=1)
    (tmp_path / "tiny.toml").write_text(SCENARIO.format(duration="5m"))
    cwd = os.getcwd()
    try:
        os.chdir(tmp_path)
        runner = CliRunner()
        plain = runner.invoke(cli, ["run", "tiny.toml", "--quiet"])
        assert plain.exit_code == 0, plain.output
        args = ["run", "tiny.toml", "--quiet", "--set", "workloads.chat.replicas=7"]
        args += ["--set", "workloads.chat.arrival.rate_per_s=4.5"]
        varied = runner.invoke(cli, args)
        assert varied.exit_code == 0, varied.output
        plan = make_plan(sweep.name, "outputs")
        assert (Path("outputs/tiny/seed=3") / MANIFEST).exists()
        point = "workloads.chat.replicas=7/workloads.chat.arrival.rate_per_s=4.5/seed=3"
        assert (Path("outputs/tiny") / point / MANIFEST).exists()
        assert plan.tasks[0].relative == point

        # Another scenario's run is not replaced without --overwrite.
        longer = ["run", "tiny.toml", "--quiet", "--set", "scenario.duration=6m"]
        longer += ["--out", "outputs/tiny/seed=3"]
        other = runner.invoke(cli, longer)
        assert other.exit_code == 2
        assert "holds a different run" in other.output and "--overwrite" in other.output
        same = runner.invoke(cli, ["run", "tiny.toml", "--quiet"])
        assert same.exit_code == 0, "the same run may be written again"
        forced = runner.invoke(cli, [*longer, "--overwrite"])
        assert forced.exit_code == 0, forced.output
    finally:
        os.chdir(cwd)


def test_export_stacks_a_sweep_into_flat_files_led_by_run_axes_and_seed(tmp_path: Path) -> None:
    sweep = _write(tmp_path, duration="5m", replications=1)
    plan = make_plan(sweep, tmp_path / "out")
    run_sweep(plan, workers=1)
    result = CliRunner().invoke(cli, ["export", str(plan.root), "--format", "csv"])
    assert result.exit_code == 0, result.output
    folder = plan.root.with_name("grid-csv")
    requests = pd.read_csv(folder / "requests.csv")
    assert list(requests.columns[:5]) == [
        "run",
        "workloads.chat.replicas",
        "workloads.chat.arrival.rate_per_s",
        "seed",
        "request_id",
    ]
    for task in plan.tasks:
        manifest = json.loads((Path(task.run_dir) / MANIFEST).read_text())
        mine = requests[requests["run"] == task.relative]
        assert len(mine) == manifest["rows"]["requests"]
        assert (
            mine["workloads.chat.replicas"] == dict(task.values)["workloads.chat.replicas"]
        ).all()
    assert len(pd.read_csv(folder / "summary.csv")) == 4
    one = plan.tasks[0].run_dir
    out = tmp_path / "flat"
    result = CliRunner().invoke(cli, ["export", one, "--format", "parquet", "--out", str(out)])
    assert result.exit_code == 0, result.output
    flat = pd.read_parquet(out / "requests.parquet")
    assert len(flat) == json.loads((Path(one) / MANIFEST).read_text())["rows"]["requests"]
    assert str(flat["replica"].dtype) == "Int32" and str(flat["sla_met"].dtype) == "boolean"
    assert str(flat["workload"].dtype) == "str", "flat: plain strings, not categories"
    again = CliRunner().invoke(cli, ["export", str(tmp_path), "--out", str(out)])
    assert again.exit_code == 2 and "neither a run directory" in again.output
    inside = CliRunner().invoke(cli, ["export", one])  # would land in the sweep's folder
    assert inside.exit_code == 2 and "inside the sweep folder" in inside.output


def test_a_worker_reads_each_data_file_once_while_it_is_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sim.inputs as inputs
    from sim.config.loading import read_scenario

    data = tmp_path / "runtimes.csv"
    data.write_text("runtime\n600\n1200\n")
    (tmp_path / "s.toml").write_text(
        SCENARIO.format(duration="10m")
        + '\n[[workloads]]\nname = "ft"\nkind = "training"\ngpus = 1\n'
        'arrival = { process = "poisson", rate_per_h = 1 }\n'
        'duration = { dist = "empirical", path = "runtimes.csv", column = "runtime" }\n'
    )
    calls: list[Path] = []
    real = inputs.read_empirical

    def counting(spec):  # type: ignore[no-untyped-def]
        calls.append(spec.path)
        return real(spec)

    monkeypatch.setattr(inputs, "read_empirical", counting)
    monkeypatch.setattr(inputs, "_READ", {})
    for replicas in (6, 7, 8):
        scn, _ = read_scenario(tmp_path / "s.toml", [f"workloads.chat.replicas={replicas}"])
        got, problems = inputs.read_inputs(scn)
        assert not problems and sorted(got.samples.popitem()[1]) == [600.0, 1200.0]
    assert len(calls) == 1, "read once for three runs"
    data.write_text("runtime\n60\n")  # a changed file is read again
    os.utime(data, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
    got, _ = inputs.read_inputs(scn)
    assert len(calls) == 2 and got.samples.popitem()[1].tolist() == [60.0]


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_worker_killed_mid_run_costs_only_a_retry_of_its_run(tmp_path: Path) -> None:
    sweep = _write(tmp_path, duration="3h")
    out = tmp_path / "out"
    root = out / "grid"
    cmd = [SIM, "sweep", str(sweep), "--out", str(out), "--workers", "1", "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while len(_manifests(root)) < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    workers = [
        p for p in _children(proc.pid) if "spawn_main" in Path(f"/proc/{p}/cmdline").read_text()
    ]
    assert workers, "the pool's worker"
    os.kill(workers[0], signal.SIGKILL)  # as the kernel's out-of-memory killer would
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert len(_manifests(root)) == 8
    summary = pd.read_parquet(root / "summary.parquet")
    assert (summary["status"] == "ok").all()
