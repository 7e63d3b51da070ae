"""Benchmark: reading CNTK Text Format (CTF) with ``CTFDeserializer`` / ``MinibatchSource``.

1. Parsing: every chunk of ``../shared/data/atis/atis.train.ctf`` (sparse, with comments; skipped
   when the shared data is absent) and of a synthetic dense file (``--size-mb``, default 100 MB:
   50 dense features written with ``%.5g`` and a dense one-hot label of 10, one sample per line)
   generated in a temporary folder. Reports MB/s and samples/s of CPU time of this process
   (one core: the parser is single-threaded numpy), and of wall time: the best of ``--repeat``
   parses after an untimed one.
2. Reading: one randomized sweep through ``MinibatchSource`` (parse, randomize, pack, prefetch).
3. Prefetch: the ATIS slot tagger (Embedding(150), Recurrence(LSTM(300)), Dense(129), SGD),
   minibatches of 1000 samples: steps fed by a MinibatchSource alternate with steps fed with
   minibatches held in memory; medians of the step times, and of the time a step waited for
   the reader (``next_minibatch``).

    python bench/ctf_read.py [--size-mb N] [--steps N] [--quick] [--threads N]
"""

import argparse
import os
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)
import cntk as C  # noqa: E402
from cntk.io import CTFDeserializer, MinibatchSource, StreamDef, StreamDefs  # noqa: E402

ATIS = os.path.join(os.path.dirname(REPO), "shared", "data", "atis", "atis.train.ctf")
ATIS_STREAMS = dict(query=("S0", 943), intent=("S1", 26), labels=("S2", 129))


def atis_streams():
    return StreamDefs(**{k: StreamDef(field=f, shape=d, is_sparse=True) for k, (f, d) in ATIS_STREAMS.items()})


def dense_streams():
    return StreamDefs(features=StreamDef(field="features", shape=50), labels=StreamDef(field="labels", shape=10))


def make_dense_file(folder, size_mb, seed=0):
    """About ``size_mb`` MB of dense CTF: a block of distinct lines repeated."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((4000, 50)).astype(np.float32)
    lab = rng.integers(0, 10, 4000)
    onehot = [" ".join("1" if j == k else "0" for j in range(10)) for k in range(10)]
    block = "".join("|features %s |labels %s\n" % (" ".join("%.5g" % v for v in x), onehot[k])
                    for x, k in zip(X, lab)).encode()
    path = os.path.join(folder, "dense.ctf")
    reps = max(1, int(round(size_mb * 1e6 / len(block))))
    with open(path, "wb") as f:
        for _ in range(reps):
            f.write(block)
    return path


def parse_all(path, streams, repeat):
    """(bytes, samples, best CPU seconds, best wall seconds) to parse every chunk of the file,
    after one untimed parse (lazy imports and the allocator's first growth are not parsing)."""
    d = CTFDeserializer(path, streams)
    size = os.path.getsize(path)
    d.get_chunk(0)
    best_cpu = best_wall = float("inf")
    samples = 0
    for _ in range(repeat):
        d._last = None       # no cached parse
        c0, w0 = time.process_time(), time.perf_counter()
        samples = 0
        for c in range(d.num_chunks()):
            ch = d.get_chunk(c)
            samples += int(np.max([p.lengths for p in ch.values()], axis=0).sum())
        best_cpu = min(best_cpu, time.process_time() - c0)
        best_wall = min(best_wall, time.perf_counter() - w0)
    return size, samples, best_cpu, best_wall


def report_parse(name, path, streams, repeat):
    size, samples, cpu, wall = parse_all(path, streams, repeat)
    print("%-28s %7.1f MB  %8.1f MB/s cpu  %8.1f MB/s wall  %10.0f samples/s cpu"
          % (name, size / 1e6, size / cpu / 1e6, size / wall / 1e6, samples / cpu))


def report_sweep(name, path, streams, mb):
    src = MinibatchSource(CTFDeserializer(path, streams), max_sweeps=1)
    w0 = time.perf_counter()
    samples = 0
    while True:
        batch = src.next_minibatch(mb)
        if not batch:
            break
        samples += max(d.num_samples for d in batch.values())
    wall = time.perf_counter() - w0
    size = os.path.getsize(path)
    print("%-28s %7.1f MB  %8.1f MB/s wall  %10.0f samples/s (minibatches of %d)"
          % (name, size / 1e6, size / wall / 1e6, samples / wall, mb))


def tagger_steps(steps, mb_size):
    x = C.sequence.input_variable(943, is_sparse=True)
    y = C.sequence.input_variable(129, is_sparse=True)
    model = C.layers.Sequential([C.layers.Embedding(150), C.layers.Recurrence(C.layers.LSTM(300)),
                                 C.layers.Dense(129)])
    z = model(x)
    loss = C.cross_entropy_with_softmax(z, y)
    trainer = C.Trainer(z, (loss, C.classification_error(z, y)),
                        [C.sgd(z.parameters, C.learning_parameter_schedule_per_sample(0.01))])
    src = MinibatchSource(CTFDeserializer(ATIS, atis_streams()), randomize=True)
    imap = {x: src.streams.query, y: src.streams.labels}
    kept = [src.next_minibatch(mb_size, input_map=imap) for _ in range(steps)]
    for mb in kept[:3]:                      # warm-up
        trainer.train_minibatch(mb)

    # alternate steps fed by the source and by minibatches held in memory (the order flips
    # every iteration), so that both see the same machine load; report medians
    source = MinibatchSource(CTFDeserializer(ATIS, atis_streams()), randomize=True)
    smap = {x: source.streams.query, y: source.streams.labels}
    source.next_minibatch(mb_size, input_map=smap)          # index and parse before timing
    with_reader, held, waits = [], [], []
    for i in range(steps):
        for from_source in ((True, False) if i % 2 == 0 else (False, True)):
            t0 = time.perf_counter()
            if from_source:
                mb = source.next_minibatch(mb_size, input_map=smap)
                waits.append(time.perf_counter() - t0)
            else:
                mb = kept[i % len(kept)]
            trainer.train_minibatch(mb)
            (with_reader if from_source else held).append(time.perf_counter() - t0)
    a, b, w = np.median(with_reader), np.median(held), np.median(waits)
    print("tagger step, reading from a MinibatchSource: %.1f ms (waiting for the reader %.2f ms = %.1f%%)"
          % (a * 1e3, w * 1e3, 100.0 * w / a))
    print("tagger step, minibatches held in memory:     %.1f ms" % (b * 1e3))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size-mb", type=float, default=100.0)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.quick:
        args.size_mb, args.steps, args.repeat = 10.0, 8, 2
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    have_atis = os.path.exists(ATIS)
    if have_atis:
        report_parse("parse atis.train.ctf", ATIS, atis_streams(), args.repeat)
    else:
        print("atis.train.ctf not found (%s): skipping the ATIS measurements" % ATIS)
    with tempfile.TemporaryDirectory() as tmp:
        path = make_dense_file(tmp, args.size_mb)
        report_parse("parse synthetic dense", path, dense_streams(), args.repeat)
        if have_atis:
            report_sweep("sweep atis.train.ctf", ATIS, atis_streams(), 1000)
        report_sweep("sweep synthetic dense", path, dense_streams(), 1000)
    if have_atis:
        tagger_steps(args.steps, 1000)


if __name__ == "__main__":
    main()
