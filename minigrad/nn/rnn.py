"""Recurrent layers over whole sequences: ``GRU`` and ``LSTM``, as PyTorch's.

A layer runs its cell's step (``gru_step`` / ``lstm_step`` of
``minigrad.nn.rnn_cell``, the equations are there) over the time steps t = 0..T-1,
feeding each step's state to the next. Stacked layers (``num_layers``) read the
outputs of the layer below; a bidirectional layer runs a second cell, with its own
weights (names ending ``_reverse``), over t = T-1..0 and concatenates the two
outputs of each step, forward half first.

For each layer and direction the input projections of all T steps, x_proj_t =
x_t W_ih^T + b_ih, are one matrix product; only the hidden projection h W_hh^T
waits for the previous step. The time loop of a direction is then one fused op
(``gru_sequence_fused`` / ``lstm_sequence_fused`` of ``minigrad/ops/``): it runs
the same steps inside its forward and its hand-derived backward, where the
recurrent weight's gradient is one product over all T steps. Setting a layer's
``fused_sequence`` to False runs the steps one op call each instead: that loop is
the readable reference and the fused op's test oracle.

Glossary (PyTorch's names):

    x          the input sequence of a layer                 (T, B, I) time-major
    h_t, c_t   hidden and (LSTM) cell state at step t         (B, H)
    output     h_t of the last layer at every step, both directions
    h_n, c_n   the final states of every layer and direction  (num_layers * D, B, H)
    B batch, T time steps (the padded length), I input size, H hidden size,
    D = num_directions (2 if bidirectional else 1), G = 3 gates (GRU) or 4 (LSTM)

Padded batches (``lengths``). Sequences of different lengths are padded to a common
T; ``lengths[b]`` is the true length of sequence b. With a boolean mask m_t (B, 1),
True where t < lengths[b], every step updates the state only where m_t holds:

    h_t = where(m_t, step(x_t, h_{t-1}), h_{t-1})      output_t = where(m_t, h_t, 0)

so that
  - outputs at padded steps are exactly zero;
  - the final state of each sequence is its state at its own last real step
    (the state stays put through the padding after it);
  - the reverse direction, running t = T-1..0, keeps its initial state through the
    padding and so starts at each sequence's last real token;
  - padding never changes a result: the padded inputs are replaced by zeros (with
    ``where``, not a product: 0 * NaN is NaN) before anything reads them, so no
    content there, NaN or inf included, reaches an output or a gradient.

Compared with PyTorch's packed sequences: for a padded batch x with lengths,
``output`` equals ``pad_packed_sequence(torch_output, batch_first=...,
total_length=T)[0]`` of the PyTorch layer run on ``pack_padded_sequence(x,
lengths, batch_first=..., enforce_sorted=False)``, and ``h_n`` (and ``c_n``) equal
PyTorch's for that packed input, in the original batch order. minigrad gets there
with masks instead of shrinking the batch at each step: simpler to read, at the
price of computing (and discarding) the padded steps.
"""
import math
import numbers

from minigrad import creation
from minigrad.backend import get_array_module
from minigrad.nn import init
from minigrad.nn.functional import linear
from minigrad.nn.module import Module
from minigrad.nn.parameter import Parameter
from minigrad.nn.rnn_cell import check_positive_int, gru_step, lstm_step
from minigrad.ops import concatenate, dropout, split, stack, where
from minigrad.ops.nn_gru_sequence import gru_sequence_fused
from minigrad.ops.nn_lstm_sequence import lstm_sequence_fused
from minigrad.tensor import Tensor

__all__ = ["GRU", "LSTM"]


class _RNNBase(Module):
    """The parameters, the loop over layers, directions and time steps, and the
    checks that GRU and LSTM share. A subclass gives ``num_gates``, ``_step`` and
    ``_sequence``."""

    num_gates = None          # 3 for the GRU, 4 for the LSTM
    state_names = None        # ("hx",) for the GRU, ("h_0", "c_0") for the LSTM
    fused_sequence = True     # False: the per-step loop (the reference)
    # Whether b_hh is added to the pre-activations as it is (LSTM), so that the fused
    # path may add it with b_ih; not in a GRU, where b_hn sits inside r (.) (W_hn h + b_hn)
    hidden_bias_adds = False

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=True,
                 dropout=0.0, bidirectional=False):
        super().__init__()
        name = type(self).__name__
        check_positive_int(name, "hidden_size", hidden_size)
        check_positive_int(name, "num_layers", num_layers)
        if isinstance(dropout, bool) or not isinstance(dropout, numbers.Real) or not 0 <= dropout <= 1:
            raise ValueError(f"{name}: expected dropout a probability in [0, 1], got {dropout!r}")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout = bias, batch_first, float(dropout)
        self.bidirectional = bidirectional
        self.num_directions = 2 if bidirectional else 1
        G = self.num_gates * hidden_size
        # PyTorch's names and order: per layer, per direction, w_ih, w_hh, b_ih, b_hh.
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else hidden_size * self.num_directions
            for direction in range(self.num_directions):
                suffix = f"_l{layer}" + ("_reverse" if direction else "")
                setattr(self, "weight_ih" + suffix, Parameter(creation.zeros(G, layer_input)))
                setattr(self, "weight_hh" + suffix, Parameter(creation.zeros(G, hidden_size)))
                if bias:
                    setattr(self, "bias_ih" + suffix, Parameter(creation.zeros(G)))
                    setattr(self, "bias_hh" + suffix, Parameter(creation.zeros(G)))
                else:
                    self.register_parameter("bias_ih" + suffix, None)
                    self.register_parameter("bias_hh" + suffix, None)
        self.reset_parameters()

    def reset_parameters(self):
        """Every weight and bias ~ U(-1/sqrt(H), 1/sqrt(H)), as PyTorch."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for param in self.parameters():
            init.uniform_(param, -bound, bound)

    def _direction_weights(self, layer, direction):
        """(weight_ih, weight_hh, bias_ih, bias_hh) of one layer and direction."""
        suffix = f"_l{layer}" + ("_reverse" if direction else "")
        return tuple(getattr(self, name + suffix)
                     for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))

    def _step(self, x_proj, state, weight_hh, bias_hh):
        """The cell's step: a tuple of states (B, H) -> the next tuple."""
        raise NotImplementedError

    def _sequence(self, x_proj, state, weight_hh, bias_hh, mask, reverse):
        """The cell's fused op over a whole direction: x_proj (T, B, G*H), mask a (T, B, 1)
        boolean array or None -> outputs (T, B, H) and the final state tuple."""
        raise NotImplementedError

    # -- the forward pass ---------------------------------------------------------
    def _forward(self, x, hx, lengths):
        """Run every layer and direction. ``hx``: one initial state (or None) per name
        in ``state_names``. Returns output and the tuple of final states."""
        name, I = type(self).__name__, self.input_size
        if x.ndim != 3 or x.shape[-1] != I or 0 in x.shape[:2]:
            layout = "(B, T, I)" if self.batch_first else "(T, B, I)"
            raise ValueError(f"{name}: expected input of shape {layout} with I = {I} "
                             f"and B, T >= 1, got {x.shape}")
        if self.batch_first:
            x = x.swapaxes(0, 1)                                          # (T, B, I)
        T, B, _ = x.shape
        mask = None
        if lengths is not None:
            mask = _length_mask(lengths, T, B, x, name)                   # (T, B, 1)
            x = where(mask, x, 0.0)         # padded inputs are zeros: their content never counts
        initial = [self._initial_states(state, x, state_name)             # each L*D of (B, H)
                   for state, state_name in zip(hx, self.state_names)]

        finals = [[] for _ in self.state_names]
        layer_input = x                                                   # (T, B, I)
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(self.num_directions):
                k = layer * self.num_directions + direction               # PyTorch's h_n order
                output, state = self._run_direction(
                    layer_input, tuple(states[k] for states in initial), mask,
                    self._direction_weights(layer, direction), reverse=direction == 1)
                outputs.append(output)                                    # (T, B, H)
                for final, s in zip(finals, state):
                    final.append(s)
            layer_input = concatenate(outputs, axis=-1) if self.bidirectional \
                else outputs[0]                                           # (T, B, D*H)
            if layer < self.num_layers - 1:        # between layers only, as PyTorch
                layer_input = dropout(layer_input, self.dropout, self.training)
        output = layer_input.swapaxes(0, 1) if self.batch_first else layer_input  # (B, T, D*H)
        return output, tuple(stack(final, axis=0) for final in finals)   # each (L*D, B, H)

    def _run_direction(self, x, state, mask, weights, reverse):
        """One layer in one direction: x (T, B, I_layer) -> outputs (T, B, H) and the
        final state tuple, each (B, H). ``mask``: the (T, B, 1) boolean Tensor or None."""
        weight_ih, weight_hh, bias_ih, bias_hh = weights
        if self.fused_sequence and self.hidden_bias_adds and bias_ih is not None:
            # a = x W_ih^T + b_ih + h W_hh^T + b_hh: b_hh joins b_ih in the one product for
            # all steps, not an addition at each step (and both gradients are one sum)
            bias_ih, bias_hh = bias_ih + bias_hh, None
        x_proj = linear(x, weight_ih, bias_ih)            # (T, B, G*H): one product for all steps
        if self.fused_sequence:
            return self._sequence(x_proj, state, weight_hh, bias_hh,
                                  None if mask is None else mask.data, reverse)
        return self._step_loop(x_proj, state, weight_hh, bias_hh, mask, reverse)

    def _step_loop(self, x_proj, state, weight_hh, bias_hh, mask, reverse):
        """The direction as a Python loop over ``_step``: the test oracle of the fused ops
        ``gru_sequence_fused`` (``minigrad/ops/nn_gru_sequence.py``) and
        ``lstm_sequence_fused`` (``minigrad/ops/nn_lstm_sequence.py``)."""
        T = x_proj.shape[0]
        x_proj = _unbind(x_proj)                                          # T of (B, G*H)
        masks = None if mask is None else [Tensor(mask.data[t]) for t in range(T)]  # T of (B, 1)
        outputs = [None] * T
        for t in (range(T - 1, -1, -1) if reverse else range(T)):
            new = self._step(x_proj[t], state, weight_hh, bias_hh)        # each (B, H)
            if masks is None:
                outputs[t] = new[0]
            else:
                # the masked update: a padded step leaves the state as it was
                new = tuple(where(masks[t], n, s) for n, s in zip(new, state))
                outputs[t] = where(masks[t], new[0], 0.0)
            state = new
        return stack(outputs, axis=0), state                              # (T, B, H)

    def _initial_states(self, state, x, state_name):
        """An initial state (L*D, B, H), or zeros for None, as L*D tensors (B, H)."""
        B, H = x.shape[1], self.hidden_size
        LD = self.num_layers * self.num_directions
        if state is None:
            zeros = Tensor(get_array_module(x.data).zeros((B, H), dtype=x.dtype))  # (B, H)
            return [zeros] * LD
        if not isinstance(state, Tensor) or tuple(state.shape) != (LD, B, H):
            got = tuple(state.shape) if isinstance(state, Tensor) else type(state).__name__
            raise ValueError(f"{type(self).__name__}: expected {state_name} of shape "
                             f"(num_layers * num_directions, B, H) = {(LD, B, H)}, got {got}")
        return _unbind(state)                                             # L*D of (B, H)

    def extra_repr(self):
        text = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            text += f", num_layers={self.num_layers}"
        if not self.bias:
            text += ", bias=False"
        text += f", batch_first={self.batch_first}"
        if self.dropout:
            text += f", dropout={self.dropout}"
        if self.bidirectional:
            text += ", bidirectional=True"
        return text


class GRU(_RNNBase):
    """A multi-layer GRU over sequences (Cho et al., 2014, arXiv:1406.1078).

    Each step is ``GRUCell``'s (see ``minigrad.nn.rnn_cell``):

        r_t = sigma(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)
        z_t = sigma(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)
        n_t = tanh(W_in x_t + b_in + r_t (.) (W_hn h_{t-1} + b_hn))
        h_t = (1 - z_t) (.) n_t + z_t (.) h_{t-1}

    Layer k > 0 reads the outputs of layer k-1 (both directions), with dropout
    between layers in training. Glossary, lengths, and the comparison with PyTorch's
    packed sequences: see the module docstring.

    >>> import minigrad as mg
    >>> gru = mg.nn.GRU(4, 8, num_layers=2, bidirectional=True)
    >>> output, h_n = gru(mg.randn(3, 5, 4), lengths=[5, 2, 4])    # a padded batch
    >>> output.shape, h_n.shape
    ((3, 5, 16), (4, 3, 8))
    >>> output.numpy()[1, 2:].tolist() == [[0.0] * 16] * 3         # zero after length 2
    True

    Args: as ``torch.nn.GRU`` (``batch_first`` defaults to True here).

    Shapes (D = 2 if bidirectional else 1, L = num_layers):
        input x:  (B, T, I), or (T, B, I) when batch_first=False
        hx:       (L*D, B, H), zeros when None
        lengths:  (B,) integers in [1, T] (a list, an array or a Tensor), or None:
                  every sequence full length
        output:   (B, T, D*H), or (T, B, D*H) when batch_first=False
        h_n:      (L*D, B, H); row layer*D + direction (l0 forward, l0 reverse, l1 ...)
        weight_ih_l{k}[_reverse]: (3H, I) for k = 0, (3H, D*H) for k > 0  [W_ir; W_iz; W_in]
        weight_hh_l{k}[_reverse]: (3H, H)                                 [W_hr; W_hz; W_hn]
        bias_ih_l{k}[_reverse], bias_hh_l{k}[_reverse]: (3H,)

    Initialization (PyTorch's): every parameter ~ U(-1/sqrt(H), 1/sqrt(H)).

    Returns:
        (output, h_n).
    """

    num_gates = 3
    state_names = ("hx",)

    def _step(self, x_proj, state, weight_hh, bias_hh):
        (h,) = state
        return (gru_step(x_proj, h, weight_hh, bias_hh),)

    def _sequence(self, x_proj, state, weight_hh, bias_hh, mask, reverse):
        output, h = gru_sequence_fused(x_proj, state[0], weight_hh, bias_hh, mask, reverse)
        return output, (h,)                                               # (T, B, H), (B, H)

    def forward(self, x, hx=None, lengths=None):
        output, (h_n,) = self._forward(x, (hx,), lengths)
        return output, h_n


class LSTM(_RNNBase):
    """A multi-layer LSTM over sequences (Hochreiter & Schmidhuber, 1997, Neural
    Computation 9(8); the forget gate of Gers et al., 2000).

    Each step is ``LSTMCell``'s (see ``minigrad.nn.rnn_cell``):

        i_t = sigma(W_ii x_t + b_ii + W_hi h_{t-1} + b_hi)
        f_t = sigma(W_if x_t + b_if + W_hf h_{t-1} + b_hf)
        g_t = tanh(W_ig x_t + b_ig + W_hg h_{t-1} + b_hg)
        o_t = sigma(W_io x_t + b_io + W_ho h_{t-1} + b_ho)
        c_t = f_t (.) c_{t-1} + i_t (.) g_t
        h_t = o_t (.) tanh(c_t)

    Layer k > 0 reads the outputs h_t of layer k-1 (both directions), with dropout
    between layers in training. Glossary, lengths, and the comparison with PyTorch's
    packed sequences: see the module docstring.

    >>> import minigrad as mg
    >>> lstm = mg.nn.LSTM(4, 8, num_layers=2)
    >>> output, (h_n, c_n) = lstm(mg.randn(3, 5, 4))
    >>> output.shape, h_n.shape, c_n.shape
    ((3, 5, 8), (2, 3, 8), (2, 3, 8))

    Args: as ``torch.nn.LSTM`` without ``proj_size`` (``batch_first`` defaults to
    True here).

    Shapes (D = 2 if bidirectional else 1, L = num_layers):
        input x:  (B, T, I), or (T, B, I) when batch_first=False
        hx:       a tuple (h_0, c_0), each (L*D, B, H); zeros when None
        lengths:  (B,) integers in [1, T] (a list, an array or a Tensor), or None:
                  every sequence full length
        output:   (B, T, D*H), or (T, B, D*H) when batch_first=False
        h_n, c_n: each (L*D, B, H); row layer*D + direction (l0 forward, l0 reverse, ...)
        weight_ih_l{k}[_reverse]: (4H, I) for k = 0, (4H, D*H) for k > 0  [W_ii; W_if; W_ig; W_io]
        weight_hh_l{k}[_reverse]: (4H, H)                                 [W_hi; W_hf; W_hg; W_ho]
        bias_ih_l{k}[_reverse], bias_hh_l{k}[_reverse]: (4H,)

    Initialization (PyTorch's): every parameter ~ U(-1/sqrt(H), 1/sqrt(H)).

    Returns:
        (output, (h_n, c_n)).
    """

    num_gates = 4
    state_names = ("h_0", "c_0")
    hidden_bias_adds = True

    def _step(self, x_proj, state, weight_hh, bias_hh):
        h, c = state
        return lstm_step(x_proj, h, c, weight_hh, bias_hh)

    def _sequence(self, x_proj, state, weight_hh, bias_hh, mask, reverse):
        output, h, c = lstm_sequence_fused(x_proj, state[0], state[1], weight_hh, bias_hh, mask, reverse)
        return output, (h, c)                                             # (T, B, H), (B, H) x 2

    def forward(self, x, hx=None, lengths=None):
        if hx is None:
            hx = (None, None)
        elif not (isinstance(hx, (tuple, list)) and len(hx) == 2):
            raise TypeError(f"LSTM: expected hx to be a tuple (h_0, c_0), got {type(hx).__name__}")
        output, (h_n, c_n) = self._forward(x, tuple(hx), lengths)
        return output, (h_n, c_n)


def _unbind(x):
    """x (N, ...) as a list of N tensors (...): one split, so the backward is one
    concatenation (N getitems would each build a zero gradient of x's size)."""
    return [piece.reshape(piece.shape[1:]) for piece in split(x, x.shape[0], axis=0)]


def _length_mask(lengths, T, B, like, name):
    """The boolean mask (T, B, 1), True where t < lengths[b], on ``like``'s backend."""
    # Lengths are host data (a list, a NumPy array, or a Tensor): read them on the host.
    host = lengths.numpy() if isinstance(lengths, Tensor) else lengths
    values = host.tolist() if hasattr(host, "tolist") else host
    if not isinstance(values, (list, tuple)):
        raise TypeError(f"{name}: expected lengths as a list, array or tensor of B = {B} "
                        f"integers, got {lengths!r}")
    values = list(values)
    if len(values) != B:
        raise ValueError(f"{name}: expected B = {B} lengths (one per sequence), got {len(values)}")
    if not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in values):
        raise TypeError(f"{name}: expected integer lengths, got {values}")
    if not all(1 <= v <= T for v in values):
        raise ValueError(f"{name}: expected every length in [1, T] = [1, {T}], got {values}")
    xp = get_array_module(like.data)
    steps = xp.arange(T).reshape(T, 1)                                    # (T, 1)
    true_lengths = xp.asarray([int(v) for v in values]).reshape(1, B)     # (1, B)
    return Tensor((steps < true_lengths).reshape(T, B, 1))                # (T, B, 1)
