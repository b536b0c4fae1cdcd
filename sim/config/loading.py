"""Loading a scenario: TOML parsing, ``--set`` overrides, validation, and readable errors.

Every problem is reported at once with its file and key path (named array entries by name:
``workloads.chat.arrival.rate_per_s``); an unknown key comes with the nearest valid one.
"""

from __future__ import annotations

import copy
import os
import tomllib
import types
import typing
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from sim.config.arrivals import RATE_KEYS
from sim.config.base import PATTERN_HINTS
from sim.config.checks import check_scenario
from sim.config.scenario import Scenario
from sim.errors import Problem, ScenarioError
from sim.registry import nearest


def read_toml(path: Path, source: str) -> dict[str, Any]:
    """Read a TOML file, turning a missing, unreadable or malformed file into a ScenarioError."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise ScenarioError(source, [Problem("", "no such file")]) from None
    except IsADirectoryError:
        raise ScenarioError(source, [Problem("", "is a directory, expected a TOML file")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(source, [Problem("", f"cannot read the file: {exc}")]) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(source, [Problem("", f"not valid TOML: {exc}")]) from None


def parse_override(text: str) -> tuple[str, Any]:
    """Split ``KEY=VALUE``; VALUE is read as a TOML value, or kept as a string if it is not one."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ScenarioError(
            "--set", [Problem(text, "expected KEY=VALUE, e.g. scenario.duration=2d")]
        )
    try:
        return key, tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        return key, value.strip()


_EXCLUSIVE: dict[str, tuple[str, ...]] = {
    key: tuple(k for k in RATE_KEYS if k != key) for key in RATE_KEYS
}
"""Keys that replace their siblings when set: ``--set ...rate_per_s=2`` drops a ``rate_per_h``."""


_ARRAYS = ("gpu_types", "pools", "workloads")
"""Top-level sections that are arrays of named entries."""


def apply_overrides(raw: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Return a copy of ``raw`` with each ``KEY=VALUE`` set.

    Array entries are addressed by name (``workloads.chat.replicas``) or index (``pools.0.nodes``).
    """
    data = copy.deepcopy(raw)
    problems: list[Problem] = []
    for text in overrides:
        key, value = parse_override(text)
        parts = key.split(".")
        cur: Any = data
        for depth, part in enumerate(parts):
            last = depth == len(parts) - 1
            here = ".".join(parts[: depth + 1])
            if isinstance(cur, dict):
                if last:
                    for sibling in _EXCLUSIVE.get(part, ()):
                        cur.pop(sibling, None)
                    cur[part] = value
                else:
                    empty: Any = [] if depth == 0 and part in _ARRAYS else {}
                    cur = cur.setdefault(part, empty)
            elif isinstance(cur, list):
                names = [e.get("name") for e in cur if isinstance(e, dict)]
                if part in names:
                    index = names.index(part)
                elif part.isdigit() and int(part) < len(cur):
                    index = int(part)
                elif part.isdigit():
                    problems.append(
                        Problem(here, f"no entry number {part}: there are {len(cur)} (from 0)")
                    )
                    break
                else:
                    hint = nearest(part, [n for n in names if isinstance(n, str)])
                    msg = f"no entry named {part!r}" + (f"; did you mean {hint!r}?" if hint else "")
                    problems.append(Problem(here, msg))
                    break
                if last:
                    cur[index] = value
                else:
                    cur = cur[index]
            else:
                problems.append(
                    Problem(here, "cannot set a key inside a value that is not a table")
                )
                break
    if problems:
        raise ScenarioError("--set", problems)
    return data


def _unwrap(tp: Any) -> Any:
    """Strip Annotated and Optional."""
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(args) == 1:
                tp = args[0]
            else:
                return tp
        else:
            return tp


def _field_keys(model: type[BaseModel]) -> dict[str, Any]:
    """The keys a model accepts in a file (aliases where set), mapped to their types."""
    return {(f.alias or name): f.annotation for name, f in model.model_fields.items()}


def _model_at(loc: Sequence[Any], root: type[BaseModel] = Scenario) -> type[BaseModel] | None:
    """The model class found at a pydantic error location, through lists and tagged unions."""
    tp: Any = root
    for item in loc:
        tp = _unwrap(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            keys = _field_keys(tp)
            if item not in keys:
                return None
            tp = keys[item]
        elif typing.get_origin(tp) in (tuple, list) and isinstance(item, int):
            tp = typing.get_args(tp)[0]
        elif typing.get_origin(tp) in (typing.Union, types.UnionType) and isinstance(item, str):
            members = [m for m in typing.get_args(tp) if _has_tag(m, item)]
            if not members:
                return None
            tp = members[0]
        else:
            return None
    tp = _unwrap(tp)
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def _has_tag(model: Any, tag: str) -> bool:
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return False
    for f in model.model_fields.values():
        if typing.get_origin(f.annotation) is typing.Literal and tag in typing.get_args(
            f.annotation
        ):
            return True
    return False


def key_path(loc: Sequence[Any], raw: Any) -> str:
    """Turn a pydantic location into a key path, naming array entries by their ``name``."""
    parts: list[str] = []
    cur = raw
    for i, item in enumerate(loc):
        last = i == len(loc) - 1
        if isinstance(cur, dict) and isinstance(item, str) and item in cur:
            parts.append(item)
            cur = cur[item]
        elif isinstance(cur, list) and isinstance(item, int) and 0 <= item < len(cur):
            entry = cur[item]
            name = entry.get("name") if isinstance(entry, dict) else None
            same = [e for e in cur if isinstance(e, dict) and e.get("name") == name]
            parts.append(name if isinstance(name, str) and len(same) == 1 else str(item))
            cur = entry
        elif isinstance(cur, dict) and (not last or item in cur.values()):
            continue  # a union tag (e.g. 'inference', 'poisson'), not a key of the file
        else:
            parts.append(str(item))
            cur = None
    return ".".join(parts)


def _got(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _unquote(value: Any) -> str:
    return str(value or "").strip("'\"")


def describe_error(err: Any, root: type[BaseModel] = Scenario) -> str:
    """A short, plain message for one pydantic error of a ``root`` model (a scenario)."""
    kind = err["type"]
    ctx = err.get("ctx") or {}
    loc = err["loc"]
    if kind == "missing":
        return "required key is missing"
    if kind == "extra_forbidden":
        model = _model_at(loc[:-1], root)
        keys = sorted(_field_keys(model)) if model else []
        hint = nearest(str(loc[-1]), keys)
        msg = "unknown key"
        if hint:
            return f"{msg}; did you mean {hint!r}?"
        return f"{msg}; valid keys here: {', '.join(keys)}" if keys else msg
    if kind == "union_tag_invalid":
        tags = [t.strip().strip("'") for t in str(ctx.get("expected_tags", "")).split(",")]
        tag = str(ctx.get("tag"))
        hint = nearest(tag, tags)
        expected = ", ".join(repr(t) for t in tags)
        msg = f"unknown {_unquote(ctx.get('discriminator'))} {tag!r}; expected one of {expected}"
        return f"{msg} (did you mean {hint!r}?)" if hint else msg
    if kind == "union_tag_not_found":
        return f"required key {_unquote(ctx.get('discriminator'))} is missing"
    if kind == "too_short":
        return f"must have at least {ctx.get('min_length')} item(s)"
    if kind == "string_pattern_mismatch":
        pattern = str(ctx.get("pattern"))
        rule = PATTERN_HINTS.get(pattern, f"must match the pattern {pattern}")
        return f"{rule} (got {_got(err.get('input'))})"
    message = str(err["msg"])
    if kind in ("value_error", "assertion_error"):
        message = message.split(", ", 1)[1] if ", " in message else message
        return message
    if message.startswith("Input should be"):
        message = "must be" + message[len("Input should be") :]
    message = message[0].lower() + message[1:] if message else message
    return f"{message} (got {_got(err.get('input'))})"


def _has_error_inside(loc: tuple[Any, ...], locs: list[tuple[Any, ...]]) -> bool:
    """Whether another error sits inside ``loc`` (then a 'too short' there is only its echo)."""
    return any(len(other) > len(loc) and other[: len(loc)] == loc for other in locs)


def parse_scenario(raw: dict[str, Any], source: str, *, base_dir: Path | None = None) -> Scenario:
    """Check every key and value of a scenario's data; raise a ScenarioError listing each.

    ``base_dir`` resolves relative data-file paths.
    """
    try:
        return Scenario.model_validate(raw, context={"base_dir": base_dir})
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        locs = [tuple(e["loc"]) for e in errors]
        problems = [
            Problem(key_path(e["loc"], raw), describe_error(e))
            for e in errors
            if not (e["type"] == "too_short" and _has_error_inside(tuple(e["loc"]), locs))
        ]
        raise ScenarioError(source, problems) from None


def validate_scenario(
    raw: dict[str, Any], source: str, *, base_dir: Path | None = None
) -> Scenario:
    """Check keys, values and how the sections fit; raise a ScenarioError listing each problem."""
    scn = parse_scenario(raw, source, base_dir=base_dir)
    checked = check_scenario(scn)
    if checked.problems:
        raise ScenarioError(source, checked.problems)
    return scn


def read_scenario(
    path: str | os.PathLike[str], overrides: Iterable[str] = ()
) -> tuple[Scenario, str]:
    """Read a scenario file, apply ``KEY=VALUE`` overrides and check every key and value.

    Returns the scenario and its source name for messages. Relative data-file paths resolve
    against the file's folder. Raises ScenarioError (problems caused by an override say so).
    """
    path = Path(path)
    source = str(path)
    overrides = tuple(overrides)
    raw = apply_overrides(read_toml(path, source), overrides)
    try:
        return parse_scenario(raw, source, base_dir=path.resolve().parent), source
    except ScenarioError as error:
        raise ScenarioError(source, blame_overrides(error.problems, overrides)) from None


def load_scenario(path: str | os.PathLike[str], overrides: Iterable[str] = ()) -> Scenario:
    """Load a scenario file with overrides; check keys, values and references between sections.

    (``sim.load_scenario`` also places the replicas and reads the data files.) Raises
    ScenarioError naming the file, each key path and what was expected.
    """
    overrides = tuple(overrides)
    scn, source = read_scenario(path, overrides)
    checked = check_scenario(scn)
    if checked.problems:
        raise ScenarioError(source, blame_overrides(checked.problems, overrides))
    return scn


def blame_overrides(problems: Iterable[Problem], overrides: Sequence[str]) -> list[Problem]:
    """Say which problems come from a ``--set`` rather than from the file.

    An override is blamed for a problem at its key or inside it, for an unknown key it leads
    to, and for a cross-field problem whose ``related`` keys it sets.
    """
    keys = list(dict.fromkeys(parse_override(text)[0] for text in overrides))
    out = []
    for problem in problems:
        blamed = [k for k in keys if _causes(k, problem)]
        if not blamed:
            out.append(problem)
            continue
        message = problem.message
        if "must be a valid string" in message:
            message += f"; to set a text that looks like a number, quote it: '{blamed[0]}=\"...\"'"
        sources = " and ".join(f"--set {k}" for k in blamed)
        out.append(replace(problem, message=f"{message} (from {sources})"))
    return out


def _causes(key: str, problem: Problem) -> bool:
    """Whether an override of ``key`` may cause ``problem``."""
    if problem.key == key or problem.key.startswith(key + "."):
        return True
    if key.startswith(problem.key + "."):  # a problem of a whole table: a key set inside it
        return True
    return any(r == key or r.startswith(key + ".") for r in problem.related)


def scenario_json_schema() -> dict[str, Any]:
    """The JSON Schema of scenario files, for editors (TOML key names, durations as strings)."""
    schema = Scenario.model_json_schema(by_alias=True, mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **schema,
        "title": "sim scenario",
        "description": "A scenario file of sim, the converted-mining-site simulator.",
    }
