"""The run directory: checked before anything is written, never emptied implicitly.

    prepare_out_dir(path)         --out must be a writable directory (made if missing):
                                  not a file, not under a file, not empty, not read-only
    holds_run(path)               does it already hold a run (config, weights, checkpoint)?
    clear_run(path)               remove a run's files (only for an explicit --overwrite)
    remove_leftover_temporaries   the ``.<name>.*.tmp`` files of a save that was killed
                                  (``checkpoint.atomic_write`` names them so)

A new run in a directory that holds one is refused (the user names ``--resume DIR``
or ``--overwrite``): forgetting ``--resume`` must never delete a run.
"""
import errno
import glob
import os
import tempfile

__all__ = ["RunDirError", "RUN_FILES", "prepare_out_dir", "holds_run", "clear_run",
           "remove_leftover_temporaries"]

#: The files a run writes (``attention_<i>.png`` besides).
RUN_FILES = ["model.safetensors", "checkpoint.safetensors", "config.json", "history.csv",
             "metrics.json", "samples.txt", "curves.png"]
_MARKERS = ["config.json", "checkpoint.safetensors", "model.safetensors"]


class RunDirError(RuntimeError):
    """A run directory that cannot be used as asked."""


def prepare_out_dir(path, flag="--out"):
    """Make ``path`` a directory we can write to, or say in one line why not."""
    if not path or not str(path).strip():
        raise RunDirError(f"{flag} must name a directory, got an empty string")
    path = os.fspath(path)
    if os.path.exists(path) and not os.path.isdir(path):
        raise RunDirError(f"{flag} {path} is a file; expected a directory (or a path that does not exist yet)")
    parent = os.path.dirname(os.path.abspath(path))
    while parent and not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if parent and not os.path.isdir(parent):
        raise RunDirError(f"{flag} {path} is under {parent}, which is a file, not a directory")
    try:
        os.makedirs(path, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-probe.", suffix=".tmp", dir=path)
        os.close(fd)
        os.remove(probe)
    except OSError as e:
        raise RunDirError(f"{flag} {path} is not a directory this process can write to: "
                          f"{_reason(e)}") from None
    return path


def _reason(error):
    if error.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if error.errno == errno.EROFS:
        return "a read-only file system"
    if error.errno == errno.ENOSPC:
        return "no space left on the device"
    return error.strerror or str(error)


def holds_run(path):
    return any(os.path.exists(os.path.join(path, name)) for name in _MARKERS)


def clear_run(path):
    """Remove the files a run writes, and nothing else the directory holds."""
    names = RUN_FILES + [os.path.basename(p) for p in glob.glob(os.path.join(glob.escape(path), "attention_*.png"))]
    for name in names:
        target = os.path.join(path, name)
        if os.path.isfile(target):
            os.remove(target)
    remove_leftover_temporaries(path)


def remove_leftover_temporaries(path):
    """Delete ``.<file>.<random>.tmp`` files left by a save that was killed; returns their names."""
    removed = []
    for tmp in glob.glob(os.path.join(glob.escape(path), ".*.tmp")):
        if os.path.isfile(tmp):
            os.remove(tmp)
            removed.append(os.path.basename(tmp))
    return removed
