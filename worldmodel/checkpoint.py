"""Checkpoints: a folder with ``config.json`` and the weights it names (``mx.save_safetensors``).

Saving is atomic: the weights go to a new, content-named file, then ``config.json`` is replaced in
one rename, so an interrupted save leaves the previous checkpoint loadable. Older weight files are
removed only after the new config is in place.
"""

from __future__ import annotations

import hashlib
import json
import os

import mlx.core as mx
import numpy as np
from mlx.utils import tree_flatten

from .files import atomic_output, write_json_atomic
from .ensemble import EnsembleWorldModel, model_from_config
from .model import WorldModel

CONFIG_NAME = "config.json"
FORMAT = "wmplan-worldmodel/1"


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, incomplete or corrupt."""


def save_model(model: WorldModel, path: str, extra: dict | None = None) -> str:
    """Write ``model`` (weights and normalisation) and ``extra`` metadata to the folder ``path``.

    Args:
        model: the model to save.
        path: a folder; created if needed.
        extra: JSON-serialisable metadata (environment, training settings, metrics).

    Returns:
        The path of ``config.json``.
    """
    os.makedirs(path, exist_ok=True)
    weights = dict(tree_flatten(model.parameters()))
    content = hashlib.sha256()
    for name, value in sorted(weights.items()):
        content.update(name.encode())
        content.update(np.array(value).tobytes())
    weights_name = f"weights-{content.hexdigest()[:16]}.safetensors"
    weights_path = os.path.join(path, weights_name)
    with atomic_output(weights_path, suffix=".safetensors") as tmp:
        mx.save_safetensors(tmp, weights)
    digest = _sha256(weights_path)
    config = {
        "format": FORMAT,
        "weights": weights_name,
        "weights_sha256": digest,
        "model": model.config(),
        **(extra or {}),
    }
    config_path = os.path.join(path, CONFIG_NAME)
    write_json_atomic(config_path, config)
    for name in os.listdir(path):
        if name.startswith("weights-") and name.endswith(".safetensors") and name != weights_name:
            os.remove(os.path.join(path, name))
    return config_path


def read_config(path: str) -> dict:
    """The checkpoint's ``config.json`` as a dict; :class:`CheckpointError` if missing or corrupt."""
    config_path = os.path.join(path, CONFIG_NAME)
    if not os.path.isdir(path) or not os.path.exists(config_path):
        raise CheckpointError(f"no checkpoint at {path} (train one with: wmplan train --out {path})")
    try:
        with open(config_path) as f:
            config = json.load(f)
    except (OSError, ValueError) as err:
        raise CheckpointError(f"corrupt checkpoint {path}: cannot read {CONFIG_NAME} ({err})") from None
    if (
        not isinstance(config, dict)
        or config.get("format") != FORMAT
        or not isinstance(config.get("model"), dict)
        or not isinstance(config.get("weights"), str)
        or os.path.basename(config["weights"]) != config["weights"]
        or not config["weights"].endswith(".safetensors")
    ):
        raise CheckpointError(f"corrupt checkpoint {path}: {CONFIG_NAME} is not a wmplan world-model config")
    return config


def load_model(path: str) -> WorldModel | EnsembleWorldModel:
    """A ready (evaluated, frozen-statistics) :class:`WorldModel` from the checkpoint folder ``path``, or an
    :class:`~worldmodel.EnsembleWorldModel` when its config says ``"model": {"kind": "ensemble", ...}``."""
    config = read_config(path)
    weights_path = os.path.join(path, config["weights"])
    if not os.path.exists(weights_path):
        raise CheckpointError(f"corrupt checkpoint {path}: weights file {config['weights']} is missing")
    if config.get("weights_sha256") and _sha256(weights_path) != config["weights_sha256"]:
        raise CheckpointError(f"corrupt checkpoint {path}: {config['weights']} does not match its checksum")
    try:
        model = model_from_config(config["model"])
        model.load_weights(weights_path, strict=True)
    except (TypeError, ValueError, RuntimeError) as err:
        detail = " ".join(str(err).split())
        raise CheckpointError(f"corrupt checkpoint {path}: {detail}") from None
    for norm in (model.state_norm, model.delta_norm, model.reward_norm):
        norm.freeze()
    model.eval()
    mx.eval(model.parameters())
    return model


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
