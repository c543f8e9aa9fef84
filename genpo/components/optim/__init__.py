"""Learning-rate controllers."""

from genpo.components.optim import lr_controllers  # noqa: F401
