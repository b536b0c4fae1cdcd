"""sim: a discrete-event simulator of a crypto-mining site converted to host AI compute.

The package is light to import; ``sim.run`` and ``sim.load_scenario`` load the heavier
layers (SimPy, NumPy, pyarrow, pandas) on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sim.version import __version__

__all__ = ["__version__", "load_scenario", "run", "write_run"]

if TYPE_CHECKING:
    from sim.runner import load_scenario, run, write_run


def __getattr__(name: str) -> Any:
    """Import the public API lazily, so that ``import sim`` stays cheap."""
    if name in ("run", "write_run", "load_scenario"):
        from sim import runner

        return getattr(runner, name)
    raise AttributeError(f"module 'sim' has no attribute {name!r}")
