"""Policy evaluation: the first episode of each of ``num_envs`` envs, under a chosen noise mode."""

from __future__ import annotations

import torch
from tensordict import TensorDict

from genpo.components.actors.base import Actor
from genpo.envs.base import BatchedEnv

NOISE_MODES = ("zero", "fixed", "random")


@torch.no_grad()
def evaluate_policy(
    actor: Actor, observation_normalizer: torch.nn.Module, env: BatchedEnv, *, noise: str = "zero", seed: int = 0
) -> dict[str, float]:
    """Run every env until its first episode ends; returns mean/std of those episodes' returns.

    Counting only each env's first episode avoids the bias toward short episodes that "the first n
    episodes to finish" has. ``noise``: ``zero`` (the base noise's mode, deterministic), ``fixed``
    (one noise draw per env, held for the whole episode) or ``random`` (fresh noise every step).
    """
    if noise not in NOISE_MODES:
        raise ValueError(f"evaluate: noise must be one of {', '.join(NOISE_MODES)}, got {noise!r}")
    actor.eval()
    generator = torch.Generator(device=env.device).manual_seed(seed)
    shape = (env.num_envs, actor.noise_dim)
    held = torch.randn(shape, generator=generator, device=env.device) if noise == "fixed" else torch.zeros(shape, device=env.device)
    returns = torch.zeros(env.num_envs, device=env.device)
    lengths = torch.zeros(env.num_envs, device=env.device)
    finished = torch.zeros(env.num_envs, dtype=torch.bool, device=env.device)
    infos: dict[str, torch.Tensor] = {}
    observation = env.reset()["observation"]
    for _ in range(env.max_episode_steps):
        step_noise = torch.randn(shape, generator=generator, device=env.device) if noise == "random" else held
        step = TensorDict(observation=observation_normalizer.compute(observation), batch_size=[env.num_envs])
        actor.sample(step, noise=step_noise.to(observation.dtype))
        result = env.step(step["action"])
        active = ~finished
        returns += result["reward"] * active
        lengths += active.float()
        done = (result["terminated"] | result["truncated"]) & active
        for key, value in result.get("episode_info", TensorDict(batch_size=[env.num_envs])).items():
            infos.setdefault(key, torch.zeros(env.num_envs, device=env.device))[done] = value[done].float()
        finished |= done
        observation = result["observation"]
        if finished.all():
            break
    return {
        "episodes": env.num_envs,
        "noise": noise,
        "return_mean": returns.mean().item(),
        "return_std": returns.std(unbiased=False).item(),
        "episode_length_mean": lengths.mean().item(),
        **{f"info/{key}": value.mean().item() for key, value in infos.items()},
    }
