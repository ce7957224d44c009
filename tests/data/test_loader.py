"""The torch adapters: batches, epochs, exact resume, DataLoader compatibility."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nsvae import data
from nsvae.data.loader import BatchLoader, ImageDataset, epoch_order


def test_batches_follow_the_epoch_order(dsprites):
    loader = BatchLoader(dsprites, 32, seed=4)
    order = epoch_order(len(dsprites), 4, 0)
    first = next(loader)
    assert first.shape == (32, 1, 64, 64) and first.dtype == torch.float32
    assert torch.equal(first, torch.from_numpy(dsprites.observations_at(order[:32])))
    assert torch.equal(next(loader), torch.from_numpy(dsprites.observations_at(order[32:64])))


def test_epochs_roll_over_and_cover_a_subset(dsprites):
    subset = np.arange(100, 110)
    loader = BatchLoader(dsprites, 4, seed=0, indices=subset)
    assert len(loader) == 2  # drop_last
    seen = []
    for _ in range(6):
        idx, _ = loader.next_indices()
        seen.append(idx)
    assert loader.epoch == 2
    for epoch in range(3):
        batch = np.concatenate(seen[2 * epoch : 2 * epoch + 2])
        assert len(set(batch)) == 8 and set(batch) <= set(subset)
    assert not np.array_equal(seen[0], seen[2])  # a new order each epoch


def test_resume_gives_the_same_batches(dsprites):
    variant = data.load("noisy_dsprites")  # noise too must resume exactly
    loader = BatchLoader(variant, 8, seed=11, indices=np.arange(40))
    for _ in range(7):
        next(loader)
    state = loader.state_dict()
    expected = [next(loader) for _ in range(4)]
    resumed = BatchLoader(variant, 8, seed=11, indices=np.arange(40))
    resumed.load_state_dict(state)
    for want in expected:
        assert torch.equal(next(resumed), want)
    with pytest.raises(ValueError, match="cannot resume"):
        BatchLoader(variant, 16, seed=11).load_state_dict(state)


def test_seeds_give_different_orders(dsprites):
    a = BatchLoader(dsprites, 16, seed=1).next_indices()[0]
    b = BatchLoader(dsprites, 16, seed=2).next_indices()[0]
    assert not np.array_equal(a, b)


def test_no_shuffle_and_keep_last(dsprites):
    loader = BatchLoader(dsprites, 4, seed=0, indices=np.arange(10), shuffle=False, drop_last=False)
    sizes = [len(loader.next_indices()[0]) for _ in range(3)]
    assert sizes == [4, 4, 2]


def test_bad_arguments(dsprites):
    with pytest.raises(ValueError, match="batch_size"):
        BatchLoader(dsprites, 0, seed=0)
    with pytest.raises(ValueError, match="larger than"):
        BatchLoader(dsprites, 20, seed=0, indices=np.arange(10))


def test_map_style_dataset_with_a_dataloader(dsprites):
    dataset = ImageDataset(dsprites)
    loader = torch.utils.data.DataLoader(dataset, batch_size=5, sampler=[3, 1, 4, 1, 5])
    batch = next(iter(loader))
    assert torch.equal(batch, torch.from_numpy(dsprites.observations_at([3, 1, 4, 1, 5])))
    noisy = ImageDataset(data.load("color_dsprites"), seed=2)
    assert torch.equal(noisy[7], noisy[7])
    assert torch.equal(torch.stack(noisy.__getitems__([7, 8])), torch.stack([noisy[7], noisy[8]]))


def test_dataloader_workers_under_spawn(dsprites):
    """Spawned DataLoader workers (macOS, Windows) get the dataset's path, not its 360 MiB, and the same images."""
    import pickle

    dataset = ImageDataset(dsprites)
    assert len(pickle.dumps(dataset)) < 100_000
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=4, sampler=[9, 2, 700_000, 5], num_workers=1, multiprocessing_context="spawn"
    )
    batch = next(iter(loader))
    assert torch.equal(batch, torch.from_numpy(dsprites.observations_at([9, 2, 700_000, 5])))
