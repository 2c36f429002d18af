"""Checkpoints: a folder with ``config.json`` and the weights it names (``mx.save_safetensors``).

Saving is atomic: the weights go to a new, content-named file, then ``config.json`` is replaced in
one rename, so an interrupted save leaves the previous checkpoint loadable. Older weight files are
removed only after the new config is in place. A save holds an exclusive ``flock`` on the folder,
so saves into one folder run one after the other (the last one wins, nothing is lost), and it
first removes temporary files left by saves whose process died (e.g. killed with ``kill -9``).
A load that meets a save in progress reads the new config again.

Loading reads at most a size bound from each file (the config's bound is fixed, the weights' is
computed from the architecture the config gives, whose sizes are bounded before a model is built),
only from regular files (a link to a device or pipe is refused, never read), and checks the
weights: the architecture's shapes, float values, all finite, every normalizer's std positive.

Layouts: a config without ``"kind"`` is one model (``nn.Linear`` weights ``[out, in]``), ``"kind":
"ensemble"`` holds ``K`` members (``EnsembleLinear`` weights ``[K, in, out]``); an ensemble of one
written that way (wmplan up to b765683) is relaid out on load for today's ``K = 1`` model.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import os
import stat

import mlx.core as mx
import numpy as np
from mlx.utils import tree_flatten

from .files import InputError, atomic_output, read_bounded, remove_stale_temporaries, write_json
from .model import WorldModel, member_linear, model_from_config

CONFIG_NAME = "config.json"
FORMAT_NAME = "wmplan-worldmodel"
FORMAT_VERSION = 1
FORMAT = f"{FORMAT_NAME}/{FORMAT_VERSION}"
MAX_CONFIG_BYTES = 16 << 20
"""config.json holds the architecture, settings and per-epoch losses: far below this."""
LOAD_ATTEMPTS = 3
"""Reads of config.json while saves keep replacing the weights it names."""


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, incomplete or corrupt."""


def save_model(model: WorldModel, path: str, extra: dict | None = None) -> str:
    """Write ``model`` (weights and normalization) and ``extra`` metadata to the folder ``path``.

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
    config_path = os.path.join(path, CONFIG_NAME)
    with _locked(path):
        remove_stale_temporaries(path)
        with atomic_output(weights_path, suffix=".safetensors") as tmp:
            with open(tmp, "wb") as f:  # a file object: MLX's savers fail on a name that is not UTF-8
                mx.save_safetensors(f, weights)
            digest = file_sha256(tmp)
        config = {
            "format": FORMAT,
            "weights": weights_name,
            "weights_sha256": digest,
            "model": model.config(),
            **(extra or {}),
        }
        write_json(config_path, config)
        for name in os.listdir(path):
            if name.startswith("weights-") and name.endswith(".safetensors") and name != weights_name:
                os.remove(os.path.join(path, name))
    return config_path


@contextlib.contextmanager
def _locked(folder: str):
    """Hold an exclusive ``flock`` on ``folder`` (its own descriptor: no lock file is left behind)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def read_config(path: str) -> dict:
    """The checkpoint's ``config.json`` as a dict; :class:`CheckpointError` if missing, corrupt or newer."""
    config_path = os.path.join(path, CONFIG_NAME)
    if not os.path.isdir(path) or not os.path.lexists(config_path):
        raise CheckpointError(f"no checkpoint at {path} (train one with: wmplan train --out {path})")
    try:
        config = json.loads(_read_bounded(path, CONFIG_NAME, MAX_CONFIG_BYTES))
    except (OSError, ValueError) as err:
        raise CheckpointError(f"corrupt checkpoint {path}: cannot read {CONFIG_NAME} ({err})") from None
    version = _newer_format(config)
    if version is not None:
        raise CheckpointError(
            f"checkpoint {path} was written by a newer wmplan (format {version}); this wmplan reads format {FORMAT_VERSION}"
        )
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


def _newer_format(config) -> int | None:
    """The format version of a config written by a newer wmplan, else ``None``."""
    name, _, version = str(config.get("format", "") if isinstance(config, dict) else "").partition("/")
    if name == FORMAT_NAME and version.isdigit() and int(version) > FORMAT_VERSION:
        return int(version)
    return None


def load_model(path: str) -> WorldModel:
    """A ready (evaluated, frozen-statistics) :class:`WorldModel` from the checkpoint folder ``path``:
    ``K`` members when the config says ``"model": {"kind": "ensemble", "ensemble": K, ...}``, else one.

    Raises:
        CheckpointError: missing, unreadable, corrupt, newer or non-finite (see the module).
    """
    for attempt in range(LOAD_ATTEMPTS):
        config = read_config(path)
        model = _empty_model(path, config)
        try:
            data = _read_bounded(path, config["weights"], _weights_bound(model))
            break
        except FileNotFoundError:
            if attempt == LOAD_ATTEMPTS - 1:  # else: a save replaced the config after it was read
                raise CheckpointError(f"corrupt checkpoint {path}: weights file {config['weights']} is missing") from None
        except OSError as err:
            raise CheckpointError(f"corrupt checkpoint {path}: cannot read {config['weights']} ({err})") from None
    if config.get("weights_sha256") and hashlib.sha256(data).hexdigest() != config["weights_sha256"]:
        raise CheckpointError(f"corrupt checkpoint {path}: {config['weights']} does not match its checksum")
    try:
        weights = mx.load(io.BytesIO(data), format="safetensors")
        if _stacked_single(config["model"]):
            weights = _unstacked(weights)
        model.load_weights(list(weights.items()), strict=True)
    except (TypeError, ValueError, RuntimeError) as err:
        detail = " ".join(str(err).split())
        raise CheckpointError(f"corrupt checkpoint {path}: {detail}") from None
    check_weights(model, path)
    for norm in (model.state_norm, model.delta_norm, model.reward_norm):
        norm.freeze()
    model.eval()
    mx.eval(model.parameters())
    return model


def check_weights(model: WorldModel, path: str) -> None:
    """:class:`CheckpointError` unless every weight of ``model`` is a finite float and every normalizer's std is positive."""
    for name, value in tree_flatten(model.parameters()):
        if not mx.issubdtype(value.dtype, mx.floating):
            raise CheckpointError(f"corrupt checkpoint {path}: weight {name} is of dtype {value.dtype}, expected floats")
        if not mx.all(mx.isfinite(value)).item():
            raise CheckpointError(f"corrupt checkpoint {path}: weight {name} holds NaN or infinite values")
    for name in ("state_norm", "delta_norm", "reward_norm"):
        if not mx.all(getattr(model, name).std > 0).item():
            raise CheckpointError(f"corrupt checkpoint {path}: normalizer {name} has a standard deviation <= 0")


def _stacked_single(config: dict) -> bool:
    """Whether a model config is an ensemble of one as wmplan up to b765683 wrote it (``"kind": "ensemble",
    "ensemble": 1``): weights in :class:`~worldmodel.model.EnsembleLinear`'s layout, which today's
    ``K = 1`` model (``nn.Linear`` layers) does not use."""
    return config.get("kind") == "ensemble" and config.get("ensemble") == 1


def _unstacked(weights: dict) -> dict:
    """An ensemble of one's weights in the ``K = 1`` layout: every ``EnsembleLinear``'s (``weight [1, in,
    out]``, ``bias [1, 1, out]``) as ``nn.Linear``'s (``[out, in]``, ``[out]``); the rest as they are."""
    layers = {}
    for name, value in weights.items():
        layer, _, kind = name.rpartition(".")
        if value.ndim == 3 and kind in ("weight", "bias"):
            layers.setdefault(layer, {})[kind] = value
    out = {name: value for name, value in weights.items() if name.rpartition(".")[0] not in layers}
    for layer, params in layers.items():
        out.update({f"{layer}.{kind}": value for kind, value in member_linear(params, 0).items()})
    return out


def _empty_model(path: str, config: dict) -> WorldModel:
    """The architecture ``config["model"]`` describes (its weights not yet computed); its sizes are
    checked first (:class:`WorldModel` refuses more than ``MAX_WEIGHTS`` weights)."""
    try:
        return model_from_config(config["model"])
    except (TypeError, ValueError) as err:
        detail = " ".join(str(err).split())
        raise CheckpointError(f"corrupt checkpoint {path}: {detail}") from None


def _weights_bound(model: WorldModel) -> int:
    """Bytes a safetensors file of ``model``'s weights may take: 8 per number (float64 at most) and a 64 KiB header."""
    return 8 * sum(value.size for _, value in tree_flatten(model.parameters())) + (64 << 10)


def _read_bounded(folder: str, name: str, limit: int) -> bytes:
    """The bytes of the regular file ``name`` in ``folder`` (:func:`worldmodel.files.read_bounded`).

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: not a regular file (a device or pipe is never read) or larger than ``limit``.
    """
    try:
        return read_bounded(os.path.join(folder, name), limit)
    except InputError as err:
        raise CheckpointError(f"corrupt checkpoint {folder}: {name} {err.reason}") from None


def file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
