"""Small array helpers shared by the ops: axes, and undoing broadcasting."""

__all__ = ["normalize_axes", "sum_to", "reduced_shape"]


def normalize_axes(axis, ndim, op_name):
    """``axis`` (None, an int or a tuple of ints) as a sorted tuple of axes in [0, ndim)."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    normalized = []
    for a in axes:
        if not -ndim <= a < max(ndim, 1):
            raise ValueError(
                f"{op_name}: axis {a} is out of range for a tensor of {ndim} dimensions"
            )
        normalized.append(a % ndim if ndim else 0)
    if len(set(normalized)) != len(normalized):
        raise ValueError(f"{op_name}: repeated axis in {axis}")
    return tuple(sorted(normalized))


def reduced_shape(shape, axes):
    """The shape of a reduction over ``axes`` with keepdims=True."""
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


def sum_to(gx, shape):
    """Sum ``gx`` over the axes that broadcasting added or stretched, giving ``shape``.

    Broadcasting copies an input along those axes in the forward pass, so in the
    backward pass the copies' gradients add up: d/dx sum_j f(x) = sum_j f'(x).
    """
    if gx.shape == shape:
        return gx
    lead = gx.ndim - len(shape)                  # axes broadcasting put in front
    stretched = tuple(lead + i for i, n in enumerate(shape) if n == 1 and gx.shape[lead + i] != 1)
    gx = gx.sum(axis=tuple(range(lead)) + stretched, keepdims=True)
    return gx.reshape(shape)
