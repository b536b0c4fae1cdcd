"""Job traces: a trace's ``columns`` give each job its GPUs, run time and requested run time;
GPUs may also be drawn from a distribution. Checked row by row against the files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.csv as pacsv
import pytest
from click.testing import CliRunner

import sim
from sim.cli import cli
from sim.config.arrivals import TRACE_MARKS, Poisson, Trace
from sim.inputs import Inputs, read_trace, read_trace_marks
from sim.model.arrivals import StreamContext, make_stream, marks_of
from sim.model.rng import RandomStreams
from sim.model.training import gpu_counts
from sim.runner import prepare

DATA = Path(__file__).resolve().parent / "data"
ALIBABA = DATA / "alibaba_jobs_sample.csv"

SCENARIO = """
[scenario]
name = "jobtrace"
duration = "{duration}"
[[pools]]
name = "hall"
gpu_type = "H100-SXM"
nodes = 2
[[workloads]]
name = "replay"
kind = "training"
arrival = {{ process = "trace", path = "{path}", time_column = "submit"{columns} }}
{extra}
"""
ALIBABA_COLUMNS = ', columns = { gpus = "num_gpu", duration = "runtime" }'


def write(
    tmp_path: Path, path: Path | str, columns: str, extra: str = "", duration: str = "9d"
) -> Path:
    scenario = tmp_path / "s.toml"
    scenario.write_text(SCENARIO.format(duration=duration, path=path, columns=columns, extra=extra))
    return scenario


def test_a_job_trace_replays_every_row_as_one_job(tmp_path: Path) -> None:
    """Every row of the Alibaba sample is one job, submitted at its time since the first row,
    with its GPUs and run time. The pool's 16 GPUs never run out (one 8-GPU job and at most
    a few 1-GPU jobs at once), so each starts when submitted and ends run time later; the
    8-GPU job (1,332,357 s, 15.4 days) is still running at the 9-day horizon."""
    rows = pacsv.read_csv(ALIBABA).to_pylist()
    jobs = sim.run(prepare(write(tmp_path, ALIBABA, ALIBABA_COLUMNS))).frame("jobs")
    jobs = jobs.sort_values("submit_s", kind="stable").reset_index(drop=True)
    first = min(r["submit"] for r in rows)
    rows.sort(key=lambda r: r["submit"])
    assert len(jobs) == len(rows) == 12
    assert jobs["submit_s"].tolist() == [float(r["submit"] - first) for r in rows]
    assert jobs["gpus"].tolist() == [r["num_gpu"] for r in rows]
    assert jobs["work_s"].tolist() == [float(r["runtime"]) for r in rows]
    assert (jobs["start_s"] == jobs["submit_s"]).all()
    done = jobs[jobs["status"] == "completed"]
    assert len(done) == 11
    assert (done["end_s"] - done["start_s"]).tolist() == done["work_s"].tolist()
    assert jobs.loc[0, "status"] == "unfinished" and jobs.loc[0, "gpus"] == 8


def test_trace_marks_follow_their_rows_chunk_by_chunk(tmp_path: Path) -> None:
    """The file's rows are out of order; each mark follows its row's time once sorted
    (t 0, 1, 2, 3 have gpus 4, 2, 1, 3), and with ``loop`` every repetition repeats them.
    Non-trace streams have no marks."""
    (tmp_path / "j.csv").write_text("t,g,d\n2,1,20\n0,4,5\n3,3,7.5\n1,2,10\n")
    spec = Trace.model_validate(
        {
            "process": "trace",
            "path": "j.csv",
            "time_column": "t",
            "loop": True,
            "columns": {"gpus": "g", "duration": "d"},
        },
        context={"base_dir": tmp_path},
    )
    inputs = Inputs()
    inputs.traces[(spec.path, spec.time_column)] = read_trace(spec)
    inputs.trace_marks[(spec.path, spec.time_column, spec.marks())] = read_trace_marks(spec)
    stream = make_stream(spec, np.random.default_rng(0), StreamContext(inputs))
    for rep in range(3):
        times = stream.next_chunk()
        marks = marks_of(stream)
        assert times == [4.0 * rep + k for k in range(4)]  # period: span 3 + median gap 1
        assert sorted(marks) == ["duration", "gpus"]
        assert marks["gpus"].dtype == np.float64
        assert marks["gpus"].tolist() == [4.0, 2.0, 1.0, 3.0]
        assert marks["duration"].tolist() == [5.0, 10.0, 20.0, 7.5]
    # Past the first chunk (256 rows): row k at time k has k + 1 GPUs, whatever the chunk.
    rows = "".join(f"{k},{k + 1},1\n" for k in range(600))
    (tmp_path / "j.csv").write_text("t,g,d\n" + rows)
    long = spec.model_copy(update={"loop": False})
    inputs.traces[(spec.path, spec.time_column)] = read_trace(long)
    inputs.trace_marks[(spec.path, spec.time_column, spec.marks())] = read_trace_marks(long)
    stream = make_stream(long, np.random.default_rng(0), StreamContext(inputs))
    chunks = 0
    while times := stream.next_chunk():
        assert marks_of(stream)["gpus"].tolist() == [t + 1 for t in times]
        chunks += 1
    assert chunks == 2 and marks_of(stream)["gpus"].tolist() == []
    poisson = make_stream(
        Poisson.model_validate({"process": "poisson", "rate_per_s": 1.0}), np.random.default_rng(0)
    )
    assert marks_of(poisson) == {}
    assert TRACE_MARKS == ("input_tokens", "output_tokens", "gpus", "duration", "requested")


BAD_ROWS = [
    (
        "gpus",
        "t,g,d\n0,1,5\n1,0,5\n2,1.5,5\n3,x,5\n",
        "integers >= 1",
        "line 3: '0', line 4: '1.5', line 5: 'x'",
    ),
    (
        "duration",
        "t,g,d\n0,1,5\n1,1,-3\n2,1,0\n\n3,1,\n",
        "numbers of seconds > 0",
        "line 3: '-3', line 4: '0', line 6: ''",
    ),
    (
        "requested",
        "t,g,d,r\n0,1,5,5\n1,1,5,nan\n2,1,5,inf\n",
        "numbers of seconds > 0",
        "line 3: 'nan', line 4: 'inf'",
    ),
]


@pytest.mark.parametrize(("mark", "text", "problem", "rows"), BAD_ROWS)
def test_bad_mark_rows_exit_2_naming_file_key_and_lines(
    tmp_path: Path, mark: str, text: str, problem: str, rows: str
) -> None:
    (tmp_path / "j.csv").write_text(text)
    requested = ', requested = "r"' if mark == "requested" else ""
    columns = f', columns = {{ gpus = "g", duration = "d"{requested} }}'
    scenario = write(tmp_path, "j.csv", columns).read_text().replace('"submit"', '"t"')
    (tmp_path / "s.toml").write_text(scenario)
    result = CliRunner().invoke(cli, ["validate", str(tmp_path / "s.toml")])
    assert result.exit_code == 2, result.output
    assert f"workloads.replay.arrival.columns.{mark}" in result.output
    assert "j.csv" in result.output and problem in result.output and rows in result.output


def test_a_missing_mark_column_exits_2_listing_the_files_columns(tmp_path: Path) -> None:
    (tmp_path / "j.csv").write_text("t,g\n0,1\n")
    scenario = write(tmp_path, "j.csv", ', columns = { gpus = "g", duration = "runtime" }')
    (tmp_path / "s.toml").write_text(scenario.read_text().replace('"submit"', '"t"'))
    result = CliRunner().invoke(cli, ["validate", str(tmp_path / "s.toml")])
    assert result.exit_code == 2, result.output
    assert "workloads.replay.arrival.columns.duration" in result.output
    assert "no column 'runtime'" in result.output and "['t', 'g']" in result.output


CONFIG_ERRORS = [
    (', columns = { gpus = "num_gpu" }', "", "duration is required"),
    (', columns = { duration = "runtime" }', "", "gpus is required"),
    (ALIBABA_COLUMNS, "gpus = 2", "not both"),
    (
        ', columns = { gpus = "num_gpu", duration = "runtime", input_tokens = "x" }',
        "",
        "arrival.columns.input_tokens",
    ),
    (
        ', columns = { gpus = "num_gpu", duration = "runtime", tokens = "x" }',
        "",
        "unknown mark(s) 'tokens'",
    ),
    ("", 'duration = { dist = "deterministic", value = "1h" }', "gpus is required"),
]


@pytest.mark.parametrize(("columns", "extra", "message"), CONFIG_ERRORS)
def test_what_a_training_workload_needs_of_its_trace(
    tmp_path: Path, columns: str, extra: str, message: str
) -> None:
    """A training job needs GPUs and a run time, from keys or from the trace, not both; token
    columns are for inference; unknown marks are refused."""
    result = CliRunner().invoke(cli, ["validate", str(write(tmp_path, ALIBABA, columns, extra))])
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_gpus_drawn_from_a_distribution_are_rounded_to_integers_at_least_1(tmp_path: Path) -> None:
    """One job an hour for 40 hours, GPUs uniform on [0.2, 4.6]: each job's GPUs are the draw
    of the workload's own ``gpus`` stream rounded to the nearest integer, at least 1 (draws
    below 1.5 give 1, 1.5 to 2.5 give 2, ..., 4.5 to 4.6 give 5). A job of 17 GPUs on 16 is
    never drawn here; see the rejection test for that."""
    scenario = tmp_path / "s.toml"
    scenario.write_text(
        SCENARIO.format(
            duration="40h",
            path=ALIBABA,
            columns="",
            extra='gpus = { dist = "uniform", low = 0.2, high = 4.6 }\n'
            'duration = { dist = "deterministic", value = "10m" }',
        ).replace(
            'arrival = { process = "trace", path = "'
            + str(ALIBABA)
            + '", time_column = "submit" }',
            'arrival = { process = "deterministic", interval = "1h" }',
        )
    )
    prepared = prepare(scenario)
    jobs = sim.run(prepared).frame("jobs").sort_values("job_id")
    draws = (
        RandomStreams(prepared.scenario.scenario.seed)
        .stream("workload", "replay", "gpus")
        .uniform(0.2, 4.6, 256)
    )
    expected = [max(1, round(x)) for x in draws[:40]]
    assert jobs["gpus"].tolist() == expected
    assert set(expected) == {1, 2, 3, 4, 5}
    assert gpu_counts(np.array([0.2, 0.5, 1.49, 1.5, 2.5, 2.51])).tolist() == [1, 1, 1, 2, 2, 3]


def test_a_job_larger_than_every_pool_is_rejected_with_the_reason(tmp_path: Path) -> None:
    """Rows asking 17 GPUs of a site of 16 are rejected when submitted, with the reason; the
    others run."""
    (tmp_path / "j.csv").write_text("t,g,d\n0,17,60\n10,16,60\n20,17,60\n")
    scenario = write(tmp_path, "j.csv", ', columns = { gpus = "g", duration = "d" }', duration="1h")
    scenario.write_text(scenario.read_text().replace('"submit"', '"t"'))
    jobs = sim.run(prepare(scenario)).frame("jobs").sort_values("job_id")
    assert jobs["status"].tolist() == ["rejected", "completed", "rejected"]
    assert jobs["reason"].iloc[0].startswith("needs 17 GPUs")
    assert jobs["gpus"].tolist() == [17, 16, 17]
