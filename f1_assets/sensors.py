"""Sensors: the new-race sensor, upstream-correction polling and the audit-log run-status sensors."""

SENSORS: list = []
