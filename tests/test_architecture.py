"""The architecture's rules: data flows one way, and commands import only what they need."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "sim"


def runtime_imports(path: Path) -> set[str]:
    """Top-level package names a module imports at run time (not under TYPE_CHECKING)."""
    tree = ast.parse(path.read_text())
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def imports_of(folder: str) -> dict[str, set[str]]:
    return {
        str(p.relative_to(ROOT)): runtime_imports(p)
        for p in sorted((PACKAGE / folder).glob("*.py"))
    }


def test_model_never_imports_pandas_pyarrow_or_the_cli():
    for module, names in imports_of("model").items():
        bad = {n for n in names if n.split(".")[0] in ("pandas", "pyarrow", "click", "tqdm")}
        bad |= {n for n in names if n.startswith(("sim.cli", "sim.analysis", "sim.runner"))}
        # Of the recorder's package, only its pure-Python parts: the codes and the intervals.
        pure = ("sim.record", "sim.record.codes", "sim.record.intervals")
        bad |= {n for n in names if n.startswith("sim.record") and n not in pure}
        assert not bad, (module, bad)


def test_config_knows_nothing_of_simpy_or_the_layers_after_it():
    for module, names in imports_of("config").items():
        allowed_sim = ("sim.config", "sim.errors", "sim.registry")
        bad = {
            n for n in names if n.split(".")[0] in ("simpy", "numpy", "pandas", "pyarrow", "click")
        }
        bad |= {n for n in names if n.startswith("sim.") and not n.startswith(allowed_sim)}
        assert not bad, (module, bad)


def test_analysis_does_not_import_the_model():
    for module, names in imports_of("analysis").items():
        assert not {n for n in names if n.startswith(("sim.model", "simpy", "sim.cli"))}, module


def test_light_commands_do_not_load_heavy_libraries():
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from sim.cli import cli\n"
        "r = CliRunner().invoke(cli, ['schema'])\n"
        "assert r.exit_code == 0, r.output\n"
        "print(sorted(m for m in ('pandas', 'pyarrow', 'simpy', 'numpy') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


MODEL_ONLY = """
import sys
from sim.config import load_scenario
from sim.inputs import read_inputs
from sim.model.world import simulate

class NullRecorder:
    # Takes every record and keeps a count. The real recorder builds Arrow arrays, and
    # pyarrow's pa.array imports pandas whenever it is installed: that is the recorder's
    # cost, not the model's, so it is left out here.
    calls = 0

    def __getattr__(self, name):
        def record(*args, **kwargs):
            NullRecorder.calls += 1
        return record

scn = load_scenario("scenarios/mmc.toml", ['scenario.duration="15m"'])
inputs, problems = read_inputs(scn)
assert not problems, problems
simulate(scn, inputs, NullRecorder(), 1)
assert NullRecorder.calls > 15, NullRecorder.calls  # the model ran: samples, events, requests
print(sorted(m for m in ("pandas", "click", "tqdm") if m in sys.modules))
"""
"""Build and run the model alone on scenarios/mmc.toml, then list the heavy or outer-layer
libraries it loaded. Adapt the import and the ``simulate`` call if the entry point moves."""


def test_running_the_model_loads_neither_pandas_nor_the_cli():
    """Checked at run time, so lazy imports inside functions count too."""
    out = subprocess.run(
        [sys.executable, "-c", MODEL_ONLY], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
