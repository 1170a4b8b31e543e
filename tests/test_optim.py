"""minigrad.optim: SGD, Adam, AdamW, clip_grad_norm_ and the learning-rate schedules.

Each optimizer against a NumPy reference written from PyTorch's documented update
(float64, rtol 1e-12) and against torch.optim itself when torch is installed, on
parameters of several shapes: 0-d, one element, a bias, a matrix and one larger than
two of the backend's cache blocks and not a whole number of them (so that an update
taken block by block crosses block boundaries and ends on a ragged tail), plus
non-contiguous views (a transpose, every other column) and a non-contiguous gradient.
A parameter whose gradient is None at a step is skipped and its state kept; gradients
overwritten in place between steps (as autograd accumulates into ``.grad``) never leak
into the optimizer's state. The update is in place, leaves the gradient alone and
keeps float32 float32; state_dict / load_state_dict resumes bit for bit; bad
hyper-parameters raise ValueError naming them. clip_grad_norm_ and the schedules
against their formulas and PyTorch. Every array test runs on each backend in BACKENDS.
"""
import copy
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import minigrad as mg
from helpers import BACKENDS
from minigrad import optim
from minigrad.backend import backend_by_name
from minigrad.nn import Parameter

to_numpy = mg.backend.to_numpy

STEPS = 5


def large_shape(backend):
    """(rows, 257) with 2 blocks < rows * 257 <= 2 blocks + 257 elements, ``block`` the
    backend's ``cache_block`` (70,000 where it has none): a blocked update crosses two
    block boundaries and ends on a ragged tail (any block over 257 elements)."""
    block = backend_by_name(backend).cache_block or 70_000
    return (2 * block // 257 + 1, 257)


def shapes(backend):
    """A 0-d parameter, a one-element one, a bias, a matrix and a large matrix."""
    return [(), (1,), (3,), (7, 5), large_shape(backend)]


# -- NumPy references, from the update rules in PyTorch's documentation --------------

def np_sgd(p, grads, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
    """torch.optim.SGD on one parameter; ``grads`` has one entry per step (None: no gradient)."""
    b = None
    for g in grads:
        if g is None:
            continue                                    # no gradient: parameter and buffer stay
        if weight_decay:
            g = g + weight_decay * p
        if momentum:
            b = g.copy() if b is None else momentum * b + (1 - dampening) * g
            g = g + momentum * b if nesterov else b
        p = p - lr * g
    return p


def np_adam(p, grads, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, decoupled=False):
    """torch.optim.Adam (decoupled=False: L2 added to g) or AdamW (decoupled: p shrunk),
    a step of ``optim.adam_step_reference`` (the paper's lines, array by array) per gradient."""
    m = v = 0.0
    t = 0
    for g in grads:
        if g is None:
            continue                                    # no gradient: t, m and v stay
        t += 1
        p, m, v = optim.adam.adam_step_reference(p, g, m, v, t, lr, *betas, eps, weight_decay, decoupled)
    return p


def np_adamw(p, grads, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
    return np_adam(p, grads, lr, betas, eps, weight_decay, decoupled=True)


REFERENCES = {"SGD": np_sgd, "Adam": np_adam, "AdamW": np_adamw}

CONFIGS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.8, dampening=0.3, weight_decay=0.01)),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.1)),
    ("Adam", dict(lr=1e-3)),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    ("Adam", dict(lr=0.1, betas=(0.0, 0.5), eps=1e-3)),
    ("AdamW", dict(lr=1e-3)),                          # its default weight_decay, 1e-2
    ("AdamW", dict(lr=0.01, betas=(0.9, 0.98), weight_decay=0.1)),
    ("AdamW", dict(lr=0.1, eps=1e-4, weight_decay=0.0)),
]
CONFIG_IDS = [f"{name}({', '.join(f'{k}={v}' for k, v in kwargs.items())})" for name, kwargs in CONFIGS]


# -- helpers ---------------------------------------------------------------------

def make_param(array, backend, layout="contiguous"):
    """A Parameter on ``backend`` holding a copy of the NumPy ``array``. Its data is
    C-contiguous, or ("transposed") the transpose view of a contiguous array, or
    ("strided") a view of every other column of an array twice as wide."""
    b = backend_by_name(backend)
    if layout == "transposed":
        data = b.from_numpy(np.ascontiguousarray(array.T)).T
    elif layout == "strided":
        wide = np.zeros(array.shape[:-1] + (2 * array.shape[-1],), array.dtype)
        wide[..., ::2] = array
        data = b.from_numpy(wide)[..., ::2]
    else:
        data = b.from_numpy(array.copy())
    return Parameter(data)


def set_grad(p, g, backend):
    """Give ``p`` the gradient ``g`` (None: none). A gradient array already there is
    overwritten in place, as autograd accumulates into it: an optimizer that kept a
    reference to it in its state would see that state change."""
    if g is None:
        p.grad = None
    elif p.grad is None:
        p.grad = backend_by_name(backend).from_numpy(g.copy())
    else:
        p.grad[...] = backend_by_name(backend).from_numpy(g.copy())


def run_steps(opt, params, grads, backend):
    """One ``opt.step()`` per entry of ``grads`` (a list, per step, of one gradient per parameter)."""
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            set_grad(p, g, backend)
        opt.step()


def assert_state_equal(a, b):
    """Two optimizer state_dicts hold the same values, arrays bit for bit."""
    assert a["param_groups"] == b["param_groups"]
    assert a["state"].keys() == b["state"].keys()
    for i in a["state"]:
        assert a["state"][i].keys() == b["state"][i].keys()
        for name in a["state"][i]:
            np.testing.assert_array_equal(a["state"][i][name], b["state"][i][name])


# -- the update against the NumPy reference ------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name, kwargs", CONFIGS, ids=CONFIG_IDS)
def test_step_matches_the_numpy_reference(backend, name, kwargs):
    rng = np.random.default_rng(0)
    all_shapes = shapes(backend) + [large_shape(backend), (6, 4)]
    layouts = ["contiguous"] * 5 + ["transposed", "strided"]
    initial = [rng.standard_normal(shape) for shape in all_shapes]
    grads = [[rng.standard_normal(shape) for shape in all_shapes] for _ in range(STEPS)]
    grads[0][2] = grads[3][2] = None          # the bias has no gradient at its first step and later
    grads[1][4] = None                        # the large matrix skips one step
    grads[2][5] = grads[4][6] = None          # so do the non-contiguous ones
    params = [make_param(w, backend, layout) for w, layout in zip(initial, layouts)]
    assert not params[5].data.flags.c_contiguous and not params[6].data.flags.c_contiguous
    run_steps(getattr(optim, name)(params, **kwargs), params, grads, backend)
    for i, (p, w) in enumerate(zip(params, initial)):
        expected = REFERENCES[name](w, [step[i] for step in grads], **kwargs)
        np.testing.assert_allclose(to_numpy(p.data), expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name, kwargs", CONFIGS, ids=CONFIG_IDS)
def test_a_parameter_that_never_has_a_gradient_is_untouched_and_has_no_state(backend, name, kwargs):
    rng = np.random.default_rng(1)
    w = rng.standard_normal((4, 3))
    params = [make_param(w, backend), make_param(w, backend)]
    opt = getattr(optim, name)(params, **kwargs)
    run_steps(opt, params, [[rng.standard_normal((4, 3)), None] for _ in range(3)], backend)
    np.testing.assert_array_equal(to_numpy(params[1].data), w)
    assert 1 not in opt.state_dict()["state"]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name, kwargs", CONFIGS, ids=CONFIG_IDS)
def test_a_non_contiguous_gradient_gives_the_same_step(backend, name, kwargs):
    rng = np.random.default_rng(5)
    w = rng.standard_normal(large_shape(backend))
    grads = [rng.standard_normal(w.shape) for _ in range(2)]
    p = make_param(w, backend)
    opt = getattr(optim, name)([p], **kwargs)
    for g in grads:
        p.grad = backend_by_name(backend).from_numpy(np.ascontiguousarray(g.T)).T     # a transposed view
        opt.step()
    np.testing.assert_allclose(to_numpy(p.data), REFERENCES[name](w, grads, **kwargs), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("backend", BACKENDS)
def test_per_group_hyper_parameters_override_the_defaults(backend):
    g = np.array([1.0, -2.0, 0.5])
    a, b = make_param(np.zeros(3), backend), make_param(np.zeros(3), backend)
    opt = optim.SGD([{"params": [a]}, {"params": [b], "lr": 0.5, "weight_decay": 0.1}], lr=0.1)
    run_steps(opt, [a, b], [[g, g], [g, g]], backend)
    np.testing.assert_allclose(to_numpy(a.data), np_sgd(np.zeros(3), [g, g], lr=0.1), rtol=1e-12)
    np.testing.assert_allclose(to_numpy(b.data), np_sgd(np.zeros(3), [g, g], lr=0.5, weight_decay=0.1), rtol=1e-12)


# -- the update against PyTorch --------------------------------------------------------

# float32 atol 1e-5: where Adam's L2 term nearly cancels the gradient (g + wd p ~ eps), the
# step lr g / (|g| + eps) turns the rounding of g (1e-8) into ~1e-5: seen on 2 of 262,397 entries
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype, rtol, atol", [(np.float64, 1e-12, 1e-14), (np.float32, 1e-6, 1e-5)],
                         ids=["float64", "float32"])
@pytest.mark.parametrize("name, kwargs", CONFIGS, ids=CONFIG_IDS)
def test_step_matches_pytorch(backend, dtype, rtol, atol, name, kwargs):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    initial = [rng.standard_normal(shape).astype(dtype) for shape in shapes(backend)]
    params = [make_param(w, backend) for w in initial]
    torch_params = [torch.tensor(w, requires_grad=True) for w in initial]
    opt = getattr(optim, name)(params, **kwargs)
    torch_opt = getattr(torch.optim, name)(torch_params, **kwargs, **({} if name == "SGD" else {"amsgrad": False}))
    for _ in range(STEPS):
        grads = [rng.standard_normal(tp.shape).astype(dtype) for tp in torch_params]
        for p, tp, g in zip(params, torch_params, grads):
            set_grad(p, g, backend)
            tp.grad = torch.tensor(g)
        opt.step()
        torch_opt.step()
    for p, tp in zip(params, torch_params):
        assert p.dtype == dtype
        np.testing.assert_allclose(to_numpy(p.data), tp.detach().numpy(), rtol=rtol, atol=atol)


# -- in place, the gradient untouched, the dtype kept ----------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name, kwargs", CONFIGS, ids=CONFIG_IDS)
def test_step_updates_data_in_place_and_leaves_the_gradient_alone(backend, name, kwargs):
    rng = np.random.default_rng(3)
    params = [make_param(rng.standard_normal(shape).astype(np.float32), backend) for shape in shapes(backend)]
    opt = getattr(optim, name)(params, **kwargs)
    for _ in range(2):
        data = [p.data for p in params]
        for p in params:
            p.grad = backend_by_name(backend).from_numpy(rng.standard_normal(p.shape).astype(np.float32))
        grads = [p.grad for p in params]
        saved = [to_numpy(g) for g in grads]
        opt.step()
        for p, d, g, s in zip(params, data, grads, saved):
            assert p.data is d and p.grad is g
            assert p.dtype == np.float32 and p.grad.dtype == np.float32
            np.testing.assert_array_equal(to_numpy(g), s)
    for entries in opt.state_dict()["state"].values():      # no silent float64 in the state
        assert all(v.dtype == np.float32 for v in entries.values() if isinstance(v, np.ndarray))


# -- state_dict and load_state_dict -------------------------------------------------------

RESUMABLE = [
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
    ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.2)),
    ("Adam", dict(lr=0.01, betas=(0.9, 0.98), weight_decay=0.1)),
    ("AdamW", dict(lr=0.01, betas=(0.8, 0.9), weight_decay=0.05)),
]


@pytest.mark.parametrize("backend", BACKENDS)
@settings(deadline=None)
@given(config=st.sampled_from(RESUMABLE), saved_after=st.integers(0, STEPS - 1))
def test_resuming_from_state_dict_gives_the_uninterrupted_run_bit_for_bit(backend, config, saved_after):
    name, kwargs = config
    rng = np.random.default_rng(saved_after)
    resume_shapes = [(), (3,), (7, 5), large_shape(backend)]
    initial = [rng.standard_normal(shape).astype(np.float32) for shape in resume_shapes]
    grads = [[rng.standard_normal(shape).astype(np.float32) for shape in resume_shapes] for _ in range(STEPS)]

    straight = [make_param(w, backend) for w in initial]
    run_steps(getattr(optim, name)(straight, **kwargs), straight, grads, backend)

    first = [make_param(w, backend) for w in initial]
    opt = getattr(optim, name)(first, **kwargs)
    run_steps(opt, first, grads[:saved_after], backend)
    saved = opt.state_dict()
    kept = copy.deepcopy(saved)
    weights = [to_numpy(p.data) for p in first]
    run_steps(opt, first, grads[saved_after:], backend)     # the saved state must not follow this run

    resumed = [make_param(w, backend) for w in weights]
    resumed_opt = getattr(optim, name)(resumed, **{**kwargs, "lr": 1.0})   # the saved lr must win
    resumed_opt.load_state_dict(saved)
    run_steps(resumed_opt, resumed, grads[saved_after:], backend)

    for s, f, r in zip(straight, first, resumed):
        np.testing.assert_array_equal(to_numpy(f.data), to_numpy(s.data))
        np.testing.assert_array_equal(to_numpy(r.data), to_numpy(s.data))
    assert_state_equal(saved, kept)                           # neither run wrote into the saved arrays
    assert_state_equal(resumed_opt.state_dict(), opt.state_dict())


@pytest.mark.parametrize("saved_groups, own_groups, sizes", [
    ([2], [3], r"\[2\].*\[3\]"),
    ([1, 1], [2], r"\[1, 1\].*\[2\]"),
    ([2, 1], [2, 2], r"\[2, 1\].*\[2, 2\]"),
])
def test_load_state_dict_with_other_group_sizes_raises_naming_both(saved_groups, own_groups, sizes):
    def adam(groups):
        return optim.Adam([{"params": [make_param(np.zeros(3), "numpy") for _ in range(n)]} for n in groups])
    with pytest.raises(ValueError, match=sizes):
        adam(own_groups).load_state_dict(adam(saved_groups).state_dict())


# -- bad hyper-parameters ------------------------------------------------------------------

@pytest.mark.parametrize("cls, kwargs, message", [
    (optim.SGD, dict(lr=-0.1), r"lr=-0\.1"),
    (optim.SGD, dict(momentum=-0.5), r"momentum=-0\.5"),
    (optim.SGD, dict(weight_decay=-1.0), r"weight_decay=-1\.0"),
    (optim.SGD, dict(nesterov=True), r"nesterov.*momentum"),
    (optim.SGD, dict(momentum=0.9, dampening=0.1, nesterov=True), r"nesterov.*dampening"),
    (optim.Adam, dict(lr=-1e-3), r"lr=-0\.001"),
    (optim.Adam, dict(eps=-1e-8), r"eps=-1e-08"),
    (optim.Adam, dict(weight_decay=-0.1), r"weight_decay=-0\.1"),
    (optim.Adam, dict(betas=(1.0, 0.999)), r"betas=\(1\.0, 0\.999\)"),
    (optim.Adam, dict(betas=(0.9, -0.1)), r"betas=\(0\.9, -0\.1\)"),
    (optim.AdamW, dict(lr=-0.5), r"lr=-0\.5"),
    (optim.AdamW, dict(betas=(0.9, 1.5)), r"betas=\(0\.9, 1\.5\)"),
], ids=lambda v: str(v) if not isinstance(v, type) else v.__name__)
def test_bad_hyper_parameters_raise_naming_them(cls, kwargs, message):
    with pytest.raises(ValueError, match=message):
        cls([make_param(np.zeros(3), "numpy")], **kwargs)


@pytest.mark.parametrize("cls", [optim.SGD, optim.Adam, optim.AdamW])
@pytest.mark.parametrize("params", [[], iter([])], ids=["list", "generator"])
def test_an_empty_parameter_list_raises(cls, params):
    with pytest.raises(ValueError, match=rf"{cls.__name__}.*empty parameter list"):
        cls(params)


# -- zero_grad ---------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name, kwargs", CONFIGS[1::3], ids=CONFIG_IDS[1::3])
def test_zero_grad_sets_every_grad_to_none_and_the_next_step_does_nothing(backend, name, kwargs):
    rng = np.random.default_rng(4)
    initial = [rng.standard_normal(shape) for shape in shapes(backend)[:4]]
    params = [make_param(w, backend) for w in initial]
    opt = getattr(optim, name)([{"params": params[:2]}, {"params": params[2:], "lr": 0.5}], **kwargs)
    for p in params:
        set_grad(p, rng.standard_normal(p.shape), backend)
    opt.zero_grad()
    assert all(p.grad is None for p in params)
    opt.step()
    for p, w in zip(params, initial):
        np.testing.assert_array_equal(to_numpy(p.data), w)
    assert opt.state_dict()["state"] == {}


# -- clip_grad_norm_ -------------------------------------------------------------------------------

CLIP_SHAPES = [(3,), (7, 5), (2, 3, 4), ()]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("ratio", [0.1, 0.999, 1.0, 2.0])    # max_norm / the gradients' norm
def test_clip_grad_norm_returns_the_norm_and_scales_by_max_norm_over_norm_plus_eps(backend, ratio):
    rng = np.random.default_rng(5)
    grads = [rng.standard_normal(shape) for shape in CLIP_SHAPES]
    params = [make_param(np.zeros(shape), backend) for shape in CLIP_SHAPES] + [make_param(np.zeros(2), backend)]
    for p, g in zip(params, grads):
        set_grad(p, g, backend)                               # the last parameter has no gradient
    arrays = [p.grad for p in params]
    norm = np.sqrt(sum(np.sum(g ** 2) for g in grads))
    total = optim.clip_grad_norm_((p for p in params), ratio * norm)   # a generator, as model.parameters()
    assert isinstance(total, mg.Tensor) and total.shape == () and total.dtype == np.float64
    assert type(total.data) is type(arrays[0])                # on the gradients' device, not read back
    assert float(total) == pytest.approx(norm, rel=1e-12)
    coef = min(1.0, ratio * norm / (norm + 1e-6))              # PyTorch's clip_coef, clamped to 1
    for p, a, g in zip(params, arrays, grads):
        assert p.grad is a
        np.testing.assert_allclose(to_numpy(p.grad), g * coef, rtol=1e-12)
    assert params[-1].grad is None


@pytest.mark.parametrize("backend", BACKENDS)
def test_clip_grad_norm_leaves_gradients_below_max_norm_bit_for_bit(backend):
    grads = [np.random.default_rng(6).standard_normal(shape) for shape in CLIP_SHAPES]
    params = [make_param(np.zeros(shape), backend) for shape in CLIP_SHAPES]
    for p, g in zip(params, grads):
        set_grad(p, g, backend)
    optim.clip_grad_norm_(params, 1e3)
    for p, g in zip(params, grads):
        np.testing.assert_array_equal(to_numpy(p.grad), g)


def test_clip_grad_norm_without_gradients_returns_zero():
    assert float(optim.clip_grad_norm_([make_param(np.ones(3), "numpy")], 1.0)) == 0.0


@pytest.mark.parametrize("backend", BACKENDS)
def test_clip_grad_norm_with_an_infinite_max_norm_measures_and_leaves_gradients_alone(backend):
    grads = [np.random.default_rng(8).standard_normal(shape) for shape in CLIP_SHAPES]
    params = [make_param(np.zeros(shape), backend) for shape in CLIP_SHAPES]
    for p, g in zip(params, grads):
        set_grad(p, g, backend)
    total = optim.clip_grad_norm_(params, float("inf"))
    assert float(total) == pytest.approx(np.sqrt(sum(np.sum(g ** 2) for g in grads)), rel=1e-12)
    for p, g in zip(params, grads):
        np.testing.assert_array_equal(to_numpy(p.grad), g)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_clip_grad_norm_of_a_non_finite_gradient_is_non_finite(bad):
    g = np.array([1.0, bad, 2.0])
    param = make_param(np.zeros(3), "numpy")
    set_grad(param, g, "numpy")
    assert not np.isfinite(float(optim.clip_grad_norm_([param], 1.0)))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-12), (np.float32, 1e-6)], ids=["float64", "float32"])
@pytest.mark.parametrize("max_norm", [0.5, 3.0, 100.0])
def test_clip_grad_norm_matches_pytorch(backend, dtype, rtol, max_norm):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    grads = [rng.standard_normal(shape).astype(dtype) for shape in CLIP_SHAPES]
    params = [make_param(np.zeros(shape, dtype), backend) for shape in CLIP_SHAPES]
    torch_params = [torch.zeros(shape, dtype=torch.from_numpy(np.zeros(0, dtype)).dtype, requires_grad=True)
                    for shape in CLIP_SHAPES]
    for p, tp, g in zip(params, torch_params, grads):
        set_grad(p, g, backend)
        tp.grad = torch.tensor(g)
    total = optim.clip_grad_norm_(params, max_norm)
    torch_total = torch.nn.utils.clip_grad_norm_(torch_params, max_norm)
    assert float(total) == pytest.approx(torch_total.item(), rel=rtol)
    for p, tp in zip(params, torch_params):
        assert p.grad.dtype == dtype
        np.testing.assert_allclose(to_numpy(p.grad), tp.grad.numpy(), rtol=rtol, atol=rtol * 1e-2)


# -- learning-rate schedules ---------------------------------------------------------------------

def noam(t, d_model, warmup, factor):
    return factor * d_model ** -0.5 * min(t ** -0.5, t * warmup ** -1.5)


def warmup_cosine(t, base, warmup, total, min_lr):
    if t <= warmup:
        return base * t / warmup
    if t >= total:
        return min_lr
    return min_lr + (base - min_lr) * (1 + math.cos(math.pi * (t - warmup) / (total - warmup))) / 2


def step_lr(t, base, step_size, gamma):
    return base * gamma ** ((t - 1) // step_size)


def sgd(lrs):
    """An SGD optimizer with one group, of one parameter, per learning rate."""
    return optim.SGD([{"params": [make_param(np.zeros(2), "numpy")], "lr": lr} for lr in lrs])


def observed_lrs(opt, schedule, steps):
    """Each group's lr at optimizer steps t = 1 .. steps (the schedule steps after each)."""
    lrs = []
    for _ in range(steps):
        assert schedule.get_last_lr() == [g["lr"] for g in opt.param_groups]
        lrs.append(schedule.get_last_lr())
        schedule.step()
    return np.array(lrs)


SCHEDULES = [   # (make, formula(t, base), steps)
    pytest.param(lambda o: optim.NoamSchedule(o, d_model=64, warmup=10), lambda t, b: noam(t, 64, 10, 1.0), 30,
                 id="Noam(64, warmup=10)"),
    pytest.param(lambda o: optim.NoamSchedule(o, d_model=512, warmup=25, factor=2.0),
                 lambda t, b: noam(t, 512, 25, 2.0), 60, id="Noam(512, warmup=25, factor=2)"),
    pytest.param(lambda o: optim.WarmupCosine(o, warmup=5, total=20), lambda t, b: warmup_cosine(t, b, 5, 20, 0.0),
                 26, id="WarmupCosine(5, 20)"),
    pytest.param(lambda o: optim.WarmupCosine(o, warmup=1, total=10, min_lr=1e-3),
                 lambda t, b: warmup_cosine(t, b, 1, 10, 1e-3), 14, id="WarmupCosine(1, 10, min_lr=1e-3)"),
    pytest.param(lambda o: optim.WarmupCosine(o, warmup=0, total=8, min_lr=1e-4),
                 lambda t, b: warmup_cosine(t, b, 0, 8, 1e-4), 10, id="WarmupCosine(0, 8, min_lr=1e-4)"),
    pytest.param(lambda o: optim.StepLR(o, step_size=3, gamma=0.5), lambda t, b: step_lr(t, b, 3, 0.5), 12,
                 id="StepLR(3, 0.5)"),
    pytest.param(lambda o: optim.StepLR(o, step_size=1, gamma=0.9), lambda t, b: step_lr(t, b, 1, 0.9), 8,
                 id="StepLR(1, 0.9)"),
]


@pytest.mark.parametrize("make, formula, steps", SCHEDULES)
def test_schedule_follows_its_formula_in_every_group(make, formula, steps):
    opt = sgd([0.1, 0.03])
    expected = [[formula(t, base) for base in (0.1, 0.03)] for t in range(1, steps + 1)]
    np.testing.assert_allclose(observed_lrs(opt, make(opt), steps), expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("make, formula, steps", SCHEDULES)
@pytest.mark.parametrize("saved_after", [0, 3, 11])
def test_schedule_resumes_from_state_dict(make, formula, steps, saved_after):
    opt = sgd([0.1, 0.03])
    schedule = make(opt)
    for _ in range(saved_after):
        schedule.step()
    resumed_opt = sgd([0.7, 0.7])                   # other base lrs: the saved ones must win
    resumed = make(resumed_opt)
    resumed.load_state_dict(schedule.state_dict())
    np.testing.assert_array_equal(observed_lrs(resumed_opt, resumed, 6), observed_lrs(opt, schedule, 6))


def test_schedule_sets_the_lr_the_optimizer_steps_with():
    g = np.array([1.0, -2.0, 0.5])
    p = make_param(np.zeros(3), "numpy")
    opt = optim.SGD([p], lr=0.8)
    schedule = optim.StepLR(opt, step_size=1, gamma=0.5)
    for t in range(1, 5):
        before = p.numpy()
        p.grad = g.copy()
        opt.step()
        np.testing.assert_allclose(before - p.numpy(), step_lr(t, 0.8, 1, 0.5) * g, rtol=1e-12)
        schedule.step()


def test_warmup_cosine_needs_total_past_warmup():
    with pytest.raises(ValueError, match=r"total \(10\).*warmup \(10\)"):
        optim.WarmupCosine(sgd([0.1]), warmup=10, total=10)


@pytest.mark.parametrize("step_size, gamma", [(3, 0.5), (1, 0.9), (5, 0.1)])
def test_step_lr_matches_pytorch(step_size, gamma):
    torch = pytest.importorskip("torch")
    opt = sgd([0.1, 0.03])
    schedule = optim.StepLR(opt, step_size=step_size, gamma=gamma)
    torch_opt = torch.optim.SGD([{"params": [torch.zeros(2, requires_grad=True)], "lr": lr} for lr in (0.1, 0.03)])
    torch_schedule = torch.optim.lr_scheduler.StepLR(torch_opt, step_size=step_size, gamma=gamma)
    for _ in range(16):
        np.testing.assert_allclose(schedule.get_last_lr(), torch_schedule.get_last_lr(), rtol=1e-12)
        torch_opt.step()
        torch_schedule.step()
        schedule.step()


@pytest.mark.parametrize("total, min_lr", [(8, 0.0), (20, 1e-3)])
def test_warmup_cosine_without_warmup_matches_pytorch_cosine_annealing(total, min_lr):
    # minigrad's lr at optimizer step t is PyTorch's after t scheduler steps
    torch = pytest.importorskip("torch")
    opt = sgd([0.1])
    schedule = optim.WarmupCosine(opt, warmup=0, total=total, min_lr=min_lr)
    torch_opt = torch.optim.SGD([torch.zeros(2, requires_grad=True)], lr=0.1)
    torch_schedule = torch.optim.lr_scheduler.CosineAnnealingLR(torch_opt, T_max=total, eta_min=min_lr)
    for _ in range(total):
        torch_opt.step()
        torch_schedule.step()
        np.testing.assert_allclose(schedule.get_last_lr(), torch_schedule.get_last_lr(), rtol=1e-12, atol=1e-15)
        schedule.step()
