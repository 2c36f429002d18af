"""An ensemble of ``K`` world models evaluated together: the sibling of :class:`~worldmodel.WorldModel`.

    model = EnsembleWorldModel(ensemble=5, state_dim=2, action_dim=3)
    next_state, reward = model(state [B, S], action [B, A])       # the members' mean (Dynamics contract)
    nexts, rewards = model.members(state, action)                  # [K, B, S], [K, B]

Every member has the ``WorldModel``'s architecture (normalised inputs, the ``angles`` as
``(cos, sin)``, a trunk predicting the normalised state change plus a linear skip, a reward head fed
with the predicted next state; angles' changes are learned with their whole turns). The members'
weights are stacked, ``[K, in, out]`` per layer, so one batched matrix product per layer
evaluates all of them; the normalisation statistics are shared.

With ``probabilistic=True`` (the PETS "probabilistic ensemble") each member predicts a mean and a
log-variance per output (the ``S`` normalised state changes and the normalised reward). The
log-variances are held between learned bounds with soft clipping,
``logvar = max - softplus(max - raw)``, then ``min + softplus(logvar - min)``; training minimises
the Gaussian negative log-likelihood plus ``0.01 * (sum(max) - sum(min))``, which keeps the bounds
tight. The reward head reads the *mean* predicted next state; its own variance covers the rest.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import mlx.core as mx
import mlx.nn as nn

from .model import Normalizer, WorldModel, checked_angles

__all__ = ["EnsembleLinear", "EnsembleWorldModel", "bound_logvar", "model_from_config"]

LOGVAR_BOUND_WEIGHT = 0.01
"""Weight of ``sum(max_logvar) - sum(min_logvar)`` in the probabilistic training loss."""


class EnsembleLinear(nn.Module):
    """``K`` affine layers at once: ``x [B, in] or [K, B, in] -> [K, B, out]``.

    Weights ``[K, in, out]`` and biases ``[K, 1, out]``, each member initialised like ``nn.Linear``
    (uniform in ``±1/sqrt(in)``) with its own draws.
    """

    def __init__(self, ensemble: int, input_dims: int, output_dims: int, bias: bool = True):
        super().__init__()
        scale = math.sqrt(1.0 / input_dims)
        self.weight = mx.random.uniform(-scale, scale, (ensemble, input_dims, output_dims))
        if bias:
            self.bias = mx.random.uniform(-scale, scale, (ensemble, 1, output_dims))

    def __call__(self, x: mx.array) -> mx.array:
        y = x @ self.weight
        return y + self.bias if "bias" in self else y


def bound_logvar(raw: mx.array, min_logvar: mx.array, max_logvar: mx.array) -> mx.array:
    """Soft-clip log-variances ``[..., D]`` into ``(min_logvar, max_logvar)`` (bounds ``[D]``)."""
    logvar = max_logvar - nn.softplus(max_logvar - raw)
    return min_logvar + nn.softplus(logvar - min_logvar)


class EnsembleWorldModel(nn.Module):
    """``K`` learned dynamics models evaluated together; ``model(state, action)`` is their mean.

    Args:
        ensemble: K, the number of members (``>= 1``). Default: ``5``.
        state_dim, action_dim, hidden, reward_hidden, angles, reward_from_state: each member's
            architecture, as for :class:`~worldmodel.WorldModel` (``angles``: state indices fed as
            ``(cos, sin)``, default none; ``reward_from_state``: the reward head also reads the state
            before the step, default ``False``).
        probabilistic: members predict a Gaussian (mean, bounded log-variance) per output. Default: ``False``.

    Attributes:
        ensemble_size: K.
    """

    def __init__(
        self,
        ensemble: int = 5,
        state_dim: int = 2,
        action_dim: int = 3,
        hidden: Sequence[int] = (128, 128),
        reward_hidden: int = 32,
        probabilistic: bool = False,
        angles: Sequence[int] = (),
        reward_from_state: bool = False,
    ):
        super().__init__()
        hidden = tuple(int(h) for h in hidden)
        angles = checked_angles(angles, state_dim)
        if isinstance(ensemble, bool) or not isinstance(ensemble, int) or ensemble < 1:
            raise ValueError(f"ensemble must be an integer >= 1, got {ensemble!r}")
        if state_dim < 1 or action_dim < 1 or not hidden or min(hidden) < 1 or reward_hidden < 1:
            raise ValueError(
                f"EnsembleWorldModel needs positive sizes, got state_dim={state_dim}, action_dim={action_dim}, "
                f"hidden={hidden}, reward_hidden={reward_hidden}"
            )
        self.ensemble_size = int(ensemble)
        self.state_dim, self.action_dim = int(state_dim), int(action_dim)
        self.hidden, self.reward_hidden = hidden, int(reward_hidden)
        self.probabilistic, self.angles = bool(probabilistic), angles
        self.reward_from_state = bool(reward_from_state)
        k, s = self.ensemble_size, self.state_dim
        features = s + len(angles)
        inputs = features + self.action_dim
        heads = 2 if self.probabilistic else 1  # mean (and log-variance) per output
        sizes = (inputs, *hidden)
        self.trunk = [EnsembleLinear(k, i, o) for i, o in zip(sizes[:-1], sizes[1:])]
        self.delta_out = EnsembleLinear(k, hidden[-1], heads * s)
        self.delta_skip = EnsembleLinear(k, inputs, s, bias=False)
        self.reward_in = EnsembleLinear(k, (2 if self.reward_from_state else 1) * features + self.action_dim, self.reward_hidden)
        self.reward_out = EnsembleLinear(k, self.reward_hidden, heads)
        self.state_norm = Normalizer(features)
        self.delta_norm = Normalizer(s)
        self.reward_norm = Normalizer(1)
        if self.probabilistic:  # log-variance bounds per output (S state changes, then the reward)
            self.max_logvar = mx.full((s + 1,), 0.5)
            self.min_logvar = mx.full((s + 1,), -10.0)

    @classmethod
    def from_members(cls, models: Sequence[WorldModel]) -> "EnsembleWorldModel":
        """A deterministic ensemble whose member ``k`` computes ``models[k]``'s function.

        The models must share architecture and normalisation statistics (``ValueError`` otherwise).
        """
        if not models:
            raise ValueError("from_members needs at least one WorldModel")
        first = models[0]
        for m in models[1:]:
            if m.config() != first.config():
                raise ValueError(f"members differ in architecture: {m.config()} vs {first.config()}")
            for name in ("state_norm", "delta_norm", "reward_norm"):
                a, b = getattr(m, name), getattr(first, name)
                if not (mx.array_equal(a.mean, b.mean) and mx.array_equal(a.std, b.std)).item():
                    raise ValueError(f"members differ in their {name} statistics; an ensemble shares them")
        ensemble = cls(len(models), **first.config())
        for name in ("trunk", "delta_out", "delta_skip", "reward_in", "reward_out"):
            sources = [getattr(m, name) for m in models]
            targets = getattr(ensemble, name)
            layers = zip(targets, zip(*sources)) if isinstance(targets, list) else [(targets, sources)]
            for target, stack in layers:
                target.weight = mx.stack([layer.weight.T for layer in stack])
                if "bias" in target:
                    target.bias = mx.stack([layer.bias[None] for layer in stack])
        for name in ("state_norm", "delta_norm", "reward_norm"):
            norm = getattr(first, name)
            getattr(ensemble, name).set(norm.mean, norm.std, min_std=0.0)
        mx.eval(ensemble.parameters())
        return ensemble

    def config(self) -> dict:
        """Architecture, with ``"kind": "ensemble"``: :func:`model_from_config` rebuilds an empty model.
        ``angles`` and ``reward_from_state`` appear only when set."""
        config = {
            "kind": "ensemble",
            "ensemble": self.ensemble_size,
            "state_dim": self.state_dim,
            "action_dim": self.action_dim,
            "hidden": list(self.hidden),
            "reward_hidden": self.reward_hidden,
            "probabilistic": self.probabilistic,
        }
        if self.angles:
            config["angles"] = list(self.angles)
        if self.reward_from_state:
            config["reward_from_state"] = True
        return config

    def flops_per_transition(self) -> int:
        """Multiply-add FLOPs of the matrix products of one transition through all ``K`` members (2 per weight)."""
        layers = [*self.trunk, self.delta_out, self.delta_skip, self.reward_in, self.reward_out]
        return 2 * sum(layer.weight.size for layer in layers)

    features = WorldModel.features
    state_change = WorldModel.state_change
    fit_normalization = WorldModel.fit_normalization  # the same statistics, shared by the members

    def predict_normalized(self, state: mx.array, action: mx.array) -> tuple[mx.array, mx.array | None]:
        """Every member's prediction in the training targets' units.

        Args:
            state: ``[B, S]`` (all members on the same rows) or ``[K, B, S]`` (member ``k`` on ``state[k]``).
            action: ``[B, A]`` or ``[K, B, A]``, likewise.

        Returns:
            ``mean [K, B, S + 1]`` (normalised state change, then normalised reward) and the bounded
            ``logvar [K, B, S + 1]`` of a probabilistic ensemble, else ``None``.
        """
        s = self.state_dim
        state_n = self.state_norm(self.features(state))
        x = mx.concatenate([state_n, action], axis=-1)
        h = x
        for layer in self.trunk:
            h = nn.relu(layer(h))
        out = self.delta_out(h)  # [K, B, S] or [K, B, 2S]
        delta_n = out[..., :s] + self.delta_skip(x)
        next_n = self.state_norm(self.features(state + self.delta_norm.invert(delta_n)))
        action = mx.broadcast_to(action, (*next_n.shape[:-1], action.shape[-1]))
        reward_inputs = [mx.broadcast_to(state_n, next_n.shape), next_n, action] if self.reward_from_state else [next_n, action]
        r = self.reward_out(nn.relu(self.reward_in(mx.concatenate(reward_inputs, axis=-1))))
        mean = mx.concatenate([delta_n, r[..., :1]], axis=-1)
        if not self.probabilistic:
            return mean, None
        raw = mx.concatenate([out[..., s:], r[..., 1:]], axis=-1)
        return mean, bound_logvar(raw, self.min_logvar, self.max_logvar)

    def members(self, state: mx.array, action: mx.array, noise: mx.array | None = None) -> tuple[mx.array, mx.array]:
        """Every member's step: ``(next_state [K, B, S], reward [K, B])``.

        Args:
            state, action: ``[B, ...]`` for all members on the same rows, or ``[K, B, ...]`` for
                member ``k`` on row block ``k`` (see :meth:`predict_normalized`).
            noise: optional standard-normal draws ``[K, B, S + 1]`` (or broadcastable): a probabilistic
                ensemble returns ``mean + std * noise`` per output instead of the mean.
        """
        mean, logvar = self.predict_normalized(state, action)
        if noise is not None:
            if logvar is None:
                raise ValueError("noise needs a probabilistic ensemble (EnsembleWorldModel(probabilistic=True))")
            mean = mean + mx.exp(0.5 * logvar) * noise
        s = self.state_dim
        next_state = state + self.delta_norm.invert(mean[..., :s])
        reward = self.reward_norm.invert(mean[..., s:])[..., 0]
        return next_state, reward

    def training_loss(self, state, action, delta_target, reward_target) -> tuple[mx.array, mx.array]:
        """The loss of one batch per member, summed over the members, and the squared errors.

        Args:
            state, action: ``[K, B, S]``, ``[K, B, A]`` (member ``k`` trains on its own rows) or ``[B, ...]``.
            delta_target, reward_target: normalised targets ``[K, B, S]`` and ``[K, B]`` (or ``[B, ...]``).

        Returns:
            The loss (each member's mean squared error, or Gaussian NLL plus the bound term, summed
            over the members) and the squared errors of the means ``[K, B, S + 1]`` (normalised units).
        """
        mean, logvar = self.predict_normalized(state, action)
        target = mx.concatenate([delta_target, reward_target[..., None]], axis=-1)
        err2 = (mean - target) ** 2
        if logvar is None:
            return err2.mean(axis=(-2, -1)).sum(), err2
        nll = (err2 * mx.exp(-logvar) + logvar).mean(axis=(-2, -1)).sum()
        return nll + LOGVAR_BOUND_WEIGHT * (self.max_logvar.sum() - self.min_logvar.sum()), err2

    def folded(self):
        """A frozen :class:`~worldmodel.folded_ensemble.FoldedEnsembleWorldModel` snapshot for planning
        (the normalisations folded into the stacked weights; the same function to float32 rounding)."""
        from .folded_ensemble import FoldedEnsembleWorldModel

        return FoldedEnsembleWorldModel(self)

    def __call__(self, state: mx.array, action: mx.array) -> tuple[mx.array, mx.array]:
        """The members' mean: ``(state [B, S], action [B, A]) -> (next_state [B, S], reward [B])``."""
        next_state, reward = self.members(state, action)
        return next_state.mean(axis=0), reward.mean(axis=0)


def model_from_config(config: dict):
    """An empty model for a checkpoint's ``"model"`` config: :class:`EnsembleWorldModel` for
    ``"kind": "ensemble"``, a :class:`~worldmodel.WorldModel` when ``"kind"`` is absent or ``"single"``."""
    config = dict(config)
    kind = config.pop("kind", "single")
    if kind == "ensemble":
        return EnsembleWorldModel(**config)
    if kind == "single":
        return WorldModel(**config)
    raise ValueError(f"unknown model kind {kind!r} (expected 'single' or 'ensemble')")
