"""Errors that stop a run with a message naming the culprit."""


class NonFiniteError(RuntimeError):
    """A NaN or infinity from the env, the policy or a loss term."""


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, corrupt, truncated or from another format."""


class RunWriteError(RuntimeError):
    """Writing the run directory failed (disk full, folder deleted or made read-only) mid-run."""
