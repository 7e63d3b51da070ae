"""Randomization (deterministic, a permutation per sweep, bounded by the window), distributed
partitioning (disjoint and complete), and checkpoint/restore equality."""

import json

import numpy as np
import pytest

from cntk.io import MinibatchSource, CTFDeserializer, StreamDef, StreamDefs

XY = StreamDefs(x=StreamDef(field="x", shape=1), y=StreamDef(field="y", shape=3, is_sparse=True))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """200 sequences of 1..5 samples; small chunks (about 30 of them)."""
    rng = np.random.default_rng(7)
    lengths = rng.integers(1, 6, 200)
    lines = ["%d |x %d |y %d:1" % (i, i, t % 3) for i, n in enumerate(lengths) for t in range(n)]
    p = tmp_path_factory.mktemp("rand") / "c.ctf"
    p.write_text("\n".join(lines) + "\n")
    return str(p), lengths


def source(corpus, chunk_size=300, **kw):
    return MinibatchSource(CTFDeserializer(corpus[0], XY, chunk_size=chunk_size), **kw)


def keys(mb):
    for si, d in mb.items():
        if si.name == "x":
            return [int(s[0, 0]) for s in d.as_sequences()]
    return []


def sweep_keys(src, size=17, **kw):
    out = []
    while True:
        mb = src.next_minibatch(size, **kw)
        if not mb:
            return out
        out += keys(mb)


def chunk_of(corpus, chunk_size=300):
    d = CTFDeserializer(corpus[0], XY, chunk_size=chunk_size)
    return {int(k): c for c in range(d.num_chunks()) for k in d.sequence_keys(c)}, d.num_chunks()


def test_randomized_sweeps_are_permutations_and_differ(corpus):
    src = source(corpus, max_sweeps=3, randomization_window_in_chunks=4)
    sweep, sweeps = [], []
    while True:
        mb = src.next_minibatch(20)
        if not mb:
            break
        sweep += keys(mb)
        if next(iter(mb.values())).end_of_sweep:
            sweeps.append(sweep)
            sweep = []
    assert len(sweeps) == 3 or (len(sweeps) == 2 and sweep)
    # minibatches can straddle sweeps, so compare the concatenation split at multiples of 200
    flat = sum(sweeps, []) + sweep
    parts = [flat[i:i + 200] for i in range(0, 600, 200)]
    for p in parts:
        assert sorted(p) == list(range(200))
    assert parts[0] != parts[1] != parts[2] and parts[0] != list(range(200))


def test_same_seed_same_order_other_seed_other_order(corpus):
    a = sweep_keys(source(corpus, max_sweeps=2, randomization_seed=5))
    b = sweep_keys(source(corpus, max_sweeps=2, randomization_seed=5))
    c = sweep_keys(source(corpus, max_sweeps=2, randomization_seed=6))
    assert a == b and a != c and sorted(a) == sorted(c)
    # the seed is incremented every sweep: seed 6's first sweep is seed 5's second one
    assert c[:200] == a[200:400]


def test_no_randomization_is_file_order(corpus):
    assert sweep_keys(source(corpus, randomize=False, max_sweeps=2)) == list(range(200)) * 2


@pytest.mark.parametrize("window", [1, 3])
def test_randomization_stays_within_the_chunk_window(corpus, window):
    chunks, C = chunk_of(corpus)
    assert C > 20
    ks = sweep_keys(source(corpus, max_sweeps=1, randomization_window_in_chunks=window))
    assert sorted(ks) == list(range(200))
    cs = [chunks[k] for k in ks]
    # windows of `window` chunks follow each other: a window's sequences are all visited before
    # a chunk of the next window appears
    count = {c: list(chunks.values()).count(c) for c in set(chunks.values())}
    win, seen = set(), 0
    for c in cs:
        if c not in win:
            if len(win) == window:
                assert seen == sum(count[x] for x in win)
                win, seen = set(), 0
            win.add(c)
        seen += 1
    if window == 3:     # and inside a window the chunks' sequences are mixed
        assert any(len(set(cs[i:i + 6])) > 1 for i in range(0, 60, 6))


def test_window_in_samples(corpus):
    chunks, _ = chunk_of(corpus)
    ks = sweep_keys(source(corpus, max_sweeps=1, randomization_window_in_samples=200))
    assert sorted(ks) == list(range(200)) and ks != list(range(200))


@pytest.mark.parametrize("K", [2, 3])
@pytest.mark.parametrize("mode", ["chunks", "positions", "few chunks"])
def test_partitions_are_disjoint_and_complete(corpus, K, mode):
    kw = dict(max_sweeps=1)
    chunk_size = 300
    if mode == "positions":
        kw["randomize"] = False
    elif mode == "few chunks":
        chunk_size = 10 ** 6        # one chunk: fewer chunks than workers, so by position
    chunks, _ = chunk_of(corpus, chunk_size)
    parts, per_call = [], []
    for r in range(K):
        src = source(corpus, chunk_size=chunk_size, **kw)
        got, n = [], []
        while True:
            mb = src.next_minibatch(60, num_data_partitions=K, partition_index=r)
            if not mb:
                break
            got += keys(mb)
            n.append(next(d for si, d in mb.items() if si.name == "x").num_samples)
        parts.append(got)
        per_call.append(n)
    everything = sorted(sum(parts, []))
    assert everything == list(range(200))                      # complete and disjoint
    if mode == "chunks":
        for r, got in enumerate(parts):
            assert {chunks[k] % K for k in got} == {r}
    else:
        # by position: worker r of every global minibatch; the minibatch size is global
        assert all(np.mean(n) < 60 / K + 6 for n in per_call)


def test_checkpoint_restore_continues_identically(corpus):
    sizes = [13, 40, 7, 25]
    for kw in (dict(), dict(randomize=False), dict(frame_mode=True), dict(truncation_length=3),
               dict(randomization_window_in_samples=150, max_samples=900)):
        ref = source(corpus, **kw)
        for i in range(9):
            ref.next_minibatch(sizes[i % 4])
        state = json.loads(json.dumps(ref.get_checkpoint_state()))      # JSON-able
        expect = [keys(ref.next_minibatch(sizes[i % 4])) for i in range(25)]
        new = source(corpus, **kw)
        new.next_minibatch(99)          # wherever it was, restoring moves it
        new.restore_from_checkpoint(state)
        assert [keys(new.next_minibatch(sizes[i % 4])) for i in range(25)] == expect, kw
        new.current_position = state
        assert keys(new.next_minibatch(sizes[0])) == expect[0]


def test_restore_refuses_a_differently_configured_state(corpus):
    a = source(corpus, randomization_seed=1)
    a.next_minibatch(10)
    b = source(corpus, randomization_seed=2)
    with pytest.raises(ValueError, match="configured differently.*seed"):
        b.restore_from_checkpoint(a.get_checkpoint_state())
    with pytest.raises(ValueError, match="not a reader state"):
        b.restore_from_checkpoint({"cursor": 3})


def test_distributed_workers_share_one_checkpoint(corpus):
    K = 2
    srcs = [source(corpus) for _ in range(K)]
    for _ in range(5):
        for r, s in enumerate(srcs):
            s.next_minibatch(30, num_data_partitions=K, partition_index=r)
    state = srcs[0].get_checkpoint_state()
    assert state == srcs[1].get_checkpoint_state()        # the workers agree on the position
    expect = [[keys(s.next_minibatch(30, num_data_partitions=K, partition_index=r)) for _ in range(4)]
              for r, s in enumerate(srcs)]
    for r in range(K):
        s = source(corpus)
        s.restore_from_checkpoint(state)
        assert [keys(s.next_minibatch(30, num_data_partitions=K, partition_index=r)) for _ in range(4)] == expect[r]
