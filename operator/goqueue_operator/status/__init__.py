"""Status is computed, not accumulated: pure functions from what was observed to conditions and fields."""
