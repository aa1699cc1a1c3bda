"""GoQueueRebalance: replica reassignment proposals, approval, execution and progress (plan.py pure, execute.py I/O)."""
