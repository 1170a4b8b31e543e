"""The module system of minigrad/nn/module.py: Module, Parameter, ModuleList, Sequential.

Registration and dotted names (nested modules, ModuleList, Sequential), shared and
disabled parameters, buffers, state_dict (NumPy copies) and load_state_dict (an
exact round trip as a hypothesis property, every problem listed in one error that
changes nothing, strict=False, dtype conversion keeping the Parameter objects),
train/eval, zero_grad, dtype and backend moves, apply, repr, the errors of a
wrong subclass, and a real PyTorch state_dict loaded into the same network.
"""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

import minigrad as mg
from minigrad import nn
from minigrad.backend import BackendError, backend_by_name
from minigrad.nn.module import StateDictError
from helpers import BACKENDS, tensor


# -- a small network with every kind of member -----------------------------------

class Block(nn.Module):
    """Linear then LayerNorm, with a persistent integer buffer and a non-persistent one."""

    def __init__(self, d):
        super().__init__()
        self.linear = nn.Linear(d, d)
        self.norm = nn.LayerNorm(d)
        self.register_buffer("steps", mg.zeros(1, dtype="int64"))
        self.register_buffer("cache", mg.ones(d), persistent=False)

    def forward(self, x):
        return self.norm(self.linear(x))


class Net(nn.Module):
    """Embedding -> n Blocks (a ModuleList) -> Sequential head, times a scalar parameter."""

    def __init__(self, d=3, n=2):
        super().__init__()
        self.embed = nn.Embedding(5, d)
        self.layers = nn.ModuleList([Block(d) for _ in range(n)])
        self.head = nn.Sequential(nn.Linear(d, 4), nn.ReLU(), nn.Linear(4, 2))
        self.scale = nn.Parameter(mg.ones(1))

    def forward(self, indices):
        x = self.embed(indices)                 # (B, T, d)
        for layer in self.layers:
            x = layer(x)
        return self.head(x) * self.scale        # (B, T, 2)


def make_net(backend, d=3, n=2, seed=0):
    mg.manual_seed(seed)
    with mg.use_backend(backend):
        return Net(d, n)


def net_input(backend):
    return tensor(np.array([[0, 1, 4], [3, 3, 2]]), backend)


def block_names(i):
    return [f"layers.{i}.linear.weight", f"layers.{i}.linear.bias",
            f"layers.{i}.norm.weight", f"layers.{i}.norm.bias"]


NET_PARAMETERS = (["scale", "embed.weight"] + block_names(0) + block_names(1)
                  + ["head.0.weight", "head.0.bias", "head.2.weight", "head.2.bias"])


def assert_same_state(a, b):
    assert list(a) == list(b)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


# -- registration and names --------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_parameters_get_hierarchical_dotted_names_in_pytorch_order(backend):
    net = make_net(backend)
    assert [name for name, _ in net.named_parameters()] == NET_PARAMETERS
    shapes = {name: p.shape for name, p in net.named_parameters()}
    assert shapes["layers.1.linear.weight"] == (3, 3) and shapes["head.2.weight"] == (2, 4)
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in net.parameters())
    assert [p.backend for p in net.parameters()] == [backend] * len(NET_PARAMETERS)


def test_named_modules_children_and_non_recursive_parameters():
    net = Net()
    names = [name for name, _ in net.named_modules()]
    assert names == ["", "embed", "layers", "layers.0", "layers.0.linear", "layers.0.norm",
                     "layers.1", "layers.1.linear", "layers.1.norm",
                     "head", "head.0", "head.1", "head.2"]
    assert [name for name, _ in net.named_children()] == ["embed", "layers", "head"]
    assert list(net.children()) == [net.embed, net.layers, net.head]
    assert [name for name, _ in net.named_parameters(recurse=False)] == ["scale"]
    assert net.num_parameters() == sum(p.size for p in net.parameters()) == 5 * 3 + 2 * (12 + 6) + 16 + 10 + 1


def test_module_list_indexes_iterates_and_refuses_non_modules():
    layers = nn.ModuleList([nn.Linear(2, 2), nn.ReLU()])
    layers.append(nn.Tanh()).extend([nn.Sigmoid()])
    assert len(layers) == 4 and isinstance(layers[-1], nn.Sigmoid) and isinstance(layers[1], nn.ReLU)
    assert [type(m) for m in layers] == [nn.Linear, nn.ReLU, nn.Tanh, nn.Sigmoid]
    assert [type(m) for m in layers[1:3]] == [nn.ReLU, nn.Tanh]
    assert [name for name, _ in layers.named_parameters()] == ["0.weight", "0.bias"]
    with pytest.raises(TypeError, match="expected a Module, got int"):
        layers.append(3)


@pytest.mark.parametrize("backend", BACKENDS)
def test_sequential_applies_its_modules_in_order_and_names_them_by_position(backend):
    with mg.use_backend(backend):
        first, second = nn.Linear(3, 4), nn.Linear(4, 2)
        seq = nn.Sequential(first, nn.Tanh(), nn.Sequential(second))
    assert [name for name, _ in seq.named_parameters()] == ["0.weight", "0.bias", "2.0.weight", "2.0.bias"]
    x = tensor(np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32), backend)
    np.testing.assert_array_equal(seq(x).numpy(), second(mg.tanh(first(x))).numpy())


def test_a_shared_parameter_is_counted_once_and_saved_under_each_name():
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = nn.Linear(3, 3)
            self.decoder = nn.Linear(3, 3)
            self.decoder.weight = self.encoder.weight
    tied = Tied()
    assert [name for name, _ in tied.named_parameters()] == ["encoder.weight", "encoder.bias", "decoder.bias"]
    assert tied.num_parameters() == 9 + 3 + 3
    assert sorted(tied.state_dict()) == ["decoder.bias", "decoder.weight", "encoder.bias", "encoder.weight"]
    tied.load_state_dict(Tied().state_dict())
    assert tied.decoder.weight is tied.encoder.weight


def test_register_parameter_none_disables_a_slot():
    linear = nn.Linear(3, 2, bias=False)
    assert linear.bias is None
    assert [name for name, _ in linear.named_parameters()] == ["weight"]
    assert list(linear.state_dict()) == ["weight"]
    with pytest.raises(TypeError, match="expected a Parameter or None for 'bias', got Tensor"):
        linear.register_parameter("bias", mg.zeros(2))


def test_assigning_a_module_or_parameter_registers_and_reassigning_a_plain_value_unregisters():
    module = nn.Module()
    module.weight = nn.Parameter(mg.ones(2))
    module.child = nn.Linear(2, 2)
    assert [name for name, _ in module.named_parameters()] == ["weight", "child.weight", "child.bias"]
    module.weight = 3.0
    module.child = "gone"
    assert list(module.named_parameters()) == [] and list(module.children()) == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_buffers_persistent_in_state_dict_non_persistent_not_and_neither_a_parameter(backend):
    with mg.use_backend(backend):
        block = Block(3)
    assert [name for name, _ in block.named_buffers()] == ["steps", "cache"]
    # PyTorch's order: a module's own parameters, then its buffers, then its children's
    assert list(block.state_dict()) == ["steps", "linear.weight", "linear.bias", "norm.weight", "norm.bias"]
    assert not any(p is block.steps or p is block.cache for p in block.parameters())
    assert block.steps.backend == backend and block.steps.dtype == np.int64
    block.steps = block.steps + 1                      # a new value stays a registered buffer
    np.testing.assert_array_equal(block.state_dict()["steps"], [1])
    state = block.state_dict()
    state["steps"] = np.array([7])
    block.load_state_dict(state)
    np.testing.assert_array_equal(block.steps.numpy(), [7])


# -- state_dict and load_state_dict ---------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_state_dict_returns_numpy_copies(backend):
    net = make_net(backend)
    state = net.state_dict()
    assert all(type(v) is np.ndarray for v in state.values())
    before = net.embed.weight.numpy()
    state["embed.weight"][...] = 42.0
    np.testing.assert_array_equal(net.embed.weight.numpy(), before)


@pytest.mark.parametrize("backend", BACKENDS)
def test_load_state_dict_copies_its_arrays(backend):
    net = make_net(backend)
    source = make_net(backend, seed=1).state_dict()
    net.load_state_dict(source)
    source["embed.weight"][...] = 42.0                 # the caller's arrays stay the caller's
    assert not np.any(net.embed.weight.numpy() == 42.0)


def _state_values(data, state):
    """Hypothesis-drawn arrays of each entry's shape and dtype."""
    values = {}
    for key, array in state.items():
        elements = (st.integers(-1000, 1000) if array.dtype.kind == "i"
                    else st.floats(-100, 100, width=32, allow_subnormal=False))
        values[key] = data.draw(hnp.arrays(array.dtype, array.shape, elements=elements), label=key)
    return values


@pytest.mark.parametrize("backend", BACKENDS)
@settings(deadline=None)
@given(d=st.integers(1, 4), n=st.integers(0, 2), seed=st.integers(0, 2**16), data=st.data())
def test_load_state_dict_of_state_dict_round_trips_exactly(backend, d, n, seed, data):
    source = make_net(backend, d, n, seed)
    source.load_state_dict(_state_values(data, source.state_dict()))
    fresh = make_net(backend, d, n, seed + 1)
    fresh.load_state_dict(source.state_dict())
    assert_same_state(fresh.state_dict(), source.state_dict())
    x = net_input(backend)
    np.testing.assert_array_equal(fresh(x).numpy(), source(x).numpy())


@pytest.mark.parametrize("backend", BACKENDS)
def test_load_state_dict_lists_every_problem_in_one_error_and_changes_nothing(backend):
    net = make_net(backend)
    before = net.state_dict()
    state = make_net(backend, seed=1).state_dict()
    del state["layers.0.norm.bias"], state["head.2.bias"]
    state["head.0.weight"] = np.zeros((5, 3), np.float32)
    state["embed.weight"] = np.zeros((5,), np.float32)
    state["layers.2.linear.weight"] = np.zeros((3, 3), np.float32)
    with pytest.raises(StateDictError) as caught:
        net.load_state_dict(state)
    message = str(caught.value)
    assert "missing keys: layers.0.norm.bias, head.2.bias" in message
    assert "unexpected keys: layers.2.linear.weight" in message
    assert "head.0.weight: expected shape (4, 3), got (5, 3)" in message
    assert "embed.weight: expected shape (5, 3), got (5,)" in message
    assert isinstance(caught.value, KeyError)
    assert_same_state(net.state_dict(), before)        # the valid entries were not loaded either


@pytest.mark.parametrize("backend", BACKENDS)
def test_load_state_dict_non_strict_returns_missing_and_unexpected_and_loads_the_rest(backend):
    net = make_net(backend)
    state = make_net(backend, seed=1).state_dict()
    kept = net.head[2].bias.numpy()
    del state["head.2.bias"]
    state["extra.weight"] = np.zeros(3)
    missing, unexpected = net.load_state_dict(state, strict=False)
    assert (missing, unexpected) == (["head.2.bias"], ["extra.weight"])
    np.testing.assert_array_equal(net.embed.weight.numpy(), state["embed.weight"])
    np.testing.assert_array_equal(net.head[2].bias.numpy(), kept)
    assert net.load_state_dict(net.state_dict()) == ([], [])


def test_load_state_dict_refuses_a_wrong_shape_even_when_not_strict():
    linear = nn.Linear(3, 2)
    with pytest.raises(StateDictError, match=r"weight: expected shape \(2, 3\), got \(3, 2\)"):
        linear.load_state_dict({"weight": np.zeros((3, 2))}, strict=False)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("source_dtype, target", [(np.float64, "float32"), (np.float32, "float64")])
def test_load_state_dict_converts_to_the_targets_dtype_and_keeps_the_parameter_objects(backend, source_dtype, target):
    net = make_net(backend).to(target)
    params_before = list(net.parameters())
    steps_before = net.layers[0].steps
    state = {k: v.astype(source_dtype) if v.dtype.kind == "f" else v
             for k, v in make_net(backend, seed=1).state_dict().items()}
    net.load_state_dict(state)
    assert all(a is b for a, b in zip(net.parameters(), params_before))
    assert net.layers[0].steps is steps_before
    for name, p in net.named_parameters():
        assert p.dtype == np.dtype(target) and p.backend == backend
        np.testing.assert_array_equal(p.numpy(), state[name].astype(target))
    assert net.layers[0].steps.dtype == np.int64


def test_load_state_dict_takes_tensors_and_backend_arrays():
    linear = nn.Linear(2, 2)
    weight = np.arange(4.0, dtype=np.float32).reshape(2, 2)
    linear.load_state_dict({"weight": mg.Tensor(weight),
                            "bias": backend_by_name("strict").from_numpy(np.ones(2))})
    np.testing.assert_array_equal(linear.weight.numpy(), weight)
    np.testing.assert_array_equal(linear.bias.numpy(), [1.0, 1.0])
    assert linear.bias.backend == "numpy"


# -- modes, gradients, dtypes and backends ----------------------------------------------

def test_train_and_eval_reach_every_sub_module():
    net = Net()
    assert all(m.training for m in net.modules())
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    net.layers[1].train()
    assert [m.training for m in net.modules()].count(True) == 3     # layers.1 and its two children
    net.train()
    assert all(m.training for m in net.modules())


@pytest.mark.parametrize("backend", BACKENDS)
def test_eval_turns_off_a_nested_dropout(backend):
    with mg.use_backend(backend):
        seq = nn.Sequential(nn.Sequential(nn.Dropout(0.5)))
    x = tensor(np.ones((100,), np.float32), backend)
    assert np.any(seq(x).numpy() == 0.0)
    np.testing.assert_array_equal(seq.eval()(x).numpy(), x.numpy())


@pytest.mark.parametrize("backend", BACKENDS)
def test_zero_grad_sets_every_gradient_to_none(backend):
    net = make_net(backend)
    y = net(net_input(backend))
    y.backward(tensor(np.ones(y.shape, np.float32), backend))
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("convert, dtype", [
    (lambda m: m.to("float64"), np.float64), (lambda m: m.double(), np.float64),
    (lambda m: m.double().float(), np.float32), (lambda m: m.to(np.float64), np.float64),
])
def test_dtype_conversion_is_in_place_keeps_parameters_and_leaves_integer_buffers(backend, convert, dtype):
    net = make_net(backend)
    y = net(net_input(backend))
    y.backward(tensor(np.ones(y.shape, np.float32), backend))
    params = list(net.parameters())
    values = [p.numpy() for p in params]
    assert convert(net) is net
    assert all(a is b for a, b in zip(net.parameters(), params))
    for p, value in zip(params, values):
        assert p.dtype == dtype and p.grad.dtype == dtype and p.backend == backend
        np.testing.assert_array_equal(p.numpy(), value.astype(dtype))
    assert net.layers[0].steps.dtype == np.int64 and net.layers[0].cache.dtype == dtype
    assert net(net_input(backend)).dtype == dtype


MOVES = [("numpy", "strict"), ("strict", "numpy"), ("numpy", "numpy"),
         pytest.param("numpy", "cupy", marks=pytest.mark.gpu),
         pytest.param("cupy", "numpy", marks=pytest.mark.gpu)]


@pytest.mark.parametrize("source, target", MOVES)
def test_to_backend_moves_parameters_buffers_and_grads_in_place_and_forward_runs_there(source, target):
    net = make_net(source)
    y = net(net_input(source))
    y.backward(tensor(np.ones(y.shape, np.float32), source))
    params, state, expected = list(net.parameters()), net.state_dict(), y.numpy()
    assert net.to(target) is net
    assert all(a is b for a, b in zip(net.parameters(), params))
    assert {p.backend for p in params} == {target}
    assert {backend_by_name(target).array_type} == {type(p.grad) for p in params}
    assert {b.backend for _, b in net.named_buffers()} == {target}
    assert_same_state(net.state_dict(), state)
    y = net(net_input(target))
    assert y.backend == target
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-6, atol=1e-6)
    y.backward(tensor(np.ones(y.shape, np.float32), target))


def test_to_cupy_without_a_gpu_says_why_and_changes_nothing():
    try:
        backend_by_name("cupy")
        pytest.skip("CuPy works here: moving to it is tested by the gpu-marked test")
    except BackendError:
        pass
    net = Net()
    with pytest.raises(BackendError, match="backend 'cupy' is not available"):
        net.to("cupy")
    assert {p.backend for p in net.parameters()} == {"numpy"}


def test_to_an_unknown_name_names_the_backends_and_dtypes_expected():
    with pytest.raises((ValueError, TypeError, BackendError), match="numpy"):
        nn.Linear(2, 2).to("bogus")


def test_apply_visits_children_first_then_self():
    net = nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.ReLU()))
    seen = []
    assert net.apply(lambda m: seen.append(type(m).__name__)) is net
    assert seen == ["Linear", "ReLU", "Sequential", "Sequential"]
    net.apply(lambda m: nn.init.zeros_(m.weight) if isinstance(m, nn.Linear) else None)
    np.testing.assert_array_equal(net[0].weight.numpy(), np.zeros((2, 2)))


def test_repr_shows_nested_modules():
    net = nn.Sequential(nn.Linear(2, 3, bias=False), nn.Sequential(nn.LayerNorm(3), nn.Dropout(0.1)))
    assert repr(net) == (
        "Sequential(\n"
        "  (0): Linear(in_features=2, out_features=3, bias=False)\n"
        "  (1): Sequential(\n"
        "    (0): LayerNorm((3,), eps=1e-05, elementwise_affine=True)\n"
        "    (1): Dropout(p=0.1)\n"
        "  )\n"
        ")"
    )
    assert repr(nn.Embedding(10, 4, padding_idx=0)) == "Embedding(10, 4, padding_idx=0)"


# -- a wrong subclass ---------------------------------------------------------------

def test_assigning_before_super_init_raises_a_clear_error():
    class Early(nn.Module):
        def __init__(self):
            self.weight = nn.Parameter(mg.ones(2))
            super().__init__()
    with pytest.raises(AttributeError, match=r"cannot assign 'weight' before Module.__init__\(\).*Early"):
        Early()


def test_a_module_without_forward_raises_not_implemented():
    class NoForward(nn.Module):
        pass
    with pytest.raises(NotImplementedError, match="NoForward does not define forward"):
        NoForward()(mg.ones(2))


def test_a_parameter_assigned_over_a_buffer_becomes_a_parameter():
    module = nn.Module()
    module.register_buffer("scale", mg.ones(2))
    module.scale = nn.Parameter(mg.ones(2))
    assert [name for name, _ in module.named_parameters()] == ["scale"]
    assert list(module.named_buffers()) == []


def test_reassigning_a_parameter_keeps_its_place_in_the_order():
    linear = nn.Linear(2, 2)
    linear.weight = nn.Parameter(mg.zeros(2, 2))
    assert list(linear.state_dict()) == ["weight", "bias"]


def test_deleting_a_parameter_unregisters_it():
    linear = nn.Linear(2, 2)
    del linear.bias
    assert [name for name, _ in linear.named_parameters()] == ["weight"]


# -- PyTorch ---------------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype, rtol, atol", [("float64", 1e-10, 1e-12), ("float32", 1e-5, 1e-6)])
def test_a_pytorch_state_dict_loads_and_gives_the_same_output(backend, dtype, rtol, atol):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    reference = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3))
    reference = reference.to(getattr(torch, dtype))
    with mg.use_backend(backend):
        net = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 3)).to(dtype)
    net.load_state_dict({k: v.detach().numpy() for k, v in reference.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((6, 4)).astype(dtype)
    expected = reference(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(net(tensor(x, backend)).numpy(), expected, rtol=rtol, atol=atol)
