"""The deployed policy as one plain-tensor module: observation normalisation, the actor, action clipping."""

from __future__ import annotations

import torch
from tensordict import TensorDict

from genpo.components.actors.base import Actor
from genpo.envs.base import BatchedEnv
from genpo.envs.clipped_actions import ClippedActions


def action_clip(env: BatchedEnv) -> float | None:
    """The bound the run's env clamps actions to (``genpo.build_env.clip_actions``), or None."""
    if isinstance(env, ClippedActions):
        return env.bound
    bound = getattr(env, "clip_actions", None)  # IsaacLab's env clamps inside its own step
    return None if bound is None else float(bound)


class PolicyGraph(torch.nn.Module):
    """``(observation [B, obs_dim], noise [B, noise_dim]) -> action [B, action_dim]``, as the env receives it.

    The same computation the rollout and evaluation do (normalise, ``actor.sample`` with the given base
    noise, then the env seam's clamp), with tensors in and out only, so that it can be traced into one
    self-contained graph (:mod:`genpo.deployment.export`) and called without TensorDicts.
    """

    def __init__(self, actor: Actor, observation_normalizer: torch.nn.Module, clip: float | None):
        super().__init__()
        self.actor = actor
        self.observation_normalizer = observation_normalizer
        self.clip = clip

    @property
    def observation_dim(self) -> int:
        return self.actor.observation_dim

    @property
    def action_dim(self) -> int:
        return self.actor.action_dim

    @property
    def noise_dim(self) -> int:
        return self.actor.noise_dim

    def forward(self, observation: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        step = TensorDict(observation=self.observation_normalizer.compute(observation), batch_size=observation.shape[:-1])
        action = self.actor.sample(step, noise=noise)["action"]
        return action if self.clip is None else action.clamp(-self.clip, self.clip)


class ZeroNoisePolicyGraph(torch.nn.Module):
    """``observation -> action`` of a :class:`PolicyGraph` at zero base noise: the deterministic policy."""

    def __init__(self, policy: PolicyGraph):
        super().__init__()
        self.policy = policy  # not "graph": torch.export's FX modules reserve that attribute

    def forward(self, observation: torch.Tensor) -> torch.Tensor:
        noise = observation.new_zeros((*observation.shape[:-1], self.policy.noise_dim))
        return self.policy(observation, noise)
