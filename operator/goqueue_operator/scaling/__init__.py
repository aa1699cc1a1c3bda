"""Scaling rules (refuse or drain before a scale-down; stop at 0): pure planner and executor."""
