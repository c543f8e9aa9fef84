"""PPO loss on the likelihood an actor defines (GenPO's dummy action, a Gaussian, ...)."""

from __future__ import annotations

import math

import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.objectives import LossModule

from genpo.components.actors.base import Actor
from genpo.components.base import TensorDictComponent
from genpo.components.estimators.entropy import NoEntropy
from genpo.components.estimators.kl import K1KL, K3KL, KLEstimator
from genpo.components.losses.compression import CompressionPenalty
from genpo.registry import register


@register("loss", "ppo")
class PPOLoss(LossModule):
    """Clipped surrogate + clipped value loss - c_H * entropy estimate + nu * compression.

    Why not torchrl's ``ClipPPOLoss``: it takes the log-likelihood from a ``Distribution`` that the
    actor returns, while GenPO's comes from an inverse pass over a stored sample (``actor.log_prob``),
    and GenPO adds a regulariser on fresh samples. The ratio is ``exp(actor.log_prob(td) -
    td["action_log_prob"])`` for every scheme, so new likelihood schemes need no change here.

    The other schemes' papers shape the ratio and the trust region differently; each is an option:

    - ``ratio = 'per_term'``: one ratio per term of the log-likelihood (``actor.log_prob_terms``, e.g.
      DPPO's denoising steps, FPO++'s (tau, eps) pairs), each clipped on its own, every term with the
      sample's advantage; the objective is the mean over samples and terms (FPO++ Eq. 10, 13; DPPO's
      two-layer MDP). ``'joint'`` (default): the one ratio of the whole log-likelihood.
    - ``first_term_clip_epsilon``, ``clip_schedule_rate``: with per-term ratios, term k of K clips at
      ``e_0 + (clip_epsilon - e_0) (exp(rate t) - 1) / (exp(rate) - 1)``, ``t = k / (K - 1)``: DPPO's
      exponential clip schedule over denoising steps (its ``clip_ploss_coef_base`` / ``_rate``).
    - ``term_discount``: term k's advantage is multiplied by ``term_discount^(K-1-k)`` (DPPO's
      ``gamma_denoising``: the steps far from the action count less).
    - ``log_prob_normalization``: the log-ratio (and the entropy term) divided by ``'action_dim'`` d
      (DPPO averages a step's log-density over the action dims) or ``'noise_dim'`` (ReinFlow divides the
      chain's log-density and entropy by its N+1 densities and d dims, the actor's base-noise width).
    - ``trust_region = 'aspo'``: FPO++'s asymmetric trust region (Eq. 11-12): PPO clipping where the
      advantage is >= 0, the SPO objective ``r A - |A| (r - 1)^2 / (2 clip_epsilon)`` where it is < 0,
      which pulls a ratio back instead of stopping its gradient at the clip.

    The KL that drives an adaptive learning rate is ``kl_estimator``'s (``@kl_estimator.k1()`` by default;
    ``k3``, or ``gaussian_action`` for the KL of the env action): entry :attr:`kl_key`, ``kl_<its name>``. The
    logged ``kl_k1``/``kl_k3`` are always of the whole (unnormalised) log-likelihood. Call
    :meth:`start_update` before each update's first minibatch.

    Returns a TensorDict whose ``loss_*`` entries sum to the objective and whose other entries are
    detached diagnostics: ``entropy``, ``kl_k1``, ``kl_k3`` (and ``kl_key``), ``clip_fraction``,
    ``ratio_max_deviation``.
    """

    RATIOS = ("joint", "per_term")
    TRUST_REGIONS = ("clip", "aspo")
    LOG_PROB_NORMALIZATIONS = ("none", "action_dim", "noise_dim")

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
        ratio: str = "joint",
        trust_region: str = "clip",
        first_term_clip_epsilon: float | None = None,
        clip_schedule_rate: float = 3.0,
        term_discount: float = 1.0,
        log_prob_normalization: str = "none",
        kl_estimator: KLEstimator | None = None,
    ):
        super().__init__()
        name = type(self).__name__
        for parameter, value in (
            ("clip_epsilon", clip_epsilon),
            ("value_coefficient", value_coefficient),
            ("entropy_coefficient", entropy_coefficient),
            ("compression_coefficient", compression_coefficient),
        ):
            if not value >= 0:
                raise ValueError(f"{name}: {parameter} must be >= 0, got {value!r}")
        if compression_coefficient > 0 and compression is None:
            raise ValueError(f"{name}: compression_coefficient > 0 needs a compression penalty")
        for parameter, value, allowed in (
            ("ratio", ratio, self.RATIOS),
            ("trust_region", trust_region, self.TRUST_REGIONS),
            ("log_prob_normalization", log_prob_normalization, self.LOG_PROB_NORMALIZATIONS),
        ):
            if value not in allowed:
                raise ValueError(f"{name}: {parameter} must be one of {allowed}, got {value!r}")
        if ratio == "per_term" and actor_network.log_prob_term_reduction is None:
            raise ValueError(
                f"{name}: ratio 'per_term' needs an actor whose log-likelihood splits into terms; "
                f"{type(actor_network).__name__} has none"
            )
        if ratio == "joint" and (first_term_clip_epsilon is not None or term_discount != 1.0):
            raise ValueError(f"{name}: first_term_clip_epsilon and term_discount act on per-term ratios (ratio 'per_term')")
        if trust_region == "aspo" and not clip_epsilon > 0:
            raise ValueError(f"{name}: trust_region 'aspo' needs clip_epsilon > 0 (the SPO penalty divides by it)")
        if first_term_clip_epsilon is not None and not first_term_clip_epsilon >= 0:
            raise ValueError(f"{name}: first_term_clip_epsilon must be >= 0, got {first_term_clip_epsilon!r}")
        if not 0 < term_discount <= 1:
            raise ValueError(f"{name}: term_discount must be in (0, 1], got {term_discount!r}")
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
        self.ratio = ratio
        self.trust_region = trust_region
        self.first_term_clip_epsilon = first_term_clip_epsilon
        self.clip_schedule_rate = clip_schedule_rate
        self.term_discount = term_discount
        self.log_prob_normalization = log_prob_normalization
        self.log_prob_divisor = {"none": 1, "action_dim": actor_network.action_dim, "noise_dim": actor_network.noise_dim}[
            log_prob_normalization
        ]
        kl_estimator = kl_estimator if kl_estimator is not None else K1KL()
        if not isinstance(kl_estimator, KLEstimator) or not hasattr(kl_estimator, "registered_name"):
            raise ValueError(f"{name}: kl_estimator must be a registered kl_estimator (e.g. @kl_estimator.k1()), got {kl_estimator!r}")
        self.kl_estimator = kl_estimator
        self.kl_key = f"kl_{kl_estimator.registered_name}"
        self.logged_kl_estimators = torch.nn.ModuleDict({"kl_k1": K1KL(), "kl_k3": K3KL()})

    def start_update(self) -> None:
        """Before an update's first minibatch, while the actor is still the rollout policy."""
        self.kl_estimator.start_update(self.actor_network)

    def log_ratios(self, tensordict: TensorDictBase) -> tuple[torch.Tensor, torch.Tensor]:
        """(current log-likelihood [*B], log-ratios [*B, K]): K = 1 for the joint ratio, else one per term."""
        old_log_prob = tensordict["action_log_prob"]
        actor = self.actor_network
        if self.ratio == "joint":
            log_prob = actor.log_prob(tensordict)
            return log_prob, (log_prob - old_log_prob).unsqueeze(-1)
        log_ratios = actor.log_prob_terms(tensordict) - tensordict["action_log_prob_terms"]
        joint = log_ratios.sum(-1) if actor.log_prob_term_reduction == "sum" else log_ratios.mean(-1)
        return old_log_prob + joint, log_ratios

    def term_clip(self, terms: int, like: torch.Tensor) -> torch.Tensor:
        """The clip epsilon of each of ``terms`` terms [K] (DPPO's exponential schedule when set)."""
        if self.first_term_clip_epsilon is None or terms == 1:
            return torch.full((terms,), self.clip_epsilon, dtype=like.dtype, device=like.device)
        t = torch.linspace(0.0, 1.0, terms, dtype=like.dtype, device=like.device)
        rate = self.clip_schedule_rate
        fraction = torch.expm1(rate * t) / math.expm1(rate) if rate != 0 else t
        return self.first_term_clip_epsilon + (self.clip_epsilon - self.first_term_clip_epsilon) * fraction

    def forward(self, tensordict: TensorDictBase) -> TensorDict:
        old_log_prob = tensordict["action_log_prob"]
        log_prob, log_ratios = self.log_ratios(tensordict)
        ratio = (log_ratios / self.log_prob_divisor).exp()
        terms = ratio.shape[-1]
        advantage = tensordict["advantage"]  # [*B, 1], broadcast over the terms
        if self.term_discount != 1.0:
            powers = torch.arange(terms - 1, -1, -1, dtype=advantage.dtype, device=advantage.device)
            advantage = advantage * self.term_discount**powers
        epsilon = self.term_clip(terms, ratio)
        clipped_ratio = torch.minimum(torch.maximum(ratio, 1.0 - epsilon), 1.0 + epsilon)
        surrogate = torch.minimum(ratio * advantage, clipped_ratio * advantage)
        if self.trust_region == "aspo":
            spo = ratio * advantage - advantage.abs() / (2.0 * epsilon) * (ratio - 1.0).pow(2)
            surrogate = torch.where(advantage >= 0, surrogate, spo)
        loss_objective = -surrogate.mean()

        out = TensorDict(
            loss_objective=loss_objective,
            loss_critic=self.value_coefficient * self.value_loss(tensordict),
            **{
                key: estimator(self.actor_network, tensordict, old_log_prob, log_prob).detach()
                # k1, k3, then the configured estimator's entry (it replaces its own name's in place)
                for key, estimator in {**self.logged_kl_estimators, self.kl_key: self.kl_estimator}.items()
            },
            clip_fraction=((ratio - 1.0).abs() > epsilon).float().mean().detach(),
            ratio_max_deviation=(ratio - 1.0).abs().max().detach(),
        )
        entropy = self.entropy_estimator(self.actor_network, tensordict, log_prob)
        if entropy is not None:
            out["entropy"] = entropy.detach()
            if self.entropy_coefficient > 0:
                out["loss_entropy"] = -self.entropy_coefficient * entropy / self.log_prob_divisor
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
