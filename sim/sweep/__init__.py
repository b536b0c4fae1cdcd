"""Parameter sweeps: many runs of one scenario over a grid, zipped axes or samples, and seeds.

``make_plan`` reads a sweep file and checks every point; ``run_sweep`` runs what is not done
yet on a local process pool or a Dask cluster and writes the sweep's summary tables.
"""

from sim.sweep.plan import Plan, Task, make_plan
from sim.sweep.run import Report, run_sweep, status

__all__ = ["Plan", "Report", "Task", "make_plan", "run_sweep", "status"]
