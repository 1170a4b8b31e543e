"""Elementwise ops: y_i = f(x_i), with NumPy broadcasting for two operands.

Each class is one op, forward then backward; above each backward line the
derivative it computes. Broadcasting in forward is undone in backward by
``sum_to`` (an input copied along an axis collects the gradients of its copies).
"""
import math

from minigrad.backend import backend_of, get_array_module
from minigrad.function import Function
from minigrad.ops._util import as_float, as_floats, float_operands, sum_to
from minigrad.tensor import as_tensor

__all__ = [
    "add", "sub", "mul", "div", "neg", "pow", "exp", "log", "sqrt", "abs",
    "tanh", "sigmoid", "relu", "gelu", "maximum", "minimum", "where", "clip", "astype",
]


# --------------------------------------------------------------------------- #
# Arithmetic
# --------------------------------------------------------------------------- #

class Add(Function):
    """y = a + b."""

    def forward(self, a, b):
        self.shapes = a.shape, b.shape
        return a + b

    def backward(self, gy):
        a_shape, b_shape = self.shapes
        # dy/da = 1, dy/db = 1
        return sum_to(gy, a_shape), sum_to(gy, b_shape)


class Sub(Function):
    """y = a - b."""

    def forward(self, a, b):
        self.shapes = a.shape, b.shape
        return a - b

    def backward(self, gy):
        a_shape, b_shape = self.shapes
        # dy/da = 1, dy/db = -1
        return sum_to(gy, a_shape), sum_to(-gy, b_shape)


class Mul(Function):
    """y = a * b."""

    def forward(self, a, b):
        # Each gradient needs the other operand: keep only those that will be used.
        need_a, need_b = self.needs_input_grad
        self.save_for_backward(a if need_b else None, b if need_a else None)
        self.shapes = a.shape, b.shape
        return a * b

    def backward(self, gy):
        a, b = self.saved
        a_shape, b_shape = self.shapes
        # dy/da = b, dy/db = a
        ga = sum_to(gy * b, a_shape) if self.needs_input_grad[0] else None
        gb = sum_to(gy * a, b_shape) if self.needs_input_grad[1] else None
        return ga, gb


class Div(Function):
    """y = a / b."""

    def forward(self, a, b):
        self.save_for_backward(a, b)
        return a / b

    def backward(self, gy):
        a, b = self.saved
        # dy/da = 1/b
        ga = sum_to(gy / b, a.shape) if self.needs_input_grad[0] else None
        # dy/db = -a/b^2
        gb = sum_to(-gy * a / (b * b), b.shape) if self.needs_input_grad[1] else None
        return ga, gb


class Neg(Function):
    """y = -x."""

    def forward(self, x):
        return -x

    def backward(self, gy):
        # dy/dx = -1
        return -gy


class Pow(Function):
    """y = a ** b (b a tensor or a number)."""

    def forward(self, a, b):
        y = a ** b
        self.save_for_backward(a, b, y)
        return y

    def backward(self, gy):
        a, b, y = self.saved
        xp = get_array_module(gy)
        # dy/da = b a^(b-1)
        ga = sum_to(gy * b * a ** (b - 1), a.shape) if self.needs_input_grad[0] else None
        # dy/db = a^b ln a
        gb = sum_to(gy * y * xp.log(a), b.shape) if self.needs_input_grad[1] else None
        return ga, gb


# --------------------------------------------------------------------------- #
# Transcendental functions and activations
# --------------------------------------------------------------------------- #

class Exp(Function):
    """y = e^x."""

    def forward(self, x):
        y = get_array_module(x).exp(x)
        self.save_for_backward(y)
        return y

    def backward(self, gy):
        y, = self.saved
        # dy/dx = e^x = y
        return gy * y


class Log(Function):
    """y = ln x."""

    def forward(self, x):
        self.save_for_backward(x)
        return get_array_module(x).log(x)

    def backward(self, gy):
        x, = self.saved
        # dy/dx = 1/x
        return gy / x


class Sqrt(Function):
    """y = sqrt(x)."""

    def forward(self, x):
        y = get_array_module(x).sqrt(x)
        self.save_for_backward(y)
        return y

    def backward(self, gy):
        y, = self.saved
        # dy/dx = 1 / (2 sqrt(x)) = 1 / (2y)
        return gy / (2 * y)


class Abs(Function):
    """y = |x|; its derivative at 0 is taken as 0, as in PyTorch."""

    def forward(self, x):
        self.save_for_backward(x)
        return get_array_module(x).abs(x)

    def backward(self, gy):
        x, = self.saved
        # dy/dx = sign(x)
        return gy * get_array_module(x).sign(x)


class Tanh(Function):
    """y = tanh x."""

    def forward(self, x):
        y = get_array_module(x).tanh(x)
        self.save_for_backward(y)
        return y

    def backward(self, gy):
        y, = self.saved
        # dy/dx = 1 - tanh^2 x = 1 - y^2
        return gy * (1 - y * y)


class Sigmoid(Function):
    """y = 1 / (1 + e^-x)."""

    def forward(self, x):
        xp = get_array_module(x)
        # Stable form: with e = e^-|x|, y = 1/(1+e) for x >= 0 and e/(1+e) for x < 0;
        # e^-|x| never overflows, and tiny y for very negative x keep their digits.
        e = xp.exp(-xp.abs(x))
        y = xp.where(x >= 0, 1 / (1 + e), e / (1 + e))
        self.save_for_backward(y)
        return y

    def backward(self, gy):
        y, = self.saved
        # dy/dx = y (1 - y)
        return gy * y * (1 - y)


class ReLU(Function):
    """y = max(x, 0)."""

    def forward(self, x):
        y = get_array_module(x).maximum(x, 0)
        self.save_for_backward(y)
        return y

    def backward(self, gy):
        y, = self.saved
        # dy/dx = 1 if x > 0 else 0   (y > 0 exactly where x > 0)
        return gy * (y > 0)


def _product(a, b):
    """a * b in a new array of a's shape: an array also for a 0-d a, where NumPy's a * b
    is a scalar that ``out=`` cannot write into."""
    return get_array_module(a).multiply(a, b, out=get_array_module(a).empty_like(a))


class GELU(Function):
    """y = x Phi(x), Phi the standard normal CDF (Hendrycks & Gimpel, 2016).

    approximate="none":  Phi(x) = (1 + erf(x / sqrt 2)) / 2              (exact)
    approximate="tanh":  Phi(x) ~ (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) / 2
    """

    _SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)   # Python floats: they keep float32 float32
    _INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
    _INV_SQRT_2 = 1.0 / math.sqrt(2.0)

    def __init__(self, approximate="none"):
        if approximate not in ("none", "tanh"):
            raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, x):
        # Saved: x alone, as PyTorch: one array of x's size, the least any backward
        # needs; backward recomputes tanh(u) or Phi(x) from it (one pass) rather than
        # keeping a second array of x's size beside it.
        self.save_for_backward(x)
        # y built in place in the array of tanh(u) or Phi(x): one new array of x's size
        if self.approximate == "tanh":
            y = self._tanh_u(x)                                   # t
            y += 1
            y *= x
            y *= 0.5                                              # x (1 + t) / 2
            return y
        y = self._cdf(x)                                          # Phi(x)
        y *= x                                                    # x Phi(x)
        return y

    def _tanh_u(self, x):
        """t = tanh(u), u = sqrt(2/pi) (x + 0.044715 x^3) = sqrt(2/pi) x (1 + 0.044715 x^2),
        in one new array (x * x, not x ** 3: NumPy's power with a float exponent is
        ~150x slower)."""
        u = _product(x, x)                                        # x^2
        u *= 0.044715 * self._SQRT_2_OVER_PI
        u += self._SQRT_2_OVER_PI
        u *= x                                                    # u
        return get_array_module(x).tanh(u, out=u)                 # t

    def _cdf(self, x):
        """Phi(x) = (1 + erf(x / sqrt 2)) / 2, in erf's new array."""
        cdf = backend_of(x).erf(x * self._INV_SQRT_2)
        cdf += 1
        cdf *= 0.5
        return cdf

    def backward(self, gy):
        # g = dy/dx (.) gy, written block by block into g: dy/dx needs temporaries, and a
        # block's are a block's size, not arrays of x's size (PyTorch's kernel, one loop,
        # makes none either); a block stays in cache, which makes it faster too. On a GPU,
        # one block: a kernel launch per block would cost more than the memory saves.
        # Into gy itself where the engine owns it (Function.gy_owned): then no new array
        # of x's size at all (W5's and W6's peak is the last layer's GELU backward).
        x, = self.saved
        xp = get_array_module(x)
        g = gy if self.gy_owned and self.gy_owned[0] else xp.empty(x.shape, dtype=x.dtype)
        x_flat, gy_flat, g_flat = x.reshape(-1), gy.reshape(-1), g.reshape(-1)   # (n,), views where contiguous
        # a backend without a cache_block (the GPU's: minigrad/backend.py) takes the whole array
        block = _GELU_BACKWARD_BLOCK if backend_of(x).cache_block else max(x_flat.size, 1)
        for start in range(0, x_flat.size, block):
            part = slice(start, start + block)
            xp.multiply(self._derivative(x_flat[part]), gy_flat[part], out=g_flat[part])
        return g

    def _derivative(self, x):
        """dy/dx for a 1-d x, built in place in two new arrays of x's size."""
        xp = get_array_module(x)
        if self.approximate == "tanh":
            # dy/dx = (1 + t)/2 + x/2 (1 - t^2) du/dx = (1 + t)/2 (1 + x du/dx (1 - t)),
            # du/dx = sqrt(2/pi) (1 + 3 * 0.044715 x^2)
            t = self._tanh_u(x)                                   # t
            d = x * x
            d *= 3 * 0.044715 * self._SQRT_2_OVER_PI
            d += self._SQRT_2_OVER_PI
            d *= x                                                # x du/dx
            t *= -1
            t += 1                                                # 1 - t
            d *= t
            d += 1                                                # 1 + x du/dx (1 - t)
            t *= -1
            t += 2                                                # 1 + t = 2 - (1 - t)
            d *= t
            d *= 0.5
            return d
        # dy/dx = Phi(x) + x phi(x), phi(x) = e^(-x^2/2) / sqrt(2 pi); with s = x / sqrt 2,
        # Phi(x) = (1 + erf(s)) / 2 and e^(-x^2/2) = e^(-s^2)
        s = x * self._INV_SQRT_2                                  # s
        d = backend_of(x).erf(s)
        d += 1
        d *= 0.5                                                  # Phi(x)
        s *= s
        s *= -1
        xp.exp(s, out=s)                                          # e^(-x^2/2)
        s *= self._INV_SQRT_2PI
        s *= x                                                    # x phi(x)
        d += s
        return d


_GELU_BACKWARD_BLOCK = 1 << 14    # elements per block of GELU's backward on the host (64 KB of float32)


# --------------------------------------------------------------------------- #
# Selection
# --------------------------------------------------------------------------- #

def _tie_share(a, b, a_wins, dtype):
    """The share of the gradient of max(a, b) or min(a, b) that goes to a.

    1 where a wins, 0 where b wins, 1/2 at a tie (the subgradient PyTorch uses).
    """
    xp = get_array_module(a)
    return xp.where(a_wins, 1.0, xp.where(a == b, 0.5, 0.0)).astype(dtype)


class Maximum(Function):
    """y = max(a, b) elementwise."""

    def forward(self, a, b):
        self.save_for_backward(a, b)
        return get_array_module(a).maximum(a, b)

    def backward(self, gy):
        a, b = self.saved
        share_a = _tie_share(a, b, a > b, gy.dtype)
        # dy/da = 1 where a > b, 1/2 where a = b, 0 where a < b; dy/db = 1 - dy/da
        return sum_to(gy * share_a, a.shape), sum_to(gy * (1 - share_a), b.shape)


class Minimum(Function):
    """y = min(a, b) elementwise."""

    def forward(self, a, b):
        self.save_for_backward(a, b)
        return get_array_module(a).minimum(a, b)

    def backward(self, gy):
        a, b = self.saved
        share_a = _tie_share(a, b, a < b, gy.dtype)
        # dy/da = 1 where a < b, 1/2 where a = b, 0 where a > b; dy/db = 1 - dy/da
        return sum_to(gy * share_a, a.shape), sum_to(gy * (1 - share_a), b.shape)


class Where(Function):
    """y = a where condition else b."""

    def forward(self, condition, a, b):
        self.save_for_backward(condition)
        self.shapes = a.shape, b.shape
        return get_array_module(a).where(condition, a, b)

    def backward(self, gy):
        condition, = self.saved
        a_shape, b_shape = self.shapes
        xp = get_array_module(gy)
        # dy/da = 1 where condition, dy/db = 1 elsewhere
        ga = sum_to(xp.where(condition, gy, 0), a_shape)
        gb = sum_to(xp.where(condition, 0, gy), b_shape)
        return None, ga, gb


class Clip(Function):
    """y = min(max(x, low), high); None leaves that side open."""

    def __init__(self, low, high):
        self.low, self.high = low, high

    def forward(self, x):
        xp = get_array_module(x)
        self.save_for_backward(x)
        y = x if self.low is None else xp.maximum(x, self.low)
        return y if self.high is None else xp.minimum(y, self.high)

    def backward(self, gy):
        x, = self.saved
        inside = get_array_module(x).ones_like(x, dtype=bool)
        if self.low is not None:
            inside = inside & (x >= self.low)
        if self.high is not None:
            inside = inside & (x <= self.high)
        # dy/dx = 1 inside [low, high], 0 outside
        return gy * inside


class AsType(Function):
    """y = x converted to another dtype; the gradient is converted back."""

    def __init__(self, dtype):
        self.dtype = dtype

    def forward(self, x):
        self.x_dtype = x.dtype
        return x.astype(self.dtype)

    def backward(self, gy):
        # dy/dx = 1
        return gy.astype(self.x_dtype)


# --------------------------------------------------------------------------- #
# The functions users call
# --------------------------------------------------------------------------- #

def add(a, b):
    """a + b, broadcast."""
    return Add()(*float_operands(a, b))


def sub(a, b):
    """a - b, broadcast."""
    return Sub()(*float_operands(a, b))


def mul(a, b):
    """a * b, broadcast."""
    return Mul()(*float_operands(a, b))


def div(a, b):
    """a / b, broadcast; true division, so integers alone give float32 (as PyTorch),
    not NumPy's float64."""
    return Div()(*as_floats(a, b))


def neg(x):
    """-x."""
    return Neg()(x)


def pow(a, b):
    """a ** b, broadcast."""
    return Pow()(*float_operands(a, b))


def exp(x):
    """e^x."""
    return Exp()(as_float(x))


def log(x):
    """Natural logarithm."""
    return Log()(as_float(x))


def sqrt(x):
    """Square root."""
    return Sqrt()(as_float(x))


def abs(x):
    """|x|."""
    return Abs()(x)


def tanh(x):
    """Hyperbolic tangent."""
    return Tanh()(as_float(x))


def sigmoid(x):
    """Logistic sigmoid 1 / (1 + e^-x)."""
    return Sigmoid()(as_float(x))


def relu(x):
    """max(x, 0)."""
    return ReLU()(x)


def gelu(x, approximate="none"):
    """Gaussian error linear unit x Phi(x); ``approximate="tanh"`` is GPT-2's form."""
    return GELU(approximate)(as_float(x))


def maximum(a, b):
    """Elementwise max of a and b, broadcast."""
    return Maximum()(*float_operands(a, b))


def minimum(a, b):
    """Elementwise min of a and b, broadcast."""
    return Minimum()(*float_operands(a, b))


def where(condition, a, b):
    """a where condition (a boolean tensor or array) is True, else b; broadcast."""
    a, b = float_operands(a, b)
    condition = as_tensor(condition, like=a)
    if condition.dtype.kind != "b":
        raise TypeError(f"where: expected a boolean condition, got dtype {condition.dtype}")
    return Where()(condition, a, b)


def clip(x, min=None, max=None):
    """x limited to [min, max]; either bound may be None."""
    if min is None and max is None:
        raise ValueError("clip: expected at least one of min and max, got neither")
    x = as_tensor(x)
    bounds = [b for b in (min, max) if b is not None]
    if x.dtype.kind != "f" and any(not float(b).is_integer() for b in bounds):
        x = as_float(x)                       # int x with a fractional bound: float32
    # Bounds as Python numbers: a NumPy float64 bound would upcast float32 x.
    as_number = float if x.dtype.kind == "f" else int
    low = None if min is None else as_number(min)
    high = None if max is None else as_number(max)
    return Clip(low, high)(x)


def astype(x, dtype):
    """x converted to ``dtype``; differentiable from float to float."""
    return AsType(dtype)(x)
