"""Saving and loading runs without ever leaving a half-written file.

Every file is written to a temporary file in the same directory and then renamed
over the old one (``os.replace`` is atomic on POSIX and Windows): a process killed
at any moment leaves either the old file or the new one, whole.

    model.safetensors       the best weights, under the model's state_dict names
    checkpoint.safetensors  the latest weights ("model." + name), the optimizer's
                            arrays ("optim.<index>.<name>"), and in its metadata the
                            trainer's state as JSON (step, epoch, history, rngs...):
                            one file, so weights and optimizer can never disagree
    config.json             everything needed to rebuild the model and tokenizers
"""
import json
import math
import os
import tempfile

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, safe_open, save_file

__all__ = ["CheckpointError", "NonFiniteWeightsError", "atomic_write", "save_weights", "load_weights",
           "save_checkpoint", "load_checkpoint", "save_json", "load_json", "strict_json"]


_UMASK = os.umask(0)
os.umask(_UMASK)


class CheckpointError(RuntimeError):
    """A saved run that is missing, corrupt or does not match the model."""


class NonFiniteWeightsError(RuntimeError):
    """Weights with a NaN or an infinity were about to overwrite a saved file."""


def atomic_write(path, write):
    """Call ``write(temporary_path)``, then rename the file to ``path``."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)             # mkstemp's 0600 -> what open() would give
        _fsync(tmp)                                # on disk before the rename, not only in the cache
        os.replace(tmp, path)
        _fsync(directory)                          # the rename itself, too
    except BaseException:                      # Ctrl-C included: no temporary file left behind
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _fsync(path):
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:                                # a directory on Windows cannot be opened
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def strict_json(obj):
    """``obj`` with every non-finite float replaced by None: JSON has no NaN or Infinity
    (Python's ``json`` would write the bare, invalid tokens ``NaN`` and ``Infinity``)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: strict_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict_json(v) for v in obj]
    return obj


def save_json(obj, path):
    """``obj`` as strict JSON (non-finite numbers as null), atomically."""
    text = json.dumps(strict_json(obj), indent=2, ensure_ascii=False, allow_nan=False) + "\n"

    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
    atomic_write(path, write)


def load_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise CheckpointError(f"no such file: {path} (is this a run directory written by train.py?)") from None
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path} is not valid JSON ({e}); the run directory is damaged") from None


def save_weights(state_dict, path, metadata=None):
    """state_dict (name -> NumPy array) to a safetensors file, atomically.

    Refuses (``NonFiniteWeightsError``) arrays holding a NaN or an infinity: a diverged
    model must never overwrite a good saved file, whatever the caller checked before.
    """
    arrays = {k: np.ascontiguousarray(v) for k, v in state_dict.items()}
    for name, array in arrays.items():
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise NonFiniteWeightsError(f"{name} holds NaN or infinite values; {path} was not written")
    atomic_write(path, lambda tmp: save_file(arrays, tmp, metadata=metadata))


def load_weights(path):
    """name -> NumPy array, with a clear error for a missing or corrupt file."""
    if not os.path.exists(path):
        raise CheckpointError(f"no such weights file: {path}")
    try:
        return load_file(path)
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path} is not a readable safetensors file ({e}); "
                              "it is corrupt or was not written by train.py") from None


def save_checkpoint(path, model_state, optimizer_state, trainer_state):
    """One file: model weights, optimizer arrays, trainer state (JSON in the metadata)."""
    arrays = {f"model.{k}": v for k, v in model_state.items()}
    scalars = {}
    for index, entries in optimizer_state["state"].items():
        for name, value in entries.items():
            if isinstance(value, np.ndarray):
                arrays[f"optim.{index}.{name}"] = value
            else:
                scalars[f"{index}.{name}"] = value
    meta = {"trainer": json.dumps(strict_json(trainer_state), allow_nan=False),
            "optimizer": json.dumps({"param_groups": optimizer_state["param_groups"], "scalars": scalars})}
    save_weights(arrays, path, metadata=meta)


def load_checkpoint(path):
    """(model_state, optimizer_state, trainer_state) from ``save_checkpoint``'s file."""
    arrays = load_weights(path)
    try:
        with safe_open(path, framework="numpy") as f:
            meta = f.metadata() or {}
        trainer = json.loads(meta["trainer"])
        optim_meta = json.loads(meta["optimizer"])
        model_state = {k[len("model."):]: v for k, v in arrays.items() if k.startswith("model.")}
        state = {}
        for key, value in arrays.items():
            if key.startswith("optim."):
                _, index, name = key.split(".", 2)
                state.setdefault(int(index), {})[name] = value
        for key, value in optim_meta["scalars"].items():
            index, name = key.split(".", 1)
            state.setdefault(int(index), {})[name] = value
        optimizer_state = {"state": state, "param_groups": optim_meta["param_groups"]}
    except (KeyError, ValueError, TypeError, AttributeError, SafetensorError) as e:
        raise CheckpointError(f"{path} has no readable trainer or optimizer state ({type(e).__name__}: {e}); "
                              "it was not written by this train.py") from None
    if not isinstance(trainer, dict):
        raise CheckpointError(f"{path}: expected the trainer state as a JSON object, got {trainer!r:.60}")
    return model_state, optimizer_state, trainer
