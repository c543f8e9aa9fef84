"""Build actors and critics from gin bindings."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import gin

from genpo.builders.config import parse_config
from genpo.components.actors.base import Actor
from genpo.components.base import TensorDictComponent


@gin.configurable(module="genpo")
def policy(observation_dim: int, action_dim: int, *, actor: Callable[..., Actor] = gin.REQUIRED) -> Actor:
    """The actor selected by ``genpo.policy.actor = @actor.<name>`` (see ``gin/policies/``)."""
    return actor(observation_dim, action_dim)


@gin.configurable(module="genpo")
def value_function(
    observation_dim: int, *, critic: Callable[..., TensorDictComponent] = gin.REQUIRED, observation_key: str = "observation"
) -> TensorDictComponent:
    """The critic selected by ``genpo.value_function.critic = @critic.<name>``."""
    return critic(observation_dim, observation_key=observation_key)


def build_actor(
    observation_dim: int,
    action_dim: int,
    *,
    config_files: Sequence[str | Path] = (),
    bindings: Sequence[str] = (),
) -> Actor:
    """Parse ``config_files`` and ``bindings`` (if any) and build the configured actor."""
    parse_config(config_files, bindings)
    return policy(observation_dim, action_dim)


def build_critic(
    observation_dim: int,
    *,
    observation_key: str = "observation",
    config_files: Sequence[str | Path] = (),
    bindings: Sequence[str] = (),
) -> TensorDictComponent:
    """Parse ``config_files`` and ``bindings`` (if any) and build the configured critic."""
    parse_config(config_files, bindings)
    return value_function(observation_dim, observation_key=observation_key)
