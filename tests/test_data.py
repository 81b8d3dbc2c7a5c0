import gzip
import math
import struct
import time

import numpy as np
import pytest
import torch
from scipy.stats import norm
from torch.testing import assert_close

from ganlib import data


def test_mixture_density_matches_scipy_in_one_dimension():
    mix = data.GaussianMixture([[-2.0], [1.0]], [0.5, 1.5], weights=[1, 3])
    x = torch.linspace(-6, 6, 101)
    expected = 0.25 * norm.pdf(x, -2, 0.5) + 0.75 * norm.pdf(x, 1, 1.5)
    assert_close(mix.density(x), torch.as_tensor(expected, dtype=torch.float32), rtol=1e-5, atol=1e-7)
    assert_close(mix.density(x[:, None]), mix.density(x))  # (n,) and (n, 1) are the same points


def test_two_dimensional_density_integrates_to_one():
    for target in (data.ring(std=0.1), data.grid(std=0.2), data.gaussian([0.5, -0.5], 0.7)):
        ticks = torch.linspace(-7, 7, 561)
        area = float(ticks[1] - ticks[0]) ** 2
        assert abs(float(target.density(torch.cartesian_prod(ticks, ticks)).sum()) * area - 1) < 1e-3


def test_samples_follow_the_mixture():
    gen = torch.Generator().manual_seed(0)
    mix = data.GaussianMixture([[-2.0], [1.0]], [0.5, 1.5], weights=[1, 3])
    x = mix.sample(200_000, generator=gen)
    mean = 0.25 * -2 + 0.75 * 1
    var = 0.25 * (0.25 + 4) + 0.75 * (2.25 + 1) - mean**2
    assert x.shape == (200_000, 1)
    assert abs(float(x.mean()) - mean) < 0.01 and abs(float(x.var()) - var) < 0.03


def test_ring_and_grid_have_the_published_layouts():
    r = data.ring()
    assert_close(r.means.norm(dim=1), torch.ones(8))
    assert_close(r.means[2], torch.tensor([0.0, 1.0]), atol=1e-6, rtol=0)
    g = data.grid()
    assert sorted(set(g.means[:, 0].tolist())) == [-4.0, -2.0, 0.0, 2.0, 4.0] and len(g.means) == 25
    assert_close(torch.stack([r.stds[0], g.stds[0]]), torch.tensor([0.01, 0.05]))  # float32


def test_swiss_roll_samples_and_refuses_a_density():
    x = data.SwissRoll().sample(1000)
    assert x.shape == (1000, 2) and x.abs().max() < 2.5
    with pytest.raises(NotImplementedError):
        data.SwissRoll().density(x)


def test_bad_shapes_and_parameters_raise_clear_errors():
    with pytest.raises(ValueError, match=r"shape \(n, 2\)"):
        data.ring().density(torch.zeros(5, 3))
    with pytest.raises(ValueError, match="positive std"):
        data.GaussianMixture([[0.0], [1.0]], [1.0, -1.0])


def _write_idx(path, array):
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    (gzip.open if path.suffix == ".gz" else open)(path, "wb").write(header + array.astype(np.uint8).tobytes())


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_read_idx_round_trip(tmp_path, suffix):
    a = np.random.default_rng(0).integers(0, 256, size=(3, 4, 5))
    _write_idx(tmp_path / f"x-idx3-ubyte{suffix}", a)
    assert np.array_equal(data.read_idx(tmp_path / f"x-idx3-ubyte{suffix}"), a)


def test_mnist_like_files_in_the_data_root_are_used(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "DEBIAN_ROOT", tmp_path / "nowhere")
    folder = tmp_path / "fashion-mnist"
    folder.mkdir()
    imgs = np.zeros((4, 28, 28), dtype=np.uint8)
    imgs[1] = 255
    _write_idx(folder / "t10k-images-idx3-ubyte.gz", imgs)
    _write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.array([3, 1, 4, 1]))
    ds = data.load_images("fashion_mnist", split="test", root=tmp_path, download=False)
    assert ds.x.shape == (4, 1, 28, 28) and ds.shape == (1, 28, 28)
    assert ds.x[0].min() == -1 and ds.x[1].max() == 1  # [0, 255] -> [-1, 1]
    assert ds.y.tolist() == [3, 1, 4, 1] and ds.classes[3] == "Dress"


def test_unavailable_dataset_fails_fast_with_instructions(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "DEBIAN_ROOT", tmp_path / "nowhere")
    start = time.perf_counter()
    for name, hint in [("fashion_mnist", "apt-get install dataset-fashion-mnist"), ("cifar10", "cifar-10-python"),
                       ("mnist", "IDX files")]:
        with pytest.raises(data.DatasetUnavailable, match=hint) as err:
            data.load_images(name, root=tmp_path, download=False)
        assert "GANLIB_DATA" in str(err.value)
    assert time.perf_counter() - start < 10  # no network call was attempted


def test_offline_environment_disables_downloads(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "DEBIAN_ROOT", tmp_path / "nowhere")
    monkeypatch.setenv("GANLIB_OFFLINE", "1")
    monkeypatch.setattr(data, "_download", lambda *a: pytest.fail("download attempted while offline"))
    with pytest.raises(data.DatasetUnavailable):
        data.load_images("mnist", root=tmp_path)


def test_a_failed_download_becomes_instructions(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "DEBIAN_ROOT", tmp_path / "nowhere")

    def refuse(*args):
        raise OSError("network is unreachable")

    monkeypatch.setattr(data, "_download", refuse)
    with pytest.raises(data.DatasetUnavailable, match="network is unreachable"):
        data.load_images("mnist", root=tmp_path, download=True)


def test_unknown_names_are_refused():
    with pytest.raises(ValueError, match="fashion_mnist, mnist, cifar10, celeba"):
        data.load_images("imagenet")
    with pytest.raises(ValueError, match="split"):
        data.load_images("mnist", split="validation")


def _fashion_mnist_or_skip(split):
    try:
        return data.load_images("fashion_mnist", split=split, download=False)
    except data.DatasetUnavailable:
        pytest.skip("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)")


def test_real_fashion_mnist_is_complete_and_scaled():
    for split, n in [("train", 60_000), ("test", 10_000)]:
        ds = _fashion_mnist_or_skip(split)
        assert ds.x.shape == (n, 1, 28, 28) and ds.x.dtype == torch.float32
        assert float(ds.x.min()) == -1.0 and float(ds.x.max()) == 1.0
        assert torch.bincount(ds.y).tolist() == [n // 10] * 10  # balanced classes


def test_batches_are_drawn_on_the_device_by_indexing():
    ds = data.ImageSet(torch.arange(10.0).reshape(10, 1, 1, 1), torch.arange(10), tuple("abcdefghij"), "toy")
    x, y = ds.sample(64, generator=torch.Generator().manual_seed(0))
    assert x.shape == (64, 1, 1, 1) and torch.equal(x.flatten().long(), y)  # images stay paired with labels
    assert len(set(y.tolist())) > 5 and len(ds) == 10


def test_random_rows_takes_the_same_rows_of_each_tensor_and_is_what_sample_draws():
    x, y, w = torch.arange(10.0).reshape(10, 1, 1, 1), torch.arange(10), torch.arange(10) * 7
    a, b, c = data.random_rows(64, x, y, w, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a.flatten().long(), b) and torch.equal(c, 7 * b) and len(set(b.tolist())) > 5
    ds = data.ImageSet(x, y, tuple("abcdefghij"), "toy")
    assert all(torch.equal(s, r) for s, r in zip(ds.sample(64, torch.Generator().manual_seed(0)), (a, b)))
    (alone,) = data.random_rows(64, y, generator=torch.Generator().manual_seed(0))
    assert torch.equal(alone, b)
    with pytest.raises(ValueError, match="different lengths"):
        data.random_rows(4, x, y[:9])


def test_the_throughput_benchmark_finds_fashion_mnist_where_torchvision_downloads_it(tmp_path, monkeypatch):
    """A GPU runner without Debian's package downloads Fashion-MNIST with torchvision (<root>/FashionMNIST/raw/,
    uncompressed): the lessons find it there, and so must benchmarks/dcgan_throughput.py."""
    import importlib.util

    monkeypatch.setattr(data, "DEBIAN_ROOT", tmp_path / "nowhere")
    monkeypatch.setenv("GANLIB_DATA", str(tmp_path / "data"))
    raw = tmp_path / "data" / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, n in (("train", 6), ("t10k", 4)):
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", np.full((n, 28, 28), 7))
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10)
    assert data.idx_files("fashion_mnist", "test") == (raw / "t10k-images-idx3-ubyte", raw / "t10k-labels-idx1-ubyte")
    spec = importlib.util.spec_from_file_location("dcgan_throughput", data.Path(__file__).parents[1] / "benchmarks" / "dcgan_throughput.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    copied = bench._torchvision_root() / "FashionMNIST" / "raw"
    assert sorted(p.name for p in copied.iterdir()) == sorted(p.name for p in raw.iterdir())
    assert data.read_idx(copied / "train-images-idx3-ubyte").shape == (6, 28, 28)


# --- lesson 12's translation tasks ---------------------------------------------------------------


def _image_set(n=20, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 28, 28, generator=gen) * 2 - 1
    return data.ImageSet(x, torch.randint(10, (n,), generator=gen), data.FASHION_CLASSES, "random")


def test_edge_map_marks_the_boundary_of_a_square_and_nothing_else():
    x = torch.full((1, 1, 12, 12), -1.0)
    x[..., 4:8, 4:8] = 1.0  # a white square on black
    e = data.edge_map(x)
    assert set(e.unique().tolist()) <= {-1.0, 1.0}
    on = e[0, 0] > 0
    assert on[3:9, 3:9].any() and not on[5:7, 5:7].any()  # around the square's rim, not its inside
    assert not on[:2].any() and not on[:, :2].any()  # nor far away
    assert not (data.edge_map(torch.full((2, 1, 8, 8), 0.3)) > 0).any()  # a flat image has no edges
    assert (data.edge_map(x, threshold=4 * 2**0.5) < 0).all()  # above the largest Sobel magnitude: none


def test_the_paired_task_pads_to_32_and_keeps_every_pixel():
    images = _image_set()
    pairs = data.edges_to_garments(images)
    assert pairs.a.shape == pairs.b.shape == (20, 1, 32, 32)
    assert torch.equal(pairs.b[..., 2:30, 2:30], images.x) and (pairs.b[..., :2, :] == -1).all()
    assert torch.equal(pairs.a, data.edge_map(pairs.b))
    a, b = pairs.sample(7, generator=torch.Generator().manual_seed(0))
    assert all(torch.equal(data.edge_map(b[i:i + 1]), a[i:i + 1]) for i in range(7))  # still pairs


def test_the_unpaired_halves_are_disjoint_and_the_hidden_partners_are_true():
    pairs = data.edges_to_garments(_image_set(21))
    task = data.unpaired_halves(pairs, seed=3)
    assert len(task.a) == 10 and len(task.b) == 11
    assert torch.equal(data.edge_map(task.a_partner), task.a)  # each edge map's true garment, kept for scoring
    garments = {tuple(g.flatten().tolist()) for g in task.b}
    assert not any(tuple(g.flatten().tolist()) in garments for g in task.a_partner)  # no partner is in domain B
    assert sorted(torch.cat([task.y_a, task.y_b]).tolist()) == sorted(pairs.y.tolist())


def test_label_maps_are_one_hot_with_the_class_on_the_silhouette():
    images = _image_set()
    maps = data.label_maps(images)
    assert maps.a.shape == (20, 11, 32, 32)
    assert torch.equal(maps.a.sum(1), torch.ones(20, 32, 32))
    mask = maps.b > -0.8
    label = maps.a.argmax(1, keepdim=True)
    assert torch.equal(label[mask], images.y[:, None, None, None].expand_as(label)[mask])
    assert (label[~mask] == 10).all()
