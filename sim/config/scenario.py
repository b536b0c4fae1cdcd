"""The scenario schema: frozen pydantic models for every section of a scenario file."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, NamedTuple, Union
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import Field, field_validator, model_validator

from sim.config.arrivals import JOB_MARKS, TOKEN_MARKS, Arrival, Trace
from sim.config.base import SCENARIO_NAME_PATTERN, Frozen, Name
from sim.config.catalogue import BUILTIN_GPU_TYPES, GpuType
from sim.config.distributions import Distribution
from sim.config.facility import Facility
from sim.config.models import BUILTIN_MODELS, LanguageModel
from sim.config.reliability import Maintenance, Outage, as_distribution
from sim.config.serving import memory_needed_gb
from sim.config.units import Duration
from sim.registry import nearest

PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegativeFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]


NVLINK_GPUS = frozenset({"H100-SXM", "H200-SXM", "A100-80GB"})
"""Built-in types sold as SXM modules, whose nodes link their GPUs with NVLink."""


def trace_marks(arrival: Arrival) -> dict[str, str]:
    """The marks an arrival trace maps to columns (mark -> column); empty if none."""
    return dict(arrival.columns) if isinstance(arrival, Trace) else {}


class ScenarioMeta(Frozen):
    """The ``[scenario]`` table: name, seed, horizon and sampling."""

    name: str = Field(pattern=SCENARIO_NAME_PATTERN, max_length=64)
    """The scenario's name (``[a-z0-9_-]+``); used in output paths."""
    seed: int = Field(default=0, ge=0)
    """Seed of the run's random streams; ``sim run --seed`` overrides it."""
    duration_s: Duration = Field(alias="duration", gt=0)
    """Simulated horizon (a duration)."""
    warmup_s: Duration = Field(default=0.0, alias="warmup")
    """Requests and jobs arriving before this are left out of the statistics (a duration)."""
    sample_every_s: Duration = Field(default=60.0, alias="sample_every", gt=0)
    """Interval of the site, pool and per-workload time series (a duration)."""
    start: datetime | None = None
    """Calendar time of the scenario start (UTC unless an offset is given); adds timestamp
    columns beside the time columns of the outputs."""
    timezone: str | None = Field(default=None, max_length=64)
    """The site's IANA time zone (``America/Chicago``); needs ``start``. Adds a local
    wall-clock column beside each timestamp column of the outputs (``arrival_local``)."""

    @field_validator("start")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            hint = nearest(value, sorted(available_timezones()))
            expected = (
                f"did you mean {hint!r}?"
                if hint
                else "expected an IANA name such as 'America/Chicago' or 'UTC'"
            )
            raise ValueError(f"unknown time zone {value!r}; {expected}") from None
        return value


class Pool(Frozen):
    """A ``[[pools]]`` entry: a hall of identical GPU nodes."""

    name: Name
    """The pool's name."""
    gpu_type: str
    """A built-in GPU type or one defined in ``[[gpu_types]]``."""
    nodes: int = Field(ge=1)
    """Number of nodes."""
    gpus_per_node: int = Field(default=8, ge=1)
    """GPUs in each node."""
    node_overhead_w: NonNegativeFloat = 0.0
    """Power of each node besides its GPUs: CPUs, fans, network (W)."""
    power_cap_w: PositiveFloat | None = None
    """Power limit of each GPU (W), between its type's ``min_power_w`` and ``peak_w``: a busy
    GPU draws at most this and runs slower (README, "Power caps"). The type's peak when left
    out."""

    interconnect: Literal["nvlink", "pcie", "riser"] | PositiveFloat | None = None
    """The links between the GPUs of a node that tensor parallelism uses: ``"nvlink"``,
    ``"pcie"``, ``"riser"`` (a PCIe x1 mining riser) or a bandwidth (GB/s per direction).
    By default NVLink for SXM parts (H100-SXM, H200-SXM, A100-80GB), else PCIe."""

    def link_name(self, gpu: GpuType) -> str | float:
        """The pool's interconnect, its default resolved for GPUs of type ``gpu``."""
        if self.interconnect is not None:
            return self.interconnect
        return "nvlink" if gpu.name in NVLINK_GPUS else "pcie"

    @property
    def gpus(self) -> int:
        """GPUs in the pool."""
        return self.nodes * self.gpus_per_node

    def cap_w(self, gpu: GpuType) -> float:
        """The power cap of the pool's GPUs (of type ``gpu``): ``power_cap_w``, else its peak."""
        return self.power_cap_w if self.power_cap_w is not None else gpu.peak_w

    mtbf_s: Duration | None = Field(default=None, alias="mtbf", gt=0)
    """Mean time between failures of each node (a duration): exponential times to failure."""
    time_to_failure: Distribution | None = None
    """Each node's time to failure as a distribution, instead of ``mtbf``."""
    repair: Distribution | None = None
    """Time to repair a failed node: a duration or a distribution; needed with failures."""

    @field_validator("time_to_failure", "repair", mode="before")
    @classmethod
    def _fixed(cls, value: Any) -> Any:
        return as_distribution(value)

    @model_validator(mode="after")
    def _failures(self) -> Pool:
        if self.mtbf_s is not None and self.time_to_failure is not None:
            raise ValueError("give mtbf or time_to_failure, not both")
        if self.fails and self.repair is None:
            raise ValueError('nodes that fail need a repair time (repair = "6h" or a distribution)')
        if not self.fails and self.repair is not None:
            raise ValueError("repair applies only with mtbf or time_to_failure")
        return self

    @property
    def fails(self) -> bool:
        """Whether the pool's nodes fail at random."""
        return self.mtbf_s is not None or self.time_to_failure is not None


class RequestOutput(Frozen):
    """How many of an inference workload's requests get a row in ``requests.parquet``.

    Whatever the level, the summary and ``workload_timeseries.parquet`` count every request.
    """

    requests: Literal["all", "sample", "none"] = "all"
    """``"all"``: a row per request; ``"sample"``: a random share (``sample_rate``); ``"none"``."""
    sample_rate: float | None = Field(default=None, gt=0, le=1)
    """With ``requests = "sample"``: the probability that a request gets a row."""

    @model_validator(mode="after")
    def _rate_with_sample(self) -> RequestOutput:
        if self.requests == "sample" and self.sample_rate is None:
            raise ValueError('requests = "sample" needs a sample_rate (e.g. 0.01)')
        if self.requests != "sample" and self.sample_rate is not None:
            raise ValueError('sample_rate applies only with requests = "sample"')
        return self

    @property
    def level(self) -> tuple[str, float]:
        """(level, share of rows kept)."""
        share = {"all": 1.0, "none": 0.0}.get(self.requests, self.sample_rate or 0.0)
        return self.requests, share


class Sla(Frozen):
    """A latency objective for an inference workload."""

    latency_s: Duration = Field(alias="latency", gt=0)
    """A request meets the SLA if it is served within this time of arriving (a duration)."""

    @property
    def limits(self) -> SlaLimits:
        """The objective as (latency, TTFT, TPOT) limits, None where not set."""
        return SlaLimits(self.latency_s)


class TokenSla(Frozen):
    """Objectives for an LLM workload: any combination of latency, TTFT and TPOT."""

    latency_s: Duration | None = Field(default=None, alias="latency", gt=0)
    """End-to-end: served within this time of arriving (a duration)."""
    ttft_s: Duration | None = Field(default=None, alias="ttft", gt=0)
    """Time to first token: the first output token within this time of arriving (a duration)."""
    tpot_s: Duration | None = Field(default=None, alias="tpot", gt=0)
    """Time per output token after the first: (end - first token) / (output tokens - 1) at
    most this (a duration)."""

    @model_validator(mode="after")
    def _some(self) -> TokenSla:
        if self.latency_s is None and self.ttft_s is None and self.tpot_s is None:
            raise ValueError("give at least one of latency, ttft and tpot")
        return self

    @property
    def limits(self) -> SlaLimits:
        """The objectives as (latency, TTFT, TPOT) limits, None where not set."""
        return SlaLimits(self.latency_s, self.ttft_s, self.tpot_s)


class SlaLimits(NamedTuple):
    """A workload's objectives in seconds; a request meets the SLA when it meets every one set."""

    latency_s: float | None = None
    ttft_s: float | None = None
    tpot_s: float | None = None


class Autoscale(Frozen):
    """A served workload's ``autoscale`` table: replicas follow the requests they hold.

    Every ``interval`` the wanted count is ``ceil((requests held + waiting) / target)`` within
    ``min_replicas`` and ``max_replicas``; more replicas are placed at once (serving after
    ``load_time``), fewer are removed one idle replica per interval (README, "Autoscaling").
    """

    min_replicas: int = Field(ge=1)
    """Fewest replicas kept."""
    max_replicas: int = Field(ge=1)
    """Most replicas placed (loading ones included)."""
    metric: Literal["queue", "ttft"] = "queue"
    """What the target is of: ``"queue"``, requests held (in service, or in a batch) or
    waiting, per replica; ``"ttft"`` (llm workloads), the time to first token, in seconds."""
    target: PositiveFloat
    """The wanted requests held or waiting per replica, or the TTFT in seconds (> 0)."""
    interval_s: Duration = Field(default=60.0, alias="interval", gt=0)
    """Time between decisions (a duration)."""
    load_time_s: Duration = Field(default=0.0, alias="load_time", ge=0)
    """Time a new replica holds its GPUs loading its model before it serves (a duration)."""
    down_window_s: Duration = Field(default=0.0, alias="down_window", ge=0)
    """A scale-down goes only to the most replicas wanted by the decisions of this window,
    the latest included (a duration; 0: the latest decision alone). Damps flapping."""

    @model_validator(mode="after")
    def _bounds(self) -> Autoscale:
        if self.min_replicas > self.max_replicas:
            raise ValueError(
                f"min_replicas ({self.min_replicas}) is above max_replicas ({self.max_replicas})"
            )
        return self


class ServedWorkload(Frozen):
    """What every request-serving workload has: replicas, arrivals, queue limits, output."""

    name: Name
    """The workload's name."""
    replicas: int = Field(ge=1)
    """Replicas placed at the start."""
    gpus_per_replica: int = Field(default=1, ge=1)
    """GPUs each replica occupies."""
    pool: str | None = None
    """The pool to place replicas on; by default each goes to the first pool with room."""
    arrival: Arrival
    """When requests arrive."""
    max_queue: int | None = Field(default=None, ge=0)
    """Most requests that may wait; one arriving to a full queue is ``rejected``. No limit when
    left out."""
    output: RequestOutput | None = None
    """This workload's recording level; by default ``[output]``'s."""
    timeout_s: Duration | None = Field(default=None, alias="timeout", gt=0)
    """A request still waiting this long after arriving ends ``timeout`` (a duration); no
    limit when left out."""
    retries: int = Field(default=0, ge=0)
    """Times a request whose replica fails under it is queued again; then it ends ``failed``."""
    autoscale: Autoscale | None = None
    """Replicas added and removed with the load, between ``min_replicas`` and ``max_replicas``
    (``replicas`` is the count at the start); a fixed count when left out."""

    @model_validator(mode="after")
    def _replicas_in_bounds(self) -> ServedWorkload:
        a = self.autoscale
        if a is not None and not a.min_replicas <= self.replicas <= a.max_replicas:
            raise ValueError(
                f"replicas ({self.replicas}) must be within autoscale.min_replicas "
                f"({a.min_replicas}) and autoscale.max_replicas ({a.max_replicas})"
            )
        if a is not None and a.metric == "ttft" and not isinstance(self, LLMWorkload):
            raise ValueError(
                'autoscale.metric = "ttft" needs kind = "llm" (a request of the plain queue has '
                'no first token); use metric = "queue"'
            )
        return self

    def replica_memory_gb(self, models: Mapping[str, LanguageModel]) -> float:
        """Memory a replica needs across its GPUs (GB)."""
        raise NotImplementedError


class InferenceWorkload(ServedWorkload):
    """A ``[[workloads]]`` entry of ``kind = "inference"``: requests served one at a time.

    Each replica serves one request at a time, for a time drawn from ``service``.
    """

    kind: Literal["inference"]
    """``"inference"``."""
    model_memory_gb: NonNegativeFloat = 0.0
    """Memory a replica needs across its GPUs (GB): weights, KV cache, activations."""
    service: Distribution
    """Service time of a request on an H100-SXM; divided by the GPU's speed."""
    sla: Sla | None = None
    """Latency objective; without it ``sla_met`` is null."""

    def replica_memory_gb(self, models: Mapping[str, LanguageModel]) -> float:
        """Memory a replica needs across its GPUs (GB)."""
        return self.model_memory_gb


class LLMWorkload(ServedWorkload):
    """A ``[[workloads]]`` entry of ``kind = "llm"``: token-level serving.

    Replicas serve with continuous batching (README, "LLM serving").
    """

    kind: Literal["llm"]
    """``"llm"``."""
    model: str
    """A model of the built-in catalogue or of ``[[models]]``."""
    precision: Literal["fp16", "bf16", "fp8"] = "fp16"
    """Precision of the weights; the KV cache is kept in FP16."""
    max_batch: int = Field(default=64, ge=1)
    """Most requests a replica holds at once (prefilling or decoding); KV memory may bound it
    lower."""
    input_tokens: Distribution | None = None
    """Prompt tokens of a request (numbers, rounded to whole tokens, at least 1); left out when
    the arrival trace maps an ``input_tokens`` column."""
    output_tokens: Distribution | None = None
    """Output tokens of a request (rounded, at least 1); left out when the trace maps
    ``output_tokens``."""
    sla: TokenSla | None = None
    """Objectives on latency, TTFT and TPOT; without it ``sla_met`` is null."""

    @field_validator("input_tokens", "output_tokens", mode="before")
    @classmethod
    def _fixed_count(cls, value: Any) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return {"dist": "deterministic", "value": value}
        return value

    @model_validator(mode="after")
    def _tokens(self) -> LLMWorkload:
        mapped = trace_marks(self.arrival)
        for key in ("input_tokens", "output_tokens"):
            if getattr(self, key) is None and key not in mapped:
                raise ValueError(
                    f"give {key} (a count or a distribution), or map it from a trace column "
                    f'(arrival = {{ process = "trace", ..., columns = {{ {key} = "..." }} }})'
                )
            if getattr(self, key) is not None and key in mapped:
                raise ValueError(f"give {key} or map it in arrival.columns.{key}, not both")
        wrong = [m for m in mapped if m not in TOKEN_MARKS]
        if wrong:
            raise ValueError(
                f"arrival.columns.{wrong[0]}: an llm workload's trace may map "
                f"{', '.join(TOKEN_MARKS)}"
            )
        return self

    def replica_memory_gb(self, models: Mapping[str, LanguageModel]) -> float:
        """Memory a replica's GPUs need to hold the weights, with the serving margin (GB)."""
        model = models.get(self.model)
        if model is None:
            return 0.0
        return memory_needed_gb(model, self.precision, self.gpus_per_replica)


class TrainingWorkload(Frozen):
    """A ``[[workloads]]`` entry of ``kind = "training"``: gang-scheduled jobs."""

    name: Name
    """The workload's name."""
    kind: Literal["training"]
    """``"training"``."""
    arrival: Arrival
    """When jobs are submitted."""
    gpus: Annotated[int, Field(ge=1)] | Distribution | None = None
    """GPUs each job needs, all at once, within one pool: within one node if it fits in one,
    else on as few nodes as possible. An integer, or a distribution whose draws are rounded to
    the nearest integer, at least 1; may be left out when the arrival trace maps ``gpus``."""
    duration: Distribution | None = None
    """Run time of a job on H100-SXM GPUs; divided by the pool's GPU speed. May be left out
    when the arrival trace maps ``duration``."""
    pool: str | None = None
    """The pool jobs must run on; by default the first pool with room."""
    memory_gb_per_gpu: NonNegativeFloat = 0.0
    """Memory a job needs on each of its GPUs (GB); pools with less are not eligible."""
    priority: int = 0
    """With ``scheduler.policy = "priority"``, higher goes first."""
    checkpoint_every_s: Duration | None = Field(default=None, alias="checkpoint_every", gt=0)
    """A job writes a checkpoint after each this much progress (a duration of run time on
    H100-SXM, like ``duration``); no checkpoints when left out."""
    checkpoint_cost_s: Duration = Field(default=0.0, alias="checkpoint_cost")
    """Time a job pauses to write each checkpoint (a duration; its GPUs stay busy)."""
    restart_cost_s: Duration = Field(default=0.0, alias="restart_cost")
    """Time a job spends reloading when it starts again after an interruption (a duration)."""
    max_restarts: int | None = Field(default=None, ge=0)
    """Interruptions a job survives; the next one ends it ``failed``. No limit when left out."""

    @model_validator(mode="after")
    def _checkpoint_pair(self) -> TrainingWorkload:
        if self.checkpoint_every_s is None and self.checkpoint_cost_s:
            raise ValueError("checkpoint_cost applies only with checkpoint_every")
        return self

    @model_validator(mode="after")
    def _sizes(self) -> TrainingWorkload:
        marks = self.trace_marks
        tokens = [m for m in TOKEN_MARKS if m in marks]
        if tokens:
            raise ValueError(
                f"arrival.columns.{tokens[0]}: token counts are marks of inference requests; "
                f"a training job's trace may map {', '.join(JOB_MARKS)}"
            )
        for key in ("gpus", "duration"):
            if getattr(self, key) is None and key not in marks:
                raise ValueError(
                    f"{key} is required unless the arrival trace maps it "
                    f'(arrival.columns = {{ {key} = "<column>" }})'
                )
            if getattr(self, key) is not None and key in marks:
                raise ValueError(f"give {key} or map it in arrival.columns.{key}, not both")
        return self

    @property
    def trace_marks(self) -> dict[str, str]:
        """The marks the arrival trace maps to columns (mark -> column); empty if none."""
        return trace_marks(self.arrival)

    @property
    def fixed_gpus(self) -> int | None:
        """The GPUs of every job when ``gpus`` is an integer; None if they vary."""
        return self.gpus if isinstance(self.gpus, int) else None

    def mean_gpus(self) -> float:
        """GPUs of a typical job, for estimates.

        The integer, a distribution's mean (at least 1), or 1 when a trace gives them (not
        known without reading it).
        """
        if isinstance(self.gpus, int):
            return float(self.gpus)
        mean = self.gpus.expected_s() if self.gpus is not None else None
        return max(1.0, mean) if mean is not None and mean < float("inf") else 1.0

    def mean_duration_s(self) -> float | None:
        """The mean of ``duration`` where known without reading data; None otherwise."""
        return self.duration.expected_s() if self.duration is not None else None


Workload = Annotated[
    Union[InferenceWorkload, LLMWorkload, TrainingWorkload],  # noqa: UP007
    Field(discriminator="kind"),
]
"""A workload, chosen by its ``kind`` key."""


class Scheduler(Frozen):
    """The ``[scheduler]`` table."""

    policy: str = "fifo"
    """Queue policy for training jobs: ``"fifo"``, ``"priority"``, ``"sjf"`` or
    ``"backfill"``."""
    backfill_depth: int = Field(default=100, ge=1)
    """With ``policy = "backfill"``: how many waiting jobs behind the head each decision
    considers for backfilling (bounds the scan of the queue)."""
    power_policy: str = "lowest-priority-first"
    """Which running training jobs the power ladder suspends first (README, "The power
    ladder"): ``"lowest-priority-first"``, ``"newest-first"`` or ``"largest-first"``."""
    preempt: bool = False
    """Let higher-priority work take GPUs from running training jobs of lower priority: the
    head of the queue from jobs of strictly lower workload ``priority``, an inference replica
    waiting for room (a scale-up, or one moved after its node went down) from any job. The
    jobs are killed through the one interruption path (cause ``preempted``): they roll back to
    their last checkpoint and queue again (README, "Preemption")."""


class Scenario(Frozen):
    """A whole scenario file."""

    scenario: ScenarioMeta
    """Name, seed, horizon and sampling."""
    facility: Facility = Facility()
    """The site's grid and cooling."""
    gpu_types: tuple[GpuType, ...] = ()
    """GPU types added to, or overriding, the built-in catalogue."""
    models: tuple[LanguageModel, ...] = ()
    """Language models added to, or overriding, the built-in catalogue (for ``kind = "llm"``)."""
    pools: tuple[Pool, ...] = Field(min_length=1)
    """Halls of GPU nodes."""
    workloads: tuple[Workload, ...] = ()
    """Inference services and training job streams."""
    scheduler: Scheduler = Scheduler()
    """How training jobs are queued."""
    output: RequestOutput = RequestOutput()
    """What the run directory records of the requests (each workload may override it)."""
    outages: tuple[Outage, ...] = ()
    """Unplanned losses of the grid, the cooling or nodes."""
    maintenance: tuple[Maintenance, ...] = ()
    """Planned downtime of nodes."""

    def request_output(self, workload: ServedWorkload) -> RequestOutput:
        """The recording level of an inference workload's requests."""
        return workload.output if workload.output is not None else self.output

    def gpu_catalogue(self) -> dict[str, GpuType]:
        """Built-in GPU types with this scenario's additions and overrides."""
        return {**BUILTIN_GPU_TYPES, **{g.name: g for g in self.gpu_types}}

    def model_catalogue(self) -> dict[str, LanguageModel]:
        """Built-in language models with this scenario's additions and overrides."""
        return {**BUILTIN_MODELS, **{m.name: m for m in self.models}}

    def pool_gpu(self, pool: Pool) -> GpuType:
        """The GPU type of a pool (the scenario must have passed its checks)."""
        return self.gpu_catalogue()[pool.gpu_type]

    def pool_named(self, name: str) -> Pool:
        """The pool with this name."""
        for pool in self.pools:
            if pool.name == name:
                return pool
        raise KeyError(name)

    def workload_named(self, name: str) -> InferenceWorkload | LLMWorkload | TrainingWorkload:
        """The workload with this name."""
        for workload in self.workloads:
            if workload.name == name:
                return workload
        raise KeyError(name)
