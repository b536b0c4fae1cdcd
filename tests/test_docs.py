"""The README documents every output column, and every scenario key in its own section's table.

The keys come from the pydantic models of ``sim.config.scenario`` (by their TOML aliases), so a
new key without documentation fails here.
"""

from __future__ import annotations

import typing
from pathlib import Path

from pydantic import BaseModel

from sim.config.scenario import Scenario
from sim.record.schemas import TABLES

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def test_every_output_column_is_documented():
    for table, columns in TABLES.items():
        assert f"`{table}.parquet`" in README, table
        for column in columns:
            assert f"`{column.name}`" in README, (table, column.name)


# -- the README's sections and tables ----------------------------------------------------------
def sections(text: str) -> dict[str, str]:
    """Each heading (its text after the #s) and the text up to the next heading; fenced code
    blocks are not searched for headings."""
    out: dict[str, list[str]] = {}
    current: list[str] = []
    fenced = False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        if not fenced and line.startswith("#"):
            current = out.setdefault(line.lstrip("#").strip(), [])
            continue
        current.append(line)
    return {heading: "\n".join(lines) for heading, lines in out.items()}


def tables(section: str) -> list[list[list[str]]]:
    """The Markdown tables of a section: rows of cells, header first, separator row dropped."""
    found: list[list[list[str]]] = []
    rows: list[list[str]] = []
    for line in [*section.splitlines(), ""]:
        if line.startswith("|"):
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            if not all(set(cell) <= set("-: ") for cell in cells):
                rows.append(cells)
        elif rows:
            found.append(rows)
            rows = []
    return found


SECTIONS = sections(README)


def section(*parts: str) -> str:
    """The one section whose heading contains every one of ``parts``."""
    matches = [h for h in SECTIONS if all(part in h for part in parts)]
    assert len(matches) == 1, (parts, matches)
    return SECTIONS[matches[0]]


def key_column(section_text: str) -> list[str]:
    """The first cells of the section's tables headed ``key``: the keys it documents."""
    return [row[0] for t in tables(section_text) if t[0][0] == "key" for row in t[1:]]


def row_for(first_cell: str, header: str) -> list[str]:
    """The row starting with ``first_cell`` in the one table whose first header is ``header``."""
    candidates = [t for text in SECTIONS.values() for t in tables(text) if t[0][0] == header]
    assert len(candidates) == 1, (header, len(candidates))
    rows = [row for row in candidates[0][1:] if row[0] == first_cell]
    assert len(rows) == 1, (header, first_cell)
    return rows[0]


# -- the scenario models -----------------------------------------------------------------------
def models(tp: object) -> list[type[BaseModel]]:
    """The pydantic models inside a field's type (through tuples, unions, Annotated, Optional)."""
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [tp]
    return [m for arg in typing.get_args(tp) for m in models(arg)]


def keys(model: type[BaseModel]) -> dict[str, typing.Any]:
    """The model's keys as written in a scenario file (aliases), with each field's type."""
    return {field.alias or name: field.annotation for name, field in model.model_fields.items()}


def tag(members: list[type[BaseModel]]) -> tuple[str, dict[type[BaseModel], str]]:
    """The key that tells a union's members apart (a Literal in each) and each member's value."""
    literal = [
        {
            k: typing.get_args(tp)[0]
            for k, tp in keys(m).items()
            if typing.get_origin(tp) is typing.Literal
        }
        for m in members
    ]
    (name,) = set.intersection(*(set(values) for values in literal))
    return name, {m: values[name] for m, values in zip(members, literal, strict=True)}


def own_sections() -> set[type[BaseModel]]:
    """Models that are a top-level section of their own (``[facility]``, ``[[pools]]``...)."""
    return {m for tp in keys(Scenario).values() if len(inner := models(tp)) == 1 for m in inner}


def subsection(prefix: str, key: str) -> str | None:
    """The section of a nested table (``[facility.cooling]``, ``[[facility.curtailments]]``)."""
    forms = (f"`[{prefix}.{key}]`", f"`[[{prefix}.{key}]]`")
    matches = [h for h in SECTIONS if any(h == form or h.startswith(form) for form in forms)]
    assert len(matches) <= 1, matches
    return SECTIONS[matches[0]] if matches else None


def check_inside(model: type[BaseModel], text: str, where: str, prefix: str) -> None:
    """Every key of ``model`` has a row of the key table of section ``text``; each nested model's
    keys are documented where that key is: in a section of its own when there is one
    (``[facility.cooling]``), else a plain model in its parent key's row (``sla``'s
    ``latency``) unless it is a top-level section (checked there), a union in the row for its
    tag value of the table headed by the tag key (``process`` and ``dist`` tables; within the
    union's own section when it has one, where keys every member shares may be in a key
    table instead)."""
    documented = key_column(text)
    missing = [k for k in keys(model) if f"`{k}`" not in documented]
    assert not missing, f"{model.__name__}: {missing} not in the key table of {where!r}"
    stale = [k for k in documented if k.strip("`") not in keys(model)]
    assert not stale, f"{where!r} documents {stale}, which {model.__name__} does not have"
    for key, tp in keys(model).items():
        inner = models(tp)
        own = subsection(prefix, key)
        if len(inner) == 1 and own is not None:
            check_inside(inner[0], own, f"{prefix}.{key}", f"{prefix}.{key}")
        elif len(inner) == 1 and inner[0] not in own_sections():
            (row,) = [
                r for t in tables(text) if t[0][0] == "key" for r in t[1:] if r[0] == f"`{key}`"
            ]
            for sub in keys(inner[0]):
                assert f"`{sub}`" in " | ".join(row[1:]), (model.__name__, key, sub)
        elif len(inner) > 1:
            name, values = tag(inner)
            shared = key_column(own) if own is not None else []
            for member, value in values.items():
                if own is not None:
                    (table,) = [t for t in tables(own) if t[0][0] == name]
                    (row,) = [r for r in table[1:] if r[0] == f"`{value}`"]
                else:
                    row = row_for(f"`{value}`", name)
                params = [k for k in keys(member) if k != name and f"`{k}`" not in shared]
                missing = [k for k in params if f"`{k}`" not in row[1]]
                assert not missing, f"{name} = {value!r}: {missing} not in its row {row}"


def test_every_scenario_key_is_documented_in_its_own_sections_table():
    """Each top-level key has a ``### `[key]``` or ``### `[[key]]``` section; the keys of its model
    are rows of that section's table. A union (``[[workloads]]``) has one section per member,
    told apart by the tag in the heading (``kind = "inference"``)."""
    checked: list[str] = []
    for key, tp in keys(Scenario).items():
        inner = models(tp)
        assert inner, key
        form = f"`[[{key}]]`" if typing.get_origin(tp) is tuple else f"`[{key}]`"
        if len(inner) == 1:
            check_inside(inner[0], section(form), form, key)
            checked.append(inner[0].__name__)
            continue
        name, values = tag(inner)
        for member, value in values.items():
            heading = f'`{name} = "{value}"`'
            check_inside(member, section(form, heading), f"{form} with {heading}", key)
            checked.append(member.__name__)
    assert {"ScenarioMeta", "Facility", "GpuType", "Pool", "Scheduler"} <= set(checked)
    assert {"InferenceWorkload", "TrainingWorkload"} <= set(checked)
