"""The order in which a source visits sequences: sweeps, randomization windows, partitions.

Sweep ``s`` visits the chunks in a permutation drawn with seed ``randomization_seed + s``
(file order without randomization), grouped into consecutive windows of
``window_in_chunks`` chunks (or of at least ``window_in_samples`` samples). The sequences of a
window are visited in a random permutation drawn with a seed derived from the sweep seed and
the window's position (file order without randomization). Only the chunks of the current
window need to be in memory, and every sweep visits every sequence exactly once.

A position is ``(sweep, window start, offset in window)``; everything else is recomputed from
the seed, so positions are small, deterministic and checkpointable.
"""

import numpy as np


class Window:
    """One window of a sweep: the chunks ``order[start:end]`` and its sequences in visiting
    order, as ``chunk`` and ``index`` arrays, with their ``sizes``."""

    __slots__ = ("sweep", "start", "end", "chunk", "index", "sizes")


class Randomizer:
    def __init__(self, corpus, randomize, window_in_chunks, window_in_samples, seed):
        self.corpus = corpus
        self.randomize = bool(randomize)
        self.window_in_chunks = int(window_in_chunks)
        self.window_in_samples = int(window_in_samples)
        self.seed = int(seed)
        self._order = {}            # sweep -> chunk order (the last few)
        self._window = None

    def chunk_order(self, sweep):
        o = self._order.get(sweep)
        if o is None:
            C = self.corpus.num_chunks
            if self.randomize:
                o = np.random.default_rng(np.random.SeedSequence([self.seed + sweep, 0x5eed])).permutation(C)
            else:
                o = np.arange(C)
            if len(self._order) > 4:
                self._order.clear()
            self._order[sweep] = o
        return o

    def window_end(self, sweep, start):
        """The end (exclusive, in the sweep's chunk order) of the window starting at ``start``."""
        order = self.chunk_order(sweep)
        C = len(order)
        if not self.randomize:
            return start + 1
        if self.window_in_samples > 0:
            total, end = 0, start
            while end < C and (end == start or total < self.window_in_samples):
                total += int(self.corpus.sizes(int(order[end]), sweep).sum())
                end += 1
            return end
        return min(C, start + max(self.window_in_chunks, 1))

    def window(self, sweep, start):
        w = self._window
        if w is not None and w.sweep == sweep and w.start == start:
            return w
        order = self.chunk_order(sweep)
        end = self.window_end(sweep, start)
        cids = [int(c) for c in order[start:end]]
        self.corpus.ensure_cache(len(cids) + 2)     # the whole window stays loaded while in use
        self.corpus.preload(cids, sweep)
        sizes = [self.corpus.sizes(c, sweep) for c in cids]
        chunk = np.concatenate([np.full(len(s), c, dtype=np.int64) for c, s in zip(cids, sizes)])
        index = np.concatenate([np.arange(len(s), dtype=np.int64) for s in sizes])
        size = np.concatenate(sizes).astype(np.int64)
        if self.randomize and len(chunk) > 1:
            rng = np.random.default_rng(np.random.SeedSequence([self.seed + sweep, 1 + start]))
            perm = rng.permutation(len(chunk))
            chunk, index, size = chunk[perm], index[perm], size[perm]
        w = Window()
        w.sweep, w.start, w.end, w.chunk, w.index, w.sizes = sweep, start, end, chunk, index, size
        self._window = w
        return w
