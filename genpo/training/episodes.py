"""Episode bookkeeping: each env's running return and length, and the finished episodes' statistics.

One definition of "an episode's return" for every trainer (genpo's rollout collector and the rsl_rl
baseline's ``VecEnv`` adapter), on raw (unscaled) rewards, so their curves compare like for like.
"""

from __future__ import annotations

import torch


class EpisodeTracker:
    """Accumulates rewards per env; an env's episode is recorded when its ``done`` flag is set."""

    def __init__(self, num_envs: int, device: torch.device | str):
        self.episode_return = torch.zeros(num_envs, device=device)
        self.episode_length = torch.zeros(num_envs, dtype=torch.long, device=device)
        self._finished: dict[str, list[torch.Tensor]] = {"return": [], "length": []}

    def step(self, reward: torch.Tensor, done: torch.Tensor, episode_info=None) -> None:
        """Add one step; ``episode_info`` (the env's per-episode values, e.g. the two-goal mode) is
        recorded as ``info/<key>`` for the episodes that end here."""
        self.episode_return += reward
        self.episode_length += 1
        if done.any():
            self._finished["return"].append(self.episode_return[done].clone())
            self._finished["length"].append(self.episode_length[done].float())
            if episode_info is not None:
                for key, value in episode_info.items():
                    self._finished.setdefault(f"info/{key}", []).append(value[done].float())
            self.episode_return.masked_fill_(done, 0.0)
            self.episode_length.masked_fill_(done, 0)

    def pop(self) -> dict[str, torch.Tensor]:
        """``return`` and ``length`` (possibly empty) and ``info/<key>`` of every episode finished
        since the last call."""
        episodes = {key: torch.cat(values) for key, values in self._finished.items() if values}
        empty = torch.zeros(0, device=self.episode_return.device)
        episodes.setdefault("return", empty)
        episodes.setdefault("length", empty)
        self._finished = {"return": [], "length": []}
        return episodes

    def restart(self) -> None:
        """Forget the running episodes (after the env restarted them all)."""
        self.episode_return.zero_()
        self.episode_length.zero_()
        self._finished = {"return": [], "length": []}

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"episode_return": self.episode_return.clone(), "episode_length": self.episode_length.clone()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.episode_return.copy_(state["episode_return"])
        self.episode_length.copy_(state["episode_length"])
        self._finished = {"return": [], "length": []}
