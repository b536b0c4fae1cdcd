"""The scenario: schema (frozen pydantic models), units, loading, overrides and checks.

This layer knows nothing of SimPy: it turns a TOML file into a validated ``Scenario``.
"""

from sim.config.checks import CheckResult, check_scenario
from sim.config.facility import Facility
from sim.config.loading import (
    apply_overrides,
    load_scenario,
    read_toml,
    scenario_json_schema,
    validate_scenario,
)
from sim.config.scenario import (
    InferenceWorkload,
    Pool,
    Scenario,
    ScenarioMeta,
    Scheduler,
    TrainingWorkload,
)

__all__ = [
    "CheckResult",
    "Facility",
    "InferenceWorkload",
    "Pool",
    "Scenario",
    "ScenarioMeta",
    "Scheduler",
    "TrainingWorkload",
    "apply_overrides",
    "check_scenario",
    "load_scenario",
    "read_toml",
    "scenario_json_schema",
    "validate_scenario",
]
