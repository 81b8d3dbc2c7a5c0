"""Train the course's Fashion-MNIST classifier and write its weights to ganlib/assets/.

    python tools/train_classifier.py

Trains ``ganlib.classifier.FashionClassifier`` from scratch on the real Fashion-MNIST training set
(seed 0, CPU, two threads: two to four minutes), measures it on the test set and writes the
state_dict to ``ganlib/assets/fashion_mnist_classifier.pt``. It prints the SHA-256 to put into
``ganlib/classifier.py`` (``SHA256``): a file trained on another CPU or torch version differs in
the last bits, and so in its digest. Refuses to write weights below the accuracy the course needs.
"""

from __future__ import annotations

import platform
import sys
import time

import torch

from ganlib import classifier, data

SEED = 0
MIN_TEST_ACCURACY = 0.90


def main() -> int:
    torch.set_num_threads(2)
    train = data.load_images("fashion_mnist", split="train", download=False)
    test = data.load_images("fashion_mnist", split="test", download=False)
    start = time.perf_counter()
    model = classifier.train_classifier(train.x, train.y, seed=SEED)
    seconds = time.perf_counter() - start
    acc = classifier.accuracy(model, test.x, test.y)
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} threads, seed {SEED}")
    print(f"training time: {seconds:.0f} s; test accuracy: {100 * acc:.2f}% on {len(test)} images")
    if acc < MIN_TEST_ACCURACY:
        print(f"test accuracy below {100 * MIN_TEST_ACCURACY:.0f}%: weights NOT written", file=sys.stderr)
        return 1
    classifier.WEIGHTS.parent.mkdir(parents=True, exist_ok=True)
    # saved under its final name: torch.save records the file's stem inside the archive
    torch.save(model.state_dict(), classifier.WEIGHTS)
    print(f"wrote {classifier.WEIGHTS} ({classifier.WEIGHTS.stat().st_size / 1024:.0f} KiB)")
    print(f'SHA-256: {classifier.file_sha256(classifier.WEIGHTS)}  (set SHA256 = "..." in ganlib/classifier.py)')
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
