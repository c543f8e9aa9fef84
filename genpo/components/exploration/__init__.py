"""Exploration schedules: how much the policy explores as training progresses.

Every module here is imported by ``genpo.components`` (discovery), which registers its classes.
"""
