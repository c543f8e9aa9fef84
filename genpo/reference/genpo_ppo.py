"""GenPO-PPO in one file: the method top to bottom, in plain torch, on any env behind genpo's env seam.

Read this first. It is the whole algorithm that ``genpo train tasks/pendulum.gin`` runs, without the
registry, gin, TensorDicts or checkpoints: a flow policy over a doubled ("dummy") action with an exact
likelihood (docs/method.md), trained by clipped PPO. It is also a second implementation: the test
tests/test_reference.py runs it and the modular trainer from the same seed and requires the same losses,
metrics and parameters, so a silent change in either cannot go unnoticed.

    env = PendulumEnv(256, seed=0)
    rows, actor, critic = train(env, Config(), iterations=60, seed=0)

The env seam (genpo/envs/base.py): ``env.reset()`` and ``env.step(action)`` return TensorDicts with
``observation`` [B, obs_dim]; ``step`` adds ``reward``, ``terminated``, ``truncated`` and
``final_observation`` (the episode's last observation where it ended; ``observation`` is then already
the next episode's first).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional

from genpo.envs.base import BatchedEnv

LOG_2PI = math.log(2.0 * math.pi)


@dataclass(frozen=True)
class Config:
    # the flow policy
    flow_steps: int = 5  # N coupling steps from noise z to the dummy action
    mixing: float = 0.9  # p: each step mixes the halves, x <- p x + (1 - p) y (log|det| 2 d log p)
    readout_alpha: float = 0.5  # the env action is alpha x_N + (1 - alpha) y_N
    velocity_hidden: tuple[int, ...] = (64, 64)
    time_hidden: tuple[int, ...] = (64,)
    time_features: int = 16  # width of the time embedding
    time_frequencies: int = 16
    time_scale: float = 1000.0
    critic_hidden: tuple[int, ...] = (64, 64)
    # PPO
    steps_per_env: int = 32
    epochs: int = 5
    minibatches: int = 4
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_epsilon: float = 0.2
    value_clip: float = 0.2
    value_coefficient: float = 1.0
    compression_coefficient: float = 0.01  # nu: keeps x_N and y_N together (the env sees only their mix)
    max_grad_norm: float = 1.0
    # the KL-adaptive learning rate (rsl_rl's rule, driven by the k1 estimate)
    learning_rate: float = 1e-3
    target_kl: float = 0.01
    lr_factor: float = 1.5
    min_learning_rate: float = 1e-5
    max_learning_rate: float = 1e-2
    # observation normalisation and reward scaling
    observation_epsilon: float = 1e-2
    observation_clip: float = 10.0
    reward_epsilon: float = 1e-8


# ---------------------------------------------------------------------------------------- networks
class Mish(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.tanh(functional.softplus(x))


def mlp(inputs: int, hidden: tuple[int, ...], outputs: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(inputs, width), Mish()]
        inputs = width
    return nn.Sequential(*layers, nn.Linear(inputs, outputs))


class VelocityNetwork(nn.Module):
    """v(half, observation, t): an MLP on [half, observation, embedding(t)], its first layer split by
    input so that the observation and the N step times are projected once per pass."""

    def __init__(self, half_dim: int, observation_dim: int, config: Config):
        super().__init__()
        exponents = torch.arange(config.time_frequencies, dtype=torch.float64) / config.time_frequencies
        self.register_buffer("frequencies", torch.exp(-math.log(10000.0) * exponents).float())
        self.time_scale = config.time_scale
        self.time_net = mlp(2 * config.time_frequencies, config.time_hidden, config.time_features)
        first = config.velocity_hidden[0]
        self.half_projection = nn.Linear(half_dim, first, bias=False)
        self.observation_projection = nn.Linear(observation_dim, first, bias=False)
        self.time_projection = nn.Linear(config.time_features, first)
        self.first_activation = Mish()
        self.trunk = mlp(first, config.velocity_hidden[1:], half_dim)

    def step_contexts(self, observation: torch.Tensor, steps: int) -> list[torch.Tensor]:
        """The first layer's observation + time part for each step time t_k = k / N."""
        times = torch.arange(steps, dtype=observation.dtype) / steps
        angles = (self.time_scale * times).unsqueeze(-1) * self.frequencies
        time_part = self.time_projection(self.time_net(torch.cat([angles.sin(), angles.cos()], dim=-1)))
        observation_part = self.observation_projection(observation)
        return [observation_part + time_part[k] for k in range(steps)]

    def velocity(self, half: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        return self.trunk(self.first_activation(self.half_projection(half) + context))


class GenPOPolicy(nn.Module):
    """z ~ N(0, I_2d) -> N invertible coupling steps -> dummy action (x_N, y_N) -> env action.

    One step (x first):  x += dt v(y);  y += dt v(x);  x = p x + (1-p) y;  y = p y + (1-p) x.
    The shears have determinant 1 and each mixing p^d, so log|det dF/dz| = N 2 d log p, a constant;
    log pi(dummy | s) = log N(F^-1(dummy); 0, I) - log|det|, from one exact inverse pass.
    """

    def __init__(self, observation_dim: int, action_dim: int, config: Config):
        super().__init__()
        self.action_dim = action_dim
        self.steps = config.flow_steps
        self.dt = 1.0 / config.flow_steps
        self.p = config.mixing
        self.alpha = config.readout_alpha
        self.velocity = VelocityNetwork(action_dim, observation_dim, config)
        self.log_det = self.steps * (2.0 * action_dim * math.log(self.p))

    def flow(self, observation: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        x, y = noise.chunk(2, dim=-1)
        p, net = self.p, self.velocity
        for context in net.step_contexts(observation, self.steps):
            x = x + self.dt * net.velocity(y, context)
            y = y + self.dt * net.velocity(x, context)
            x = p * x + (1.0 - p) * y
            y = p * y + (1.0 - p) * x
        return torch.cat([x, y], dim=-1)

    def inverse(self, observation: torch.Tensor, dummy_action: torch.Tensor) -> torch.Tensor:
        x, y = dummy_action.chunk(2, dim=-1)
        p, net = self.p, self.velocity
        for context in reversed(net.step_contexts(observation, self.steps)):
            y = (y - (1.0 - p) * x) / p
            x = (x - (1.0 - p) * y) / p
            y = y - self.dt * net.velocity(x, context)
            x = x - self.dt * net.velocity(y, context)
        return torch.cat([x, y], dim=-1)

    def sample(self, observation: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(dummy action, env action, log-likelihood of the dummy action)."""
        noise = torch.randn(*observation.shape[:-1], 2 * self.action_dim, dtype=observation.dtype)
        dummy = self.flow(observation, noise)
        x, y = dummy.chunk(2, dim=-1)
        return dummy, self.alpha * x + (1.0 - self.alpha) * y, standard_normal_log_prob(noise) - self.log_det

    def log_prob(self, observation: torch.Tensor, dummy_action: torch.Tensor) -> torch.Tensor:
        return standard_normal_log_prob(self.inverse(observation, dummy_action)) - self.log_det


def standard_normal_log_prob(noise: torch.Tensor) -> torch.Tensor:
    return -0.5 * noise.pow(2).sum(-1) - 0.5 * noise.shape[-1] * LOG_2PI


# ------------------------------------------------------------------------- normalisation, scaling
class RunningMoments:
    """Mean and population variance of everything seen so far, in float64 (Chan et al.'s update)."""

    def __init__(self, shape: tuple[int, ...]):
        self.mean = torch.zeros(shape, dtype=torch.float64)
        self.variance = torch.ones(shape, dtype=torch.float64)
        self.count = torch.zeros((), dtype=torch.float64)

    def update(self, batch: torch.Tensor) -> None:
        batch = batch.to(torch.float64).reshape(-1, *self.mean.shape)
        n = batch.shape[0]
        total = self.count + n
        delta = batch.mean(0) - self.mean
        self.mean = self.mean + delta * (n / total)
        self.variance = (
            self.variance * self.count + batch.var(0, unbiased=False) * n + delta.pow(2) * self.count * n / total
        ) / total
        self.count = total


def normalize(moments: RunningMoments, observation: torch.Tensor, config: Config) -> torch.Tensor:
    std = moments.variance.sqrt().float()
    return ((observation - moments.mean.float()) / (std + config.observation_epsilon)).clamp(
        -config.observation_clip, config.observation_clip
    )


# ----------------------------------------------------------------------------------------- training
def train(
    env: BatchedEnv, config: Config, iterations: int, seed: int
) -> tuple[list[dict[str, float]], GenPOPolicy, nn.Module]:
    """Train for ``iterations`` PPO iterations; returns each iteration's metrics, the actor and the critic."""
    torch.manual_seed(seed)
    actor = GenPOPolicy(env.observation_dim, env.action_dim, config)
    critic = mlp(env.observation_dim, config.critic_hidden, 1)
    learning_rate = config.learning_rate
    optimizer = torch.optim.Adam(
        [{"params": list(actor.parameters()), "lr": learning_rate}, {"params": list(critic.parameters()), "lr": learning_rate}]
    )
    observation_moments = RunningMoments((env.observation_dim,))
    return_moments = RunningMoments(())
    discounted_return = torch.zeros(env.num_envs, dtype=torch.float64)
    episode_return = torch.zeros(env.num_envs)
    episode_length = torch.zeros(env.num_envs, dtype=torch.long)
    observation = env.reset()["observation"]
    rows = []
    for iteration in range(1, iterations + 1):
        # 1. Rollout: T steps of every env under the current policy. Observations are stored normalised,
        #    so the likelihood at update time sees what the policy saw. Where an episode ended, the next
        #    value is that of its *final* observation: a time-out bootstraps, a termination does not.
        storage: dict[str, list[torch.Tensor]] = {key: [] for key in STORED}
        finished_returns, finished_lengths = [], []
        with torch.no_grad():
            for _ in range(config.steps_per_env):
                observation_moments.update(observation)
                normalized = normalize(observation_moments, observation, config)
                dummy_action, action, log_prob = actor.sample(normalized)
                value = critic(normalized)
                result = env.step(action)
                terminated, truncated = result["terminated"], result["truncated"]
                done = terminated | truncated
                reward = result["reward"]
                # rewards divided by the running std of each env's discounted return
                discounted_return = discounted_return * config.gamma + reward.to(torch.float64)
                return_moments.update(discounted_return)
                discounted_return = discounted_return.masked_fill(done, 0.0)
                scaled_reward = reward / (return_moments.variance.sqrt().float() + config.reward_epsilon)
                for key, tensor in zip(
                    STORED,
                    (normalized, dummy_action, log_prob, value, normalize(observation_moments, result["final_observation"], config), scaled_reward, terminated, done),
                    strict=True,
                ):
                    storage[key].append(tensor)
                episode_return += reward
                episode_length += 1
                if done.any():
                    finished_returns.append(episode_return[done].clone())
                    finished_lengths.append(episode_length[done].float())
                    episode_return = episode_return.masked_fill(done, 0.0)
                    episode_length = episode_length.masked_fill(done, 0)
                observation = result["observation"]
            rollout = {key: torch.stack(values) for key, values in storage.items()}  # [T, B, ...]
            next_value = critic(rollout["next_observation"]).squeeze(-1)

        # 2. Advantages: GAE, the trace cut where an episode ended, standardised over the rollout.
        value = rollout["value"].squeeze(-1)
        not_terminated = 1.0 - rollout["terminated"].float()
        not_done = 1.0 - rollout["done"].float()
        advantage = torch.zeros_like(value)
        running = torch.zeros(env.num_envs)
        for t in reversed(range(config.steps_per_env)):
            delta = rollout["reward"][t] + config.gamma * next_value[t] * not_terminated[t] - value[t]
            running = delta + config.gamma * config.gae_lambda * not_done[t] * running
            advantage[t] = running
        value_target = (advantage + value).unsqueeze(-1)
        advantage = advantage.unsqueeze(-1)  # [T, B, 1], like the values
        advantage = (advantage - advantage.mean()) / (advantage.std() + 1e-8)

        # 3. Update: epochs x minibatches of clipped PPO on the flattened rollout.
        batch = {
            "observation": rollout["observation"].flatten(0, 1),
            "dummy_action": rollout["dummy_action"].flatten(0, 1),
            "log_prob": rollout["log_prob"].flatten(0, 1),
            "value": rollout["value"].flatten(0, 1),
            "advantage": advantage.flatten(0, 1),
            "value_target": value_target.flatten(0, 1),
        }
        size = config.steps_per_env * env.num_envs
        minibatch_size = size // config.minibatches
        totals: dict[str, float] = {}
        updates = 0
        for _ in range(config.epochs):
            permutation = torch.randperm(size)
            for index in range(config.minibatches):
                picked = permutation[index * minibatch_size : (index + 1) * minibatch_size]
                minibatch = {key: tensor[picked] for key, tensor in batch.items()}
                losses = ppo_losses(actor, critic, minibatch, config)
                total = sum(value for key, value in losses.items() if key.startswith("loss_"))
                optimizer.zero_grad(set_to_none=True)
                total.backward()
                # the KL-adaptive rule on the k1 estimate, then per-network gradient clipping
                kl = losses["kl_k1"].item()
                if kl > 2.0 * config.target_kl:
                    learning_rate = max(learning_rate / config.lr_factor, config.min_learning_rate)
                elif kl < 0.5 * config.target_kl:
                    learning_rate = min(learning_rate * config.lr_factor, config.max_learning_rate)
                for group in optimizer.param_groups:
                    group["lr"] = learning_rate
                    nn.utils.clip_grad_norm_(group["params"], config.max_grad_norm)
                optimizer.step()
                for key, value in losses.items():
                    totals[key] = totals.get(key, 0.0) + value.item()
                updates += 1

        returns = torch.cat(finished_returns) if finished_returns else torch.zeros(0)
        lengths = torch.cat(finished_lengths) if finished_lengths else torch.zeros(0)
        rows.append(
            {
                "iteration": iteration,
                "env_steps": iteration * size,
                "return_mean": returns.mean().item() if returns.numel() else math.nan,
                "episode_length_mean": lengths.mean().item() if lengths.numel() else math.nan,
                "episodes": returns.numel(),
                **{METRIC_NAMES.get(key, key): value / updates for key, value in totals.items()},
                "lr": learning_rate,
            }
        )
    return rows, actor, critic


STORED = ("observation", "dummy_action", "log_prob", "value", "next_observation", "reward", "terminated", "done")
METRIC_NAMES = {"loss_objective": "policy_loss", "loss_critic": "value_loss"}


def ppo_losses(actor: GenPOPolicy, critic: nn.Module, minibatch: dict[str, torch.Tensor], config: Config) -> dict[str, torch.Tensor]:
    """Clipped surrogate + clipped value loss + nu * compression; the rest are detached diagnostics."""
    observation, old_log_prob, advantage = minibatch["observation"], minibatch["log_prob"], minibatch["advantage"]
    log_prob = actor.log_prob(observation, minibatch["dummy_action"])
    ratio = (log_prob - old_log_prob).unsqueeze(-1).exp()
    epsilon = config.clip_epsilon
    surrogate = torch.minimum(ratio * advantage, ratio.clamp(1.0 - epsilon, 1.0 + epsilon) * advantage)

    value, old_value, target = critic(observation), minibatch["value"], minibatch["value_target"]
    clipped_value = old_value + (value - old_value).clamp(-config.value_clip, config.value_clip)
    value_loss = torch.maximum((value - target).pow(2), (clipped_value - target).pow(2)).mean()

    # compression: fresh reparameterised samples at the minibatch's states, E ||x_N - y_N||^2
    x, y = actor.sample(observation)[0].chunk(2, dim=-1)
    compression = (x - y).pow(2).sum(-1).mean()

    log_ratio = log_prob - old_log_prob
    return {
        "loss_objective": -surrogate.mean(),
        "loss_critic": config.value_coefficient * value_loss,
        "kl_k1": (old_log_prob - log_prob).mean().detach(),
        "kl_k3": (torch.expm1(log_ratio) - log_ratio).mean().detach(),
        "clip_fraction": ((ratio - 1.0).abs() > epsilon).float().mean().detach(),
        "ratio_max_deviation": (ratio - 1.0).abs().max().detach(),
        "entropy": -log_prob.mean().detach(),  # the paper's estimate on stored samples (coefficient 0 here)
        "compression": compression.detach(),
        "loss_compression": config.compression_coefficient * compression,
    }
