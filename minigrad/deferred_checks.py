"""Index checks that do not stop the device: recorded where they happen, read later.

An embedding lookup or a cross-entropy target out of range is a bug that must not
pass silently (CuPy's indexing wraps such an index around, NumPy's raises). But the
test itself, ``bool((ids >= V).any())``, reads a value back to the host: on a GPU it
waits for every queued kernel, a synchronization in the middle of the training step.

So a check is a boolean device array ``bad`` (True at each offending element) and
a function that describes the mistake:

    check_indices(bad, IndexError, lambda: f"embedding: ... got {int(ids.max())}")

- On the NumPy backend, or outside a ``DeferredChecks`` block, the check is made at
  once: ``bool(bad.any())``, free on the host, one synchronization on a GPU (what a
  library call outside a training loop may pay).
- Inside ``with checks:`` (``checks = DeferredChecks()``) on a device backend, only
  ``bad.any()`` is computed, on the device, and kept with its description; nothing
  is read. ``checks.raise_pending()``, called where the host reads anyway (train.py:
  at each read of the window of losses), reads every flag of the window in one copy
  and raises the first mistake, described then (its values read to the host), with
  the number of the check. The error comes a few steps late, before anything is
  saved; the step it happened in is what the training loop names.
"""
from minigrad.backend import backend_of, to_numpy

__all__ = ["DeferredChecks", "check_indices"]

_active = None            # the DeferredChecks block we are in, or None


class DeferredChecks:
    """A context manager: checks made inside it on a device are recorded, and raised
    by ``raise_pending()`` (see the module docstring). One object may be entered again
    and again (once per training step), not inside itself."""

    def __init__(self):
        self.pending = []         # (0-d bool device array, error class, describe())
        self._previous = None

    def __enter__(self):
        global _active
        self._previous, _active = _active, self
        return self

    def __exit__(self, *exc):
        global _active
        _active = self._previous

    def record(self, any_bad, error, describe):
        self.pending.append((any_bad, error, describe))

    def raise_pending(self):
        """Read every recorded flag (one copy to the host) and raise the first
        mistake; forget them all either way."""
        pending, self.pending = self.pending, []
        if not pending:
            return
        xp = backend_of(pending[0][0]).xp
        flags = to_numpy(xp.stack([any_bad for any_bad, _, _ in pending]))     # (n,) bool: the one read
        for number, (flag, (_, error, describe)) in enumerate(zip(flags, pending)):
            if flag:
                raise error(f"{describe()} (found on the device by deferred check {number + 1} of "
                            f"{len(pending)}, read after the step)")


def check_indices(bad, error, describe):
    """Raise ``error(describe())`` if any element of the boolean array ``bad`` is True:
    now on the NumPy backend or outside a ``DeferredChecks`` block, else when the
    block's ``raise_pending()`` reads it. ``describe`` is called only to raise."""
    if bad.size == 0:
        return
    if _active is None or backend_of(bad).name == "numpy":
        if bool(bad.any()):
            raise error(describe())
        return
    _active.record(bad.any(), error, describe)
