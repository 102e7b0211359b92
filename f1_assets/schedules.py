"""Schedules: the weekly refresh of the current season's unsettled races."""

SCHEDULES: list = []
