"""Central finite-difference gradients of scalar functions, for float64 gradient checks."""

import numpy as np

EPS = 1e-6


def numeric_gradient(f, x, eps=EPS):
    """d f(x) / d x by central differences; ``f`` gets a perturbed copy of the array ``x``."""
    x = np.asarray(x)
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        plus, minus = x.copy(), x.copy()
        plus[i] += eps
        minus[i] -= eps
        g[i] = (f(plus) - f(minus)) / (2 * eps)
    return g


def parameter_gradient(f, p, eps=EPS):
    """d f() / d p for the Parameter (or Constant) ``p``: ``f`` runs with ``p.value`` perturbed;
    ``p`` keeps its value."""
    base = p.value

    def at(v):
        p.value = v
        return f()
    try:
        return numeric_gradient(at, base, eps)
    finally:
        p.value = base


def sequence_gradients(f, seqs, eps=EPS):
    """[d f(seqs) / d seqs[b] for each b]: ``f`` gets the list of sequences with one of them
    perturbed."""
    out = []
    for b, s in enumerate(seqs):
        def at(v, b=b):
            data = list(seqs)
            data[b] = v
            return f(data)
        out.append(numeric_gradient(at, s, eps))
    return out
