"""Samplers for the scenario's distributions, registered by the same names as their specs.

A sampler factory takes the validated spec, a random stream and the run's inputs, and returns
``draw(n)``: an array of ``n`` durations in seconds. A new distribution is one spec class in
``sim.config.distributions`` and one function here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from sim.config import distributions as d
from sim.inputs import Inputs
from sim.registry import Registry

Draw = Callable[[int], np.ndarray]
SamplerFactory = Callable[[Any, np.random.Generator, Inputs], Draw]

SAMPLERS: Registry[SamplerFactory] = Registry("distribution sampler")


@SAMPLERS.register("deterministic")
def _deterministic(spec: d.Deterministic, rng: np.random.Generator, inputs: Inputs) -> Draw:
    return lambda n: np.full(n, spec.value_s)


@SAMPLERS.register("exponential")
def _exponential(spec: d.Exponential, rng: np.random.Generator, inputs: Inputs) -> Draw:
    return lambda n: rng.exponential(spec.mean_s, n)


@SAMPLERS.register("lognormal")
def _lognormal(spec: d.Lognormal, rng: np.random.Generator, inputs: Inputs) -> Draw:
    mu, sigma = spec.log_params()
    return lambda n: rng.lognormal(mu, sigma, n)


@SAMPLERS.register("gamma")
def _gamma(spec: d.Gamma, rng: np.random.Generator, inputs: Inputs) -> Draw:
    shape, scale = spec.shape_scale()
    return lambda n: rng.gamma(shape, scale, n)


@SAMPLERS.register("weibull")
def _weibull(spec: d.Weibull, rng: np.random.Generator, inputs: Inputs) -> Draw:
    return lambda n: spec.scale_s * rng.weibull(spec.shape, n)


@SAMPLERS.register("uniform")
def _uniform(spec: d.Uniform, rng: np.random.Generator, inputs: Inputs) -> Draw:
    return lambda n: rng.uniform(spec.low_s, spec.high_s, n)


@SAMPLERS.register("empirical")
def _empirical(spec: d.Empirical, rng: np.random.Generator, inputs: Inputs) -> Draw:
    values = inputs.empirical(spec)
    return lambda n: values[rng.integers(0, len(values), n)]


def make_sampler(spec: Any, rng: np.random.Generator, inputs: Inputs) -> Draw:
    """The ``draw(n)`` function for a distribution spec."""
    return SAMPLERS[spec.dist](spec, rng, inputs)
