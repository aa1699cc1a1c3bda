"""Broker restarts for upgrades, settings changes and filesystem resizes: pure planner and executor."""
