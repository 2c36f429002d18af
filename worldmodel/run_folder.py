"""A run folder: the latest snapshot of a training run (the MBRL loop's) that can be interrupted and resumed.

    RUN/
      run.json                  the manifest, replaced atomically, written last
      iteration-0003/           the snapshot it names (taken after round 3; the name is format 1's)
        model/                  a checkpoint (worldmodel.save_model): load_model() reads it
        trainer.safetensors     the trainer's state (ContinualTrainer.state_arrays())
        data.npz                every transition so far (Transitions.save)
        planner.npz             the planner's state (planners.PlannerState.to_arrays()), if any

A save writes a new snapshot folder beside the current one (every file atomically, through
:mod:`worldmodel.files`), then replaces ``run.json`` naming it and the checksums of its files, then
removes the older snapshots. An interrupted save therefore leaves the previous snapshot and the
manifest naming it; the half-written folder is removed by the next save. ``run.json`` also holds
the caller's ``record`` (JSON: settings, results so far).

While a :class:`RunFolder` is open it holds an exclusive ``flock`` on the folder: a second run
into the same folder is refused instead of interleaving its saves.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
from dataclasses import dataclass
from typing import Optional

import mlx.core as mx
import numpy as np

from planners import PlannerState

from .checkpoint import CheckpointError, file_sha256, load_model, save_model
from .data import DatasetError, Transitions
from .files import InputError, atomic_output, check_output_folder, open_output, read_bounded, remove_stale_temporaries, write_json

MANIFEST = "run.json"
FORMAT_NAME = "wmplan-run"
FORMAT_VERSION = 1
FORMAT = f"{FORMAT_NAME}/{FORMAT_VERSION}"
MAX_MANIFEST_BYTES = 64 << 20
SNAPSHOT = re.compile(r"^iteration-(\d{4,})$")
FILES = ("trainer.safetensors", "data.npz", "planner.npz")


class RunFolderError(CheckpointError):
    """A run folder that is missing, corrupt, newer, or in use by another process."""


@dataclass
class Snapshot:
    """What a run folder holds after one round of the run.

    Attributes:
        number: the round the snapshot was taken after (the manifest's ``"iteration"``, format 1's name).
        model: the world model (a ``WorldModel`` or ``EnsembleWorldModel``).
        trainer: the trainer's state, a dict of MLX arrays.
        data: every transition collected so far.
        planner: the planner's state, or ``None``.
        record: the caller's JSON record.
    """

    number: int
    model: object
    trainer: dict
    data: Transitions
    planner: Optional[PlannerState]
    record: dict

    @property
    def iteration(self) -> int:
        """The old name of :attr:`number`."""
        return self.number


def snapshot_name(number: int) -> str:
    """The folder of the snapshot after round ``number`` (``iteration-0003``: format 1's name)."""
    return f"iteration-{number:04d}"


def holds_run(path) -> bool:
    """Whether the folder ``path`` holds a run: a manifest or a snapshot folder (``iteration-NNNN``)."""
    path = os.fspath(path)
    if not os.path.isdir(path):
        return False
    return any(name == MANIFEST or SNAPSHOT.match(name) for name in os.listdir(path))


def owns(folder, path) -> bool:
    """Whether ``path`` (links resolved) is one of the run folder ``folder``'s own files: its manifest or inside a snapshot."""
    relative = os.path.relpath(os.path.realpath(os.fspath(path)), os.path.realpath(os.fspath(folder)))
    first = relative.split(os.sep, 1)[0]
    return not relative.startswith(os.pardir) and (relative == MANIFEST or bool(SNAPSHOT.match(first)))


class RunFolder:
    """The run folder ``path`` (created if missing; its parent must exist), locked while open.

    Use as a context manager: ``with RunFolder(path) as run: run.save(...)``. A folder it created is
    removed again on leaving if nothing was saved in it (a run interrupted or failed before its first
    round leaves nothing behind).
    """

    def __init__(self, path: str):
        self.path = os.fspath(path)
        self._fd: Optional[int] = None
        self._created = False

    def __enter__(self) -> "RunFolder":
        check_output_folder(self.path)
        self._created = not os.path.lexists(self.path)
        os.makedirs(self.path, exist_ok=True)
        fd = os.open(self.path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunFolderError(f"run folder {self.path} is in use by another process") from None
        self._fd = fd
        remove_stale_temporaries(self.path)
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            if self._created and not os.listdir(self.path):
                os.rmdir(self.path)  # still locked by us: no other process is using it
            os.close(self._fd)
            self._fd = None

    @property
    def manifest_path(self) -> str:
        return os.path.join(self.path, MANIFEST)

    def has_run(self) -> bool:
        """Whether the folder holds a run (a manifest)."""
        return os.path.lexists(self.manifest_path)

    def clear(self) -> None:
        """Forget the run in the folder: the manifest first, then every snapshot (a fresh run starts)."""
        if self.has_run():
            os.remove(self.manifest_path)
        self._remove_snapshots(keep=None)

    def save(self, number: int, model, trainer: dict, data: Transitions, planner: Optional[PlannerState], record: dict,
             model_extra: Optional[dict] = None) -> str:
        """Write the snapshot after round ``number`` and make it the run's; returns the snapshot folder.

        ``model_extra``: metadata for the model's checkpoint (``save_model``'s ``extra``, e.g. its environment).
        """
        name = snapshot_name(number)
        folder = os.path.join(self.path, name)
        if os.path.lexists(folder):  # left by an interrupted save: the manifest does not name it
            shutil.rmtree(folder)
        os.mkdir(folder)
        save_model(model, os.path.join(folder, "model"), extra=model_extra)
        with atomic_output(os.path.join(folder, "trainer.safetensors"), suffix=".safetensors") as tmp:
            with open(tmp, "wb") as f:  # a file object: MLX's savers fail on a name that is not UTF-8
                mx.save_safetensors(f, trainer)
        data.save(os.path.join(folder, "data.npz"))
        if planner is not None:
            with open_output(os.path.join(folder, "planner.npz"), "wb", suffix=".npz") as f:
                np.savez(f, **{k: np.array(v) for k, v in planner.to_arrays().items()})
        sums = {f: file_sha256(os.path.join(folder, f)) for f in FILES if os.path.exists(os.path.join(folder, f))}
        write_json(self.manifest_path, {"format": FORMAT, "iteration": number, "snapshot": name, "sha256": sums, "record": record})
        self._remove_snapshots(keep=name)
        return folder

    def read_manifest(self) -> dict:
        """The manifest as a dict; :class:`RunFolderError` when there is none or it is corrupt or newer."""
        if not self.has_run():
            raise RunFolderError(f"no run to resume in {self.path} (no {MANIFEST})")
        try:
            manifest = json.loads(read_bounded(self.manifest_path, MAX_MANIFEST_BYTES))
        except InputError as err:
            raise RunFolderError(f"corrupt run folder {self.path}: {MANIFEST} {err.reason}") from None
        except (OSError, ValueError) as err:
            raise RunFolderError(f"corrupt run folder {self.path}: cannot read {MANIFEST} ({err})") from None
        format_name, _, version = str(manifest.get("format", "") if isinstance(manifest, dict) else "").partition("/")
        if format_name == FORMAT_NAME and version.isdigit() and int(version) > FORMAT_VERSION:
            raise RunFolderError(f"run folder {self.path} was written by a newer wmplan (format {version}); this wmplan reads format {FORMAT_VERSION}")
        ok = (
            isinstance(manifest, dict) and manifest.get("format") == FORMAT
            and isinstance(manifest.get("iteration"), int) and isinstance(manifest.get("record"), dict)
            and isinstance(manifest.get("sha256"), dict)
            and manifest.get("snapshot") == snapshot_name(manifest["iteration"])
        )
        if not ok:
            raise RunFolderError(f"corrupt run folder {self.path}: {MANIFEST} is not a wmplan run manifest")
        return manifest

    def load(self) -> Snapshot:
        """The run's latest snapshot, every file checked against the manifest's checksums.

        Raises:
            RunFolderError: no run, a missing or altered file, or a corrupt model, data or state.
        """
        manifest = self.read_manifest()
        folder = os.path.join(self.path, manifest["snapshot"])
        for name, digest in manifest["sha256"].items():
            if name not in FILES:
                raise RunFolderError(f"corrupt run folder {self.path}: {MANIFEST} names an unknown file {name!r}")
            path = os.path.join(folder, name)
            if not os.path.isfile(path) or file_sha256(path) != digest:
                raise RunFolderError(f"corrupt run folder {self.path}: {manifest['snapshot']}/{name} is missing or does not match its checksum")
        for name in ("trainer.safetensors", "data.npz"):
            if name not in manifest["sha256"]:
                raise RunFolderError(f"corrupt run folder {self.path}: {MANIFEST} has no checksum of {name}")
        try:
            model = load_model(os.path.join(folder, "model"))
            with open(os.path.join(folder, "trainer.safetensors"), "rb") as f:  # a file object, as it was saved
                trainer = dict(mx.load(f, format="safetensors"))
                mx.eval(trainer)  # read now, while the file is open
            data = Transitions.load(os.path.join(folder, "data.npz"))
            planner = None
            if "planner.npz" in manifest["sha256"]:
                with np.load(os.path.join(folder, "planner.npz")) as arrays:
                    planner = PlannerState.from_arrays({k: arrays[k] for k in arrays.files})
        except (CheckpointError, DatasetError, ValueError, OSError, RuntimeError) as err:
            message = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise RunFolderError(f"corrupt run folder {self.path}: {message}") from None
        return Snapshot(manifest["iteration"], model, trainer, data, planner, manifest["record"])

    def _remove_snapshots(self, keep: Optional[str]) -> None:
        for name in os.listdir(self.path):
            if SNAPSHOT.match(name) and name != keep:
                shutil.rmtree(os.path.join(self.path, name), ignore_errors=True)

