"""PPO loss on any actor's likelihood, and the flow regularisers."""

from genpo.components.losses import compression, ppo  # noqa: F401
