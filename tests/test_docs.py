"""The README documents every output column and every scenario key."""

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


def models(tp: object) -> list[type[BaseModel]]:
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [tp]
    return [m for arg in typing.get_args(tp) for m in models(arg)]


def test_every_scenario_key_is_documented():
    seen: set[type[BaseModel]] = set()
    todo = [Scenario]
    while todo:
        model = todo.pop()
        if model in seen:
            continue
        seen.add(model)
        for name, field in model.model_fields.items():
            key = field.alias or name
            forms = (f"`{key}`", f"`[{key}]`", f"`[[{key}]]`")
            assert any(form in README for form in forms), (model.__name__, key)
            todo.extend(models(field.annotation))
    assert len(seen) > 15
