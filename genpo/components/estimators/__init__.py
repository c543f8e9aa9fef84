"""Entropy and KL estimators.

Every module here is imported by ``genpo.components`` (discovery), which registers its classes.
"""
