"""The adapter between an environment's MLX copy and the Gymnasium environment it mirrors.

Each environment module that mirrors a Gymnasium environment states how in one :class:`GymSpec`
(``env.gymnasium``: its id, the ``gymnasium.make`` options, how observations encode the state); the
functions here read it. Gymnasium itself is imported only by :func:`make_gym_env`.

    gym_env = make_gym_env(env)                       # gymnasium.make(env.gymnasium.id, ...)
    state = state_from_obs(env, obs)                  # [..., O] -> [..., S] float32
    obs, reward, terminated, truncated, _ = gym_env.step(gym_action(env, action))
    set_gym_state(env, gym_env, state); gym_state(env, gym_env)   # the Markov state, exactly
    set_physics_state(env, gym_env, p); physics_state(env, gym_env)   # MuJoCo's full physics state [P]
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping, Optional

import numpy as np

from planners.spaces import Discrete


@dataclass(frozen=True)
class GymSpec:
    """How an environment mirrors a Gymnasium environment.

    Attributes:
        id: the Gymnasium id (``"Pendulum-v1"``).
        options: names of the environment's attributes passed to ``gymnasium.make`` (Pendulum's ``g``).
        state_from_obs: ``f(obs [..., O] float64) -> state [..., S]``; ``None``: the observation is the state.
        state_dtype: the numpy dtype Gymnasium keeps ``env.unwrapped.state`` in.
        reset_attributes: attributes of ``env.unwrapped`` set whenever a state is put in (CartPole's
            ``steps_beyond_terminated = None``, so that the next step rewards as on a fresh episode).
        read_state, write_state: ``read_state(unwrapped) -> [S]`` and ``write_state(unwrapped, state [S])``
            where the planner state is not ``unwrapped.state`` (MuJoCo's envs: the observation, put in
            through ``qpos``/``qvel``); ``None``: ``unwrapped.state``.
        physics: ``True`` where the env also has a full physics state (MuJoCo's: :func:`physics_state`).
        extra: the wmplan extra that installs it (``"gym"``, ``"mujoco"``), for messages.
    """

    id: str
    options: tuple = ()
    state_from_obs: Optional[Callable[[np.ndarray], np.ndarray]] = None
    state_dtype: type = np.float64
    reset_attributes: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    read_state: Optional[Callable[[Any], np.ndarray]] = None
    write_state: Optional[Callable[[Any, np.ndarray], None]] = None
    physics: bool = False
    extra: str = "gym"


def gym_id(env) -> Optional[str]:
    """The Gymnasium id ``env`` mirrors, or ``None``."""
    return None if env.gymnasium is None else env.gymnasium.id


def gymnasium_version() -> Optional[str]:
    """The installed Gymnasium's version, or ``None`` when it cannot be imported."""
    try:
        import gymnasium
    except ImportError:
        return None
    return gymnasium.__version__


def make_gym_env(env, **kwargs):
    """The real Gymnasium environment ``gymnasium.make(id, **options, **kwargs)`` (``kwargs``: e.g. ``render_mode``)."""
    if env.gymnasium is None:
        raise ValueError(f"environment {env.name!r} has no Gymnasium counterpart")
    try:
        import gymnasium
    except ImportError:
        from ..extras import install

        raise ImportError(f"make_gym_env needs gymnasium: {install(env.gymnasium.extra)}") from None
    options = {name: getattr(env, name) for name in env.gymnasium.options}
    return gymnasium.make(env.gymnasium.id, **options, **kwargs)


def state_from_obs(env, obs) -> np.ndarray:
    """The planner state ``[..., S]`` float32 of Gymnasium observations ``[..., O]``."""
    decode = env.gymnasium.state_from_obs if env.gymnasium is not None else None
    if decode is None:
        return np.asarray(obs, dtype=np.float32)
    return decode(np.asarray(obs, dtype=np.float64)).astype(np.float32)


def gym_action(env, action):
    """What ``gym_env.step`` takes for one planner action ``[A]``: the index of the largest entry for
    ``Discrete`` (an ``int``), else the float32 array ``[A]`` (Gymnasium clips it)."""
    action = np.asarray(action)
    if isinstance(env.action_space, Discrete):
        return int(np.argmax(action))
    return action.astype(np.float32).reshape(env.action_space.shape)


def gym_state(env, gym_env) -> np.ndarray:
    """The Gymnasium env's internal Markov state ``[S]`` (float64): the planner state of ``env``."""
    if env.gymnasium.read_state is not None:
        return np.array(env.gymnasium.read_state(gym_env.unwrapped), dtype=np.float64)
    return np.array(gym_env.unwrapped.state, dtype=np.float64)


def set_gym_state(env, gym_env, state) -> None:
    """Put the Gymnasium env in planner state ``state [S]`` (for exact comparisons of one step)."""
    state = np.array(state, dtype=env.gymnasium.state_dtype).reshape(env.state_dim)
    if env.gymnasium.write_state is not None:
        env.gymnasium.write_state(gym_env.unwrapped, state)
    else:
        gym_env.unwrapped.state = state
    for name, value in env.gymnasium.reset_attributes.items():
        setattr(gym_env.unwrapped, name, value)


def physics_state(env, gym_env) -> np.ndarray:
    """The full physics state ``[P]`` float64 of a MuJoCo Gymnasium env (``mj_getState`` with
    ``mjSTATE_FULLPHYSICS``: time, ``qpos``, ``qvel``, actuator and plugin states); ``ValueError`` for others."""
    if env.gymnasium is None or not env.gymnasium.physics:
        raise ValueError(f"{env.name} has no physics state (only MuJoCo's environments do)")
    return get_physics(gym_env.unwrapped)


def set_physics_state(env, gym_env, physics) -> None:
    """Put a MuJoCo Gymnasium env in the full physics state ``physics [P]`` (:func:`physics_state`)."""
    if env.gymnasium is None or not env.gymnasium.physics:
        raise ValueError(f"{env.name} has no physics state (only MuJoCo's environments do)")
    set_physics(gym_env.unwrapped, physics)


def _full_physics():
    import mujoco

    return mujoco.mjtState.mjSTATE_FULLPHYSICS


def physics_size(unwrapped) -> int:
    """``P``: the numbers in the full physics state of a MuJoCo Gymnasium env (``env.unwrapped``)."""
    import mujoco

    return int(mujoco.mj_stateSize(unwrapped.model, _full_physics()))


def get_physics(unwrapped) -> np.ndarray:
    """The full physics state ``[P]`` float64 of ``unwrapped`` (a Gymnasium ``MujocoEnv``): ``mj_getState``
    with ``mjSTATE_FULLPHYSICS`` (time, ``qpos``, ``qvel``, activations, plugin states)."""
    import mujoco

    state = np.empty(physics_size(unwrapped), dtype=np.float64)
    mujoco.mj_getState(unwrapped.model, unwrapped.data, state, _full_physics())
    return state


def set_physics(unwrapped, physics) -> None:
    """Put ``unwrapped`` in the full physics state ``physics [P]`` (``mj_setState``, then ``mj_forward``)."""
    import mujoco

    physics = np.asarray(physics, dtype=np.float64).reshape(-1)
    if physics.size != physics_size(unwrapped):
        raise ValueError(f"a physics state of {type(unwrapped).__name__} has {physics_size(unwrapped)} numbers, got {physics.size}")
    mujoco.mj_setState(unwrapped.model, unwrapped.data, physics, _full_physics())
    mujoco.mj_forward(unwrapped.model, unwrapped.data)
