"""Mixed precision (minigrad/amp.py), on NumPy float16 and small shapes.

- autocast: each kind of op computes in its precision (float16 products, float32
  softmax, norms, loss, reductions; the widest otherwise), parameters stay float32 with
  float32 gradients, a parameter is cast once per block, float64 and a disabled block
  change nothing; the fused attention in float16 equals the composed one, with and
  without dropout on its weights;
- float16 products on the host are rounded once, as a GPU's;
- GradScaler: the same scales, growth counters and weights as PyTorch's GradScaler
  step by step under injected infs (SGD with momentum and dampening, Adam: a skipped
  first step included); a skipped step leaves the optimizer as it was; unscale_ gives
  the true gradients before clipping; growth after growth_interval clean steps; its
  state round-trips with PyTorch's keys; misuse is refused.
"""
import numpy as np
import pytest

import minigrad as mg
from minigrad import function, nn, optim
from minigrad.amp import GradScaler, autocast
from minigrad.ops._matmul import matmul_arrays
from minigrad.ops.nn_attention import attention_core_fused
from minigrad.nn.scaled_dot_product import attention_core_composed
from models.gpt import GPT, GPTConfig

from helpers import BACKENDS, tensor

F16, F32, F64 = np.dtype("float16"), np.dtype("float32"), np.dtype("float64")


def tiny_gpt(backend="numpy", dropout=0.0):
    mg.manual_seed(0)
    with mg.use_backend(backend):
        return GPT(GPTConfig(vocab_size=13, block_size=8, n_layer=1, n_head=2, d_model=8, dropout=dropout))


def gpt_loss(model, backend="numpy"):
    rng = np.random.default_rng(0)
    tokens = tensor(rng.integers(0, 13, (3, 7)), backend)
    logits = model(tokens[:, :-1])                                                # (B, T, V)
    return mg.cross_entropy(logits.reshape(-1, 13), tokens[:, 1:].reshape(-1))


def ops_seen(run):
    """{op name: set of the float dtypes its inputs had, after autocast's casts}."""
    seen = {}
    with autocast() as block:
        cast = function.autocast_inputs

        def spy(op, inputs):
            inputs = cast(op, inputs)
            dtypes = {x.dtype for x in inputs if isinstance(x, mg.Tensor) and x.dtype.kind == "f"}
            seen.setdefault(type(op).__name__, set()).update(dtypes)
            return inputs
        function.autocast_inputs = spy
        result = run()
    assert function.autocast_inputs is None and block._cache is None      # restored on exit
    return seen, result


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dropout", [0.0, 0.2], ids=["no-dropout", "dropout"])
def test_each_kind_of_op_computes_in_its_precision(backend, dropout):
    model = tiny_gpt(backend, dropout)
    model.train()
    seen, loss = ops_seen(lambda: gpt_loss(model, backend))
    for name in ("Linear", "AttentionCore"):         # dropout on the weights: fused too
        assert seen[name] == {F16}, (name, seen[name])
    for name in ("LayerNorm", "CrossEntropy"):
        assert seen[name] == {F32}, (name, seen[name])
    assert seen["Add"] == {F32}                      # the float16 branch joins the float32 stream
    assert seen["GELU"] == {F16}                     # elementwise after a product: as it comes
    assert loss.dtype == F32
    loss.backward()
    assert {p.dtype for p in model.parameters()} == {F32}                       # master weights
    assert {p.grad.dtype for p in model.parameters()} == {F32}


def test_reductions_and_exp_log_pow_compute_in_float32():
    x = mg.Tensor(np.array([[1.0, 2.0], [3.0, 4.0]], np.float16))
    seen, results = ops_seen(lambda: [x.sum(), x.mean(), x.var(), mg.logsumexp(x, axis=1), mg.exp(x),
                                      mg.log(x), x ** 2, mg.tanh(x)])
    for name in ("Sum", "Mean", "Var", "LogSumExp", "Exp", "Log", "Pow"):
        assert seen[name] == {F32}, name
    assert [r.dtype for r in results] == [F32] * 7 + [F16]


def test_autocast_disabled_or_float64_changes_nothing():
    model = tiny_gpt()
    plain = gpt_loss(model).numpy()
    with autocast(enabled=False):
        assert gpt_loss(model).numpy() == plain
    with autocast(), autocast(enabled=False):        # a disabled block inside an enabled one
        assert gpt_loss(model).numpy() == plain
    model.double()
    plain64 = gpt_loss(model).numpy()
    with autocast():
        assert gpt_loss(model).numpy() == plain64    # float64 is never cast
    with autocast():
        mixed = gpt_loss(tiny_gpt()).numpy()
    assert mixed != plain and abs(mixed - plain) < 1e-3 * abs(plain)


def test_a_parameter_is_cast_once_per_block(monkeypatch):
    from minigrad.ops.elementwise import AsType
    casts = []
    real = AsType.forward
    monkeypatch.setattr(AsType, "forward", lambda self, x: casts.append(x.shape) or real(self, x))
    layer = nn.Linear(4, 3)
    x = mg.Tensor(np.ones((2, 4), np.float32))
    with autocast():
        y = layer(x) + layer(x) + layer(x)
    assert sorted(casts) == sorted([(3, 4), (3,)] + [(2, 4)] * 3)     # weight and bias once, x each time
    y.sum().backward()
    np.testing.assert_allclose(layer.weight.grad, 3 * np.ones((3, 4)) * 2, rtol=1e-3)   # 3 uses, 2 rows


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dropout_p", [0.0, 0.3])
def test_fused_attention_in_float16_equals_the_composed_one(backend, dropout_p):
    rng = np.random.default_rng(1)
    arrays = [rng.normal(size=(2, 2, 5, 4)).astype(np.float16) for _ in range(3)]
    mask = tensor(np.triu(np.ones((5, 5), bool), 1), backend)
    upstream = rng.normal(size=(2, 2, 5, 4)).astype(np.float16)

    def run(attend):
        q, k, v = (tensor(a, backend, requires_grad=True) for a in arrays)
        mg.manual_seed(4)                            # one keep-mask for both, drawn in float32
        with autocast():
            out, weights = attend(q, k, v)
        (out * tensor(upstream, backend)).sum().backward()
        return out, weights, [t.grad for t in (q, k, v)]

    fused = run(lambda q, k, v: attention_core_fused(q, k, v, 0.5, bool_mask=mask.data, dropout_p=dropout_p))
    composed = run(lambda q, k, v: attention_core_composed(q, k, v, [(mask, "attn_mask")], 0.5, dropout_p))
    assert fused[0].dtype == composed[0].dtype == F16 and fused[1].dtype == composed[1].dtype == F32
    assert all(g.dtype == F16 for g in fused[2])
    np.testing.assert_allclose(fused[0].numpy(), composed[0].numpy(), atol=2e-3)
    np.testing.assert_allclose(fused[1].numpy(), composed[1].numpy(), atol=1e-6)
    for a, b in zip(fused[2], composed[2]):
        np.testing.assert_allclose(mg.backend.to_numpy(a), mg.backend.to_numpy(b), atol=3e-3)


@pytest.mark.parametrize("backend", BACKENDS)
def test_float16_products_on_the_host_are_rounded_once(backend):
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(3, 40, 64)).astype(np.float16), rng.normal(size=(64, 24)).astype(np.float16)
    product = matmul_arrays(tensor(a, backend).data, tensor(b, backend).data)
    exact = a.astype(np.float64) @ b.astype(np.float64)
    assert product.dtype == F16
    error = np.abs(mg.backend.to_numpy(product).astype(np.float64) - exact)
    half_ulp = np.spacing(np.abs(exact).astype(np.float16)).astype(np.float64) / 2
    # One rounding to float16 of a float32 sum: the sum's own error is at most n eps32
    # sum |a b| (whatever order and FMA the BLAS kernels use), far below one float16
    # rounding per term, which a float16 accumulation would make.
    float32_sum = 64 * 2.0 ** -24 * (np.abs(a).astype(np.float64) @ np.abs(b).astype(np.float64))
    assert (error <= half_ulp + float32_sum).all()


# -- GradScaler -------------------------------------------------------------------------

PATTERN = [1, 0, 0, 0, 1, 0, 0, 0, 0, 1, 1, 0, 0]        # 1: an inf injected into a gradient


def scaled_steps(make_optimizer, pattern):
    """(scale, growth tracker, weights) after each step of minigrad's GradScaler."""
    w = nn.Parameter(mg.Tensor(np.array([1.0, -2.0, 3.0], np.float32)))
    opt, scaler, seen = make_optimizer([w]), GradScaler(growth_interval=3), []
    for step, bad in enumerate(pattern):
        opt.zero_grad()
        scaler.scale((w * w * float(step + 1)).sum()).backward()
        if bad:
            w.grad[0] = np.inf
        scaler.step(opt)
        scaler.update()
        seen.append((scaler.get_scale(), scaler.state_dict()["_growth_tracker"], w.numpy().copy()))
    return seen


def torch_scaled_steps(torch, make_optimizer, pattern):
    w = torch.nn.Parameter(torch.tensor([1.0, -2.0, 3.0]))
    opt, scaler, seen = make_optimizer([w]), torch.amp.GradScaler("cpu", growth_interval=3), []
    for step, bad in enumerate(pattern):
        opt.zero_grad()
        scaler.scale((w * w * float(step + 1)).sum()).backward()
        if bad:
            w.grad[0] = float("inf")
        scaler.step(opt)
        scaler.update()
        seen.append((scaler.get_scale(), scaler.state_dict()["_growth_tracker"], w.detach().numpy().copy()))
    return seen


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw"])
def test_grad_scaler_follows_pytorchs_step_by_step(optimizer):
    torch = pytest.importorskip("torch")
    makers = {
        "sgd": (lambda ps: optim.SGD(ps, lr=0.01, momentum=0.9, dampening=0.1),
                lambda ps: torch.optim.SGD(ps, lr=0.01, momentum=0.9, dampening=0.1)),
        "adam": (lambda ps: optim.Adam(ps, lr=0.1), lambda ps: torch.optim.Adam(ps, lr=0.1)),
        "adamw": (lambda ps: optim.AdamW(ps, lr=0.1, weight_decay=0.1),
                  lambda ps: torch.optim.AdamW(ps, lr=0.1, weight_decay=0.1)),
    }
    ours = scaled_steps(makers[optimizer][0], PATTERN)
    theirs = torch_scaled_steps(torch, makers[optimizer][1], PATTERN)
    for step, ((scale, tracker, w), (t_scale, t_tracker, t_w)) in enumerate(zip(ours, theirs)):
        assert (scale, tracker) == (t_scale, t_tracker), step
        np.testing.assert_allclose(w, t_w, rtol=1e-5, err_msg=f"step {step}")     # two float32 formulas
    assert [s for s, _, _ in ours][:5] == [2.0 ** 15, 2.0 ** 15, 2.0 ** 15, 2.0 ** 16, 2.0 ** 15]


@pytest.mark.parametrize("optimizer", [lambda ps: optim.Adam(ps, lr=0.1), lambda ps: optim.AdamW(ps, lr=0.1),
                                       lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True)],
                         ids=["adam", "adamw", "sgd-nesterov"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_skipped_step_leaves_the_optimizer_as_it_was_and_a_kept_one_is_a_plain_step_bit_for_bit(optimizer, backend):
    def model_and_optimizer():
        w = nn.Parameter(tensor(np.array([[0.5, -1.5], [2.0, 0.25]], np.float32), backend))
        return w, optimizer([w])

    device = mg.backend.backend_by_name(backend)
    w, opt = model_and_optimizer()
    plain_w, plain_opt = model_and_optimizer()
    for step in range(3):
        for param, flag in ((w, True), (w, False), (plain_w, None)):
            param.grad = device.from_numpy(np.array([[0.1, np.inf], [0.3, 0.4]], np.float32) * (step + 1))
            if flag is False or flag is None:
                param.grad[0, 1] = -0.2
            before = {k: mg.backend.to_numpy(v).copy() if hasattr(v, "shape") else v
                      for k, v in opt.state.get(id(w), {}).items()}
            weights = w.numpy()
            if flag is None:
                plain_opt.step()
            else:
                opt.step(found_inf=device.from_numpy(np.array(flag)))
            if flag:                                           # skipped: nothing moved
                np.testing.assert_array_equal(w.numpy(), weights)
                after = opt.state.get(id(w), {})
                for k, v in before.items():
                    np.testing.assert_array_equal(mg.backend.to_numpy(after[k]) if hasattr(after[k], "shape")
                                                  else after[k], v, err_msg=k)
        np.testing.assert_array_equal(w.numpy(), plain_w.numpy(), err_msg=f"step {step}")
    saved = opt.state_dict()["state"][0]
    assert all(isinstance(saved[k], (int, float)) for k in opt.state_numbers)   # counters saved as numbers
    assert saved.get("step", 3) == 3


def test_unscale_gives_the_true_gradients_before_clipping():
    model = tiny_gpt()
    gpt_loss(model).backward()
    true = {name: p.grad.copy() for name, p in model.named_parameters()}
    true_norm = optim.clip_grad_norm_(model.parameters(), float("inf")).item()
    model.zero_grad()
    opt, scaler = optim.Adam(model.parameters()), GradScaler()
    scaler.scale(gpt_loss(model)).backward()
    scaler.unscale_(opt)
    for name, p in model.named_parameters():            # x 2^16, then / 2^16: exact in float32
        np.testing.assert_array_equal(p.grad, true[name], err_msg=name)
    assert optim.clip_grad_norm_(model.parameters(), 1.0).item() == true_norm
    with pytest.raises(RuntimeError, match="unscale_\\(\\) has already been called"):
        scaler.unscale_(opt)
    scaler.step(opt)
    with pytest.raises(RuntimeError, match="step\\(\\) has already been called"):
        scaler.step(opt)
    scaler.update()
    assert not bool(scaler.found_inf)


def test_the_scale_grows_after_growth_interval_clean_steps_and_its_state_round_trips():
    w = nn.Parameter(mg.Tensor(np.ones(2, np.float32)))
    opt, scaler = optim.SGD([w], lr=0.0), GradScaler(init_scale=8.0, growth_interval=2)
    scales = []
    for _ in range(5):
        scaler.scale(w.sum()).backward()
        scaler.step(opt)
        scaler.update()
        scales.append(scaler.get_scale())
        opt.zero_grad()
    assert scales == [8.0, 16.0, 16.0, 32.0, 32.0]
    state = scaler.state_dict()
    assert state == {"scale": 32.0, "growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": 2,
                     "_growth_tracker": 1}
    again = GradScaler()
    again.load_state_dict(state)
    assert again.get_scale() == 32.0 and again.state_dict() == state
    scaler.scale(w.sum()).backward()
    again.scale(w.sum()).backward()
    for s in (scaler, again):
        s.step(opt)
        s.update()
    assert scaler.get_scale() == again.get_scale() == 64.0


def test_a_disabled_scaler_passes_everything_through():
    w = nn.Parameter(mg.Tensor(np.ones(2, np.float32)))
    opt, scaler = optim.SGD([w], lr=0.5), GradScaler(enabled=False)
    loss = w.sum()
    assert scaler.scale(loss) is loss
    loss.backward()
    scaler.unscale_(opt)
    scaler.step(opt)
    scaler.update()
    np.testing.assert_array_equal(w.numpy(), [0.5, 0.5])
    assert scaler.get_scale() == 1.0 and scaler.state_dict() == {} and scaler.found_inf is None
    with pytest.raises(RuntimeError, match="state is empty"):
        GradScaler().load_state_dict({})


@pytest.mark.parametrize("arguments, message", [
    (dict(init_scale=0.0), "init_scale"), (dict(growth_factor=1.0), "growth_factor"),
    (dict(backoff_factor=1.0), "backoff_factor"), (dict(growth_interval=0), "growth_interval"),
])
def test_grad_scaler_refuses_bad_arguments(arguments, message):
    with pytest.raises(ValueError, match=message):
        GradScaler(**arguments)


def test_autocast_refuses_a_dtype_it_cannot_run():
    with pytest.raises(ValueError, match="expected dtype float16"):
        autocast(dtype="float64")


def test_two_backwards_in_one_autocast_block_accumulate_as_without_it():
    """Gradient accumulation inside one ``with autocast():``: the second forward gets a
    fresh float16 copy of the weights (the first's was freed by the first backward), and
    the gradients add up as in float32 (to float16's precision)."""
    mg.manual_seed(0)
    layer = nn.Linear(4, 3)
    xs = [mg.Tensor(np.random.default_rng(i).standard_normal((2, 4)).astype(np.float32)) for i in range(2)]
    gys = [np.random.default_rng(10 + i).standard_normal((2, 3)).astype(np.float32) for i in range(2)]
    with autocast():
        for x, gy in zip(xs, gys):
            mg.autograd.backward([layer(x)], [gy.astype(np.float16)])
    mixed = layer.weight.grad.copy()
    layer.zero_grad()
    for x, gy in zip(xs, gys):
        mg.autograd.backward([layer(x)], [gy])
    np.testing.assert_allclose(mixed, layer.weight.grad, rtol=1e-2, atol=1e-2)


def test_sgd_momentum_takes_a_skippable_step_after_plain_ones():
    """A plain step makes the momentum buffer; a step with found_inf after it continues
    from that buffer, as a plain step would."""
    w, plain_w = (nn.Parameter(mg.Tensor(np.array([0.5, -1.5], np.float32))) for _ in range(2))
    opt, plain_opt = optim.SGD([w], lr=0.1, momentum=0.9), optim.SGD([plain_w], lr=0.1, momentum=0.9)
    for step in range(3):
        for param in (w, plain_w):
            param.grad = np.array([0.1, 0.3], np.float32) * (step + 1)
        plain_opt.step()
        if step == 0:
            opt.step()
        else:
            opt.step(found_inf=np.array(False))
        np.testing.assert_allclose(w.numpy(), plain_w.numpy(), rtol=1e-6, err_msg=f"step {step}")
