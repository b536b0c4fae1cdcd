"""Finishing a run directory: summary.json, then manifest.json, each written atomically.

The tables are streamed by the recorder under temporary names and renamed into place at the
end of the run (``sim.record.sink``). A run directory is complete only when ``manifest.json``
exists: a stale manifest is removed before anything is written (``prepare_out_dir``), and the
manifest comes last, so an interrupted run never looks complete.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sim.errors import UserError
from sim.record.schemas import TABLES
from sim.record.sink import temporary_name

MANIFEST = "manifest.json"
SUMMARY = "summary.json"


def _foreign(out: Path) -> list[str]:
    """What in ``out`` sim did not write (hidden files aside), and a manifest not sim's."""
    own = {f"{name}.parquet" for name in TABLES} | {SUMMARY, MANIFEST}
    foreign = sorted(p.name for p in out.iterdir() if p.name not in own and p.name[0] != ".")
    manifest = out / MANIFEST
    if manifest.exists():
        try:
            mine = json.loads(manifest.read_text()).get("simulator") == "sim"
        except (OSError, ValueError, AttributeError):
            mine = False
        if not mine:
            foreign.insert(0, f"{MANIFEST} (not written by sim)")
    return foreign


def read_identity(out: Path) -> dict[str, Any] | None:
    """What run a complete run directory holds (``run_identity``); None if it holds none."""
    try:
        manifest = json.loads((out / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("simulator") != "sim":
        return None
    return {"scenario": _without_nulls(manifest.get("scenario")), "seed": manifest.get("seed")}


def _without_nulls(value: Any) -> Any:
    """``value`` with every null-valued key of its tables left out (at any depth)."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def run_identity(scenario: Mapping[str, Any], seed: int) -> dict[str, Any]:
    """What makes two runs the same run: the checked scenario (overrides applied) and the seed.

    ``scenario`` is the scenario's JSON dump; it goes through JSON so that it compares equal to
    what a manifest holds. Keys set to null are left out, so an optional key that a later
    version of sim added (and a run does not use) does not make an earlier run different.
    """
    return {"scenario": _without_nulls(json.loads(json.dumps(scenario))), "seed": seed}


def prepare_out_dir(
    out: Path, identity: Mapping[str, Any] | None = None, overwrite: bool = False
) -> None:
    """Create ``out`` if needed, check it can be written, and remove a stale manifest.

    ``out`` must be new, empty, or a previous run's directory: sim refuses to write among
    files it did not write. When ``out`` holds a complete run whose ``run_identity`` differs
    from ``identity`` (another scenario, other overrides or another seed), it is replaced only
    with ``overwrite``.
    """
    try:
        if out.exists() and not out.is_dir():
            raise UserError(f"{out}: exists and is not a directory; choose another --out")
        if out.is_dir():
            foreign = _foreign(out)
            if foreign:
                shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
                raise UserError(
                    f"{out}: holds files sim did not write ({shown}); choose an empty folder or "
                    "a previous run's folder for --out"
                )
            held = read_identity(out)
            if identity is not None and held is not None and held != identity and not overwrite:
                raise UserError(f"{out}: {different_run(held, identity)}")
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-check"
        probe.write_bytes(b"")
        probe.unlink()
        (out / MANIFEST).unlink(missing_ok=True)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise UserError(
            f"{out}: cannot write the run directory ({reason}); choose another --out"
        ) from None


def different_run(held: Mapping[str, Any], identity: Mapping[str, Any]) -> str:
    """Why a run directory holds another run than ``identity``, and how to replace it."""
    old, new = held.get("scenario") or {}, identity.get("scenario") or {}
    name = (old.get("scenario") or {}).get("name") if isinstance(old, dict) else None
    if held.get("seed") != identity.get("seed"):
        what = f"seed {held.get('seed')}"
    elif name != (new.get("scenario") or {}).get("name"):
        what = f"scenario {name!r}"
    else:
        changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        what = f"scenario {name!r} with other values in {', '.join(changed) or 'it'}"
    return (
        f"holds a different run ({what}); choose another --out, or pass --overwrite to replace it"
    )


def write_atomically(path: Path, write: Any) -> None:
    """``write(tmp)`` to a hidden temporary name beside ``path``, then rename it into place."""
    tmp = temporary_name(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _json_bytes(data: Mapping[str, Any]) -> bytes:
    return (json.dumps(data, indent=2, allow_nan=False) + "\n").encode()


def _file_entry(path: Path, rows: int | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {} if rows is None else {"rows": rows}
    entry["bytes"] = path.stat().st_size
    entry["sha256"] = _sha256(path)
    return entry


def finish_run_dir(
    out: Path,
    rows: Mapping[str, int],
    summary: Mapping[str, Any],
    manifest: dict[str, Any],
) -> None:
    """Write ``summary.json`` and last ``manifest.json`` beside the committed tables.

    ``rows`` gives each table's row count; the manifest gets each file's size, row count and
    checksum.
    """
    files: dict[str, Any] = {}
    try:
        for name, count in rows.items():
            path = out / f"{name}.parquet"
            files[path.name] = _file_entry(path, count)
        path = out / SUMMARY
        write_atomically(path, lambda tmp: tmp.write_bytes(_json_bytes(summary)))
        files[SUMMARY] = _file_entry(path)
        manifest = {**manifest, "files": files}
        write_atomically(out / MANIFEST, lambda tmp: tmp.write_bytes(_json_bytes(manifest)))
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise UserError(f"{out}: cannot write the run directory ({reason})") from None


def copy_run_dir(
    src: Path, out: Path, identity: Mapping[str, Any] | None = None, overwrite: bool = False
) -> None:
    """Copy a complete run directory to ``out`` (new, empty or a previous run's), manifest last.

    ``identity`` and ``overwrite`` are as for ``prepare_out_dir``.
    """
    prepare_out_dir(out, identity, overwrite)
    names = [f"{name}.parquet" for name in TABLES] + [SUMMARY, MANIFEST]
    try:
        for name in names:
            write_atomically(out / name, lambda tmp, name=name: shutil.copyfile(src / name, tmp))
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise UserError(f"{out}: cannot write the run directory ({reason})") from None
