"""Mixed precision: float16 where it is safe, float32 where it is not, and loss scaling
(Micikevicius et al., 2018, "Mixed Precision Training", arXiv:1710.03740), with PyTorch's
names (``torch.autocast``, ``torch.amp.GradScaler``):

    scaler = GradScaler()                          # dynamic loss scaling
    with autocast():                               # the forward and the loss, mixed
        loss = objective(model, batch)
    scaler.scale(loss).backward()                  # the gradients of S * loss
    scaler.unscale_(optimizer)                     # gradients / S; an inf or NaN flagged
    clip_grad_norm_(model.parameters(), 1.0)       # on the true gradients
    scaler.step(optimizer)                         # the update, skipped if flagged
    scaler.update()                                # S / 2 after a flagged step, S * 2
                                                   # after 2000 clean ones in a row

float16 has a 10-bit mantissa (3 decimal digits) and a range from 6e-8 (its smallest
subnormal) to 65504. A GPU's tensor cores multiply float16 matrices several times
faster than float32 ones, and every float16 array is half the bytes to move. Three
things keep training as good as in float32 (the paper's §3):

1. Master weights. Parameters and the optimizer's state stay float32: an update
   lr * g is often smaller than 2^-11 of its weight, below float16's resolution, and
   would be lost. An op that computes in float16 casts its copy of a weight (once per
   ``autocast`` block: the copies are cached); the cast's backward turns the gradient
   back into float32, so ``p.grad`` is float32.
2. Per-op precision (``autocast``), each op by its kind (``POLICY``):
       float16   matrix products: Linear, matmul, the attention core's two products
                 (float16 operands, float32 accumulation: minigrad/ops/_matmul.py)
       float32   softmax, log-softmax, cross-entropy, layer norm, sum, mean, variance,
                 log-sum-exp, exp, log, power: what overflows in float16 (exp of 12
                 already does) or loses digits in long sums
       widest    every other op: its float inputs cast to the widest among them, so a
                 float16 branch added to the float32 residual stream gives float32
   Only float32 and float16 tensors are cast; float64 (gradient checks) and integers
   never are. The fused GRU and LSTM ops are "widest": their recurrent products stay
   float32.
3. Loss scaling. Gradients of small activations fall below 6e-8 in float16 and become
   0. Multiplying the loss by S multiplies every gradient by S (the chain rule), which
   lifts them into range; ``unscale_`` divides the float32 gradients by S again before
   clipping and the update. Dynamic S, with PyTorch's defaults: it starts at 2^16; a
   step whose gradients hold an inf or NaN (S too large: something overflowed) is
   skipped and S halved; after 2000 steps in a row without one, S doubles.

No host read per step: S, the growth counter and the overflow flag are device arrays,
and the skip is applied on the device by ``Optimizer.step(found_inf=...)``, which
multiplies the update by 0 rather than asking the host whether to make it. (PyTorch's
GradScaler with a plain optimizer reads the flag to decide: one synchronization per
step; its fused optimizers skip on the device as here.)

On the CPU (NumPy) this is for correctness, not speed: the matrix products run through
float32 BLAS (minigrad/ops/_matmul.py) and every cast is one more pass over memory.
"""
import math

import numpy as np

from minigrad import function as _function
from minigrad.backend import backend_of, to_numpy
from minigrad.ops.elementwise import AsType, Exp, Log, Pow
from minigrad.ops.linalg import MatMul
from minigrad.ops.nn_attention import AttentionCore
from minigrad.ops.nn_cross_entropy import CrossEntropy
from minigrad.ops.nn_layer_norm import LayerNorm
from minigrad.ops.nn_linear import Linear
from minigrad.ops.nn_softmax import LogSoftmax, Softmax
from minigrad.ops.reductions import LogSumExp, Mean, Sum, Var
from minigrad.tensor import Tensor

__all__ = ["autocast", "GradScaler", "POLICY"]

#: The precision each kind of op computes in under ``autocast``; ops not named here
#: take the widest of their float inputs' dtypes.
POLICY = {
    Linear: "float16", MatMul: "float16", AttentionCore: "float16",
    Softmax: "float32", LogSoftmax: "float32", CrossEntropy: "float32", LayerNorm: "float32",
    Sum: "float32", Mean: "float32", Var: "float32", LogSumExp: "float32",
    Exp: "float32", Log: "float32", Pow: "float32",
}
_CASTABLE = (np.dtype("float16"), np.dtype("float32"))


class autocast:
    """Context manager: the ops inside run in mixed precision (the module docstring).

    ``dtype``: the lower precision, "float16" (NumPy has no bfloat16). ``enabled=False``
    runs the block in full precision (also inside an enabled block), so a loop driven
    by a flag keeps one code path. Wrap the forward and the loss only, not the backward
    or the optimizer step: the float16 copy of each parameter is made once per block.
    """

    def __init__(self, dtype="float16", enabled=True):
        if np.dtype(dtype) != np.float16:
            raise ValueError(f"autocast: expected dtype float16, got {dtype!r}")
        self.enabled = bool(enabled)
        self._cache = None                # id(parameter), dtype, grad mode -> its cast copy

    def __enter__(self):
        self._previous = _function.autocast_inputs
        self._cache = {}
        _function.autocast_inputs = self._cast_inputs if self.enabled else None
        return self

    def __exit__(self, *exc):
        _function.autocast_inputs = self._previous
        self._cache = None

    def _cast_inputs(self, op, inputs):
        """``inputs`` of ``op`` cast to the precision of its kind."""
        if type(op) is AsType:                                  # a cast itself: as asked
            return inputs
        dtypes = {x.dtype for x in inputs if isinstance(x, Tensor) and x.dtype in _CASTABLE}
        policy = POLICY.get(type(op))
        if policy is None:                                      # widest
            if len(dtypes) < 2:
                return inputs
            target = np.dtype("float32")
        else:
            target = np.dtype(policy)
            if not dtypes or dtypes == {target}:
                return inputs
        return tuple(self._cast(x, target) if isinstance(x, Tensor) and x.dtype in _CASTABLE
                     and x.dtype != target else x for x in inputs)

    def _cast(self, x, dtype):
        """x as ``dtype`` (differentiable); a parameter's copy is made once per block."""
        if not (x.requires_grad and x.is_leaf):
            return AsType(dtype)(x)
        key = (id(x), dtype, _function.is_grad_enabled())
        cached = self._cache.get(key)
        # A new copy once a backward has walked the last one (accumulation in one block):
        # that backward freed the cast's call, which a second walk could not go through.
        if cached is None or (cached[1].creator is not None and cached[1].creator.freed):
            self._cache[key] = cached = (x, AsType(dtype)(x))      # x kept: its id stays its own
        return cached[1]


class GradScaler:
    """Dynamic loss scaling (the module docstring), PyTorch's ``GradScaler`` on the device.

    Args (PyTorch's defaults):
        init_scale:       S at the start, 2^16.
        growth_factor:    S is multiplied by it after ``growth_interval`` clean steps (2).
        backoff_factor:   S is multiplied by it after a step with an inf or NaN (0.5).
        growth_interval:  clean steps in a row before S grows (2000).
        enabled:          False: every method passes through (scale returns the loss,
                          step calls optimizer.step()), for a float32 run.

    State on the device (made on the backend of the first loss scaled): S (0-d
    float32), the count of clean steps since S last changed (0-d int32) and
    ``found_inf``, the flag of the last step (0-d bool: True when it was skipped).
    ``get_scale()`` and ``state_dict()`` read S to the host: call them outside the step.
    """

    def __init__(self, init_scale=2.0 ** 16, growth_factor=2.0, backoff_factor=0.5, growth_interval=2000,
                 enabled=True):
        if not (init_scale > 0 and math.isfinite(init_scale)):
            raise ValueError(f"GradScaler: init_scale must be a positive finite number, got {init_scale}")
        if not growth_factor > 1.0:
            raise ValueError(f"GradScaler: growth_factor must be > 1, got {growth_factor}")
        if not 0.0 < backoff_factor < 1.0:
            raise ValueError(f"GradScaler: backoff_factor must be in (0, 1), got {backoff_factor}")
        if isinstance(growth_interval, bool) or not isinstance(growth_interval, int) or growth_interval < 1:
            raise ValueError(f"GradScaler: growth_interval must be a positive int, got {growth_interval!r}")
        self._enabled = bool(enabled)
        self._init_scale, self._init_growth_tracker = float(init_scale), 0
        self._growth_factor, self._backoff_factor = float(growth_factor), float(backoff_factor)
        self._growth_interval = growth_interval
        self._scale = self._growth_tracker = None       # device arrays, made at the first scale()
        self.found_inf = None                           # the last step's overflow flag (device)
        self._optimizers = {}                           # id(optimizer) -> [stage, its found_inf]

    def is_enabled(self):
        return self._enabled

    # -- the step -----------------------------------------------------------------
    def scale(self, loss):
        """loss * S, in float32 (a float16 loss is widened first: S = 2^16 is inf in float16)."""
        if not self._enabled:
            return loss
        self._make_state(backend_of(loss.data).xp)
        if loss.dtype == np.float16:
            loss = loss.astype("float32")
        return loss * Tensor(self._scale.astype(loss.dtype, copy=False))

    def unscale_(self, optimizer):
        """Divide the optimizer's gradients by S in place and flag an inf or NaN among them.

        The flag: the float64 sum of each unscaled gradient is finite exactly when
        every element is (a float64 sum of float32 values cannot overflow), so one
        reduction per gradient and one read of nothing."""
        if not self._enabled:
            return
        stage = self._optimizers.get(id(optimizer), [None])[0]
        if stage == "unscaled":
            raise RuntimeError("GradScaler.unscale_() has already been called on this optimizer since the "
                               "last update()")
        if stage == "stepped":
            raise RuntimeError("GradScaler.unscale_() is being called after step(); call it before")
        if self._scale is None:
            raise RuntimeError("GradScaler.unscale_() before scale(): no scaled loss was made")
        xp = backend_of(self._scale).xp
        inv_scale = (1.0 / self._scale.astype("float64")).astype("float32")        # () 1/S
        sums = []
        for p in optimizer.parameters():
            if p.grad is not None:
                p.grad *= inv_scale.astype(p.grad.dtype, copy=False)
                sums.append(p.grad.sum(dtype="float64"))
        found_inf = xp.asarray(~xp.isfinite(xp.stack(sums)).all()) if sums else xp.zeros((), dtype=bool)   # ()
        self._optimizers[id(optimizer)] = ["unscaled", found_inf]

    def step(self, optimizer):
        """``optimizer.step(found_inf=...)``: the update, skipped on the device when the
        gradients held an inf or NaN (unscaling them first if ``unscale_`` was not called)."""
        if not self._enabled:
            return optimizer.step()
        stage = self._optimizers.get(id(optimizer), [None])[0]
        if stage == "stepped":
            raise RuntimeError("GradScaler.step() has already been called since the last update()")
        if stage is None:
            self.unscale_(optimizer)
        record = self._optimizers[id(optimizer)]
        record[0] = "stepped"
        return optimizer.step(found_inf=record[1])

    def update(self, new_scale=None):
        """S and the growth counter for the next step, on the device:

            found_inf:  S = S * backoff_factor,  counter = 0
            otherwise:  counter = counter + 1; when it reaches growth_interval,
                        S = S * growth_factor (if that is finite) and counter = 0

        ``new_scale`` (a number) sets S instead."""
        if not self._enabled:
            return
        if not self._optimizers:
            raise RuntimeError("GradScaler.update(): no optimizer step was unscaled since the last update()")
        xp = backend_of(self._scale).xp
        flags = [found for _, found in self._optimizers.values()]
        found = flags[0] if len(flags) == 1 else xp.stack(flags).any()
        self._optimizers, self.found_inf = {}, found
        if new_scale is not None:
            self._scale = xp.full((), float(new_scale), dtype="float32")
            return
        clean = xp.where(found, 0, self._growth_tracker + 1).astype("int32")            # ()
        grown = self._scale * self._growth_factor
        grow = (clean >= self._growth_interval) & xp.isfinite(grown)
        self._scale = xp.where(found, self._scale * self._backoff_factor,
                               xp.where(grow, grown, self._scale)).astype("float32")
        self._growth_tracker = xp.where(grow, 0, clean).astype("int32")

    # -- reading it ------------------------------------------------------------------
    def get_scale(self):
        """S as a Python float (a host read; 1.0 when disabled)."""
        if not self._enabled:
            return 1.0
        return self._init_scale if self._scale is None else float(to_numpy(self._scale))

    def get_scale_async(self):
        """S as a 0-d device array, without reading it (None before the first scale())."""
        return self._scale

    def get_growth_factor(self):
        return self._growth_factor

    def get_backoff_factor(self):
        return self._backoff_factor

    def get_growth_interval(self):
        return self._growth_interval

    def state_dict(self):
        """PyTorch's keys: scale, growth_factor, backoff_factor, growth_interval,
        _growth_tracker (numbers, read from the device); {} when disabled."""
        if not self._enabled:
            return {}
        tracker = self._init_growth_tracker if self._growth_tracker is None else int(to_numpy(self._growth_tracker))
        return {"scale": self.get_scale(), "growth_factor": self._growth_factor,
                "backoff_factor": self._backoff_factor, "growth_interval": self._growth_interval,
                "_growth_tracker": tracker}

    def load_state_dict(self, state):
        if not self._enabled:
            return
        if not state:
            raise RuntimeError("GradScaler.load_state_dict: the state is empty, possibly because it was saved "
                               "from a disabled GradScaler")
        self._init_scale = float(state["scale"])
        self._growth_factor = float(state["growth_factor"])
        self._backoff_factor = float(state["backoff_factor"])
        self._growth_interval = int(state["growth_interval"])
        self._init_growth_tracker = int(state["_growth_tracker"])
        self._scale = self._growth_tracker = None           # made again, on the loss's backend

    def _make_state(self, xp):
        if self._scale is None:
            self._scale = xp.full((), self._init_scale, dtype="float32")
            self._growth_tracker = xp.full((), self._init_growth_tracker, dtype="int32")
