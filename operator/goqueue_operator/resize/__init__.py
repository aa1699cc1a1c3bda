"""Storage expansion: a pure planner (plan.py) and a straight-line executor (execute.py)."""
