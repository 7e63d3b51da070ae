"""Fused recurrent kernels (torch's LSTM, GRU and plain RNN over whole sequences) and CNTK's
OptimizedRNNStack op, whose weights use cuDNN's packed parameter layout.

Variable-length sequences in the padded (B, T, ...) layout are packed by one row gather, so
padding never enters a recurrence, or (float32 on the CPU, one direction) run padded with the
padding zeroed, which is exact because every sequence starts at t = 0. A sequence run
backwards is reversed within its own length. On a GPU, torch runs the kernels with cuDNN.
"""

import contextlib
import warnings

import torch

from ..registry import Type, register, fail, common_dtype, int_attr

# gate count per kind of cell
GATES = {"lstm": 4, "gru": 3, "rnn_tanh": 1, "rnn_relu": 1}
_KERNELS = {"lstm": torch.lstm, "gru": torch.gru, "rnn_tanh": torch.rnn_tanh, "rnn_relu": torch.rnn_relu}

# OptimizedRNNStack's recurrent_op names -> kernel kinds
RECURRENT_OPS = {"lstm": "lstm", "gru": "gru", "rnnTanh": "rnn_tanh", "rnnReLU": "rnn_relu"}


# -- sequence layouts for the kernels ----------------------------------------------------------

def _packing(lay, reverse):
    """How to pack a (B, T, ...) tensor laid out by ``lay``: (rows, batch_sizes, order, n).

    ``rows`` indexes the (B*T) flattened cells in packed order (time-major over the sequences
    sorted longest first; with ``reverse`` each sequence's cells in reverse order within its
    own length); ``batch_sizes`` (CPU) counts the sequences alive at each step; ``order`` is the
    sorted sequence order and ``n`` how many sequences are not empty. Cached on the layout,
    which every value on the same sequence axis of a minibatch shares."""
    key = ("rnn_packing", reverse)
    hit = lay._cache.get(key)
    if hit is not None:
        return hit
    T, dev = lay.T, lay.device
    sorted_len, order = torch.sort(torch.tensor(lay.lengths_list, dtype=torch.long), descending=True, stable=True)
    t = torch.arange(T)[:, None]
    src_t = (sorted_len[None, :] - 1 - t) if reverse else t.expand(T, len(sorted_len))
    cells = order[None, :] * T + src_t
    rows = cells[t < sorted_len[None, :]]
    batch_sizes = (t < sorted_len[None, :]).sum(1)
    n = int((sorted_len > 0).sum())
    hit = (rows.to(dev), batch_sizes, order.to(dev), n)
    lay._cache[key] = hit
    return hit


@contextlib.contextmanager
def _quiet_cudnn(x):
    """cuDNN warns that separate weight tensors are compacted on each call; here they are views
    of CNTK's parameters (or their reordering), so there is nothing to flatten once for all."""
    if not x.is_cuda:
        yield
        return
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="RNN module weights are not part")
        yield


def _reversal(lay):
    """(B*T,) row index that reverses each sequence of a flattened (B*T, ...) tensor within its
    own length (padding cells stay in place); it is its own inverse. Cached on the layout."""
    key = "rnn_reversal"
    rev = lay._cache.get(key)
    if rev is None:
        T = lay.T
        lengths = torch.tensor(lay.lengths_list, dtype=torch.long)[:, None]
        t = torch.arange(T)[None, :]
        rows = torch.where(t < lengths, lengths - 1 - t, t) + torch.arange(len(lay.lengths_list))[:, None] * T
        rev = lay._cache[key] = rows.reshape(-1).to(lay.device)
    return rev


def _padded_is_faster(x, bidirectional):
    """Whether to run variable-length sequences padded rather than packed: on the CPU, float32
    recurrences go to oneDNN's fused kernel, which only takes padded input and beats the packed
    kernel (whose backward zero-fills the whole packed gate tensor once per step) even though it
    also steps through the padding. A bidirectional layer must be packed: its backward direction
    starts at each sequence's own end."""
    return not bidirectional and x.device.type == "cpu" and x.dtype == torch.float32 and \
        torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled


def run_recurrence(kind, x, lay, params, hidden, num_layers=1, bidirectional=False, go_backwards=False,
                   h0=None, c0=None, final_states=False):
    """Run a stack of recurrent layers over the padded sequences ``x`` (B, T, in).

    ``params``: torch's per-layer, per-direction weights [w_ih (G*h, in), w_hh (G*h, h), b_ih,
    b_hh, ...] with torch's gate order. ``h0``/``c0``: (layers*directions, B, h) initial states,
    or None for zeros. ``go_backwards`` runs each sequence from its end (one direction only).
    Returns (y (B, T, directions*h), zero in the padding cells; and with ``final_states`` the
    final h and c (LSTM only) in batch order, else None, None).
    """
    B, T = x.shape[0], x.shape[1]
    D = 2 if bidirectional else 1
    kernel = _KERNELS[kind]
    lstm = kind == "lstm"
    if h0 is None:
        h0 = x.new_zeros((num_layers * D, B, hidden))
    if lstm and c0 is None:
        c0 = x.new_zeros((num_layers * D, B, hidden))
    hx = (h0, c0) if lstm else h0
    with _quiet_cudnn(x):
        if lay.uniform or T == 0:
            # no padding: the kernel runs on the padded tensor itself
            xs = x.flip(1) if go_backwards else x
            out = kernel(xs, hx, params, True, num_layers, 0.0, False, bidirectional, True)
            y = out[0].flip(1) if go_backwards else out[0]
            return (y, out[1], out[2] if lstm else None) if final_states else (y, None, None)
        if not final_states and _padded_is_faster(x, bidirectional):
            # Each sequence starts at t = 0, so its steps never read the padding after its end:
            # the valid outputs are exact. Zeroed padding inputs keep the padding steps finite,
            # and zeroing their outputs keeps any gradient sent to them out of the recurrence.
            if go_backwards:
                rev = _reversal(lay)
                x = x.reshape((B * T,) + tuple(x.shape[2:])).index_select(0, rev).reshape(x.shape)
            out = kernel(lay.fill_padding(x), hx, params, True, num_layers, 0.0, False, False, True)
            y = lay.fill_padding(out[0])
            if go_backwards:
                y = y.reshape(B * T, -1).index_select(0, rev).reshape(B, T, -1)
            return y, None, None
        rows, batch_sizes, order, n = _packing(lay, go_backwards)
        live = order[:n]
        hx = (h0.index_select(1, live), c0.index_select(1, live)) if lstm else h0.index_select(1, live)
        data = x.reshape((B * T,) + tuple(x.shape[2:])).index_select(0, rows)
        out = kernel(data, batch_sizes, hx, params, True, num_layers, 0.0, False, bidirectional)
    y = out[0].new_zeros((B * T, out[0].shape[-1])).index_copy(0, rows, out[0]).reshape(B, T, -1)
    if not final_states:
        return y, None, None
    # final states back in batch order; empty sequences keep their initial state
    return y, h0.index_copy(1, live, out[1]), c0.index_copy(1, live, out[2]) if lstm else None


# -- CNTK cell parameters -> torch's layout ----------------------------------------------------

def _lstm_order(v):
    """CNTK's LSTM gate stacking [i, candidate, f, o] along dim 0 of ``v`` as torch's (and
    cuDNN's) [i, f, candidate, o]. chunk + cat: the backward is one cat of the gradient's
    slices (an index_select's backward would zero-fill and scatter)."""
    i, g, f, o = v.chunk(4, 0)
    return torch.cat([i, f, g, o])


def cell_params(kind, W, H, b):
    """torch's [w_ih, w_hh, b_ih, b_hh] for one CNTK cell with W (in, G*n), H (n, G*n) and
    b (G*n,): the matrices transposed, LSTM gates reordered, the bias entirely in b_ih."""
    if kind == "lstm":
        w_ih, w_hh, b_ih = _lstm_order(W.t()), _lstm_order(H.t()), _lstm_order(b)
    else:
        w_ih, w_hh, b_ih = W.t(), H.t(), b
    return [w_ih, w_hh, b_ih, b.new_zeros(b.shape)]


# -- OptimizedRNNStack --------------------------------------------------------------------------

def stack_sizes(recurrent_op, input_dim, hidden, num_layers, bidirectional):
    """The pieces of cuDNN's packed weight vector, in order: [(layer, direction, what, shape)]
    with ``what`` one of w_ih, w_hh, b_ih, b_hh. All layers' matrices come first (per layer:
    forward input and recurrent matrices, then the backward ones), then all biases (per layer:
    forward input and recurrent biases, then the backward ones); each matrix is (G*h, in) with
    rows in gate-major order."""
    G = GATES[RECURRENT_OPS[recurrent_op]]
    D = 2 if bidirectional else 1
    mats, biases = [], []
    n_in = input_dim
    for layer in range(num_layers):
        for d in range(D):
            mats += [(layer, d, "w_ih", (G * hidden, n_in)), (layer, d, "w_hh", (G * hidden, hidden))]
            biases += [(layer, d, "b_ih", (G * hidden,)), (layer, d, "b_hh", (G * hidden,))]
        n_in = D * hidden
    return mats + biases


def stack_param_count(recurrent_op, input_dim, hidden, num_layers, bidirectional):
    """How many numbers the packed weights of a stack hold."""
    total = 0
    for *_, shape in stack_sizes(recurrent_op, input_dim, hidden, num_layers, bidirectional):
        n = 1
        for d in shape:
            n *= d
        total += n
    return total


def _attrs(node):
    h = int_attr(node, "hidden_size", 1)
    L = int_attr(node, "num_layers", 1)
    op = node.attributes.get("recurrent_op")
    if op not in RECURRENT_OPS:
        fail(node, "recurrent_op must be one of %s; got %r", ", ".join(repr(k) for k in RECURRENT_OPS), op)
    bidir = node.attributes.get("bidirectional")
    if not isinstance(bidir, bool):
        fail(node, "bidirectional must be True or False; got %r", bidir)
    return h, L, bidir, op


def infer_rnnstack(node):
    """Output (directions*hidden,) per step; a weights Parameter declared with inferred
    dimensions gets CNTK's shape (total / hidden, hidden) once the input size is known."""
    x, w = node.inputs
    h, L, bidir, op = _attrs(node)
    dtype = common_dtype(node, node.inputs)
    if x._is_sparse:
        fail(node, "the operand %s must be dense (embed a sparse input first)", x._describe())
    if x._shape is not None and len(x._shape) != 1:
        fail(node, "the operand %s must have rank 1; it has rank %d", x._describe(), len(x._shape))
    if x._dynamic_axes is not None and x.sequence_axis is None:
        fail(node, "the operand %s must be a sequence", x._describe())
    if w._dynamic_axes:
        fail(node, "the weights %s must not have dynamic axes", w._describe())
    out = Type((2 * h if bidir else h,), dtype, x._dynamic_axes)
    if x._shape is None or x._shape[0] < 0 or w._shape is None:
        return [out]
    total = stack_param_count(op, x._shape[0], h, L, bidir)
    W = w._shape
    if any(d < 0 for d in W):
        if w._owner is not None or not hasattr(w, "_set_inferred_shape"):
            return [out]
        known = 1
        for d in W:
            known *= d if d >= 0 else 1
        free = [i for i, d in enumerate(W) if d < 0]
        if len(W) == 2 and len(free) == 2:
            new = (total // h, h)
        elif len(free) == 1 and total % known == 0:
            new = tuple(total // known if d < 0 else d for d in W)
        else:
            fail(node, "cannot infer the weights %s: the stack needs %d numbers", w._describe(), total)
        w._set_inferred_shape(new)
        W = w._shape
    n = 1
    for d in W:
        n *= d
    if n != total:
        fail(node, "the weights %s hold %d numbers; a %s stack of %d layer(s)%s with input size %d and hidden "
             "size %d needs %d (shape (%d, %d))", w._describe(), n, op, L, " (bidirectional)" if bidir else "",
             x._shape[0], h, total, total // h, h)
    return [out]


def build_rnnstack(ctx):
    h, L, bidir, op = _attrs(ctx.node)
    kind = RECURRENT_OPS[op]
    pieces = []
    off = 0
    for layer, d, what, shape in stack_sizes(op, ctx.in_shapes[0][0], h, L, bidir):
        n = 1
        for s in shape:
            n *= s
        pieces.append(((layer, d, what), off, n, shape))
        off += n
    # torch wants per layer and direction [w_ih, w_hh, b_ih, b_hh]
    index = {k: i for i, (k, _, _, _) in enumerate(pieces)}
    order = [index[(layer, d, what)] for layer in range(L) for d in range(2 if bidir else 1)
             for what in ("w_ih", "w_hh", "b_ih", "b_hh")]
    pieces = [pieces[i][1:] for i in order]
    seq = ctx.in_axes[0][1]

    def fn(ins, rt):
        x, w = ins
        flat = w.reshape(-1)
        params = [flat.narrow(0, o, n).view(shape) for o, n, shape in pieces]
        return run_recurrence(kind, x, rt.layouts[seq], params, h, L, bidir)[0]
    return fn


register("OptimizedRNNStack", infer_rnnstack, build_rnnstack)
