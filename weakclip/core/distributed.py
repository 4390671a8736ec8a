"""Process-group set-up for torchrun (DDP) and a seeded infinite sampler that is a pure
function of the iteration number.

Under `torchrun --nproc_per_node N`, the environment carries RANK, LOCAL_RANK and WORLD_SIZE;
`init_distributed` then starts the process group (nccl on CUDA, gloo on CPU). Without those
variables everything runs as a single process (rank 0 of 1).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from torch.utils.data import Sampler

from weakclip.core.device import resolve_device


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    initialised_here: bool = False  # we started the process group, so we tear it down

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device_pref: str = "auto") -> DistInfo:
    """Join the torchrun process group if the environment describes one; otherwise a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    device = resolve_device(device_pref, local_rank)
    if world <= 1:
        return DistInfo(0, 1, 0, device, False)
    started = False
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend, rank=rank, world_size=world)
        started = True
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank, device, started)


def cleanup_distributed(info: DistInfo) -> None:
    if info.initialised_here and dist.is_initialized():
        dist.destroy_process_group()


def sample_seed(seed: int, position: int) -> int:
    """A 63-bit seed for the sample at global stream position `position` (splitmix64 mixing)."""
    z = (seed * 0x9E3779B97F4A7C15 + position + 1) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return (z ^ (z >> 31)) >> 1


class InfiniteSampler(Sampler):
    """An endless stream of (dataset index, sample seed) pairs, split across ranks.

    The global stream is the concatenation of per-epoch permutations, epoch e shuffled with
    torch.Generator seeded by (seed, e). Iteration `it` consumes global positions
    [it·B, (it+1)·B) for the global batch size B; rank r takes the r-th contiguous slice of
    B/world of them. So the samples of an iteration depend only on (seed, it), not on the number
    of ranks or on where a run was resumed, and the per-sample seed (for augmentation) depends
    only on the global position.
    """

    def __init__(
        self,
        n: int,
        global_batch: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        start_iter: int = 0,
        shuffle: bool = True,
    ):
        if n <= 0:
            raise ValueError("InfiniteSampler: the dataset is empty")
        if global_batch % world_size:
            raise ValueError(f"global batch size {global_batch} is not divisible by world size {world_size}")
        self.n, self.global_batch, self.seed = n, global_batch, seed
        self.rank, self.world_size, self.start_iter, self.shuffle = rank, world_size, start_iter, shuffle
        self.local_batch = global_batch // world_size
        self._perm_epoch, self._perm = -1, None

    def _index(self, position: int) -> int:
        epoch, offset = divmod(position, self.n)
        if not self.shuffle:
            return offset
        if epoch != self._perm_epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perm, self._perm_epoch = torch.randperm(self.n, generator=g), epoch
        return int(self._perm[offset])

    def positions(self, it: int) -> range:
        start = it * self.global_batch + self.rank * self.local_batch
        return range(start, start + self.local_batch)

    def __iter__(self):
        it = self.start_iter
        while True:
            for pos in self.positions(it):
                yield self._index(pos), sample_seed(self.seed, pos)
            it += 1


class SeededItems(torch.utils.data.Dataset):
    """Wrap a map-style dataset so item (index, seed) is fetched with python/numpy/torch RNGs seeded
    by `seed`; the caller's RNG states are restored afterwards. Random augmentation thereby becomes
    a function of the sample's stream position, whatever the worker count or resume point."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, key):
        import random

        import numpy as np

        index, seed = key
        py_state, np_state = random.getstate(), np.random.get_state()
        with torch.random.fork_rng(devices=[]):
            random.seed(seed)
            np.random.seed(seed % 2**32)
            torch.manual_seed(seed)
            try:
                return self.dataset[index]
            finally:
                random.setstate(py_state)
                np.random.set_state(np_state)
