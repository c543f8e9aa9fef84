"""genpo: generative (flow) policies trained with on-policy RL.

Importing ``genpo`` registers every library component: ``genpo.components`` and ``genpo.envs`` import
every module under them (:func:`genpo.registry.discover`). It never imports IsaacLab
(``genpo.envs.isaaclab`` is imported on use only).
"""

from genpo import components, envs  # noqa: F401  (import-time registration)

__version__ = "0.1.0"


def __getattr__(name: str):
    # ``genpo.load_policy`` is imported on first use, so that ``import genpo`` stays the registry only.
    if name == "load_policy":
        from genpo.deployment.policy import load_policy

        return load_policy
    raise AttributeError(f"module 'genpo' has no attribute {name!r}")
