"""``Optimizer``: the base class: parameter groups, per-parameter state, zero_grad.

An optimizer holds the Parameter objects themselves and updates their ``data``
in place from their ``grad``. Hyper-parameters live in ``param_groups`` (a list of
dicts, as PyTorch's), so a learning-rate schedule changes ``group["lr"]``.
"""
from minigrad import backend as _backend

__all__ = ["Optimizer"]


class Optimizer:
    """Base class. Subclasses define ``step(found_inf=None)`` using ``self.state[id]``
    per parameter, and name in ``state_arrays`` the arrays (each of its parameter's
    shape) and in ``state_numbers`` the numbers that state holds, so a saved state can
    be checked."""

    state_arrays = ()
    state_numbers = ()

    def __init__(self, params, defaults):
        params = list(params)
        if not params:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        if not isinstance(params[0], dict):
            params = [{"params": params}]
        self.defaults = dict(defaults)
        self.param_groups = []
        for group in params:
            group = {**self.defaults, **group, "params": list(group["params"])}
            self.param_groups.append(group)
        self.state = {}                      # id(param) -> dict of arrays / numbers

    def parameters(self):
        for group in self.param_groups:
            yield from group["params"]

    def zero_grad(self):
        """Forget every gradient (``grad = None``)."""
        for p in self.parameters():
            p.grad = None

    def step(self, found_inf=None):
        """Update every parameter that has a gradient. ``found_inf`` (from
        ``minigrad.amp.GradScaler``): None, or a 0-d boolean device array; where it is
        True the whole step is skipped, decided on the device without reading it."""
        raise NotImplementedError

    # -- saving and resuming ------------------------------------------------------
    def state_dict(self):
        """{"state": {index: {name: NumPy array or number}}, "param_groups": [...]},
        parameters numbered in order, as PyTorch's, so it can be saved and reloaded."""
        index = {id(p): i for i, p in enumerate(self.parameters())}
        state = {}
        for pid, entries in self.state.items():
            state[index[pid]] = {k: _backend.to_numpy(v) if k in self.state_arrays else _number(v)
                                 for k, v in entries.items()}
        groups = [{k: v for k, v in g.items() if k != "params"} | {"params": [index[id(p)] for p in g["params"]]}
                  for g in self.param_groups]
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Restore what ``state_dict`` saved; arrays go to each parameter's backend."""
        params = list(self.parameters())
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups) or any(
                len(g["params"]) != len(own["params"]) for g, own in zip(groups, self.param_groups)):
            raise ValueError(
                f"{type(self).__name__}.load_state_dict: the saved state has groups of sizes "
                f"{[len(g['params']) for g in groups]}, this optimizer "
                f"{[len(g['params']) for g in self.param_groups]}"
            )
        for i, entries in state_dict["state"].items():
            self._check_saved_state(int(i), entries, params)
        for group, saved in zip(self.param_groups, groups):
            group.update({k: v for k, v in saved.items() if k != "params"})
        self.state = {}
        for i, entries in state_dict["state"].items():
            p = params[int(i)]
            backend = _backend.backend_of(p.data)
            self.state[id(p)] = {k: backend.from_numpy(v.astype(p.dtype, copy=True))
                                 if hasattr(v, "shape") and v.shape == p.shape else v
                                 for k, v in entries.items()}

    def _check_saved_state(self, i, entries, params):
        """A saved entry must hold this optimizer's arrays, of its parameter's shape, and
        numbers: one missing would fail only later, in the middle of a step."""
        name = type(self).__name__
        if not 0 <= i < len(params):
            raise ValueError(f"{name}.load_state_dict: state for parameter {i}, but there are {len(params)}")
        missing = [k for k in self.state_arrays + self.state_numbers if k not in entries]
        if missing:
            raise ValueError(f"{name}.load_state_dict: the state of parameter {i} lacks {', '.join(missing)}")
        for k in self.state_arrays:
            shape = getattr(entries[k], "shape", None)
            if shape != params[i].shape:
                raise ValueError(f"{name}.load_state_dict: {k} of parameter {i} should have the shape "
                                 f"{params[i].shape}, got {shape}")
        for k in self.state_numbers:
            if isinstance(entries[k], bool) or not isinstance(entries[k], (int, float)):
                raise ValueError(f"{name}.load_state_dict: {k} of parameter {i} should be a number, "
                                 f"got {entries[k]!r:.40}")


def _number(value):
    """A number of the state for ``state_dict``: one kept on the device as a 0-d array
    (by a skippable step) read to a Python number, an integral count as an int."""
    if not _backend.is_array(value):
        return value
    number = _backend.to_numpy(value).item()
    return int(number) if isinstance(number, float) and number.is_integer() else number
