"""Batches drawn on the device: seeded index permutations and batched CIFAR augmentation.

No DataLoader and no worker processes: the whole dataset is a tensor on the device and a batch
is an index. Random numbers are drawn from CPU generators and then moved, so the batch order
and the augmentation of a seed are the same on every device. Moves to a CUDA device go through
pinned memory without blocking (:func:`to_device`): a copy from pageable host memory would make
the host wait for the GPU at every step.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F


def to_device(tensor: torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """``tensor`` (on the host) on ``device``; to CUDA through pinned memory, asynchronously
    (the caching host allocator keeps the pinned block alive until the copy has run)."""
    device = torch.device(device)
    if device.type != "cuda":
        return tensor.to(device)
    return tensor.pin_memory().to(device, non_blocking=True)


class EpochSampler:
    """Yields ``(epoch, indices)`` forever: each epoch is a fresh seeded permutation of ``n``.

    The last batch of an epoch is smaller when ``batch_size`` does not divide ``n`` (unless
    ``drop_last``). The same ``seed`` always yields the same sequence of batches. The indices
    are on ``device``: each epoch's permutation is drawn on the host and moved once.
    """

    def __init__(self, n: int, batch_size: int, *, seed: int, drop_last: bool = False,
                 device: torch.device | str = "cpu"):
        if n <= 0:
            raise ValueError(f"cannot sample batches from {n} rows")
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if drop_last and batch_size > n:
            raise ValueError(f"batch_size {batch_size} exceeds the {n} rows with drop_last")
        self.n = n
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.seed = seed
        self.device = torch.device(device)

    @property
    def batches_per_epoch(self) -> int:
        full, rest = divmod(self.n, self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    def __iter__(self) -> Iterator[tuple[int, torch.Tensor]]:
        generator = torch.Generator().manual_seed(self.seed)
        epoch = 0
        while True:
            order = to_device(torch.randperm(self.n, generator=generator), self.device)
            for start in range(0, self.batches_per_epoch * self.batch_size, self.batch_size):
                yield epoch, order[start:start + self.batch_size]
            epoch += 1


def random_crop_flip(
    x: torch.Tensor,
    generator: torch.Generator,
    *,
    padding: int = 4,
    fill: Sequence[float] | None = None,
    memory_format: torch.memory_format = torch.contiguous_format,
) -> torch.Tensor:
    """Pad-and-random-crop plus random horizontal flip of a batch ``(B, C, H, W)``, batched.

    Equivalent, image by image, to torchvision's ``RandomCrop(H, padding)`` then
    ``RandomHorizontalFlip()`` (the standard CIFAR augmentation). ``fill`` is the per-channel
    padding value: pass the standardised value of black, ``-mean / std``, when the data is
    already standardised, so the padding is what it would have been on raw pixels. The crops
    are gathered in NHWC order, so ``memory_format=torch.channels_last`` costs no extra copy.
    """
    batch, channels, height, width = x.shape
    offsets = to_device(torch.randint(0, 2 * padding + 1, (batch, 2), generator=generator),
                        x.device)
    flips = to_device(torch.rand(batch, generator=generator) < 0.5, x.device)
    if fill is None:
        padded = F.pad(x, (padding,) * 4)
    else:
        values = torch.as_tensor(fill, dtype=x.dtype, device=x.device).view(1, channels, 1, 1)
        padded = values.expand(batch, channels, height + 2 * padding, width + 2 * padding).clone()
        padded[:, :, padding:padding + height, padding:padding + width] = x
    rows = offsets[:, 0, None] + torch.arange(height, device=x.device)  # (B, H)
    cols = offsets[:, 1, None] + torch.arange(width, device=x.device)  # (B, W)
    cols = torch.where(flips[:, None], cols.flip(1), cols)
    index_b = torch.arange(batch, device=x.device)[:, None, None]
    crops = padded.permute(0, 2, 3, 1)[index_b, rows[:, :, None], cols[:, None, :]]  # (B,H,W,C)
    return crops.permute(0, 3, 1, 2).contiguous(memory_format=memory_format)
