"""Generation from a decoder-only LM (models/generation.py) on a tiny GPT.

- laws (hypothesis): cached generation equals recomputation (the same tokens, the
  logits of every step to 1e-9 in float64), past block_size too (the sliding window);
  every step's logits are the model's on that row's own context; a batch of prompts of
  different lengths gives what each prompt gives alone; top-k never samples outside
  the k best; top-p never outside the smallest set reaching p; a temperature near 0
  and temperature 0 are argmax; the same seed gives the same samples;
- the sampler draws softmax(z / temperature) (frequencies within binomial bounds);
- the stop token, the restored training mode, bad arguments named; every backend.
"""
import numpy as np
import pytest
from hypothesis import assume, given, strategies as st

import minigrad as mg
from minigrad.backend import backend_by_name, backend_of
from models.generation import (
    Generation, apply_temperature, generate, next_token, sample, top_k_filter, top_p_filter,
)
from models.gpt import GPT, GPTConfig

from helpers import BACKENDS, tensor

V, BLOCK = 11, 8


def tiny_gpt(backend="numpy", dtype="float64", seed=0, **overrides):
    """A tiny GPT with weights N(0, 0.5): varied enough that greedy search does not
    repeat one token."""
    mg.manual_seed(seed)
    with mg.use_backend(backend):
        config = dict(vocab_size=V, block_size=BLOCK, n_layer=2, n_head=2, d_model=8)
        model = GPT(GPTConfig(**{**config, **overrides}))
    rng = np.random.default_rng(seed + 10)
    for p in model.parameters():
        p.data = backend_of(p.data).from_numpy((0.5 * rng.standard_normal(p.shape)).astype(dtype))
    return model.eval()


prompt_lists = st.lists(st.lists(st.integers(0, V - 1), min_size=1, max_size=BLOCK + 2),
                        min_size=1, max_size=4)
settings_of_sampling = st.sampled_from([dict(temperature=0), dict(temperature=1.0),
                                        dict(temperature=0.7, top_k=3),
                                        dict(temperature=1.3, top_p=0.8)])


def logits_arrays(min_v=2, max_v=12):
    """(rows, V) float64 logits in [-4, 4], distinct within a row (gaps of 0.01 or more)."""
    row = lambda v: st.lists(st.integers(-400, 400), min_size=v, max_size=v, unique=True)
    return st.tuples(st.integers(min_v, max_v), st.integers(1, 4)).flatmap(
        lambda shape: st.lists(row(shape[0]), min_size=shape[1], max_size=shape[1])
    ).map(lambda rows: np.array(rows) / 100.0)


# -- cache, batching, windows --------------------------------------------------------

@given(prompts=prompt_lists, new=st.integers(1, 12), options=settings_of_sampling,
       seed=st.integers(0, 2**16))
def test_cached_generation_equals_recomputation(prompts, new, options, seed):
    """Same seed, with and without the cache: the same tokens and logits at every step
    (prompt + new often exceeds BLOCK: the window slides in both)."""
    model = tiny_gpt()
    mg.manual_seed(seed)
    cached = generate(model, prompts, new, keep_logits=True, **options)
    mg.manual_seed(seed)
    recomputed = generate(model, prompts, new, keep_logits=True, use_cache=False, **options)
    assert cached.tokens == recomputed.tokens
    for a, b in zip(cached.logits, recomputed.logits):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


@given(prompts=prompt_lists, new=st.integers(1, 12))
def test_each_steps_logits_are_the_models_on_the_rows_own_context(prompts, new):
    """The oracle, one row at a time without padding or cache: step i of row b reads the
    last BLOCK tokens of prompt_b + its first i generated tokens."""
    model = tiny_gpt()
    out = generate(model, prompts, new, temperature=0, keep_logits=True)
    for prompt, tokens, logits in zip(prompts, out.tokens, out.logits):
        assert len(tokens) == len(logits) == new
        for i in range(new):
            context = (prompt + tokens[:i])[-BLOCK:]
            expected = model(tensor(np.array([context]))).numpy()[0, -1]
            np.testing.assert_allclose(logits[i], expected, rtol=1e-9, atol=1e-12)
            assert tokens[i] == int(np.argmax(expected))


@given(prompts=prompt_lists.filter(lambda p: len(p) > 1), new=st.integers(1, 12))
def test_a_batch_of_prompts_generates_what_each_prompt_does_alone(prompts, new):
    model = tiny_gpt()
    batched = generate(model, prompts, new, temperature=0, keep_logits=True)
    for b, prompt in enumerate(prompts):
        alone = generate(model, [prompt], new, temperature=0, keep_logits=True)
        assert batched.tokens[b] == alone.tokens[0]
        np.testing.assert_allclose(batched.logits[b], alone.logits[0], rtol=1e-9, atol=1e-12)


def test_the_cached_steps_feed_one_token_each():
    """After the prompt, every model call inside the window reads one new token; past
    the window, the last BLOCK tokens."""
    model = tiny_gpt()
    widths = []
    forward = model.forward
    model.forward = lambda idx, **kw: widths.append(idx.shape[1]) or forward(idx, **kw)
    generate(model, [[1, 2, 3], [4]], BLOCK, temperature=0)
    assert widths == [3, 1, 1, 1, 1, 1, BLOCK, BLOCK]          # 3 + 5 = BLOCK, then the window


# -- the filters and the draw ------------------------------------------------------------

@given(z=logits_arrays(), k=st.integers(1, 12), seed=st.integers(0, 2**16))
def test_top_k_never_samples_outside_the_k_best(z, k, seed):
    kept = np.isfinite(top_k_filter(z, k))
    best = np.argsort(-z, axis=-1)[:, :k]
    assert (kept.sum(axis=-1) == min(k, z.shape[1])).all()
    assert all(kept[b, best[b]].all() for b in range(len(z)))
    mg.manual_seed(seed)
    draws = next_token(np.repeat(z, 300, axis=0), temperature=1.0, top_k=k).reshape(len(z), 300)
    assert all(np.isin(draws[b], best[b]).all() for b in range(len(z)))


def smallest_set_reaching(z, p):
    """The reference: the most probable tokens, in order, until their probability reaches p."""
    probs = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
    order = np.argsort(-probs)
    mass = np.cumsum(probs[order])
    return set(order[:int(np.searchsorted(mass, p)) + 1].tolist()), mass


@given(z=logits_arrays(), p=st.floats(0.01, 0.99), seed=st.integers(0, 2**16))
def test_top_p_never_samples_outside_the_smallest_set_reaching_p(z, p, seed):
    references = [smallest_set_reaching(row, p) for row in z]
    assume(all(np.abs(mass - p).min() > 1e-9 for _, mass in references))  # no rounding tie at p
    kept = np.isfinite(top_p_filter(z, p))
    for b, (reference, _) in enumerate(references):
        assert set(np.flatnonzero(kept[b]).tolist()) == reference
    mg.manual_seed(seed)
    draws = next_token(np.repeat(z, 300, axis=0), temperature=1.0, top_p=p).reshape(len(z), 300)
    for b, (reference, _) in enumerate(references):
        assert set(draws[b].tolist()) <= reference


def test_top_p_keeps_the_most_probable_token_even_alone_and_every_token_at_1():
    z = np.array([[3.0, 0.0, -1.0]])
    assert np.isfinite(top_p_filter(z, 1e-6)).tolist() == [[True, False, False]]
    assert np.isfinite(top_p_filter(z, 1.0)).all()


@given(z=logits_arrays(), seed=st.integers(0, 2**16))
def test_temperature_towards_0_is_greedy(z, seed):
    """At tau = 1e-5 the scaled gaps (>= 0.01 / tau = 1000) dwarf the Gumbel noise's
    spread; at tau = 0 it is argmax by definition, whatever the filters."""
    mg.manual_seed(seed)
    np.testing.assert_array_equal(next_token(z, temperature=1e-5), z.argmax(axis=-1))
    np.testing.assert_array_equal(next_token(z, temperature=0, top_k=1, top_p=0.1), z.argmax(axis=-1))


@given(prompts=prompt_lists, options=settings_of_sampling, seed=st.integers(0, 2**16))
def test_the_same_seed_gives_the_same_samples(prompts, options, seed):
    model = tiny_gpt()
    runs = []
    for _ in range(2):
        mg.manual_seed(seed)
        runs.append(generate(model, prompts, 6, **options).tokens)
    assert runs[0] == runs[1]


def test_another_seed_gives_other_samples():
    model = tiny_gpt()
    runs = []
    for seed in (1, 2):
        mg.manual_seed(seed)
        runs.append(generate(model, [[1, 2]] * 4, 12).tokens)
    assert runs[0] != runs[1]


@pytest.mark.parametrize("temperature", [1.0, 0.5, 2.0])
def test_the_draws_follow_softmax_of_the_scaled_logits(temperature):
    """20,000 draws: each token's count within 5 binomial standard deviations."""
    z = np.array([[2.0, 1.0, 0.5, 0.0, -1.0, -3.0]])
    n = 20000
    mg.manual_seed(0)
    draws = next_token(np.repeat(z, n, axis=0), temperature=temperature)
    probs = np.exp(z[0] / temperature) / np.exp(z[0] / temperature).sum()
    counts = np.bincount(draws, minlength=z.shape[1])
    assert (np.abs(counts - n * probs) <= 5 * np.sqrt(n * probs * (1 - probs)) + 1).all(), counts


def test_apply_temperature_divides_and_sample_never_draws_minus_infinity():
    z = np.array([[1.0, -np.inf, 2.0]])
    np.testing.assert_array_equal(apply_temperature(z, 2.0), [[0.5, -np.inf, 1.0]])
    mg.manual_seed(0)
    assert 1 not in sample(np.repeat(z, 5000, axis=0)).tolist()


# -- stopping, modes, errors, backends -----------------------------------------------------

def test_a_row_stops_at_stop_id_and_the_batch_when_every_row_has():
    model = tiny_gpt()
    free = generate(model, [[1, 2, 3], [5], [7, 7]], 10, temperature=0, keep_logits=True)
    stop = free.tokens[0][2]                                    # the third token of row 0
    assert stop not in free.tokens[0][:2]
    out = generate(model, [[1, 2, 3], [5], [7, 7]], 10, temperature=0, stop_id=stop, keep_logits=True)
    for tokens, logits, free_tokens in zip(out.tokens, out.logits, free.tokens):
        cut = free_tokens.index(stop) if stop in free_tokens else len(free_tokens)
        assert tokens == free_tokens[:cut]
        assert len(logits) == min(cut + 1, 10)                  # the stop step included
    alone = generate(model, [[1, 2, 3]], 10, temperature=0, stop_id=stop)
    assert alone.tokens == [free.tokens[0][:2]]


def test_generation_runs_in_eval_mode_and_restores_the_mode():
    """With dropout, a training-mode model would give other logits at each call."""
    model = tiny_gpt(dropout=0.5).train()
    model.blocks[1].eval()                                      # a mixed state, restored as it was
    modes = [m.training for m in model.modules()]
    outputs = [generate(model, [[1, 2, 3]], 5, temperature=0, keep_logits=True) for _ in range(2)]
    np.testing.assert_array_equal(outputs[0].logits[0], outputs[1].logits[0])
    assert [m.training for m in model.modules()] == modes and False in modes
    assert generate(model, [[1]], 0) == Generation([[]])


def test_bad_arguments_are_named():
    model = tiny_gpt()
    cases = [(dict(prompts=[]), "non-empty list of prompts"),
             (dict(prompts=[[1], []]), "prompt 1 must be a non-empty list"),
             (dict(prompts=[[1, 11]]), r"prompt 0 holds token ids from 1 to 11; expected ids in \[0, 11\)"),
             (dict(max_new_tokens=-1), "max_new_tokens >= 0"),
             (dict(temperature=-0.5), "temperature >= 0"),
             (dict(top_k=0), "top_k None or an integer >= 1"),
             (dict(top_p=0.0), r"top_p None or in \(0, 1\]"),
             (dict(stop_id=11), r"stop_id None or in \[0, 11\)")]
    for change, message in cases:
        arguments = {**dict(prompts=[[1, 2]], max_new_tokens=3), **change}
        with pytest.raises(ValueError, match=message):
            generate(model, **arguments)


@pytest.mark.parametrize("backend", BACKENDS)
def test_generation_on_every_backend(backend):
    """Draws made on the backend; the same tokens and logits as NumPy for one seed."""
    results = {}
    for name in dict.fromkeys(["numpy", backend]):
        model = tiny_gpt(name, dtype="float32")
        mg.manual_seed(4)
        results[name] = [generate(model, [[1, 2, 3], [4]], 10, keep_logits=True, **options)
                         for options in (dict(temperature=0), dict(temperature=0.9, top_k=4, top_p=0.9))]
        z = backend_by_name(name).from_numpy(np.zeros((2, V), dtype="float32"))
        assert backend_of(sample(z)) is backend_by_name(name)
    for ours, reference in zip(results[backend], results["numpy"]):
        assert ours.tokens == reference.tokens
        for a, b in zip(ours.logits, reference.logits):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
