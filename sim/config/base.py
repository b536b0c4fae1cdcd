"""The base of every scenario model: frozen, unknown keys forbidden, TOML names as aliases."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]*$"
SCENARIO_NAME_PATTERN = r"^[a-z0-9_-]+$"
PATTERN_HINTS = {
    NAME_PATTERN: "letters, digits, '_' and '-' only, starting with a letter or digit",
    SCENARIO_NAME_PATTERN: "lowercase letters, digits, '_' and '-' only",
}
"""What each name pattern means, for error messages."""

Name = Annotated[
    str,
    Field(
        pattern=NAME_PATTERN,
        max_length=64,
        description="A name: letters, digits, '_' and '-', starting with a letter or digit.",
    ),
]
"""The name of a pool, GPU type or workload (used as a key in ``--set`` paths and in outputs)."""


class Frozen(BaseModel):
    """An immutable scenario section that rejects unknown keys.

    Fields carry their unit in the Python name (``duration_s``) and the scenario-file name as
    alias (``duration``).
    """

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        validate_by_alias=True,
        validate_by_name=True,
        serialize_by_alias=True,
        use_attribute_docstrings=True,
    )


DATA_SUFFIXES = (".csv", ".parquet", ".pq")


def resolve_data_path(path: Path, info: ValidationInfo) -> Path:
    """A data file's path, relative to the scenario file's folder; must be CSV or Parquet."""
    base = (info.context or {}).get("base_dir")
    if base is not None and not path.is_absolute():
        path = Path(base) / path
    if path.suffix.lower() not in DATA_SUFFIXES:
        raise ValueError(f"expected a .csv or .parquet file, got {str(path)!r}")
    return path
