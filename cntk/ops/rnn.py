"""CNTK's fused recurrent stack: optimized_rnnstack."""

from ..engine.oplib import rnn as _rnn  # noqa: F401 (registers the op)
from . import _op, _int_arg

__all__ = ["optimized_rnnstack"]


def optimized_rnnstack(operand, weights, hidden_size, num_layers, bidirectional=False, recurrent_op='lstm', name=''):
    """A stack of ``num_layers`` recurrent layers (cuDNN's RNN; torch's fused kernels here) over
    the sequence ``operand`` (rank 1, dense). ``recurrent_op``: 'lstm', 'gru', 'rnnTanh' or
    'rnnReLU'. Each step's output is the last layer's h, of size ``hidden_size`` (twice that
    when ``bidirectional``: forward then backward).

    ``weights`` holds all parameters in cuDNN's packed layout; declare it with inferred
    dimensions, e.g. ``C.parameter((C.InferredDimension, hidden_size))``, and it becomes
    (total / hidden_size, hidden_size). Read flat, it holds every layer's input and recurrent
    matrices (forward, then backward), each (gates*hidden, input) with cuDNN's gate order
    (LSTM: i, f, candidate, o; GRU: r, z, n), then every layer's input and recurrent biases.
    """
    if recurrent_op not in _rnn.RECURRENT_OPS:
        raise ValueError('unsupported recurrent_op value "%s"' % (recurrent_op,))
    return _op("OptimizedRNNStack", [operand, weights],
               {"hidden_size": _int_arg("optimized_rnnstack", "hidden_size", hidden_size, 1),
                "num_layers": _int_arg("optimized_rnnstack", "num_layers", num_layers, 1),
                "bidirectional": bool(bidirectional), "recurrent_op": recurrent_op}, name)
