"""PPO loss on the likelihood an actor defines (GenPO's dummy action, a Gaussian, ...)."""

from __future__ import annotations

import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.objectives import LossModule

from genpo.components.actors.base import Actor
from genpo.components.base import TensorDictComponent
from genpo.components.estimators.entropy import NoEntropy
from genpo.components.estimators.kl import K1KL, K3KL
from genpo.components.losses.compression import CompressionPenalty
from genpo.registry import register


@register("loss", "ppo")
class PPOLoss(LossModule):
    """Clipped surrogate + clipped value loss - c_H * entropy estimate + nu * compression.

    Why not torchrl's ``ClipPPOLoss``: it takes the log-likelihood from a ``Distribution`` that the
    actor returns, while GenPO's comes from an inverse pass over a stored sample (``actor.log_prob``),
    and GenPO adds a regulariser on fresh samples. The ratio is ``exp(actor.log_prob(td) -
    td["action_log_prob"])`` for every scheme, so new likelihood schemes need no change here.

    Returns a TensorDict whose ``loss_*`` entries sum to the objective and whose other entries are
    detached diagnostics: ``entropy``, ``kl_k1``, ``kl_k3``, ``clip_fraction``, ``ratio_max_deviation``.
    """

    def __init__(
        self,
        actor_network: Actor,
        critic_network: TensorDictComponent,
        *,
        clip_epsilon: float = 0.2,
        value_clip: float | None = 0.2,
        value_coefficient: float = 1.0,
        entropy_coefficient: float = 0.0,
        entropy_estimator: torch.nn.Module | None = None,
        compression_coefficient: float = 0.0,
        compression: CompressionPenalty | None = None,
    ):
        super().__init__()
        for name, value in (
            ("clip_epsilon", clip_epsilon),
            ("value_coefficient", value_coefficient),
            ("entropy_coefficient", entropy_coefficient),
            ("compression_coefficient", compression_coefficient),
        ):
            if not value >= 0:
                raise ValueError(f"{type(self).__name__}: {name} must be >= 0, got {value!r}")
        if compression_coefficient > 0 and compression is None:
            raise ValueError(f"{type(self).__name__}: compression_coefficient > 0 needs a compression penalty")
        self.actor_network = actor_network
        self.critic_network = critic_network
        self.clip_epsilon = clip_epsilon
        self.value_clip = value_clip
        self.value_coefficient = value_coefficient
        self.entropy_coefficient = entropy_coefficient
        self.entropy_estimator = entropy_estimator if entropy_estimator is not None else NoEntropy()
        self.compression_coefficient = compression_coefficient
        self.compression = compression if compression_coefficient > 0 else None
        if self.compression is not None:
            self.compression.check_actor(actor_network)  # fail when the run is built, not at its first update
        self.kl_k1 = K1KL()
        self.kl_k3 = K3KL()

    def forward(self, tensordict: TensorDictBase) -> TensorDict:
        old_log_prob = tensordict["action_log_prob"]
        log_prob = self.actor_network.log_prob(tensordict)
        ratio = (log_prob - old_log_prob).exp()
        advantage = tensordict["advantage"].squeeze(-1)
        clipped_ratio = ratio.clamp(1.0 - self.clip_epsilon, 1.0 + self.clip_epsilon)
        loss_objective = -torch.minimum(ratio * advantage, clipped_ratio * advantage).mean()

        out = TensorDict(
            loss_objective=loss_objective,
            loss_critic=self.value_coefficient * self.value_loss(tensordict),
            kl_k1=self.kl_k1(old_log_prob, log_prob).detach(),
            kl_k3=self.kl_k3(old_log_prob, log_prob).detach(),
            clip_fraction=((ratio - 1.0).abs() > self.clip_epsilon).float().mean().detach(),
            ratio_max_deviation=(ratio - 1.0).abs().max().detach(),
        )
        entropy = self.entropy_estimator(self.actor_network, tensordict, log_prob)
        if entropy is not None:
            out["entropy"] = entropy.detach()
            if self.entropy_coefficient > 0:
                out["loss_entropy"] = -self.entropy_coefficient * entropy
        if self.compression is not None:
            compression = self.compression(self.actor_network, tensordict)
            out["compression"] = compression.detach()
            out["loss_compression"] = self.compression_coefficient * compression
        return out

    def value_loss(self, tensordict: TensorDictBase) -> torch.Tensor:
        """Squared error to ``value_target``, clipped around the stored value like rsl_rl's when set."""
        value = self.critic_network.compute(tensordict[self.critic_network.in_keys[0]])
        target = tensordict["value_target"]
        loss = (value - target).pow(2)
        if self.value_clip is not None:
            old_value = tensordict["state_value"]
            clipped = old_value + (value - old_value).clamp(-self.value_clip, self.value_clip)
            loss = torch.maximum(loss, (clipped - target).pow(2))
        return loss.mean()
