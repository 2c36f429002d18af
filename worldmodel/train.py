"""Training a :class:`~worldmodel.WorldModel` on transitions: Adam, balanced batches, each member on its own bootstrap.

    result = train(model, data, TrainConfig(epochs=20))        # a fresh fit: epochs, one-cycle schedule

    trainer = ContinualTrainer(model, lr=1e-3, batch_size=128)  # continual: warm-started, fixed step counts
    loss = trainer.fit(data, steps=200, rng=np.random.default_rng(0))
    arrays = trainer.state_arrays()            # the optimizer's state, for a checkpoint
    trainer.load_state_arrays(arrays)          # ... and back, so a resumed run trains on identically

Both draw batches the same way (balanced over the state histogram, each member of ``K > 1`` on
its own bootstrap: :func:`batch_probabilities`) and update the model with the same step
(:func:`make_step`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np
from mlx.utils import tree_flatten, tree_map, tree_unflatten

from planners.runtime import streams
from planners.runtime.memory import check_fits

from .checks import at_least, check_seed, positive_finite
from .data import Transitions
from .features import state_change
from .model import WorldModel

NORMALIZATIONS = ("fixed", "refit")
"""``fixed``: statistics fit on the first call's data and kept; ``refit``: fit again on every call's data."""
FITTED_KEY = "normalization_fitted"
OPTIMIZER_PREFIX = "optimizer."

TRAINING_COPIES = 5
"""float32 copies of the weights alive while training: the weights, their gradients, Adam's two moments, the update."""
ACTIVATION_BYTES = 16
"""Bytes per layer output unit and batch row of a training step: the value, its gradient, the step's temporaries."""
BATCH_INDEX_BYTES = 20
"""Bytes per drawn batch row: its uniform draw (float64), its index (int64) and the index's int32 copy."""
BOOTSTRAP_BYTES = 24
"""Bytes per member and training row of the bootstrap: the draws, their counts (int64) and the probabilities (float64)."""


@dataclass
class TrainConfig:
    """Training settings; the defaults are the seed's (Adam, lr 1e-3, batch 128, 20 epochs) plus:

    Attributes:
        schedule: ``"onecycle"`` (linear warm-up from ``lr`` to ``max_lr`` over the first 10 % of the
            steps, then cosine decay to ``lr / 100``) or ``"constant"`` (``lr`` throughout: the seed).
        max_lr: the one-cycle peak. Default: ``2e-2``.
        val_fraction: share of the transitions held out for validation. Default: ``0.1``.
        balance_bins: batches are drawn with weights that flatten the histogram of states over this
            many bins per state dimension (random-action episodes spend most of their time at the
            walls); ``0`` draws uniformly, as the seed did. Default: ``10``.
        compile: run the training step under ``mx.compile``. Default: ``True``.
    """

    epochs: int = 20
    batch_size: int = 128
    lr: float = 1e-3
    schedule: str = "onecycle"
    max_lr: float = 2e-2
    val_fraction: float = 0.1
    balance_bins: int = 10
    seed: int = 0
    compile: bool = True

    def __post_init__(self):
        at_least(1, epochs=self.epochs, batch_size=self.batch_size)
        positive_finite(lr=self.lr, max_lr=self.max_lr)
        if self.schedule not in ("onecycle", "constant"):
            raise ValueError(f"schedule must be 'onecycle' or 'constant', got {self.schedule!r}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        at_least(0, balance_bins=self.balance_bins)
        check_seed(self.seed)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        """Build from a dict, keeping only known keys."""
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in values.items() if k in known})


@dataclass
class TrainResult:
    """Per-epoch losses (MSE in data units, averaged over the state dimensions and the reward)."""

    train_losses: list = field(default_factory=list)
    val_losses: list = field(default_factory=list)
    num_train: int = 0
    num_val: int = 0


def one_step_mse(model, data: Transitions, batch: int = 65536) -> np.ndarray:
    """Per-dimension one-step MSE ``[S + 1]`` (state dimensions, then the reward) of ``model`` on ``data``.

    The error of an angle (``model.angles``, if any) is the wrapped difference in ``[-pi, pi)``:
    angles a whole turn apart are the same.
    """
    angles = getattr(model, "angles", ())
    total = np.zeros(data.states.shape[1] + 1)
    for start in range(0, len(data), batch):
        part = data.subset(slice(start, start + batch))
        next_state, reward = streams.in_chunks(model, mx.array(part.states), mx.array(part.actions))
        state_err = state_change(part.next_states, np.array(next_state), angles)
        err = np.concatenate([state_err, (np.array(reward) - part.rewards)[:, None]], 1)
        total += (err.astype(np.float64) ** 2).sum(0)
    return total / len(data)


def balanced_weights(states: np.ndarray, bins: int) -> np.ndarray:
    """Sampling probabilities ``[N]`` that give every occupied state-histogram cell the same total weight."""
    if bins == 0:
        return np.full(len(states), 1.0 / len(states))
    low, high = states.min(0), states.max(0)
    cell = np.clip(((states - low) / np.maximum(high - low, 1e-12) * bins).astype(np.int64), 0, bins - 1)
    _, inverse, counts = np.unique(cell, axis=0, return_inverse=True, return_counts=True)
    weights = 1.0 / counts[inverse.ravel()]
    return weights / weights.sum()


def bootstrap_probabilities(rng: np.random.Generator, probabilities: np.ndarray, members: int) -> np.ndarray:
    """Each member's sampling probabilities ``[K, N]``: ``probabilities [N]`` restricted to the member's own
    bootstrap resample (``N`` indices drawn with replacement), weighted by how often each index was drawn."""
    n = len(probabilities)
    draws = rng.integers(0, n, size=(members, n)) + n * np.arange(members)[:, None]
    weights = np.bincount(draws.ravel(), minlength=members * n).reshape(members, n) * probabilities
    return weights / weights.sum(axis=1, keepdims=True)


def batch_probabilities(rng: np.random.Generator, model, states: np.ndarray, bins: int) -> np.ndarray:
    """The sampling probabilities of the training rows: ``[N]`` balanced over ``bins`` (:func:`balanced_weights`)
    for one model, ``[K, N]`` restricted to each member's bootstrap (drawn with ``rng``) for ``K > 1``."""
    probabilities = balanced_weights(states, bins)
    members = getattr(model, "ensemble_size", 1)
    return bootstrap_probabilities(rng, probabilities, members) if members > 1 else probabilities


def draw_batches(rng: np.random.Generator, probabilities: np.ndarray, steps: int, batch: int) -> np.ndarray:
    """Row indices ``[steps, batch]`` drawn with ``probabilities [N]``, or ``[steps, K, batch]``, row ``k``
    with ``probabilities[k]`` for probabilities ``[K, N]`` (inverse CDF, all members in one search)."""
    if probabilities.ndim == 1:
        return rng.choice(len(probabilities), size=(steps, batch), p=probabilities, replace=True)
    members, n = probabilities.shape
    offset = np.arange(members)
    cdf = np.cumsum(probabilities, axis=1)
    cdf = (cdf / cdf[:, -1:] + offset[:, None]).ravel()  # member k's CDF shifted into [k, k + 1]
    u = rng.random((steps, members, batch)) + offset[:, None]
    index = np.searchsorted(cdf, u.ravel(), side="right").reshape(u.shape) - n * offset[:, None]
    return np.clip(index, 0, n - 1)


def training_bytes(parameters: int, units: int, members: int, rows: int, batch: int, batches: int) -> int:
    """Rough peak bytes of training a model of ``parameters`` weights and ``units`` layer outputs per row (both over
    all ``members``) on ``rows`` transitions: the weights and Adam's state, a step's activations for ``batch`` rows
    per member, the indices of ``batches`` batches drawn at once, and each member's bootstrap of the rows."""
    return (4 * TRAINING_COPIES * parameters + ACTIVATION_BYTES * units * batch
            + BATCH_INDEX_BYTES * batches * members * batch + BOOTSTRAP_BYTES * members * rows)


def model_sizes(model) -> tuple[int, int]:
    """``(weights, layer output units)`` of ``model``, over all its members (for :func:`training_bytes`)."""
    named = tree_flatten(model.trainable_parameters())
    return sum(v.size for _, v in named), sum(v.size for name, v in named if name.endswith("bias"))


def check_training(parameters: int, units: int, members: int, rows: int, batch: int, batches: int) -> None:
    """:class:`~planners.runtime.memory.MemoryBudgetError` when :func:`training_bytes` exceed the memory available."""
    check_fits(training_bytes(parameters, units, members, rows, batch, batches),
               f"training {members} member(s) of {parameters // max(members, 1):,} weights on {rows} transitions "
               f"({batches} batches of {batch} drawn at once)")


def training_arrays(model, data: Transitions) -> tuple:
    """What a training step reads, as MLX arrays: ``states [N, S]``, ``actions [N, A]``, the normalized
    targets ``delta [N, S]`` and ``reward [N]`` (in ``model``'s current statistics), and the weights
    ``[S + 1]`` that turn normalized squared errors into data units (for the printed losses)."""
    states, actions = mx.array(data.states), mx.array(data.actions)
    delta_targets = model.delta_norm(mx.array(model.state_change(data.states, data.next_states)))
    reward_targets = model.reward_norm(mx.array(data.rewards)[:, None])[:, 0]
    to_data_units = mx.concatenate([model.delta_norm.std, model.reward_norm.std]) ** 2
    return states, actions, delta_targets, reward_targets, to_data_units


def make_step(model, optimizer, *, compile: bool = True, reduce=None):
    """One training step of ``model`` with ``optimizer``: ``step(states, actions, delta_t, reward_t, units)
    -> (loss, data_loss)`` on a batch (``[B, ...]``, or ``[K, B, ...]`` for an ensemble), updating both in place.

    ``loss`` is what is minimised (normalized units), ``data_loss`` the mean squared error in data
    units. ``reduce(grads, loss, data_loss) -> (grads, loss, data_loss)``, if given, runs before the
    update (data-parallel averaging). With ``compile`` the step runs under ``mx.compile`` with the
    model's and the optimizer's state as its inputs and outputs.
    """

    def loss_fn(net, s, a, delta_t, reward_t, units):
        loss, err2 = net.training_loss(s, a, delta_t, reward_t)
        return loss, (err2 * units).mean()

    value_and_grad = nn.value_and_grad(model, loss_fn)  # grads of the first output only

    def step(*batch_arrays):
        (loss, data_loss), grads = value_and_grad(model, *batch_arrays)
        if reduce is not None:
            grads, loss, data_loss = reduce(grads, loss, data_loss)
        optimizer.update(model, grads)
        return loss, data_loss

    if compile:
        state = [model.state, optimizer.state]
        step = partial(mx.compile, inputs=state, outputs=state)(step)
    return step


def _schedule(config: TrainConfig, total_steps: int):
    if config.schedule == "constant":
        return config.lr
    warmup = max(1, total_steps // 10)
    return optim.join_schedules(
        [
            optim.linear_schedule(config.lr, config.max_lr, warmup),
            optim.cosine_decay(config.max_lr, max(1, total_steps - warmup), config.lr / 100),
        ],
        [warmup],
    )


def train(
    model: WorldModel,
    data: Transitions,
    config: TrainConfig | None = None,
    log: Callable[[str], None] | None = print,
    world=None,
) -> TrainResult:
    """Fit ``model`` (a :class:`~worldmodel.WorldModel` of one or ``K`` members) to ``data`` in place;
    print one line per epoch in the seed's format.

    The line is ``Epoch 01 | loss = 0.035199 | val = 0.000037``: mean training MSE over the epoch's
    batches, then the held-out MSE, both in data units averaged over (state dims, reward).
    Deterministic for a given ``config.seed``.

    Member ``k`` of ``K > 1`` trains on its own bootstrap of the training transitions
    (:func:`bootstrap_probabilities`); one step updates all members at once on their own batches
    ``[K, batch]`` with the loss summed over the members. The printed training loss is the members'
    mean MSE; the validation loss is that of their mean prediction (the ensemble's ``__call__``).

    Data-parallel with ``world`` (a :class:`~worldmodel.distributed.World` of ``K > 1`` processes,
    each holding the same ``data`` and the same initial ``model``): the global batches are drawn
    exactly as in one process; each rank takes its contiguous share of every batch, and the
    gradients are averaged across ranks (``mlx.nn.average_gradients``, weighted by share size), so
    every rank applies the gradient of the whole global batch and the models stay identical. The
    losses are those of the global batch, equal to one process's up to float rounding.
    """
    config = config or TrainConfig()
    ranks = 1 if world is None else world.size
    rng = np.random.default_rng(config.seed)
    order = rng.permutation(len(data))
    num_val = int(round(config.val_fraction * len(data)))
    train_data, val_data = data.subset(order[num_val:]), data.subset(order[:num_val])
    if len(train_data) < 1:
        raise ValueError("no training transitions left after the validation split")
    model.fit_normalization(train_data.states, train_data.next_states, train_data.rewards)

    batch = min(config.batch_size, len(train_data))
    steps_per_epoch = max(1, len(train_data) // batch)
    members = getattr(model, "ensemble_size", 1)
    check_training(*model_sizes(model), members, len(train_data), batch, steps_per_epoch)
    optimizer = optim.Adam(learning_rate=_schedule(config, steps_per_epoch * config.epochs))
    probabilities = batch_probabilities(rng, model, train_data.states, config.balance_bins)

    states, actions, delta_targets, reward_targets, to_data_units = training_arrays(model, train_data)
    state = [model.state, optimizer.state]

    reduce = None
    if ranks > 1:
        from .distributed import share

        part = share(batch, world.rank, ranks)
        # This rank's weight in the global mean: its share of the batch (1 / ranks when they are equal).
        weight = (part.stop - part.start) / batch
        scale = None if batch % ranks == 0 else weight * ranks  # average_gradients divides by ranks

        def reduce(grads, loss, data_loss):
            if scale is not None:
                grads = tree_map(lambda g: g * scale, grads)
            grads = nn.average_gradients(grads, group=world.group)
            loss, data_loss = (mx.distributed.all_sum(v * weight, group=world.group) for v in (loss, data_loss))
            return grads, loss, data_loss

    step = make_step(model, optimizer, compile=config.compile, reduce=reduce)

    result = TrainResult(num_train=len(train_data), num_val=len(val_data))
    for epoch in range(1, config.epochs + 1):
        index = draw_batches(rng, probabilities, steps_per_epoch, batch)
        if ranks > 1:
            index = index[..., part]  # this rank's share of every global batch
        index = mx.array(index.astype(np.int32))
        losses = []
        for i in range(steps_per_epoch):
            i_ = index[i]
            _, data_loss = step(states[i_], actions[i_], delta_targets[i_], reward_targets[i_], to_data_units)
            mx.eval(state, data_loss)
            losses.append(data_loss)
        train_loss = float(mx.mean(mx.stack(losses)).item())
        val_loss = float(one_step_mse(model, val_data).mean()) if len(val_data) else float("nan")
        if not np.isfinite(train_loss):
            raise FloatingPointError(f"training diverged at epoch {epoch} (loss = {train_loss}); lower --lr or --max-lr")
        result.train_losses.append(train_loss)
        result.val_losses.append(val_loss)
        if log:
            log(f"Epoch {epoch:02d} | loss = {train_loss:.6f} | val = {val_loss:.6f}")
    return result


class ContinualTrainer:
    """Trains ``model`` in place, a fixed number of Adam steps per :meth:`fit`, warm-started.

    Where :func:`train` fits a fresh model for a number of epochs, this takes a fixed number of
    gradient steps on the data it is given, starting from the model's current weights and the
    optimizer's moments (a model-based RL loop retrains after every batch of new episodes).

    Args:
        model: a :class:`~worldmodel.WorldModel` (one model or ``K`` members).
        lr: Adam's learning rate, constant. Default: ``1e-3``.
        batch_size: transitions per batch (per member for an ensemble), at most the data's size. Default: ``128``.
        balance_bins: flatten the state histogram of batches over this many bins per dimension
            (``0``: uniform batches). Default: ``10``.
        normalization: ``"fixed"`` or ``"refit"`` (see :data:`NORMALIZATIONS`). Default: ``"fixed"``.
        compile: run the step under ``mx.compile``. Default: ``True``.
    """

    def __init__(self, model, *, lr: float = 1e-3, batch_size: int = 128, balance_bins: int = 10,
                 normalization: str = "fixed", compile: bool = True):
        positive_finite(lr=lr)
        if batch_size < 1 or balance_bins < 0:
            raise ValueError(f"batch_size must be >= 1 and balance_bins >= 0, got {batch_size} and {balance_bins}")
        if normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {', '.join(NORMALIZATIONS)}, got {normalization!r}")
        self.model = model
        self.batch_size, self.balance_bins = int(batch_size), int(balance_bins)
        self.normalization, self.compile = normalization, bool(compile)
        self.optimizer = optim.Adam(learning_rate=lr)
        self.fitted = False  # whether the normalization statistics have been set
        self._step = None

    def fit(self, data: Transitions, steps: int, rng: np.random.Generator) -> float:
        """``steps`` gradient steps on batches of ``data`` drawn with ``rng``; the mean training MSE
        of the steps in data units (averaged over the state dimensions and the reward).

        The normalization statistics are fit on ``data`` at the first call (``"fixed"``) or at every call (``"refit"``).
        """
        if steps < 1 or len(data) < 1:
            raise ValueError(f"fit needs steps >= 1 and some data, got {steps} steps and {len(data)} transitions")
        model = self.model
        batch = min(self.batch_size, len(data))
        check_training(*model_sizes(model), getattr(model, "ensemble_size", 1), len(data), batch, steps)
        if self.normalization == "refit" or not self.fitted:
            model.fit_normalization(data.states, data.next_states, data.rewards)
            self.fitted = True
        probabilities = batch_probabilities(rng, model, data.states, self.balance_bins)
        index = mx.array(draw_batches(rng, probabilities, steps, batch).astype(np.int32))
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
