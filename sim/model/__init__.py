"""The SimPy world: power, GPU pools and capacity, inference engines, training scheduler.

Imports config, NumPy and SimPy; never pandas or the CLI.
"""
