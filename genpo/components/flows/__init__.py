"""Flows: N coupling steps that map base noise to a dummy action, and back."""

from genpo.components.flows import dummy_action_flow, numeric_log_det  # noqa: F401
