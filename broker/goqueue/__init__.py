"""GoQueue: a durable, replicated message broker (the broker, its client and its CLIs)."""

__version__ = "0.1.0"
