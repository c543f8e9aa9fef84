"""genpo: generative (flow) policies trained with on-policy RL.

Importing ``genpo`` registers every library component: ``genpo.components`` and ``genpo.envs`` import
every module under them (:func:`genpo.registry.discover`). It never imports IsaacLab
(``genpo.envs.isaaclab`` is imported on use only).
"""

from genpo import components, envs  # noqa: F401  (import-time registration)

__version__ = "0.1.0"


_API = ("train", "resume", "Run")


def __getattr__(name: str):
    # ``genpo.load_policy`` and the training API (``genpo.train``, ``genpo.resume``, ``genpo.Run``) are
    # imported on first use, so that ``import genpo`` stays the registry only.
    if name == "load_policy":
        from genpo.deployment.policy import load_policy

        return load_policy
    if name in _API:
        from genpo import api

        return getattr(api, name)
    raise AttributeError(f"module 'genpo' has no attribute {name!r}")
