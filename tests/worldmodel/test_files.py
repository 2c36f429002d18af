"""Output files (``worldmodel.files``): atomic regular files with the umask's permissions, links
followed, devices and pipes written in place, paths checked before any work, errors naming the path."""

from __future__ import annotations

import errno
import json
import os
import stat
import subprocess
import sys
import threading

import pytest

from worldmodel import files
from worldmodel.files import OutputError, check_output_folder, check_output_path, open_output, write_json
from tests.conftest import char_device, pipe_with_reader


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def file_at(folder, name):
    """A plain file ``name`` in ``folder``; returns its path."""
    (folder / name).write_text("x")
    return str(folder / name)


def leftovers(folder):
    return [name for name in os.listdir(folder) if name.startswith(files.TMP_PREFIX)]


def test_new_file_gets_the_umask_permissions_and_no_temporary_stays(tmp_path, umask_022):
    path = tmp_path / "r.json"
    write_json(str(path), {"a": 1})
    assert json.loads(path.read_text()) == {"a": 1}
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # mkstemp alone gives 0o600
    assert leftovers(tmp_path) == []
    os.umask(0o077)
    write_json(str(tmp_path / "private.json"), {})
    assert stat.S_IMODE((tmp_path / "private.json").stat().st_mode) == 0o600


def test_existing_file_keeps_its_permissions(tmp_path, umask_022):
    path = tmp_path / "r.json"
    path.write_text("old")
    path.chmod(0o664)
    write_json(str(path), [1])
    assert path.read_text() == "[\n  1\n]" and stat.S_IMODE(path.stat().st_mode) == 0o664


def test_symlink_is_followed_not_replaced(tmp_path):
    target, link = tmp_path / "target.json", tmp_path / "link.json"
    target.write_text("stale")
    link.symlink_to(target)
    write_json(str(link), {"fresh": True})
    assert link.is_symlink() and json.loads(target.read_text()) == {"fresh": True}
    dangling = tmp_path / "dangling.json"
    dangling.symlink_to(tmp_path / "new.json")
    write_json(str(dangling), 1)
    assert dangling.is_symlink() and (tmp_path / "new.json").read_text() == "1"


def test_character_device_is_written_in_place(tmp_path):
    device = char_device(str(tmp_path / "null"))
    assert check_output_path(device) == device
    write_json(device, {"into": "the void"})
    with open_output(device, "wb") as f:
        f.write(b"\0" * 1000)
    assert stat.S_ISCHR(os.stat(device).st_mode)  # still the device, not a plain file
    assert leftovers(tmp_path) == []


def test_named_pipe_is_written_to_its_reader(tmp_path):
    pipe, got, reader = pipe_with_reader(tmp_path / "pipe")
    for _ in range(200):  # wait until the reader has the pipe open
        try:
            write_json(pipe, {"piped": 1})
            break
        except OutputError as err:
            assert "nobody is reading" in str(err)
            threading.Event().wait(0.01)
    reader.join(timeout=10)
    assert got and json.loads(got[0]) == {"piped": 1}
    assert stat.S_ISFIFO(os.stat(pipe).st_mode)


def test_named_pipe_without_reader_is_an_error_not_a_hang(tmp_path):
    pipe = str(tmp_path / "pipe")
    os.mkfifo(pipe)
    check_output_path(pipe)  # writable in principle
    with pytest.raises(OutputError, match=f"cannot write {pipe}: nobody is reading the named pipe"):
        write_json(pipe, {})
    assert stat.S_ISFIFO(os.stat(pipe).st_mode)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: "", "the output path is empty"),
        (lambda d: str(d / "missing" / "r.json"), r"cannot write .*missing/r\.json: the folder .*missing does not exist"),
        (lambda d: file_at(d, "file") + "/r.json", r"the folder .*file is not a folder"),
        (lambda d: str(d), r"cannot write .*: it is a folder"),
    ],
    ids=["empty", "missing folder", "folder is a file", "a folder"],
)
def test_paths_that_cannot_be_written_are_refused_before_writing(tmp_path, make, message):
    path = make(tmp_path)
    with pytest.raises(OutputError, match=message):
        check_output_path(path)
    with pytest.raises(OutputError, match=message):
        write_json(path, {})
    assert not (tmp_path / "missing").exists()  # never created


def test_symlink_loop_is_a_clear_error(tmp_path):
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    with pytest.raises(OutputError, match=r"cannot write .*loop: "):
        check_output_path(str(loop))


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_unwritable_folder_is_found_by_the_check(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(OutputError, match=r"cannot write .*ro/r\.json: the folder .*ro is not writable"):
            check_output_path(str(folder / "r.json"))
    finally:
        folder.chmod(0o755)


def test_a_failed_write_names_the_given_path_and_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "r.json"
    path.write_text("old")

    def full(src, dst):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), src)

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(OutputError) as info:
        write_json(str(path), {"new": 1})
    assert str(info.value) == f"cannot write {path}: No space left on device"  # not the .tmp-... name
    assert path.read_text() == "old" and leftovers(tmp_path) == []


def test_path_writers_refuse_a_device(tmp_path):
    device = char_device(str(tmp_path / "null"))
    with pytest.raises(OutputError, match="not a regular file"):
        with files.atomic_output(device) as tmp:
            open(tmp, "w").close()


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: "", "the output folder path is empty"),
        (lambda d: str(d / "a" / "b"), r"cannot write .*a/b: the folder .*a does not exist"),
        (lambda d: file_at(d, "f"), "exists and is not a folder"),
    ],
    ids=["empty", "missing parent", "a file"],
)
def test_output_folder_checks(tmp_path, make, message):
    with pytest.raises(OutputError, match=message):
        check_output_folder(make(tmp_path))


def test_output_folder_accepts_a_new_or_existing_folder(tmp_path):
    assert check_output_folder(str(tmp_path / "new")) == str(tmp_path / "new")
    assert check_output_folder(str(tmp_path)) == str(tmp_path)
    assert not (tmp_path / "new").exists()


def test_stale_temporaries_of_dead_processes_are_removed(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    names = {
        f".tmp-{dead.stdout.strip()}-abc.safetensors": False,  # its process is gone
        ".tmp-k2j3h4.json": False,  # an older wmplan's name, no pid
        f".tmp-{os.getpid()}-live.json": True,  # a save in progress in this process
        "weights-0123.safetensors": True,
    }
    for name in names:
        (tmp_path / name).write_text("")
    removed = files.remove_stale_temporaries(str(tmp_path))
    assert sorted(removed) == sorted(n for n, keep in names.items() if not keep)
    assert sorted(os.listdir(tmp_path)) == sorted(n for n, keep in names.items() if keep)
