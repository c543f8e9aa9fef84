"""Observation normalisers and reward scalers.

Every module here is imported by ``genpo.components`` (discovery), which registers its classes.
"""
