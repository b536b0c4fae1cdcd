"""The ``sim`` command line: every command through click's runner, plus real subprocesses.

Covers the CLI contract (README, "Using it"): ``run`` writes a complete run directory (the required
columns with their Arrow types, every summary.json key, the manifest), ``summarize`` agrees with
``run``, ``schema`` and ``validate`` work, every command has help, and bad input exits 2 with a
message naming the file (or ``--set``), the key path and what was expected, never a traceback,
and never leaves a manifest.json behind.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner, Result

from sim import __version__
from sim.cli import cli

SIM = Path(sys.executable).parent / "sim"

# A small site: four chat replicas and a stream of 8-GPU jobs on 16 H100 GPUs, ten minutes.
SMALL = """
[scenario]
name = "small"
seed = 1
duration = "10m"
warmup = "1m"

[[pools]]
name = "hall"
gpu_type = "H100-SXM"
nodes = 2
gpus_per_node = 8

[[workloads]]
name = "chat"
kind = "inference"
replicas = 4
arrival = { process = "poisson", rate_per_s = 3 }
service = { dist = "exponential", mean = "1s" }
sla = { latency = "5s" }

[[workloads]]
name = "train"
kind = "training"
arrival = { process = "poisson", rate_per_h = 30 }
gpus = 8
duration = { dist = "exponential", mean = "2m" }
"""

# A training workload whose job durations come from a CSV file next to the scenario.
EMPIRICAL = """
[scenario]
name = "emp"
duration = "10m"

[[pools]]
name = "hall"
gpu_type = "H100-SXM"
nodes = 2
gpus_per_node = 8

[[workloads]]
name = "ft"
kind = "training"
arrival = { process = "poisson", rate_per_h = 30 }
gpus = 8
duration = { dist = "empirical", path = "data/runtimes.csv", column = "runtime" }
"""
GOOD_CSV = "runtime\n60\n120\n300\n"

SUMMARY_KEYS = (
    "gpu_utilization",
    "requests_total",
    "requests_served",
    "sla_attainment",
    "request_wait_mean_s",
    "request_latency_p50_s",
    "request_latency_p95_s",
    "request_latency_p99_s",
    "jobs_submitted",
    "jobs_completed",
    "job_wait_mean_s",
    "energy_mwh",
    "pue",
)

TABLES = ("events", "requests", "jobs", "timeseries", "pool_timeseries")

F64 = pa.float64()
STRING = "string"  # plain or dictionary-encoded string
INT = "integer"

# The run-directory contract (README, "The run directory"): required columns and their Arrow types.
REQUIRED_COLUMNS: dict[str, dict[str, object]] = {
    "events": {"time_s": F64, "event": STRING},
    "requests": {
        "request_id": pa.int64(),
        "workload": STRING,
        "arrival_s": F64,
        "start_s": F64,
        "end_s": F64,
        "wait_s": F64,
        "latency_s": F64,
        "status": STRING,
        "sla_met": pa.bool_(),
    },
    "jobs": {
        "job_id": pa.int64(),
        "workload": STRING,
        "gpus": pa.int32(),
        "submit_s": F64,
        "start_s": F64,
        "end_s": F64,
        "wait_s": F64,
        "status": STRING,
        "restarts": pa.int32(),
    },
    "timeseries": {
        "time_s": F64,
        "gpus_total": INT,
        "gpus_up": INT,
        "gpus_busy": INT,
        "it_power_kw": F64,
        "facility_power_kw": F64,
        "power_limit_kw": F64,
    },
}


def invoke(*args: str | Path) -> Result:
    """Run ``sim ARGS`` in-process."""
    return CliRunner().invoke(cli, [str(a) for a in args])


def assert_ok(result: Result) -> None:
    assert result.exit_code == 0, result.output
    assert result.exception is None, result.output


def assert_bad_input(result: Result, *expected: str) -> None:
    """Exit code 2, no traceback, and every ``expected`` text in the message on stderr."""
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    for text in expected:
        assert text in result.stderr, f"{text!r} not in:\n{result.stderr}"


def replaced(text: str, *pairs: tuple[str, str]) -> str:
    """``text`` with each (old, new) replaced; each ``old`` must occur exactly once."""
    for old, new in pairs:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    return text


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Result]:
    """One ``sim run`` of SMALL (shared by the tests that only read its outputs)."""
    base = tmp_path_factory.mktemp("small")
    scenario = write(base / "small.toml", SMALL)
    out = base / "run"
    result = invoke("run", scenario, "--out", out)
    assert_ok(result)
    return out, result


# --- help and version ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "words"),
    [
        ((), ("Simulate", "run", "validate", "summarize", "schema")),
        (("run",), ("Run one simulation", "--seed", "--out", "--set", "--quiet", "--json")),
        (("validate",), ("Check scenario files", "--set")),
        (("summarize",), ("summary", "RUN_DIR", "--json")),
        (("schema",), ("JSON Schema", "--out")),
    ],
)
def test_help(command: tuple[str, ...], words: tuple[str, ...]) -> None:
    for flag in ("--help", "-h"):
        result = invoke(*command, flag)
        assert_ok(result)
        assert result.stdout.startswith("Usage: ")
        for word in words:
            assert word in result.stdout


def test_version() -> None:
    result = invoke("--version")
    assert_ok(result)
    assert __version__ in result.stdout


# --- sim run ------------------------------------------------------------------------------


def test_run_writes_every_file(small_run: tuple[Path, Result]) -> None:
    out, _ = small_run
    expected = {f"{t}.parquet" for t in TABLES} | {"summary.json", "manifest.json"}
    assert expected <= {p.name for p in out.iterdir()}
    # written atomically: no temporary files are left behind
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("table", sorted(REQUIRED_COLUMNS))
def test_run_tables_have_required_columns_and_types(
    small_run: tuple[Path, Result], table: str
) -> None:
    out, _ = small_run
    schema = pq.read_schema(out / f"{table}.parquet")
    for name, expected in REQUIRED_COLUMNS[table].items():
        assert name in schema.names, f"{table}.{name} missing"
        actual = schema.field(name).type
        if expected == STRING:
            if pa.types.is_dictionary(actual):
                actual = actual.value_type
            assert pa.types.is_string(actual) or pa.types.is_large_string(actual), (name, actual)
        elif expected == INT:
            assert pa.types.is_integer(actual), (name, actual)
        else:
            assert actual == expected, (table, name, actual)


def test_run_tables_have_rows(small_run: tuple[Path, Result]) -> None:
    out, _ = small_run
    rows = {t: pq.read_metadata(out / f"{t}.parquet").num_rows for t in TABLES}
    assert rows["requests"] > 1000  # about 3/s for 10 minutes
    assert rows["jobs"] > 0
    assert rows["timeseries"] >= 10  # one sample a minute
    assert rows["events"] > 0
    statuses = set(pq.read_table(out / "requests.parquet").column("status").to_pylist())
    assert "ok" in statuses


def test_run_summary_has_every_contract_key(small_run: tuple[Path, Result]) -> None:
    out, _ = small_run
    summary = read_json(out / "summary.json")
    assert isinstance(summary, dict)
    missing = [k for k in SUMMARY_KEYS if k not in summary]
    assert not missing
    assert summary["requests_served"] > 0
    assert summary["jobs_submitted"] > 0
    assert 0 < summary["gpu_utilization"] <= 1
    assert summary["energy_mwh"] > 0
    assert summary["pue"] >= 1


def test_run_manifest(small_run: tuple[Path, Result]) -> None:
    out, _ = small_run
    manifest = read_json(out / "manifest.json")
    assert isinstance(manifest, dict)
    assert manifest["version"] == __version__
    assert manifest["seed"] == 1
    assert isinstance(manifest["schema_version"], int)
    assert manifest["wall_time_s"] >= 0
    resolved = manifest["scenario"]
    assert resolved["scenario"]["name"] == "small"
    assert resolved["scenario"]["duration"] == 600
    assert [w["name"] for w in resolved["workloads"]] == ["chat", "train"]
    for table in TABLES:
        assert manifest["rows"][table] == pq.read_metadata(out / f"{table}.parquet").num_rows


def test_run_prints_summary_table(small_run: tuple[Path, Result]) -> None:
    out, result = small_run
    assert "GPU utilisation" in result.stdout
    assert "chat" in result.stdout
    assert str(out) in result.stdout


def test_run_quiet_prints_nothing(write_scenario: Callable[..., Path], tmp_path: Path) -> None:
    scenario = write_scenario(SMALL)
    result = invoke("run", scenario, "--out", tmp_path / "q", "--quiet")
    assert_ok(result)
    assert result.stdout == ""
    assert (tmp_path / "q" / "manifest.json").exists()


def test_run_json_equals_summary_file(write_scenario: Callable[..., Path], tmp_path: Path) -> None:
    scenario = write_scenario(SMALL)
    out = tmp_path / "j"
    result = invoke("run", scenario, "--out", out, "--json")
    assert_ok(result)
    assert json.loads(result.stdout) == read_json(out / "summary.json")


def test_run_default_directory_and_seed(
    write_scenario: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scenario = write_scenario(SMALL)
    monkeypatch.chdir(tmp_path)
    assert_ok(invoke("run", scenario, "-q"))
    assert_ok(invoke("run", scenario, "-q", "--seed", "2"))
    first = tmp_path / "outputs" / "small" / "seed=1"
    second = tmp_path / "outputs" / "small" / "seed=2"
    assert (first / "manifest.json").exists()
    assert (second / "manifest.json").exists()
    assert read_json(second / "manifest.json")["seed"] == 2
    assert read_json(first / "summary.json") != read_json(second / "summary.json")
    assert (first / "requests.parquet").read_bytes() != (second / "requests.parquet").read_bytes()


def test_run_same_seed_same_results(write_scenario: Callable[..., Path], tmp_path: Path) -> None:
    scenario = write_scenario(SMALL)
    for name in ("a", "b"):
        assert_ok(invoke("run", scenario, "-q", "--out", tmp_path / name))
    for table in TABLES:
        a = (tmp_path / "a" / f"{table}.parquet").read_bytes()
        assert a == (tmp_path / "b" / f"{table}.parquet").read_bytes(), table
    assert read_json(tmp_path / "a" / "summary.json") == read_json(tmp_path / "b" / "summary.json")


def test_run_set_overrides_reach_the_manifest(
    write_scenario: Callable[..., Path], tmp_path: Path
) -> None:
    scenario = write_scenario(SMALL)
    out = tmp_path / "o"
    result = invoke(
        "run",
        scenario,
        "-q",
        "--out",
        out,
        "--set",
        "scenario.duration=30m",
        "--set",
        "workloads.chat.replicas=6",
        "--set",
        "workloads.chat.arrival.rate_per_s=2",
    )
    assert_ok(result)
    manifest = read_json(out / "manifest.json")
    assert isinstance(manifest, dict)
    resolved = manifest["scenario"]
    assert resolved["scenario"]["duration"] == 1800
    chat = next(w for w in resolved["workloads"] if w["name"] == "chat")
    assert chat["replicas"] == 6
    assert chat["arrival"]["rate_per_s"] == 2
    assert manifest["overrides"] == [
        "scenario.duration=30m",
        "workloads.chat.replicas=6",
        "workloads.chat.arrival.rate_per_s=2",
    ]
    summary = read_json(out / "summary.json")
    assert summary["duration_s"] == 1800


# --- sim summarize ------------------------------------------------------------------------


def test_summarize_json_equals_summary_file(small_run: tuple[Path, Result]) -> None:
    out, _ = small_run
    result = invoke("summarize", out, "--json")
    assert_ok(result)
    assert json.loads(result.stdout) == read_json(out / "summary.json")


def test_summarize_prints_table(small_run: tuple[Path, Result]) -> None:
    out, run_result = small_run
    result = invoke("summarize", out)
    assert_ok(result)
    assert "GPU utilisation" in result.stdout
    assert "chat" in result.stdout
    # the same table `sim run` printed, without its run-directory line
    assert run_result.stdout.startswith(result.stdout.rstrip("\n"))


# --- sim schema ---------------------------------------------------------------------------


def _check_schema(schema: object) -> None:
    assert isinstance(schema, dict)
    assert schema.get("type") == "object"
    assert {"scenario", "pools", "workloads"} <= set(schema["properties"])


def test_schema_prints_json_schema() -> None:
    result = invoke("schema")
    assert_ok(result)
    schema = json.loads(result.stdout)
    _check_schema(schema)
    assert schema["title"] == "sim scenario"


def test_schema_out_writes_file(tmp_path: Path) -> None:
    target = tmp_path / "scenario.schema.json"
    result = invoke("schema", "--out", target)
    assert_ok(result)
    assert result.stdout == ""
    _check_schema(read_json(target))


# --- sim validate -------------------------------------------------------------------------


def test_validate_ok(write_scenario: Callable[..., Path]) -> None:
    scenario = write_scenario(SMALL)
    result = invoke("validate", scenario)
    assert_ok(result)
    assert result.stdout.splitlines()[0] == f"ok: {scenario}"
    assert result.stderr == ""


def test_validate_several_files(write_scenario: Callable[..., Path], tmp_path: Path) -> None:
    one = write_scenario(SMALL, "one")
    two = write_scenario(replaced(SMALL, ('name = "small"', 'name = "two"')), "two")
    result = invoke("validate", one, two)
    assert_ok(result)
    assert f"ok: {one}" in result.stdout
    assert f"ok: {two}" in result.stdout
    # one bad file among good ones: the good ones are still reported, the exit code is 2
    bad = write_scenario(replaced(SMALL, ("nodes = 2", "nodes = -1")), "bad")
    result = invoke("validate", one, bad, two)
    assert_bad_input(result, str(bad), "pools.hall.nodes")
    assert f"ok: {one}" in result.stdout
    assert f"ok: {two}" in result.stdout
    assert f"ok: {bad}" not in result.stdout


def test_validate_with_set(write_scenario: Callable[..., Path]) -> None:
    scenario = write_scenario(SMALL)
    assert_ok(invoke("validate", scenario, "--set", "workloads.chat.replicas=8"))
    result = invoke("validate", scenario, "--set", "workloads.chat.replicas=20")
    assert_bad_input(result, str(scenario), "workloads.chat.replicas", "20")


def test_validate_warning_does_not_fail(write_scenario: Callable[..., Path]) -> None:
    scenario = write_scenario(replaced(SMALL, ("gpus = 8", "gpus = 32")))
    result = invoke("validate", scenario)
    assert_ok(result)
    assert f"ok: {scenario}" in result.stdout
    assert "warning:" in result.stderr
    assert str(scenario) in result.stderr
    assert "workloads.train.gpus" in result.stderr
    assert "32" in result.stderr


def test_validate_quiet_prints_only_problems(write_scenario: Callable[..., Path]) -> None:
    scenario = write_scenario(SMALL)
    result = invoke("validate", "-q", scenario)
    assert_ok(result)
    assert result.stdout == ""


def test_validate_empirical_data_ok(tmp_path: Path) -> None:
    scenario = write(tmp_path / "emp.toml", EMPIRICAL)
    write(tmp_path / "data" / "runtimes.csv", GOOD_CSV)
    result = invoke("validate", scenario)
    assert_ok(result)
    assert f"ok: {scenario}" in result.stdout


# --- bad input ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Bad:
    """A bad scenario file (and data files beside it), and what its message must contain."""

    id: str
    text: str
    expect: tuple[str, ...]
    files: dict[str, str] = field(default_factory=dict)


BAD_SCENARIOS = [
    Bad(
        "malformed-toml",
        replaced(SMALL, ("[[pools]]", "[[pools]")),
        ("not valid TOML", "line 8"),
    ),
    Bad(
        "unknown-key",
        replaced(SMALL, ('warmup = "1m"', 'warmpu = "1m"')),
        ("scenario.warmpu", "unknown key", "'warmup'"),
    ),
    Bad(
        "unknown-key-in-arrival",
        replaced(SMALL, ("rate_per_s = 3", "rate_per_sec = 3")),
        ("workloads.chat.arrival.rate_per_sec", "unknown key", "'rate_per_s'"),
    ),
    Bad(
        "negative-nodes",
        replaced(SMALL, ("nodes = 2", "nodes = -1")),
        ("pools.hall.nodes", "greater than or equal to 1", "-1"),
    ),
    Bad(
        "zero-rate",
        replaced(SMALL, ("rate_per_s = 3", "rate_per_s = 0")),
        ("workloads.chat.arrival.rate_per_s", "greater than 0"),
    ),
    Bad(
        "bad-duration",
        replaced(SMALL, ('duration = "10m"', 'duration = "2 hours"')),
        ("scenario.duration", "'2 hours'", "duration such as", "'90s'"),
    ),
    Bad(
        "unknown-gpu-type",
        replaced(SMALL, ("H100-SXM", "H100-SMX")),
        ("pools.hall.gpu_type", "'H100-SMX'", "did you mean 'H100-SXM'"),
    ),
    Bad(
        "gpu-type-in-wrong-case",
        replaced(SMALL, ("H100-SXM", "h100-sxm")),
        ("pools.hall.gpu_type", "'h100-sxm'", "did you mean 'H100-SXM'"),
    ),
    Bad(
        "peak-below-idle",
        SMALL + '\n[[gpu_types]]\nname = "hot"\nmemory_gb = 24\nidle_w = 300\npeak_w = 200\n',
        ("gpu_types.hot.peak_w", "must not be below idle_w (peak_w 200, idle_w 300)"),
    ),
    Bad(
        "unknown-pool",
        replaced(SMALL, ("replicas = 4", 'replicas = 4\npool = "hal"')),
        ("workloads.chat.pool", "no pool named 'hal'", "'hall'"),
    ),
    Bad(
        "model-too-big",
        replaced(SMALL, ("replicas = 4", "replicas = 4\nmodel_memory_gb = 100")),
        ("workloads.chat.model_memory_gb", "100 GB", "80 GB", "gpus_per_replica"),
    ),
    Bad(
        "more-replicas-than-gpus",
        replaced(SMALL, ("replicas = 4", "replicas = 20")),
        ("workloads.chat.replicas", "of 20 replicas", "16 GPUs"),
    ),
    Bad(
        "unknown-policy",
        SMALL + '\n[scheduler]\npolicy = "fifoo"\n',
        ("scheduler.policy", "'fifoo'", "did you mean 'fifo'"),
    ),
    Bad(
        "unknown-dist",
        replaced(SMALL, ('dist = "exponential", mean = "1s"', 'dist = "exponentail", mean = "1s"')),
        ("workloads.chat.service", "'exponentail'", "did you mean 'exponential'"),
    ),
    Bad(
        "unknown-kind",
        replaced(SMALL, ('kind = "inference"', 'kind = "inferense"')),
        ("workloads.chat", "'inferense'", "did you mean 'inference'"),
    ),
    Bad(
        "warmup-not-shorter",
        replaced(SMALL, ('warmup = "1m"', 'warmup = "10m"')),
        ("scenario.warmup", "shorter than scenario.duration"),
    ),
    Bad(
        "missing-required-key",
        replaced(SMALL, ("replicas = 4\n", "")),
        ("workloads.chat.replicas", "required key is missing"),
    ),
    Bad(
        "bad-scenario-name",
        replaced(SMALL, ('name = "small"', 'name = "Small Site"')),
        ("scenario.name", "lowercase letters, digits", "'Small Site'"),
    ),
    Bad(
        "empirical-file-missing",
        EMPIRICAL,
        ("workloads.ft.duration", "runtimes.csv", "does not exist"),
    ),
    Bad(
        "empirical-column-missing",
        EMPIRICAL,
        ("workloads.ft.duration", "runtimes.csv", "no column 'runtime'", "other"),
        {"data/runtimes.csv": "other\n60\n"},
    ),
    Bad(
        "empirical-bad-rows",
        EMPIRICAL,
        ("workloads.ft.duration", "runtimes.csv", "2 value(s)", "line 3: 'abc'", "line 4: '-5'"),
        {"data/runtimes.csv": "runtime\n60\nabc\n-5\n120\n"},
    ),
]


def _write_bad(case: Bad, folder: Path) -> Path:
    for name, text in case.files.items():
        write(folder / name, text)
    return write(folder / "bad.toml", case.text)


@pytest.mark.parametrize("case", BAD_SCENARIOS, ids=lambda c: c.id)
def test_validate_bad_scenario(case: Bad, tmp_path: Path) -> None:
    scenario = _write_bad(case, tmp_path)
    result = invoke("validate", scenario)
    assert_bad_input(result, f"error: {scenario}", *case.expect)
    assert "ok:" not in result.stdout


@pytest.mark.parametrize("case", BAD_SCENARIOS, ids=lambda c: c.id)
def test_run_bad_scenario(case: Bad, tmp_path: Path) -> None:
    scenario = _write_bad(case, tmp_path)
    out = tmp_path / "out"
    result = invoke("run", scenario, "--out", out)
    assert_bad_input(result, f"error: {scenario}", *case.expect)
    assert result.stdout == ""
    assert not (out / "manifest.json").exists()


def test_several_errors_reported_at_once(write_scenario: Callable[..., Path]) -> None:
    scenario = write_scenario(
        replaced(
            SMALL,
            ('warmup = "1m"', 'warmpu = "1m"'),
            ("nodes = 2", "nodes = -1"),
            ("rate_per_s = 3", "rate_per_s = 0"),
            ('duration = "10m"', 'duration = "2 hours"'),
        )
    )
    result = invoke("validate", scenario)
    assert_bad_input(
        result,
        f"{scenario}: 4 problems",
        f"{scenario}: scenario.warmpu: unknown key",
        f"{scenario}: pools.hall.nodes: must be greater than or equal to 1",
        f"{scenario}: workloads.chat.arrival.rate_per_s: must be greater than 0",
        f"{scenario}: scenario.duration: expected a duration",
    )


def test_several_cross_section_errors_reported_at_once(
    write_scenario: Callable[..., Path],
) -> None:
    scenario = write_scenario(
        replaced(
            SMALL,
            ("H100-SXM", "H100-SMX"),
            ("replicas = 4", 'replicas = 4\npool = "hal"'),
            ('warmup = "1m"', 'warmup = "1h"'),
        )
    )
    result = invoke("run", scenario, "--out", scenario.parent / "out")
    assert_bad_input(
        result,
        f"{scenario}: 3 problems",
        f"{scenario}: pools.hall.gpu_type: no GPU type named 'H100-SMX'",
        f"{scenario}: workloads.chat.pool: no pool named 'hal'",
        f"{scenario}: scenario.warmup: must be shorter",
    )
    assert not (scenario.parent / "out").exists()


def test_a_broken_reference_does_not_hide_independent_errors(
    write_scenario: Callable[..., Path],
) -> None:
    """The unknown GPU type of pool 'shed' leaves the warmup and the memory of chat (which
    names pool 'hall') to be checked."""
    scenario = write_scenario(
        replaced(
            SMALL,
            ('warmup = "1m"', 'warmup = "1h"'),
            ("replicas = 4", 'replicas = 4\npool = "hall"\nmodel_memory_gb = 100'),
        )
        + '\n[[pools]]\nname = "shed"\ngpu_type = "H100-SMX"\nnodes = 1\n'
    )
    result = invoke("validate", scenario)
    assert_bad_input(
        result,
        f"{scenario}: 3 problems",
        f"{scenario}: scenario.warmup: must be shorter",
        f"{scenario}: pools.shed.gpu_type: no GPU type named 'H100-SMX'",
        f"{scenario}: workloads.chat.model_memory_gb: a replica needs 100 GB",
    )


def test_validate_accepts_a_byte_order_mark(tmp_path: Path) -> None:
    scenario = tmp_path / "notepad.toml"
    scenario.write_bytes(b"\xef\xbb\xbf" + SMALL.encode())
    result = invoke("validate", scenario)
    assert_ok(result)
    assert result.stdout.splitlines()[0] == f"ok: {scenario}"


@pytest.mark.parametrize("command", ["run", "validate"])
def test_set_blamed_for_a_cross_field_error(
    command: str, write_scenario: Callable[..., Path]
) -> None:
    scenario = write_scenario(SMALL)
    out = scenario.parent / "out"
    extra = ["--out", out] if command == "run" else []
    result = invoke(command, scenario, *extra, "--set", "scenario.duration=1m")
    assert_bad_input(
        result,
        f"{scenario}: scenario.warmup: must be shorter than scenario.duration "
        "(from --set scenario.duration)",
    )
    assert not (out / "manifest.json").exists()


def test_set_blamed_for_a_replica_that_no_longer_fits(write_scenario: Callable[..., Path]) -> None:
    scenario = write_scenario(
        replaced(
            SMALL, ("replicas = 4", "replicas = 4\ngpus_per_replica = 2\nmodel_memory_gb = 100")
        )
    )
    assert_ok(invoke("validate", scenario))
    result = invoke("validate", scenario, "--set", "workloads.chat.gpus_per_replica=1")
    assert_bad_input(
        result,
        "workloads.chat.model_memory_gb",
        "needs 100 GB",
        "(from --set workloads.chat.gpus_per_replica)",
    )


@pytest.mark.parametrize("command", ["run", "validate"])
def test_missing_scenario_file(command: str, tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    result = invoke(command, missing)
    assert_bad_input(result, f"error: {missing}", "no such file")


def test_scenario_is_a_directory(tmp_path: Path) -> None:
    result = invoke("validate", tmp_path)
    assert_bad_input(result, str(tmp_path), "is a directory", "TOML")


@pytest.mark.parametrize("command", ["run", "validate"])
def test_set_unknown_entry_suggests_nearest(
    command: str, write_scenario: Callable[..., Path]
) -> None:
    scenario = write_scenario(SMALL)
    out = scenario.parent / "out"
    extra = ["--out", out] if command == "run" else []
    result = invoke(command, scenario, *extra, "--set", "workloads.chta.replicas=3")
    assert_bad_input(result, "error: --set", "workloads.chta", "no entry named 'chta'", "'chat'")
    assert not (out / "manifest.json").exists()


@pytest.mark.parametrize("command", ["run", "validate"])
def test_set_without_equals(command: str, write_scenario: Callable[..., Path]) -> None:
    scenario = write_scenario(SMALL)
    result = invoke(command, scenario, "--set", "scenario.duration")
    assert_bad_input(result, "error: --set", "scenario.duration", "expected KEY=VALUE")


def test_set_unknown_key_suggests_nearest(write_scenario: Callable[..., Path]) -> None:
    scenario = write_scenario(SMALL)
    result = invoke("validate", scenario, "--set", "scenario.warmpu=3m")
    assert_bad_input(result, "scenario.warmpu", "unknown key", "'warmup'")


def test_set_inside_a_value(write_scenario: Callable[..., Path]) -> None:
    scenario = write_scenario(SMALL)
    result = invoke("validate", scenario, "--set", "scenario.name.x=1")
    assert_bad_input(result, "error: --set", "scenario.name.x", "not a table")


def test_set_bad_value(write_scenario: Callable[..., Path]) -> None:
    scenario = write_scenario(SMALL)
    result = invoke("validate", scenario, "--set", "pools.hall.nodes=many")
    assert_bad_input(
        result, "pools.hall.nodes", "integer", "'many'", "(from --set pools.hall.nodes)"
    )


def test_set_index_out_of_range(write_scenario: Callable[..., Path]) -> None:
    scenario = write_scenario(SMALL)
    result = invoke("validate", scenario, "--set", "pools.5.nodes=3")
    assert_bad_input(result, "error: --set", "pools.5", "no entry number 5", "there are 1")


def test_run_prints_warnings_unless_quiet(
    write_scenario: Callable[..., Path], tmp_path: Path
) -> None:
    scenario = write_scenario(replaced(SMALL, ("gpus = 8", "gpus = 32")))
    loud = invoke("run", scenario, "--out", tmp_path / "a")
    assert_ok(loud)
    assert "warning:" in loud.stderr and "workloads.train.gpus" in loud.stderr
    quiet = invoke("run", scenario, "--out", tmp_path / "b", "--quiet")
    assert_ok(quiet)
    assert quiet.stderr == "" and quiet.stdout == ""


def test_out_is_an_existing_file(write_scenario: Callable[..., Path], tmp_path: Path) -> None:
    scenario = write_scenario(SMALL)
    target = tmp_path / "taken"
    target.write_text("keep me\n")
    result = invoke("run", scenario, "--out", target)
    assert_bad_input(result, f"error: {target}", "not a directory", "--out")
    assert target.read_text() == "keep me\n"


@pytest.mark.parametrize(
    ("name", "text", "words"),
    [
        ("manifest.json", '{"name": "my web app"}', "manifest.json (not written by sim)"),
        ("notes.txt", "my notes", "notes.txt"),
    ],
)
def test_out_among_files_sim_did_not_write(
    write_scenario: Callable[..., Path], tmp_path: Path, name: str, text: str, words: str
) -> None:
    scenario = write_scenario(SMALL)
    target = tmp_path / "folder"
    target.mkdir()
    (target / name).write_text(text)
    result = invoke("run", scenario, "--out", target)
    assert_bad_input(result, f"error: {target}", "did not write", words)
    assert [p.name for p in target.iterdir()] == [name]
    assert (target / name).read_text() == text


def test_out_inside_a_file(write_scenario: Callable[..., Path], tmp_path: Path) -> None:
    scenario = write_scenario(SMALL)
    target = tmp_path / "taken"
    target.write_text("keep me\n")
    result = invoke("run", scenario, "--out", target / "run")
    assert_bad_input(result, str(target / "run"), "cannot write", "--out")


def test_negative_seed(write_scenario: Callable[..., Path]) -> None:
    scenario = write_scenario(SMALL)
    result = invoke("run", scenario, "--seed", "-1")
    assert_bad_input(result, "--seed", "-1")


def test_summarize_directory_without_manifest(tmp_path: Path) -> None:
    result = invoke("summarize", tmp_path)
    assert_bad_input(result, f"error: {tmp_path}", "no manifest.json")


def test_summarize_not_a_directory(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    result = invoke("summarize", missing)
    assert_bad_input(result, f"error: {missing}", "not a directory")


def test_summarize_unreadable_manifest(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text("{not json")
    result = invoke("summarize", tmp_path)
    assert_bad_input(result, "manifest.json", "cannot read the manifest")


@pytest.mark.parametrize("text", ["{}", "[1, 2]", '{"run": {}}'])
def test_summarize_foreign_manifest(tmp_path: Path, text: str) -> None:
    (tmp_path / "manifest.json").write_text(text)
    result = invoke("summarize", tmp_path)
    assert_bad_input(result, "manifest.json", "not a sim run manifest")


def test_summarize_missing_table_says_missing(
    small_run: tuple[Path, Result], tmp_path: Path
) -> None:
    out, _ = small_run
    copy = tmp_path / "copy"
    copy.mkdir()
    for path in out.iterdir():
        if path.name != "workload_stats.parquet":
            (copy / path.name).write_bytes(path.read_bytes())
    result = invoke("summarize", copy)
    assert_bad_input(result, "workload_stats.parquet")
    message = result.stderr.replace(str(copy), "<dir>").lower()
    assert any(w in message for w in ("no such file", "does not exist", "missing", "not found"))


def test_schema_out_unwritable(tmp_path: Path) -> None:
    target = tmp_path / "no" / "such" / "dir" / "schema.json"
    result = invoke("schema", "--out", target)
    assert_bad_input(result, f"error: {target}", "cannot write")


def test_rejected_rerun_keeps_the_previous_run(tmp_path: Path) -> None:
    """Bad input is found before the output directory is touched: the previous run there
    stays complete and unchanged."""
    scenario = write(tmp_path / "emp.toml", EMPIRICAL)
    data = write(tmp_path / "data" / "runtimes.csv", GOOD_CSV)
    out = tmp_path / "out"
    assert_ok(invoke("run", scenario, "-q", "--out", out))
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    data.unlink()
    result = invoke("run", scenario, "-q", "--out", out)
    assert_bad_input(
        result, f"error: {scenario}", "workloads.ft.duration.path", "runtimes.csv", "does not exist"
    )
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert_ok(invoke("summarize", out))


def test_run_failing_midway_leaves_no_manifest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run that fails after its checks (here: the simulation raises) must not leave the
    previous run's manifest beside files it may have replaced."""
    scenario = write(tmp_path / "emp.toml", EMPIRICAL)
    write(tmp_path / "data" / "runtimes.csv", GOOD_CSV)
    out = tmp_path / "out"
    assert_ok(invoke("run", scenario, "-q", "--out", out))

    def crash(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("simulated crash")

    import sim.model.world

    monkeypatch.setattr(sim.model.world, "simulate", crash)
    result = invoke("run", scenario, "-q", "--out", out)
    assert result.exit_code != 0
    assert not (out / "manifest.json").exists()
    assert_bad_input(invoke("summarize", out), "no manifest.json")


# --- real subprocesses --------------------------------------------------------------------


def test_subprocess_run_ok(write_scenario: Callable[..., Path], tmp_path: Path) -> None:
    scenario = write_scenario(SMALL)
    out = tmp_path / "sub"
    proc = subprocess.run(
        [SIM, "run", scenario, "--out", out, "--quiet"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    assert (out / "manifest.json").exists()


def test_subprocess_bad_input(write_scenario: Callable[..., Path], tmp_path: Path) -> None:
    scenario = write_scenario(replaced(SMALL, ('warmup = "1m"', 'warmpu = "1m"')))
    out = tmp_path / "sub"
    proc = subprocess.run(
        [SIM, "run", scenario, "--out", out], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith(f"error: {scenario}: scenario.warmpu: unknown key")
    assert "'warmup'" in proc.stderr
    assert proc.stdout == ""
    assert not (out / "manifest.json").exists()


def test_summarize_refuses_a_run_of_another_output_schema(
    small_run: tuple[Path, Result], tmp_path: Path
) -> None:
    """A run directory written by a sim with other output columns is named, not misread."""
    out, _ = small_run
    copy = tmp_path / "old"
    copy.mkdir()
    for path in out.iterdir():
        (copy / path.name).write_bytes(path.read_bytes())
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["schema_version"] = 1
    (copy / "manifest.json").write_text(json.dumps(manifest))
    result = invoke("summarize", copy)
    assert_bad_input(result, "output schema 1", "run the scenario again")
