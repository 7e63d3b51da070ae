"""Helpers for the training tests: an in-memory minibatch source with CNTK's MinibatchSource
interface, and a learner that records what the Trainer gives it.

Not a test module: the tests import it (pytest puts this folder on sys.path)."""

import numpy as np
import torch


class StreamInfo:
    """A stream of the in-memory source (equal by name, as CNTK's StreamInformation)."""

    def __init__(self, name):
        self.name = name

    def __eq__(self, other):
        return isinstance(other, StreamInfo) and other.name == self.name

    def __hash__(self):
        return hash(self.name)

    def __repr__(self):
        return "StreamInfo(%s)" % self.name


class MinibatchData:
    """What a reader returns per stream: the data, its sample/sequence counts, the sweep flag."""

    def __init__(self, data, num_sequences, num_samples, end_of_sweep):
        self.data = data
        self.num_sequences = num_sequences
        self.num_samples = num_samples
        self.end_of_sweep = end_of_sweep


class ArraySource:
    """Steps through in-memory data in order: ``streams`` maps names to a list of samples (or of
    sequences with ``sequences=True``; the first stream defines the minibatch size). Whole
    sequences are packed while the sample count stays within the requested size (at least one),
    minibatches stop at the end of a sweep, and after ``max_sweeps`` sweeps it returns {}."""

    def __init__(self, streams, sequences=False, max_sweeps=None):
        self._data = {StreamInfo(k): list(v) for k, v in streams.items()}
        self._infos = list(self._data)
        self.streams = {s.name: s for s in self._infos}
        self.sequences = sequences
        self.max_sweeps = max_sweeps
        self.n = len(next(iter(self._data.values())))
        self.position = 0
        self.sweep = 0
        self.calls = []

    def stream_infos(self):
        return list(self._infos)

    def is_infinite(self):
        return self.max_sweeps is None

    def _length(self, i):
        first = self._data[self._infos[0]][i]
        return len(first) if self.sequences else 1

    def next_minibatch(self, minibatch_size_in_samples, input_map=None, device=None, num_data_partitions=None,
                       partition_index=None):
        self.calls.append(minibatch_size_in_samples)
        if self.max_sweeps is not None and self.sweep >= self.max_sweeps:
            return {}
        start, total = self.position, 0
        end = start
        while end < self.n and (end == start or total + self._length(end) <= minibatch_size_in_samples):
            total += self._length(end)
            end += 1
        sweep_end = end == self.n
        self.position = 0 if sweep_end else end
        if sweep_end:
            self.sweep += 1
        out = {}
        for s, items in self._data.items():
            chunk = items[start:end]
            data = [np.asarray(c) for c in chunk] if self.sequences else np.stack([np.asarray(c) for c in chunk])
            samples = sum(len(c) for c in chunk) if self.sequences else len(chunk)
            out[s] = MinibatchData(data, len(chunk), samples, sweep_end)
        if input_map is not None:
            return {v: out[s] for v, s in input_map.items()}
        return out

    def get_checkpoint_state(self):
        return {"position": self.position, "sweep": self.sweep}

    def restore_from_checkpoint(self, state):
        self.position, self.sweep = int(state["position"]), int(state["sweep"])


class RecordingLearner:
    """Plain SGD on the summed gradient (w -= lr * g) that records every call."""

    def __init__(self, parameters, lr=0.0):
        self.parameters = list(parameters)
        self.lr = lr
        self.calls = []     # (gradients as numpy, sample count, sweep end)
        self.total_number_of_samples_seen = 0

    def learning_rate(self):
        return self.lr

    def _update(self, grads, sample_count, is_sweep_end):
        self.calls.append(({p: grads[p].detach().cpu().numpy().copy() for p in self.parameters}, sample_count,
                           is_sweep_end))
        with torch.no_grad():
            for p in self.parameters:
                p._tensor().sub_(self.lr * grads[p])
        self.total_number_of_samples_seen += sample_count
        return True

    def create_checkpoint(self):
        return {"seen": self.total_number_of_samples_seen, "lr": self.lr}

    def restore_from_checkpoint(self, state):
        self.total_number_of_samples_seen = state["seen"]
        self.lr = state["lr"]
