import hashlib

import pytest
import torch
from torch.testing import assert_close

from ganlib import classifier, data


def test_shipped_weights_match_their_checksum_and_load_frozen():
    assert hashlib.sha256(classifier.WEIGHTS.read_bytes()).hexdigest() == classifier.SHA256
    assert classifier.WEIGHTS.stat().st_size < 1_000_000
    model = classifier.load_classifier()
    assert not model.training and not any(p.requires_grad for p in model.parameters())


def test_tampered_or_missing_weights_are_refused_before_loading(tmp_path, monkeypatch):
    raw = bytearray(classifier.WEIGHTS.read_bytes())
    raw[len(raw) // 2] ^= 1  # one flipped bit, deep inside a tensor
    tampered = tmp_path / "fashion_mnist_classifier.pt"
    tampered.write_bytes(raw)
    monkeypatch.setattr(classifier, "WEIGHTS", tampered)
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load ran before the checksum"))
    with pytest.raises(classifier.WeightsMismatch) as err:
        classifier.load_classifier()
    message = str(err.value)
    assert classifier.SHA256 in message and hashlib.sha256(raw).hexdigest() in message
    assert "python tools/train_classifier.py" in message
    monkeypatch.setattr(classifier, "WEIGHTS", tmp_path / "nowhere.pt")
    with pytest.raises(classifier.WeightsMismatch, match="missing"):
        classifier.load_classifier()


def test_shapes_and_heads():
    model = classifier.load_classifier()
    x = torch.rand(5, 1, 28, 28) * 2 - 1
    logits, phi = model(x), model.features(x)
    assert logits.shape == (5, classifier.N_CLASSES) and phi.shape == (5, classifier.FEATURE_DIM)
    assert_close(logits, model.head(phi))  # the features are the penultimate layer
    assert_close(model.probs(x), torch.softmax(logits, dim=1))


def test_apply_batched_is_the_unbatched_function_without_a_graph():
    model = classifier.FashionClassifier().eval()  # trainable weights: a graph would be recorded
    x = torch.randn(70, 1, 28, 28)
    out = classifier.apply_batched(model.features, x, batch_size=16)  # 16 + 16 + 16 + 16 + 6
    assert out.shape == (70, classifier.FEATURE_DIM) and not out.requires_grad
    with torch.no_grad():
        assert_close(out, model.features(x))


def test_training_is_seeded_and_leaves_the_global_rng_alone():
    x, y = torch.rand(256, 1, 28, 28) * 2 - 1, torch.arange(256) % 10
    state = torch.get_rng_state()
    a, b, c = (classifier.train_classifier(x, y, epochs=1, batch_size=64, seed=s) for s in (1, 1, 2))
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())
    assert not torch.equal(a.head.weight, c.head.weight)
    assert not a.training


def test_shipped_classifier_reaches_90_percent_on_the_real_test_set():
    try:
        test = data.load_images("fashion_mnist", split="test", download=False)
    except data.DatasetUnavailable:
        pytest.skip("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)")
    assert classifier.accuracy(classifier.load_classifier(), test.x, test.y) >= 0.90


def test_metric_inputs_are_the_batched_features_and_probabilities_in_float64():
    torch.manual_seed(0)
    model = classifier.FashionClassifier().eval()
    x = torch.rand(7, 1, 28, 28) * 2 - 1
    features, probs = classifier.metric_inputs(model, batch_size=3)  # 3 + 3 + 1: batches must not change values
    with torch.no_grad():
        torch.testing.assert_close(features(x), model.features(x).double(), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(probs(x), model.probs(x).double(), rtol=1e-5, atol=1e-6)
    assert features(x).dtype == probs(x).dtype == torch.float64 and not features(x).requires_grad


def test_sample_quality_is_fid_and_the_class_check_of_the_images():
    """One pass: FID as metrics.fid of the features, and the class shares and confidence of model.probs,
    each computed here by its own route (metric_inputs' probabilities, a Python count of the labels)."""
    from ganlib import metrics

    torch.manual_seed(0)
    model = classifier.FashionClassifier().eval()
    x, x_real = torch.rand(60, 1, 28, 28) * 2 - 1, torch.rand(60, 1, 28, 28) * 2 - 1
    features, probs = classifier.metric_inputs(model, batch_size=7)
    got = classifier.sample_quality(model, x, features(x_real), batch_size=7)
    p = probs(x)
    labels = p.argmax(dim=1).tolist()
    assert got["min_class_share"] == pytest.approx(min(labels.count(k) for k in range(10)) / 60)
    assert got["confidence"] == pytest.approx(float(p.max(dim=1).values.mean()), rel=1e-5)
    assert got["FID"] == pytest.approx(metrics.fid(features(x_real), features(x)), rel=1e-6)
    y = torch.arange(60) % 10
    asked = classifier.sample_quality(model, x, features(x_real), y, batch_size=7)["consistency"]
    assert asked == pytest.approx(sum(a == b for a, b in zip(labels, y.tolist())) / 60)
