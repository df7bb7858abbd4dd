"""The split and standardisation protocol, and the batch sampler and augmentation."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from plp_bench import data
from plp_bench.data import EpochSampler, random_crop_flip
from plp_bench.data.dataset import RawData, build_dataset


def raw_tabular(n=50, features=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(5.0, 3.0, (n, features))
    return RawData(x, np.arange(n) % 2, 2, "test")


def test_split_sizes_and_disjointness():
    raw = raw_tabular(n=100)
    ds = build_dataset("t", raw, seed=3, val_fraction=0.2, test_split_seed=0, device="cpu")
    assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (64, 16, 20)
    # rows are unique, so the three splits must be disjoint and cover everything
    mean = np.array(ds.normalization["mean"])
    std = np.array(ds.normalization["std"])
    rows = np.concatenate([t.numpy().astype(np.float64) * std + mean
                           for t in (ds.x_train, ds.x_val, ds.x_test)])
    order = np.lexsort(rows.T)
    np.testing.assert_allclose(rows[order], raw.x[np.lexsort(raw.x.T)], rtol=1e-5)


def test_standardised_with_training_statistics_only():
    raw = raw_tabular(n=200)
    ds = build_dataset("t", raw, seed=1, val_fraction=0.2, test_split_seed=0, device="cpu")
    x_train = ds.x_train.double()
    torch.testing.assert_close(x_train.mean(0), torch.zeros(3, dtype=torch.float64),
                               atol=1e-6, rtol=0)
    torch.testing.assert_close(x_train.std(0, unbiased=False), torch.ones(3, dtype=torch.float64),
                               atol=1e-6, rtol=0)
    assert abs(ds.x_val.double().mean(0)).max() > 1e-3  # not re-centred on its own statistics


def test_constant_feature_does_not_become_nan():
    raw = raw_tabular()
    raw.x[:, 1] = 7.0
    ds = build_dataset("t", raw, seed=0, val_fraction=0.2, test_split_seed=0, device="cpu")
    assert torch.isfinite(ds.x_train).all() and (ds.x_train[:, 1] == 0).all()


def test_val_split_follows_seed_test_split_fixed():
    a = data.load("breast_cancer", seed=0)
    b = data.load("breast_cancer", seed=0)
    c = data.load("breast_cancer", seed=1)
    assert torch.equal(a.x_val, b.x_val) and torch.equal(a.y_train, b.y_train)
    assert not torch.equal(a.y_val, c.y_val)
    # same held-out test rows whatever the seed (values differ only through standardisation)
    raw_test = lambda d: d.x_test.double() * torch.tensor(d.normalization["std"]) + torch.tensor(  # noqa: E731
        d.normalization["mean"])
    torch.testing.assert_close(raw_test(a), raw_test(c), rtol=1e-5, atol=1e-4)


def test_offline_datasets_shapes():
    digits = data.load("digits")
    assert digits.input_shape == (1, 8, 8) and digits.num_classes == 10
    assert len(digits.y_train) + len(digits.y_val) + len(digits.y_test) == 1797
    cancer = data.load("breast_cancer")
    assert cancer.input_shape == (30,) and cancer.num_classes == 2
    assert len(cancer.y_train) + len(cancer.y_val) + len(cancer.y_test) == 569


def test_bad_val_fraction():
    with pytest.raises(ValueError, match="val_fraction"):
        data.load("digits", val_fraction=1.5)


def test_sampler_epochs_are_seeded_permutations():
    sampler = EpochSampler(10, 4, seed=5)
    it = iter(sampler)
    epoch0 = [next(it) for _ in range(sampler.batches_per_epoch)]
    assert [len(b) for _, b in epoch0] == [4, 4, 2] and {e for e, _ in epoch0} == {0}
    assert sorted(torch.cat([b for _, b in epoch0]).tolist()) == list(range(10))
    epoch1 = [next(it) for _ in range(3)]
    assert {e for e, _ in epoch1} == {1}
    again = iter(EpochSampler(10, 4, seed=5))
    for _, batch in epoch0 + epoch1:
        assert torch.equal(next(again)[1], batch)
    other = torch.cat([next(iter(EpochSampler(10, 10, seed=6)))[1]])
    assert not torch.equal(other, torch.cat([b for _, b in epoch0]))


def test_sampler_drop_last():
    sampler = EpochSampler(10, 4, seed=0, drop_last=True)
    assert sampler.batches_per_epoch == 2


def reference_crop_flip(x, offsets, flips, padding, fill):
    """Image by image: pad, crop at the offset, flip — the torchvision recipe, one at a time."""
    out = []
    for i in range(len(x)):
        img = x[i]
        c, h, w = img.shape
        if fill is None:
            padded = F.pad(img, (padding,) * 4)
        else:
            padded = torch.empty(c, h + 2 * padding, w + 2 * padding, dtype=img.dtype)
            for ch in range(c):
                padded[ch] = fill[ch]
            padded[:, padding:padding + h, padding:padding + w] = img
        top, left = int(offsets[i, 0]), int(offsets[i, 1])
        crop = padded[:, top:top + h, left:left + w]
        out.append(crop.flip(2) if flips[i] else crop)
    return torch.stack(out)


@pytest.mark.parametrize("fill", [None, [0.5, -1.0, 2.0]])
def test_batched_augmentation_equals_per_image_loop(fill):
    x = torch.randn(16, 3, 8, 8, dtype=torch.float64)
    gen = torch.Generator().manual_seed(3)
    out = random_crop_flip(x, gen, padding=2, fill=fill)
    replay = torch.Generator().manual_seed(3)
    offsets = torch.randint(0, 5, (16, 2), generator=replay)
    flips = torch.rand(16, generator=replay) < 0.5
    assert flips.any() and not flips.all()
    torch.testing.assert_close(out, reference_crop_flip(x, offsets, flips, 2, fill), rtol=0, atol=0)
