"""Flows: N coupling steps that map base noise to a dummy action, and back.

Every module here is imported by ``genpo.components`` (discovery), which registers its classes.
"""
