"""Scenario loading: units, validation messages, overrides, the JSON Schema, registries."""

from __future__ import annotations

import json

import pydantic
import pytest
from conftest import mmc_text

import sim
from sim.config import apply_overrides, check_scenario, load_scenario, scenario_json_schema
from sim.config.arrivals import ARRIVALS
from sim.config.catalogue import BUILTIN_GPU_TYPES
from sim.config.distributions import DISTRIBUTIONS
from sim.config.loading import blame_overrides, read_scenario
from sim.config.units import format_duration, parse_duration
from sim.errors import Problem, ScenarioError
from sim.model.arrivals import ARRIVAL_STREAMS
from sim.model.placement import build_pools, place_replicas
from sim.model.pools import Capacity
from sim.model.sampling import SAMPLERS
from sim.registry import nearest


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("250ms", 0.25),
        ("90s", 90),
        ("15m", 900),
        ("2h", 7200),
        ("2h30m", 9000),
        ("1d2h", 93600),
        ("7d", 604800),
        ("1w", 604800),
        ("1.5h", 5400),
        (" 3 m ", 180),
        (42, 42),
        (0.5, 0.5),
    ],
)
def test_durations(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["2 hours", "h", "", "-5m", "5", "1y", True, [1], float("inf"), -3])
def test_bad_durations(bad):
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_format_duration():
    assert format_duration(9000) == "2h30m"
    assert format_duration(0.25) == "250ms"
    assert format_duration(90061) == "1d1h1m1s"


def test_loads_and_freezes(write_scenario):
    scn = load_scenario(write_scenario(mmc_text(c=8, rate=7.2)))
    assert scn.scenario.duration_s == 7200 and scn.scenario.warmup_s == 600
    wl = scn.workloads[0]
    assert wl.arrival.rate_hz == 7.2 and wl.service.mean_s == 1.0
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        wl.replicas = 3


def test_every_error_at_once_with_key_paths(write_scenario):
    path = write_scenario(
        """
        [scenario]
        name = "Bad Name"
        duration = "2 hours"
        warmpu = "10m"

        [[pools]]
        name = "hall-a"
        gpu_type = "H100-SXM"
        nodes = -1

        [[workloads]]
        name = "chat"
        kind = "inferense"

        [[workloads]]
        name = "ft"
        kind = "training"
        arrival = { process = "poisson", rate_per_s = -2 }
        gpus = 8
        duration = { dist = "lognormal", mean = "6h" }
        prio = 3
        """
    )
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    keys = {p.key: p.message for p in info.value.problems}
    assert set(keys) == {
        "scenario.name",
        "scenario.duration",
        "scenario.warmpu",
        "pools.hall-a.nodes",
        "workloads.chat",
        "workloads.ft.arrival.rate_per_s",
        "workloads.ft.duration.sd",
        "workloads.ft.prio",
    }
    assert "did you mean 'warmup'" in keys["scenario.warmpu"]
    assert "did you mean 'priority'" in keys["workloads.ft.prio"]
    assert "did you mean 'inference'" in keys["workloads.chat"]
    assert "greater than or equal to 1" in keys["pools.hall-a.nodes"]
    assert "missing" in keys["workloads.ft.duration.sd"]
    text = info.value.render()
    assert text.startswith(f"{path}: 8 problems")


def test_cross_checks(write_scenario):
    base = mmc_text(c=4)
    cases = {
        'gpu_type = "H100-SMX"': ("pools.hall.gpu_type", "did you mean 'H100-SXM'"),
        "model_memory_gb = 200": ("workloads.chat.model_memory_gb", "needs 200 GB"),
        'pool = "hal"': ("workloads.chat.pool", "did you mean 'hall'"),
        'warmup = "3h"': ("scenario.warmup", "shorter than scenario.duration"),
    }
    for change, (key, words) in cases.items():
        field = change.split(" = ")[0]
        text = base
        if f"{field} = " in text:
            text = "\n".join(
                change if line.startswith(f"{field} = ") else line for line in text.splitlines()
            )
        else:
            text = text.replace('kind = "inference"', f'kind = "inference"\n{change}')
        with pytest.raises(ScenarioError) as info:
            load_scenario(write_scenario(text))
        problems = {p.key: p.message for p in info.value.problems}
        assert key in problems, (change, problems)
        assert words in problems[key], (change, problems)


def test_full_check_places_replicas_and_checks_policy_and_data_all_at_once(write_scenario):
    """sim.load_scenario checks what only the model and the data can say, every problem at once."""
    text = mmc_text(c=4).replace("replicas = 4", "replicas = 9")
    text = text.replace(
        'service = { dist = "exponential", mean = 1.0 }',
        'service = { dist = "empirical", path = "missing.csv" }',
    )
    text += '\n[scheduler]\npolicy = "fifi"\n'
    with pytest.raises(ScenarioError) as info:
        sim.load_scenario(write_scenario(text))
    problems = {p.key: p.message for p in info.value.problems}
    assert "only 4 of 9 replicas" in problems["workloads.chat.replicas"]
    assert "did you mean 'fifo'" in problems["scheduler.policy"]
    assert "does not exist" in problems["workloads.chat.service.path"]


def test_replicas_stay_within_a_node(write_scenario):
    """Two 8-GPU nodes; 3-GPU replicas fit two per node (four in all), not five, although
    16 GPUs would hold five by count."""
    text = mmc_text(c=4).replace("nodes = 4\ngpus_per_node = 1", "nodes = 2\ngpus_per_node = 8")
    text = text.replace("replicas = 4", "replicas = 5\ngpus_per_replica = 3")
    with pytest.raises(ScenarioError) as info:
        sim.load_scenario(write_scenario(text))
    assert "only 4 of 5 replicas" in info.value.render()
    scn = sim.load_scenario(write_scenario(text.replace("replicas = 5", "replicas = 4")))
    assert scn.workloads[0].replicas == 4


def test_poisson_needs_exactly_one_rate(write_scenario):
    text = mmc_text().replace("rate_per_s = 3.0", "rate_per_s = 3.0, rate_per_h = 5")
    with pytest.raises(ScenarioError) as info:
        load_scenario(write_scenario(text))
    assert "exactly one of rate_per_s, rate_per_h, rate_per_d" in info.value.render()


def test_rates_per_hour_and_day(write_scenario):
    text = mmc_text().replace("rate_per_s = 3.0", "rate_per_h = 7200")
    assert load_scenario(write_scenario(text)).workloads[0].arrival.rate_hz == 2.0
    text = mmc_text().replace("rate_per_s = 3.0", "rate_per_d = 86400")
    assert load_scenario(write_scenario(text)).workloads[0].arrival.rate_hz == 1.0


def test_overrides_by_name_index_and_new_table(write_scenario):
    path = write_scenario(mmc_text())
    scn = load_scenario(
        path,
        [
            "scenario.duration=2d",
            "workloads.chat.replicas=2",
            "workloads.chat.arrival.rate_per_s=1.5",
            "pools.0.nodes=6",
            "facility.grid_mw=20",
            'workloads.chat.service={ dist = "deterministic", value = "3s" }',
        ],
    )
    assert scn.scenario.duration_s == 2 * 86400
    wl = scn.workloads[0]
    assert wl.replicas == 2 and wl.arrival.rate_hz == 1.5 and wl.service.value_s == 3
    assert scn.pools[0].nodes == 6 and scn.facility.grid_mw == 20


def test_override_errors():
    raw = {"workloads": [{"name": "chat"}], "scenario": {"name": "x"}}
    with pytest.raises(ScenarioError) as info:
        apply_overrides(raw, ["workloads.chta.replicas=3"])
    assert "did you mean 'chat'" in info.value.render()
    with pytest.raises(ScenarioError) as info:
        apply_overrides(raw, ["scenario.duration"])
    assert "KEY=VALUE" in info.value.render()
    with pytest.raises(ScenarioError):
        apply_overrides(raw, ["scenario.name.x=1"])
    assert raw == {"workloads": [{"name": "chat"}], "scenario": {"name": "x"}}  # not modified


def test_override_is_validated_like_the_file(write_scenario):
    with pytest.raises(ScenarioError) as info:
        load_scenario(write_scenario(mmc_text()), ["workloads.chat.replicas=-1"])
    assert "workloads.chat.replicas" in info.value.render()


def test_relative_paths_resolve_against_the_scenario_folder(write_scenario, tmp_path):
    (tmp_path / "data").mkdir()
    text = mmc_text().replace(
        'service = { dist = "exponential", mean = 1.0 }',
        'service = { dist = "empirical", path = "data/s.csv" }',
    )
    scn = load_scenario(write_scenario(text))
    assert scn.workloads[0].service.path == tmp_path / "data" / "s.csv"


def test_json_schema_describes_the_format():
    schema = scenario_json_schema()
    json.dumps(schema)
    assert {"scenario", "pools", "workloads", "facility", "scheduler", "gpu_types"} <= set(
        schema["properties"]
    )
    meta = schema["$defs"]["ScenarioMeta"]["properties"]
    assert "duration" in meta and "warmup" in meta  # the file's names, not duration_s
    assert "anyOf" in meta["duration"]


def test_each_spec_has_its_model_counterpart():
    """A distribution or arrival process is one spec class plus one registered function."""
    assert set(DISTRIBUTIONS.names()) == set(SAMPLERS.names())
    assert set(ARRIVALS.names()) == set(ARRIVAL_STREAMS.names())


def test_a_byte_order_mark_is_accepted(tmp_path):
    """Notepad saves UTF-8 with a byte-order mark; the file reads as if it had none."""
    path = tmp_path / "notepad.toml"
    path.write_bytes("\ufeff".encode() + mmc_text(c=3).encode())
    assert load_scenario(path).pools[0].nodes == 3


def test_blame_reaches_the_related_keys_of_a_cross_field_problem():
    problem = Problem("scenario.warmup", "must be shorter", related=("scenario.duration",))
    (blamed,) = blame_overrides([problem], ["scenario.duration=1m"])
    assert blamed.message == "must be shorter (from --set scenario.duration)"
    assert blamed.related == problem.related
    (whole,) = blame_overrides([problem], ["scenario={ name = 'x' }"])
    assert whole.message.endswith("(from --set scenario)")
    memory = Problem("workloads.chat.model_memory_gb", "needs", related=("pools.big.gpu_type",))
    (pool,) = blame_overrides([memory], ["pools.big={ name = 'big', gpu_type = 'L40S' }"])
    assert pool.message == "needs (from --set pools.big)"
    (both,) = blame_overrides([problem], ["scenario.warmup=3h", "scenario.duration=1m"])
    assert both.message.endswith("(from --set scenario.warmup and --set scenario.duration)")
    (innocent,) = blame_overrides([problem], ["scenario.dur=1m", "scenario.seed=3"])
    assert innocent == problem


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("scenario.duration=10m", "scenario.warmup"),
        ("gpu_types.hot.idle_w=800", "gpu_types.hot.peak_w"),
        ("workloads.chat.gpus_per_replica=1", "workloads.chat.model_memory_gb"),
        ("workloads.chat.pool=small", "workloads.chat.model_memory_gb"),
        ("pools.big.gpu_type=L40S", "workloads.chat.model_memory_gb"),
        ("gpu_types.hot.memory_gb=20", "workloads.ft.memory_gb_per_gpu"),
    ],
)
def test_cross_field_problems_name_the_override_that_caused_them(write_scenario, override, key):
    text = mmc_text(c=2).replace(
        'kind = "inference"', 'kind = "inference"\ngpus_per_replica = 2\nmodel_memory_gb = 150'
    )
    text = text.replace('name = "hall"', 'name = "big"')
    text += """
[[gpu_types]]
name = "hot"
memory_gb = 48
idle_w = 50
peak_w = 700

[[pools]]
name = "small"
gpu_type = "hot"
nodes = 1

[[workloads]]
name = "ft"
kind = "training"
pool = "small"
gpus = 1
memory_gb_per_gpu = 40
arrival = { process = "poisson", rate_per_h = 1 }
duration = { dist = "exponential", mean = "1h" }
"""
    path = write_scenario(text)
    load_scenario(path)
    with pytest.raises(ScenarioError) as info:
        load_scenario(path, [override])
    problems = {p.key: p.message for p in info.value.problems}
    assert problems[key].endswith(f"(from --set {override.split('=')[0]})"), problems


MANY_PROBLEMS = """
[scenario]
name = "many"
duration = "1h"
warmup = "2h"

[[gpu_types]]
name = "hot"
memory_gb = 24
idle_w = 300
peak_w = 200

[[pools]]
name = "hall"
gpu_type = "H100-SXM"
nodes = 2

[[pools]]
name = "hall"
gpu_type = "hot"
nodes = 1

[[pools]]
name = "shed"
gpu_type = "H100-SMX"
nodes = 1

[[workloads]]
name = "chat"
kind = "inference"
replicas = 1
pool = "hall"
model_memory_gb = 200
arrival = { process = "poisson", rate_per_s = 1 }
service = { dist = "exponential", mean = "1s" }

[[workloads]]
name = "ft"
kind = "training"
pool = "hall"
gpus = 8
memory_gb_per_gpu = 100
arrival = { process = "poisson", rate_per_h = 1 }
duration = { dist = "exponential", mean = "1h" }

[[workloads]]
name = "anywhere"
kind = "inference"
replicas = 1
model_memory_gb = 500
arrival = { process = "poisson", rate_per_s = 1 }
service = { dist = "exponential", mean = "1s" }

[[workloads]]
name = "lost"
kind = "inference"
replicas = 1
pool = "hal"
model_memory_gb = 500
arrival = { process = "poisson", rate_per_s = 1 }
service = { dist = "exponential", mean = "1s" }
"""


def test_a_broken_reference_hides_only_the_checks_that_need_it(write_scenario):
    """Every check runs when its own references resolve: 'anywhere' may go to 'shed', whose GPU
    type is unknown, and 'lost' names no pool, so only their memory is left unchecked."""
    scn, _ = read_scenario(write_scenario(MANY_PROBLEMS))
    checked = check_scenario(scn)
    problems = {p.key: p.message for p in checked.problems}
    assert set(problems) == {
        "scenario.warmup",
        "pools.hall",
        "gpu_types.hot.peak_w",
        "pools.shed.gpu_type",
        "workloads.lost.pool",
        "workloads.chat.model_memory_gb",
        "workloads.ft.memory_gb_per_gpu",
    }
    assert "the name is used 2 times" in problems["pools.hall"]
    assert (
        "its 1 × H100-SXM in pool 'hall' have 80 GB" in problems["workloads.chat.model_memory_gb"]
    )
    assert "at most 80 GB" in problems["workloads.ft.memory_gb_per_gpu"]
    assert not checked.references_resolve


def test_references_resolve_despite_other_problems(write_scenario):
    text = MANY_PROBLEMS.replace("H100-SMX", "H100-SXM").replace('pool = "hal"', 'pool = "shed"')
    scn, _ = read_scenario(write_scenario(text))
    checked = check_scenario(scn)
    assert checked.problems and checked.references_resolve
    assert {"workloads.anywhere.model_memory_gb", "workloads.lost.model_memory_gb"} <= {
        p.key for p in checked.problems
    }


@pytest.mark.parametrize(
    ("change", "resolve"),
    [
        (("", ""), True),
        (('gpu_type = "H100-SXM"', 'gpu_type = "H100-SMX"'), False),
        (('kind = "inference"', 'kind = "inference"\npool = "hal"'), False),
        (('warmup = "10m"', 'warmup = "3h"'), True),
    ],
)
def test_references_resolve_says_whether_every_reference_exists(write_scenario, change, resolve):
    scn, _ = read_scenario(write_scenario(mmc_text().replace(*change)))
    assert check_scenario(scn).references_resolve is resolve


def test_peak_below_idle_gives_both_values(write_scenario):
    text = (
        mmc_text() + '\n[[gpu_types]]\nname = "hot"\nmemory_gb = 24\nidle_w = 300\npeak_w = 200\n'
    )
    with pytest.raises(ScenarioError) as info:
        load_scenario(write_scenario(text))
    (problem,) = info.value.problems
    assert problem.key == "gpu_types.hot.peak_w"
    assert problem.message == "must not be below idle_w (peak_w 200, idle_w 300)"


def test_nearest_ignores_case_and_keeps_the_choice_spelling():
    assert nearest("h100-sxm", list(BUILTIN_GPU_TYPES)) == "H100-SXM"
    assert nearest("h100-smx", list(BUILTIN_GPU_TYPES)) == "H100-SXM"
    assert nearest("RTX-3080", ["RTX-3090", "rtx-3080"]) == "rtx-3080"
    assert nearest("FIFOO", ("fifo", "priority")) == "fifo"
    assert nearest("zzz", ["fifo", "priority"]) is None


def test_wrong_case_gpu_type_suggests_the_right_one(write_scenario):
    text = mmc_text().replace('gpu_type = "H100-SXM"', 'gpu_type = "h100-sxm"')
    with pytest.raises(ScenarioError) as info:
        load_scenario(write_scenario(text))
    assert "no GPU type named 'h100-sxm'; did you mean 'H100-SXM'?" in info.value.render()


def test_a_replica_fits_when_its_gpus_hold_exactly_the_model(write_scenario):
    """The check and the placement share one memory rule: 2 × 80 GB holds 160 GB, not 160.5."""
    text = mmc_text(c=2).replace("gpus_per_node = 1", "gpus_per_node = 2")
    text = text.replace('kind = "inference"', 'kind = "inference"\ngpus_per_replica = 2')
    fits = text.replace("replicas = 2", "replicas = 2\nmodel_memory_gb = 160")
    scn = sim.load_scenario(write_scenario(fits))
    placed, problems = place_replicas(scn, Capacity(build_pools(scn)))
    assert not problems and len(placed[0]) == 2
    with pytest.raises(ScenarioError) as info:
        load_scenario(write_scenario(fits.replace("= 160", "= 160.5")))
    assert "needs 160.5 GB" in info.value.render()


def test_replicas_skip_pools_whose_gpus_lack_the_memory(write_scenario):
    """No pool is named: the first pool (48 GB L40S) is passed over for the H100 pool."""
    text = mmc_text(c=2).replace('gpu_type = "H100-SXM"', 'gpu_type = "L40S"')
    text = text.replace("replicas = 2", "replicas = 2\nmodel_memory_gb = 60")
    text += '\n[[pools]]\nname = "big"\ngpu_type = "H100-SXM"\nnodes = 2\ngpus_per_node = 1\n'
    scn = sim.load_scenario(write_scenario(text))
    placed, problems = place_replicas(scn, Capacity(build_pools(scn)))
    assert not problems
    assert [p.pool.name for p in placed[0]] == ["big", "big"]
