"""A ConvNet on the handwritten digits that ship with scikit-learn (8x8 images, 10 classes),
written as a CNTK user writes it: the data goes to CNTK text format (CTF) files, a
MinibatchSource reads them, the model is built from C.layers, a Trainer with a momentum-SGD
learner trains it while a ProgressPrinter reports, and the trained model is saved, loaded back
and evaluated again.

    python examples/digits_convnet.py [--epochs 20] [--data-dir DIR] [--model FILE]
"""

import argparse
import os
import tempfile

import numpy as np

import cntk as C

NUM_CLASSES = 10
IMAGE_SHAPE = (1, 8, 8)      # channels, height, width
NUM_PIXELS = 64


def write_ctf(path, images, labels):
    """One line per image: the one-hot label and the 64 pixel values (0-16)."""
    with open(path, "w") as f:
        for image, label in zip(images, labels):
            one_hot = " ".join("1" if k == label else "0" for k in range(NUM_CLASSES))
            pixels = " ".join("%g" % v for v in image)
            f.write("|labels %s |features %s\n" % (one_hot, pixels))


def prepare_data(data_dir, test_fraction=0.2, seed=0):
    """Split scikit-learn's digits into training and test CTF files; returns their paths and sizes."""
    from sklearn.datasets import load_digits
    digits = load_digits()
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(digits.target))
    n_test = int(round(len(order) * test_fraction))
    test, train = order[:n_test], order[n_test:]
    os.makedirs(data_dir, exist_ok=True)
    train_file = os.path.join(data_dir, "digits_train_cntk_text.txt")
    test_file = os.path.join(data_dir, "digits_test_cntk_text.txt")
    write_ctf(train_file, digits.data[train], digits.target[train])
    write_ctf(test_file, digits.data[test], digits.target[test])
    return train_file, test_file, len(train), len(test)


def create_reader(path, is_training):
    """A MinibatchSource over a CTF file: randomized and endless for training, one pass for testing."""
    streams = C.io.StreamDefs(
        labels=C.io.StreamDef(field='labels', shape=NUM_CLASSES, is_sparse=False),
        features=C.io.StreamDef(field='features', shape=NUM_PIXELS, is_sparse=False))
    return C.io.MinibatchSource(C.io.CTFDeserializer(path, streams), randomize=is_training,
                                max_sweeps=C.io.INFINITELY_REPEAT if is_training else 1)


def create_model(features):
    """Two convolution blocks and a dense classifier; returns unnormalized class scores."""
    with C.layers.default_options(init=C.glorot_uniform(), activation=C.relu):
        h = C.reshape(features / 16.0, IMAGE_SHAPE)      # pixels 0-16 -> 0-1, as images
        h = C.layers.Convolution2D((3, 3), 32, pad=True)(h)
        h = C.layers.Convolution2D((3, 3), 32, pad=True)(h)
        h = C.layers.MaxPooling((2, 2), strides=(2, 2))(h)
        h = C.layers.Convolution2D((3, 3), 64, pad=True)(h)
        h = C.layers.MaxPooling((2, 2), strides=(2, 2))(h)
        h = C.layers.Dense(128)(h)
        h = C.layers.Dropout(0.25)(h)
        return C.layers.Dense(NUM_CLASSES, activation=None)(h)


def evaluate(function, features, labels, reader, minibatch_size=256):
    """The classification error of ``function`` (class scores) over one pass of ``reader``."""
    error = C.classification_error(function, labels)
    input_map = {features: reader.streams.features, labels: reader.streams.labels}
    wrong = total = 0
    while True:
        data = reader.next_minibatch(minibatch_size, input_map=input_map)
        if not data:
            break
        n = data[labels].num_samples
        wrong += float(np.sum(error.eval({features: data[features], labels: data[labels]})))
        total += n
    return wrong / total, total


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--minibatch-size", type=int, default=64)
    parser.add_argument("--data-dir", default=None, help="where to write the CTF files (default: a temporary folder)")
    parser.add_argument("--model", default=None, help="where to save the trained model (default: in --data-dir)")
    args = parser.parse_args()

    np.random.seed(1)
    C.initializer.set_global_seed(1)
    data_dir = args.data_dir or tempfile.mkdtemp(prefix="cntk_digits_")
    train_file, test_file, num_train, num_test = prepare_data(data_dir)
    print("Digits: %d training and %d test images, written to %s" % (num_train, num_test, data_dir))

    features = C.input_variable(NUM_PIXELS, name='features')
    labels = C.input_variable(NUM_CLASSES, name='labels')
    z = create_model(features)
    loss = C.cross_entropy_with_softmax(z, labels)
    error = C.classification_error(z, labels)
    C.logging.log_number_of_parameters(z)

    # per-sample rates (applied to the gradient summed over each minibatch), lowered after 10 and 15 epochs
    lr = C.learning_parameter_schedule_per_sample([0.01] * 10 + [0.003] * 5 + [0.001], epoch_size=num_train)
    learner = C.momentum_sgd(z.parameters, lr, C.momentum_schedule(0.9, minibatch_size=args.minibatch_size),
                             l2_regularization_weight=1e-4)
    progress = C.logging.ProgressPrinter(tag='Training', num_epochs=args.epochs)
    trainer = C.Trainer(z, (loss, error), [learner], [progress])

    reader = create_reader(train_file, is_training=True)
    input_map = {features: reader.streams.features, labels: reader.streams.labels}
    for epoch in range(args.epochs):
        seen = 0
        while seen < num_train:
            data = reader.next_minibatch(min(args.minibatch_size, num_train - seen), input_map=input_map)
            trainer.train_minibatch(data)
            seen += trainer.previous_minibatch_sample_count
        trainer.summarize_training_progress()

    test_reader = create_reader(test_file, is_training=False)
    test_map = {features: test_reader.streams.features, labels: test_reader.streams.labels}
    while True:
        data = test_reader.next_minibatch(256, input_map=test_map)
        if not data:
            break
        trainer.test_minibatch(data)
    trainer.summarize_test_progress()

    test_error, n = evaluate(z, features, labels, create_reader(test_file, is_training=False))
    print("Test error: %.2f%% of %d images" % (100 * test_error, n))

    model_file = args.model or os.path.join(data_dir, "digits_convnet.model")
    z.save(model_file)
    loaded = C.load_model(model_file)
    x2 = C.input_variable(NUM_PIXELS, name='features')
    y2 = C.input_variable(NUM_CLASSES, name='labels')
    reloaded_error, n = evaluate(loaded(x2), x2, y2, create_reader(test_file, is_training=False))
    print("Test error of the model loaded from %s: %.2f%% of %d images" % (model_file, 100 * reloaded_error, n))
    return test_error, reloaded_error


if __name__ == "__main__":
    main()
