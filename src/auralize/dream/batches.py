"""Batches of a dream training run: a function of the step alone, and their augmentation.

The batch of step ``s`` is a slice of an epoch permutation seeded by ``(seed, s //
per_epoch)`` (:class:`StepBatchSampler`), so a resumed run sees exactly the batches
an uninterrupted one would.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from auralize.dream.datasets import ClipSet

AUGMENTATIONS = ("shift", "gain", "noise", "stretch")


class StepBatchSampler(torch.utils.data.Sampler):
    """Batches as a function of the global step: batch ``s`` = slice of epoch ``s // per_epoch``.

    Each epoch is a permutation seeded by ``(seed, epoch)``; the last incomplete
    batch is dropped.  ``start_step`` makes the first iteration begin mid-epoch
    (after a resume).
    """

    def __init__(self, n: int, batch_size: int, seed: int = 0) -> None:
        self.n = int(n)
        self.batch_size = min(int(batch_size), self.n)
        self.seed = int(seed)
        self.per_epoch = max(1, self.n // self.batch_size)
        self.next_step = 0

    def batch(self, step: int) -> list[int]:
        epoch, pos = divmod(int(step), self.per_epoch)
        perm = np.random.default_rng([self.seed, epoch, 1]).permutation(self.n)
        return perm[pos * self.batch_size : (pos + 1) * self.batch_size].tolist()

    def __len__(self) -> int:
        return self.per_epoch - (self.next_step % self.per_epoch)

    def __iter__(self):
        start = self.next_step
        end = (start // self.per_epoch + 1) * self.per_epoch
        for s in range(start, end):
            self.next_step = s + 1
            yield self.batch(s)


class ClipDataset(torch.utils.data.Dataset):
    def __init__(self, clips: ClipSet) -> None:
        self.x = torch.from_numpy(clips.waves)
        self.y = torch.from_numpy(clips.labels)
        self.idx = torch.arange(len(clips))

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i], self.y[i], self.idx[i]


def collate_clips(items):
    xs, ys, ids = zip(*items)
    return torch.stack(xs), torch.stack(ys), torch.stack(ids)


# ----------------------------------------------------------------------------- augmentation


def augment_batch(x: torch.Tensor, kinds, gen: torch.Generator) -> torch.Tensor:
    """Waveform augmentation of a batch ``(b, n)``; random numbers from ``gen``.

    shift: circular time shift by up to the clip length; gain: -9 to +3 dB;
    noise: white noise 20 - 40 dB below the clip's RMS; stretch: speed change by
    0.85 - 1.15 (pitch and time together, by resampling), then cropped/padded.
    """
    b, n = x.shape
    if "stretch" in kinds:
        rate = float(torch.empty(1).uniform_(0.85, 1.15, generator=gen))
        m = max(16, round(n / rate))
        y = F.interpolate(x.unsqueeze(1), size=m, mode="linear", align_corners=False).squeeze(1)
        x = y[:, :n] if m >= n else F.pad(y, [0, n - m])
    if "shift" in kinds:
        shifts = torch.randint(0, n, (b, 1), generator=gen)
        idx = (torch.arange(n).unsqueeze(0) - shifts) % n
        x = x.gather(1, idx)
    if "gain" in kinds:
        db = torch.empty(b, 1).uniform_(-9.0, 3.0, generator=gen)
        x = x * 10 ** (db / 20)
    if "noise" in kinds:
        rms = x.pow(2).mean(dim=1, keepdim=True).sqrt()
        snr = torch.empty(b, 1).uniform_(20.0, 40.0, generator=gen)
        x = x + torch.randn(x.shape, generator=gen) * rms * 10 ** (-snr / 20)
    return x.clamp(-1.0, 1.0)


