"""Reliability hooks used across the stages: named crash points for the fault-injection tests (`crashpoints`)
and the webhook alert sent when a run fails (`alerts`)."""
