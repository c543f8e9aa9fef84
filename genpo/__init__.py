"""genpo: generative (flow) policies trained with on-policy RL.

Importing ``genpo`` registers every library component; it never imports IsaacLab.
"""

from genpo import components, envs  # noqa: F401  (import-time registration)

__version__ = "0.1.0"
