"""Principals on a cluster's brokers: the operator's own (principal.py) and GoQueueUsers (the user handler)."""
