"""PyTorch adapters: shuffled, exactly resumable mini-batches, and a map-style ``Dataset``.

Kept apart from the rest of :mod:`nsvae.data` so that the datasets (and the
metrics that use them) never import torch.

:class:`BatchLoader` is what the trainer uses: it gathers a whole batch with
one call to :meth:`ImageData.observations_at` (sorted reads from the memory
map, one table look-up to unpack bits), far faster than collating single
items. Its order is a pure function of ``(seed, epoch)`` and its nuisance
noise of ``(seed, epoch, batch)``, so ``state_dict()`` /
``load_state_dict()`` resume a run at exactly the same batch.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from .base import ImageData, as_index_array


def epoch_order(size: int, seed: int, epoch: int) -> np.ndarray:
    """The shuffled image order of one epoch (int64), the same on every machine for the same numpy."""
    return np.random.default_rng([seed, epoch]).permutation(size)


class BatchLoader:
    """An endless stream of shuffled batches from ``data``, as float32 tensors ``(B, C, H, W)``.

    - ``seed``: the data-order seed (independent of the model's seeds).
    - ``indices``: restrict to a subset of images (a train split), default all.
    - ``drop_last``: skip the incomplete last batch of each epoch (default, as
      training by iterations expects equal batches).
    - ``device``: where batches are put (``"cpu"``, ``"cuda"``, a ``torch.device``).

    Use ``next(loader)`` (or ``loader.next_batch()``) for the next batch;
    iteration never ends, epochs roll over. ``epoch`` and ``position`` say
    where the stream is.
    """

    def __init__(
        self,
        data: ImageData,
        batch_size: int,
        seed: int,
        *,
        indices: Any = None,
        shuffle: bool = True,
        drop_last: bool = True,
        device: str | torch.device = "cpu",
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.data = data
        self.subset = None if indices is None else as_index_array(indices, len(data)).reshape(-1)
        self.size = len(data) if self.subset is None else int(self.subset.size)
        if self.size == 0:
            raise ValueError("the dataset (or the chosen subset) is empty")
        if drop_last and batch_size > self.size:
            raise ValueError(f"batch_size {batch_size} is larger than the {self.size} images available")
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.device = torch.device(device)
        self.epoch = 0
        self.position = 0  # batches already served in the current epoch
        self._order: np.ndarray | None = None
        self._order_epoch = -1

    @property
    def batches_per_epoch(self) -> int:
        full, rest = divmod(self.size, self.batch_size)
        return full if self.drop_last or rest == 0 else full + 1

    def __len__(self) -> int:
        return self.batches_per_epoch

    def _epoch_order(self) -> np.ndarray:
        if self._order_epoch != self.epoch:
            order = epoch_order(self.size, self.seed, self.epoch) if self.shuffle else np.arange(self.size)
            self._order = order if self.subset is None else self.subset[order]
            self._order_epoch = self.epoch
        return self._order

    def next_indices(self) -> tuple[np.ndarray, np.random.Generator]:
        """Image indices of the next batch and its nuisance-noise generator; advances the stream."""
        if self.position >= self.batches_per_epoch:
            self.epoch += 1
            self.position = 0
        order = self._epoch_order()
        start = self.position * self.batch_size
        idx = order[start : start + self.batch_size]
        rng = np.random.default_rng([self.seed, self.epoch, self.position, 1])
        self.position += 1
        return idx, rng

    def next_batch(self) -> torch.Tensor:
        idx, rng = self.next_indices()
        batch = torch.from_numpy(np.ascontiguousarray(self.data.observations_at(idx, rng)))
        if self.device.type == "cuda":
            # From pageable memory a copy first waits for the GPU's queue; from pinned memory it is queued
            # behind the running step, and the host goes on to read the next batch meanwhile.
            return batch.pin_memory().to(self.device, non_blocking=True)
        return batch.to(self.device) if self.device.type != "cpu" else batch

    def __next__(self) -> torch.Tensor:
        return self.next_batch()

    def __iter__(self) -> Iterator[torch.Tensor]:
        return self

    def state_dict(self) -> dict[str, int]:
        """Where the stream is; with the same data and ``load_state_dict`` the next batch is the same."""
        return {"seed": self.seed, "epoch": self.epoch, "position": self.position, "batch_size": self.batch_size}

    def load_state_dict(self, state: dict[str, int]) -> None:
        if int(state["batch_size"]) != self.batch_size or int(state["seed"]) != self.seed:
            raise ValueError(
                f"cannot resume a loader saved with batch_size={state['batch_size']}, seed={state['seed']} "
                f"as batch_size={self.batch_size}, seed={self.seed}"
            )
        self.epoch = int(state["epoch"])
        self.position = int(state["position"])


class ImageDataset(torch.utils.data.Dataset):
    """Map-style ``Dataset`` for ``torch.utils.data.DataLoader``: item ``i`` is image ``i`` as ``(C, H, W)``.

    Nuisance noise (variants) is drawn from ``default_rng([seed, i])``, so an
    item is the same every time it is read. ``__getitems__`` serves a whole
    batch with one gather (DataLoader uses it when present).
    """

    def __init__(self, data: ImageData, seed: int = 0):
        self.data = data
        self.seed = int(seed)

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> torch.Tensor:
        rng = np.random.default_rng([self.seed, int(index)])
        return torch.from_numpy(self.data.observations_at([int(index)], rng)[0])

    def __getitems__(self, indices: list[int]) -> list[torch.Tensor]:
        if self.data.draws_noise:  # per-item generators keep items independent of batching
            return [self[i] for i in indices]
        return list(torch.from_numpy(self.data.observations_at(np.asarray(indices, dtype=np.int64))))
