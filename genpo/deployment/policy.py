"""``genpo.load_policy``: a run's trained policy as a plain function from observations to actions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from genpo.builders.evaluation import RestoredPolicy, restore_policy
from genpo.deployment.graph import PolicyGraph, action_clip
from genpo.training.evaluation import NOISE_MODES
from genpo.training.run_directory import read_config


class Policy:
    """``policy(observation [B, obs_dim]) -> action [B, action_dim]``: the observation normaliser, the actor
    and the run's action clipping, in eval mode without gradients (what the env of the run receives).

    ``noise`` picks the base noise of each call, as ``genpo evaluate --noise`` does per env:

    - ``zero``: zeros, the deterministic policy (the base's mode);
    - ``fixed``: batch row ``i`` gets one N(0, I) draw, made the first time a batch that large is seen
      and held for every later call (one draw per env, held for the episode); :meth:`reset` redraws;
    - ``random``: fresh N(0, I) noise every call.

    Draws come from a generator seeded by ``seed``, so a sequence of calls is reproducible.
    ``policy(observation, noise=z)`` uses the given base noise ``z`` [B, noise_dim] instead of the mode.
    Observations may be tensors or arrays; actions come back as float32 tensors on ``device``.
    """

    def __init__(self, graph: PolicyGraph, *, noise: str = "zero", seed: int = 0, checkpoint: Path | None = None, iteration: int | None = None):
        if noise not in NOISE_MODES:
            raise ValueError(f"load_policy: noise must be one of {', '.join(NOISE_MODES)}, got {noise!r}")
        self.graph = graph.eval()
        self.noise = noise
        self.checkpoint = checkpoint
        self.iteration = iteration
        self.device = next(graph.parameters()).device
        self.generator = torch.Generator(device=self.device)
        self.reset(seed)

    @property
    def observation_dim(self) -> int:
        return self.graph.observation_dim

    @property
    def action_dim(self) -> int:
        return self.graph.action_dim

    @property
    def noise_dim(self) -> int:
        return self.graph.noise_dim

    @property
    def clip(self) -> float | None:
        return self.graph.clip

    @property
    def actor_name(self) -> str:
        actor = self.graph.actor
        return getattr(actor, "registered_name", type(actor).__name__)

    def reset(self, seed: int | None = None) -> None:
        """Restart the noise draws (from ``seed``, default the last one): ``fixed`` redraws its held rows."""
        self.seed = self.seed if seed is None else int(seed)
        self.generator.manual_seed(self.seed)
        self._held = torch.zeros((0, self.noise_dim), device=self.device)

    @torch.no_grad()
    def __call__(self, observation: torch.Tensor | np.ndarray, noise: torch.Tensor | None = None) -> torch.Tensor:
        observation = torch.as_tensor(observation, dtype=torch.float32, device=self.device)
        if observation.dim() != 2 or observation.shape[1] != self.observation_dim:
            raise ValueError(
                f"policy {self.actor_name}: observation has shape {tuple(observation.shape)}, "
                f"expected [batch, {self.observation_dim}]"
            )
        if noise is None:
            noise = self._noise(observation.shape[0])
        else:
            noise = torch.as_tensor(noise, dtype=torch.float32, device=self.device)
        return self.graph(observation, noise)

    def _noise(self, batch: int) -> torch.Tensor:
        shape = (batch, self.noise_dim)
        if self.noise == "zero":
            return torch.zeros(shape, device=self.device)
        if self.noise == "random":
            return torch.randn(shape, generator=self.generator, device=self.device)
        if batch > self._held.shape[0]:
            fresh = torch.randn((batch - self._held.shape[0], self.noise_dim), generator=self.generator, device=self.device)
            self._held = torch.cat([self._held, fresh])
        return self._held[:batch]


def policy_of(restored: RestoredPolicy, *, noise: str = "zero", seed: int = 0) -> Policy:
    """The :class:`Policy` of a restored run (its actor, normaliser and its env's clipping)."""
    restored.actor.eval()
    restored.observation_normalizer.eval()
    graph = PolicyGraph(restored.actor, restored.observation_normalizer, action_clip(restored.env))
    return Policy(graph, noise=noise, seed=seed, checkpoint=restored.checkpoint, iteration=restored.iteration)


def check_genpo_run(run_dir: str | Path, command: str) -> None:
    """Fail naming the run where it was not trained by genpo's trainer (rsl_rl's actor is not a genpo actor)."""
    _, record = read_config(run_dir)
    if record.trainer != "genpo":
        raise ValueError(
            f"{command}: {run_dir} was trained by the {record.trainer} trainer; {command} takes genpo runs "
            "(`genpo evaluate` works on it)"
        )


def load_policy(
    run_dir: str | Path,
    *,
    noise: str = "zero",
    device: str | None = None,
    checkpoint: str | Path = "latest",
    seed: int = 0,
) -> Policy:
    """The trained policy of a genpo run directory as ``observation [B, obs_dim] -> action [B, action_dim]``.

    ``checkpoint``: ``latest``, ``best`` or a checkpoint file; ``device``: default the run's (``cpu``,
    ``cuda``); ``noise`` and ``seed``: see :class:`Policy`. Rebuilt from the run's ``config.gin`` exactly as
    ``genpo evaluate`` does (its eval-scoped env supplies the sizes and the action clipping).
    """
    if noise not in NOISE_MODES:
        raise ValueError(f"load_policy: noise must be one of {', '.join(NOISE_MODES)}, got {noise!r}")
    check_genpo_run(run_dir, "load_policy")
    restored = restore_policy(run_dir, num_envs=1, checkpoint=checkpoint, device=device)
    restored.env.close()
    return policy_of(restored, noise=noise, seed=seed)
