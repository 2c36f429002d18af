"""Continual training: a world model and its Adam state carried from one call to the next.

    trainer = ContinualTrainer(model, lr=1e-3, batch_size=128)
    loss = trainer.fit(data, steps=200, rng=np.random.default_rng(0))   # warm start, 200 gradient steps
    arrays = trainer.state_arrays()            # the optimizer's state, for a checkpoint
    trainer.load_state_arrays(arrays)          # ... and back, so a resumed run trains on identically

Where :func:`~worldmodel.train.train` fits a fresh model for a number of epochs, this takes a
fixed number of gradient steps on the data it is given, starting from the model's current weights
and the optimizer's moments (a model-based RL loop retrains after every batch of new episodes).
Batches are drawn as ``train`` draws them (balanced over the state histogram, each ensemble member
on its own bootstrap); the same step function (:func:`~worldmodel.train.make_step`) updates them.
"""

from __future__ import annotations

import mlx.core as mx
import mlx.optimizers as optim
import numpy as np
from mlx.utils import tree_flatten, tree_unflatten

from .data import Transitions
from .train import balanced_weights, bootstrap_probabilities, draw_batches, make_step, training_arrays

NORMALIZATIONS = ("fixed", "refit")
"""``fixed``: statistics fit on the first call's data and kept; ``refit``: fit again on every call's data."""

FITTED_KEY = "normalization_fitted"
OPTIMIZER_PREFIX = "optimizer."


class ContinualTrainer:
    """Trains ``model`` in place, a fixed number of Adam steps per :meth:`fit`, warm-started.

    Args:
        model: a :class:`~worldmodel.WorldModel` or :class:`~worldmodel.EnsembleWorldModel`.
        lr: Adam's learning rate, constant. Default: ``1e-3``.
        batch_size: transitions per batch (per member for an ensemble), at most the data's size. Default: ``128``.
        balance_bins: flatten the state histogram of batches over this many bins per dimension
            (``0``: uniform batches). Default: ``10``.
        normalization: ``"fixed"`` or ``"refit"`` (see :data:`NORMALIZATIONS`). Default: ``"fixed"``.
        compile: run the step under ``mx.compile``. Default: ``True``.
    """

    def __init__(self, model, *, lr: float = 1e-3, batch_size: int = 128, balance_bins: int = 10,
                 normalization: str = "fixed", compile: bool = True):
        if not lr > 0:
            raise ValueError(f"lr must be positive, got {lr}")
        if batch_size < 1 or balance_bins < 0:
            raise ValueError(f"batch_size must be >= 1 and balance_bins >= 0, got {batch_size} and {balance_bins}")
        if normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {', '.join(NORMALIZATIONS)}, got {normalization!r}")
        self.model = model
        self.batch_size, self.balance_bins = int(batch_size), int(balance_bins)
        self.normalization, self.compile = normalization, bool(compile)
        self.optimizer = optim.Adam(learning_rate=lr)
        self.fitted = False  # whether the normalisation statistics have been set
        self._step = None

    def fit(self, data: Transitions, steps: int, rng: np.random.Generator) -> float:
        """``steps`` gradient steps on batches of ``data`` drawn with ``rng``; the mean training MSE
        of the steps in data units (averaged over the state dimensions and the reward).

        The normalisation statistics are fit on ``data`` at the first call (``"fixed"``) or at every call (``"refit"``).
        """
        if steps < 1 or len(data) < 1:
            raise ValueError(f"fit needs steps >= 1 and some data, got {steps} steps and {len(data)} transitions")
        model = self.model
        if self.normalization == "refit" or not self.fitted:
            model.fit_normalization(data.states, data.next_states, data.rewards)
            self.fitted = True
        probabilities = balanced_weights(data.states, self.balance_bins)
        members = getattr(model, "ensemble_size", None)
        if members is not None:
            probabilities = bootstrap_probabilities(rng, probabilities, members)
        index = mx.array(draw_batches(rng, probabilities, steps, min(self.batch_size, len(data))).astype(np.int32))
        states, actions, delta_targets, reward_targets, units = training_arrays(model, data)
        if self._step is None:
            self._step = make_step(model, self.optimizer, compile=self.compile)
        total = mx.array(0.0)
        for i in range(steps):
            rows = index[i]
            _, data_loss = self._step(states[rows], actions[rows], delta_targets[rows], reward_targets[rows], units)
            total = total + data_loss
            mx.eval(model.state, self.optimizer.state, total)
        loss = float(total.item()) / steps
        if not np.isfinite(loss):
            raise FloatingPointError(f"training diverged (mean loss {loss} over {steps} steps); lower the learning rate")
        return loss

    def state_arrays(self) -> dict:
        """The optimizer's state (moments, step count, learning rate) and whether the statistics are
        fit, as a flat dict of MLX arrays (for ``mx.save_safetensors``)."""
        arrays = {OPTIMIZER_PREFIX + name: value for name, value in tree_flatten(self.optimizer.state)}
        arrays[FITTED_KEY] = mx.array(int(self.fitted))
        return arrays

    def load_state_arrays(self, arrays: dict) -> None:
        """Continue from :meth:`state_arrays` of a trainer of the same model architecture.

        Raises:
            ValueError: arrays that are not such a state (a missing entry, or moments whose shapes
                differ from the model's parameters).
        """
        if FITTED_KEY not in arrays:
            raise ValueError(f"not a trainer state: no {FITTED_KEY!r} entry")
        state = tree_unflatten([(k[len(OPTIMIZER_PREFIX):], mx.array(v)) for k, v in arrays.items() if k.startswith(OPTIMIZER_PREFIX)])
        if state:
            expected = {name: value.shape for name, value in tree_flatten(self.model.trainable_parameters())}
            for name, value in tree_flatten(state):
                base = name.rsplit(".", 1)[0]
                if name not in ("step", "learning_rate") and expected.get(base) != value.shape:
                    raise ValueError(f"the trainer state's {name} has shape {tuple(value.shape)}, the model's {base} {expected.get(base)}")
            self.optimizer.state = state
        self.fitted = bool(int(mx.array(arrays[FITTED_KEY]).item()))
        self._step = None  # the compiled step captured the old state
