"""Closed-loop quality of the planners' defaults on the true discrete particle, against the exact optimum.

Cost ratio = sum over episodes of (-return) / sum of (-optimal return); 50 steps, horizon 15,
1000 samples, every episode stepped together (one ``act`` per step). A bigger run by hand:
``WMPLAN_QUALITY_EPISODES=100 pytest tests/planners/test_quality.py -m slow -s`` (prints the ratios).
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import planners
from worldmodel.envs import ParticleEnv
from worldmodel.envs.particle import optimal_returns
from worldmodel.envs.runner import planner_policy, run_episodes

EPISODES, STEPS = int(os.environ.get("WMPLAN_QUALITY_EPISODES", 24)), 50
TARGETS = {planners.CEM: 1.02, planners.MPPI: 1.02, planners.RandomShooting: 1.25}


def quality_starts(num: int, seed: int = 0) -> np.ndarray:
    """At a wall moving outward, the mirror image, at rest in the centre; then uniform over the box."""
    hard = ParticleEnv().benchmark_starts(6)[[0, 1, 4]]
    return np.concatenate([hard, ParticleEnv().sample_states(np.random.default_rng(seed), num - len(hard))])


@pytest.mark.slow
@pytest.mark.parametrize("cls", list(TARGETS), ids=lambda c: c.__name__)
def test_cost_ratio_against_the_optimum(cls):
    env = ParticleEnv()
    starts = quality_starts(EPISODES)
    planner = cls(env, env.action_space, horizon=15, samples=1000)
    returns = run_episodes(planner_policy(planner), env, starts, STEPS).returns
    ratio = np.sum(-returns) / np.sum(-optimal_returns(env, starts, STEPS))
    print(f"\n{cls.__name__}: cost ratio {ratio:.4f} over {EPISODES} episodes")
    assert ratio <= TARGETS[cls], f"{cls.__name__}: cost ratio {ratio:.4f} > {TARGETS[cls]}"
