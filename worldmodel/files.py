"""Every file wmplan writes goes through here, and every file it reads whole (:func:`read_bounded`).

* A regular file (new or existing) is written atomically: a temporary file beside it, flushed to
  disk, given the target's permissions (a new file: ``0o666`` less the umask), renamed over it. A
  reader sees the old file or the complete new one, never a partial write.
* A symbolic link is followed: its target is written, the link stays.
* A character device (``/dev/null``, a terminal) or a named pipe is written directly, never
  replaced; a pipe that nobody reads is an error, not a hang. Folders, block devices and sockets
  are refused.
* The folder must exist (it is never created) and be writable; ``""`` is not a path.

:func:`check_output_path` tells before any work starts whether a path can be written; every
failure is an :class:`OutputError` naming the path as the user gave it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import stat
import tempfile

TMP_PREFIX = ".tmp-"
"""Temporary files are ``.tmp-<pid>-<random><suffix>``, beside their target."""


class OutputError(OSError, ValueError):
    """An output path that cannot be written; the message names the path as given (also a ``ValueError``:
    a bad value of the option that gave it)."""


class InputError(OSError):
    """An input that is not a regular file or is larger than its bound; ``reason`` says which (``"is not a regular file"``)."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"{path} {reason}")
        self.reason = reason


def read_bounded(path, limit: int) -> bytes:
    """The bytes of the regular file ``path`` (links followed), at most ``limit`` of them.

    A named pipe or device is refused without being read (opening one never waits for a writer).

    Raises:
        FileNotFoundError: no such file.
        InputError: not a regular file, or larger than ``limit`` bytes.
    """
    path = os.fspath(path)
    # O_NONBLOCK: opening a named pipe must not wait for a writer; it has no effect on regular files
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise InputError(path, "is not a regular file")
        if info.st_size > limit:
            raise InputError(path, f"has {info.st_size} bytes, more than the {limit} it may have")
        data = f.read(limit + 1)
    if len(data) > limit:  # it grew while read
        raise InputError(path, f"has more than the {limit} bytes it may have")
    return data


def _describe_missing(path: str) -> str:
    folder = os.path.dirname(path) or "."
    what = "is not a folder" if os.path.lexists(folder) else "does not exist"
    return f"cannot write {path}: the folder {folder} {what}"


def _stat(target: str, given: str):
    """``os.stat`` of ``target``, or ``None`` when there is nothing there; :class:`OutputError` naming ``given`` else."""
    try:
        return os.stat(target)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as err:  # e.g. a loop of symbolic links
        raise OutputError(f"cannot write {given}: {err.strerror or err}") from None


def check_output_path(path) -> str:
    """The file ``path`` resolves to (symbolic links followed), checked writable; nothing is written.

    Raises:
        OutputError: ``path`` is empty, its folder is missing or not writable, it is a folder or a
            file type other than a regular file, character device or named pipe, or not writable.
    """
    if path is None or os.fspath(path) == "":
        raise OutputError("the output path is empty")
    path = os.fspath(path)
    target = os.path.realpath(path)
    info = _stat(target, path)
    if info is None:
        folder = os.path.dirname(target)
        if not os.path.isdir(folder):
            raise OutputError(_describe_missing(path))
        if not os.access(folder, os.W_OK | os.X_OK):
            raise OutputError(f"cannot write {path}: the folder {os.path.dirname(path) or '.'} is not writable")
        return target
    if stat.S_ISDIR(info.st_mode):
        raise OutputError(f"cannot write {path}: it is a folder")
    if not (stat.S_ISREG(info.st_mode) or stat.S_ISCHR(info.st_mode) or stat.S_ISFIFO(info.st_mode)):
        raise OutputError(f"cannot write {path}: not a regular file, character device or named pipe")
    if not os.access(target, os.W_OK):
        raise OutputError(f"cannot write {path}: permission denied")
    if stat.S_ISREG(info.st_mode) and not os.access(os.path.dirname(target), os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {path}: its folder is not writable (the file is replaced atomically)")
    return target


def check_output_folder(path) -> str:
    """``path`` checked as a folder to write into: an existing writable folder, or a new one whose
    parent exists and is writable. Returns ``path``; nothing is created.

    Raises:
        OutputError: as :func:`check_output_path`, for a folder.
    """
    if path is None or os.fspath(path) == "":
        raise OutputError("the output folder path is empty")
    path = os.fspath(path)
    info = _stat(path, path)
    if info is None:
        parent = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(parent):
            raise OutputError(_describe_missing(path))
        if not os.access(parent, os.W_OK | os.X_OK):
            raise OutputError(f"cannot write {path}: the folder {os.path.dirname(path) or '.'} is not writable")
    elif not stat.S_ISDIR(info.st_mode):
        raise OutputError(f"cannot write {path}: it exists and is not a folder")
    elif not os.access(path, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {path}: the folder is not writable")
    return path


def same_file(a, b) -> bool:
    """Whether the paths ``a`` and ``b`` name one file (links resolved; an existing file by its inode, so hard links too)."""
    a, b = os.fspath(a), os.fspath(b)
    with contextlib.suppress(OSError):
        return os.path.samefile(a, b)
    return os.path.realpath(a) == os.path.realpath(b)


def inside(path, folder) -> bool:
    """Whether ``path`` (links resolved) lies inside the folder ``folder``."""
    relative = os.path.relpath(os.path.realpath(os.fspath(path)), os.path.realpath(os.fspath(folder)))
    return relative != os.curdir and relative != os.pardir and not relative.startswith(os.pardir + os.sep)


def _is_stream(path) -> bool:
    """Whether ``path`` is a character device or named pipe (written directly: two outputs there replace nothing)."""
    with contextlib.suppress(OSError):
        return stat.S_ISCHR(os.stat(path).st_mode) or stat.S_ISFIFO(os.stat(path).st_mode)
    return False


def check_distinct_outputs(outputs: dict, inputs: dict | None = None, folders: dict | None = None) -> None:
    """Refuse, before any work, outputs that would overwrite each other or what the command reads.

    Args:
        outputs: ``{name: path}`` of the command's outputs (``None`` paths are skipped), e.g. ``{"--json": ...}``.
        inputs: ``{name: path}`` of files it reads.
        folders: ``{name: folder}`` of folders whose files it reads or writes (a checkpoint), no output inside.

    Two outputs into one character device or named pipe (``/dev/null``) are allowed: nothing is replaced.

    Raises:
        OutputError: two outputs on one file, an output on an input, or an output inside one of ``folders``.
    """
    given = [(name, path) for name, path in outputs.items() if path is not None]
    for i, (name, path) in enumerate(given):
        for other, other_path in given[:i]:
            if same_file(path, other_path) and not _is_stream(path):
                raise OutputError(f"{other} and {name} are both {path}: give each output its own path")
        for source, input_path in (inputs or {}).items():
            if input_path is not None and same_file(path, input_path):
                raise OutputError(f"{name} {path} is the input {source}: an output must not overwrite what the command reads")
        for owner, folder in (folders or {}).items():
            if folder is not None and inside(path, folder):
                raise OutputError(f"{name} {path} is inside {owner} {folder}: an output must not overwrite its files")


def new_file_mode() -> int:
    """Permissions of a newly created file: ``0o666`` less the process's umask."""
    mask = os.umask(0o022)  # the only way to read it; set back at once
    os.umask(mask)
    return 0o666 & ~mask


@contextlib.contextmanager
def _errors_name(path: str):
    """Re-raise an ``OSError`` from the block as an :class:`OutputError` naming ``path``."""
    try:
        yield
    except OutputError:
        raise
    except OSError as err:
        raise OutputError(f"cannot write {path}: {err.strerror or err}") from err


@contextlib.contextmanager
def atomic_output(path, suffix: str = ""):
    """Yield a temporary path beside the regular file ``path`` resolves to; on success it replaces
    that file (flushed, with its permissions), on failure it is deleted.

    For writers that take a file name (``mx.save_safetensors``). Checks ``path`` first
    (:func:`check_output_path`) and refuses one that is not a regular file.
    """
    given = os.fspath(path)
    target = check_output_path(given)
    info = _stat(target, given)
    if info is not None and not stat.S_ISREG(info.st_mode):
        raise OutputError(f"cannot write {given}: not a regular file")
    mode = new_file_mode() if info is None else stat.S_IMODE(info.st_mode)
    with _errors_name(given):
        fd, tmp = tempfile.mkstemp(suffix=suffix, prefix=f"{TMP_PREFIX}{os.getpid()}-", dir=os.path.dirname(target))
        os.close(fd)
        try:
            yield tmp
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            os.chmod(tmp, mode)
            os.replace(tmp, target)
        finally:
            if os.path.lexists(tmp):
                os.remove(tmp)


@contextlib.contextmanager
def open_output(path, mode: str = "w", suffix: str = ""):
    """A file object (``mode`` ``"w"`` or ``"wb"``) for ``path``'s new content, written as the module
    describes: atomically for a regular file, directly into a character device or named pipe.

    Raises:
        OutputError: the path cannot be written (checked first) or a write fails.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"open_output writes with mode 'w' or 'wb', got {mode!r}")
    given = os.fspath(path)
    target = check_output_path(given)
    info = _stat(target, given)
    if info is not None and not stat.S_ISREG(info.st_mode):
        with _errors_name(given):
            with os.fdopen(_open_direct(target, given), mode) as f:
                yield f
        return
    with atomic_output(given, suffix) as tmp:
        with open(tmp, mode) as f:
            yield f


def _open_direct(target: str, given: str) -> int:
    """A blocking write descriptor of the device or pipe ``target``; a pipe without a reader is an error."""
    try:
        fd = os.open(target, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as err:
        if err.errno == errno.ENXIO:
            raise OutputError(f"cannot write {given}: nobody is reading the named pipe") from None
        raise
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    fcntl.fcntl(fd, fcntl.F_SETFL, flags & ~os.O_NONBLOCK)
    return fd


def write_json(path, data) -> None:
    """Write ``data`` as indented JSON to ``path`` (see :func:`open_output`)."""
    with open_output(path, "w", suffix=".json") as f:
        json.dump(data, f, indent=2)


def remove_stale_temporaries(folder: str) -> list:
    """Delete the temporary files in ``folder`` whose writing process is gone; return their names.

    A temporary file names its process (``.tmp-<pid>-...``); one whose process no longer runs on
    this host, or one without a pid (an older wmplan's), is left over from an interrupted save.
    Call it only where no other host writes temporary files (wmplan's checkpoint saves hold the
    folder's lock while they call it).
    """
    removed = []
    for name in os.listdir(folder):
        if name.startswith(TMP_PREFIX) and not _process_alive(name[len(TMP_PREFIX):].split("-", 1)[0]):
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(folder, name))
                removed.append(name)
    return removed


def _process_alive(pid_text: str) -> bool:
    if not pid_text.isdigit() or int(pid_text) == 0:
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True
