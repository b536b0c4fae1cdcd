"""``docs/outputs.md`` is what ``sim.record.docs`` generates from the schema module."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.record.docs import COMMAND, main, outputs_markdown
from sim.record.schemas import TABLE_DOCS, TABLES, schema

ROOT = Path(__file__).resolve().parent.parent
OUTPUTS_MD = ROOT / "docs" / "outputs.md"


def test_docs_outputs_md_is_up_to_date():
    assert OUTPUTS_MD.read_text(encoding="utf-8") == outputs_markdown(), (
        f"docs/outputs.md differs from the schema module: regenerate it with `{COMMAND}` "
        "(from the repository's root)"
    )


def test_the_page_has_every_table_and_every_column_with_its_type_and_unit():
    text = outputs_markdown()
    assert set(TABLE_DOCS) == set(TABLES)
    for name in TABLES:
        assert f"## `{name}.parquet`" in text, name
        section = text.split(f"## `{name}.parquet`", 1)[1].split("\n## ", 1)[0]
        for field in schema(name, calendar=True, timezone="x"):
            rows = [line for line in section.splitlines() if line.startswith(f"| `{field.name}` |")]
            assert len(rows) == 1, (name, field.name)
            unit = (field.metadata or {})[b"unit"].decode()
            cells = [c.strip() for c in rows[0].strip("|").split("|")]
            assert cells[3] == unit, (name, field.name, cells)
    for heading in ("## `summary.json`", "## `manifest.json`"):
        assert heading in text
    assert "complete only when `manifest.json` exists" in text
    assert "`Int64`" in text and "`boolean`" in text and "arrival_local" in text


def test_the_command_prints_or_writes_the_page(tmp_path, capsys: pytest.CaptureFixture[str]):
    assert main([]) == 0
    assert capsys.readouterr().out == outputs_markdown()
    target = tmp_path / "outputs.md"
    assert main(["--write", str(target)]) == 0
    assert target.read_text(encoding="utf-8") == outputs_markdown()
