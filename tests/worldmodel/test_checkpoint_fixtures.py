"""Checkpoints written by an earlier wmplan (b765683) still load and compute what they computed then.

The fixtures in ``tests/worldmodel/fixtures/checkpoints-b765683`` were made by ``make_fixtures.py`` (beside them)
with that version: small single models and ensembles, with angles, a state-reading reward head and
probabilistic heads, and their outputs (plain, folded and per member) on fixed inputs.
"""

import json
import os

import mlx.core as mx
import numpy as np
import pytest

from worldmodel import load_model

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "checkpoints-b765683")
with open(os.path.join(FIXTURES, "expected.json")) as handle:
    EXPECTED = json.load(handle)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_old_checkpoint_loads_and_predicts_as_it_did(name):
    expected = EXPECTED[name]
    model = load_model(os.path.join(FIXTURES, name))
    state, action = mx.array(expected["state"]), mx.array(expected["action"])
    for dynamics, prefix in ((model, ""), (model.folded(), "folded_")):
        next_state, reward = dynamics(state, action)
        np.testing.assert_allclose(np.array(next_state), expected[prefix + "next_state"], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(np.array(reward), expected[prefix + "reward"], rtol=1e-5, atol=1e-5)
    if "members_next_state" in expected:
        k = len(expected["members_reward"])
        next_state, reward = model.members(mx.repeat(state[None], k, 0), mx.repeat(action[None], k, 0))
        np.testing.assert_allclose(np.array(next_state), expected["members_next_state"], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(np.array(reward), expected["members_reward"], rtol=1e-5, atol=1e-5)
