"""Analysis: pure functions from a run's tables to summary metrics and reports.

The tables come from memory (``sim.run``) or from a run directory (``sim summarize``).
"""
