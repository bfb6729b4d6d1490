"""Suite: one model, one dataset, a device, a seed and a batch size; yields batches on the device."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Iterator

import numpy as np
import torch

from ..datasets.base import Dataset
from ..models.wrapper import ModelWrapper
from .progress import progress


def batch_seed(seed: int, first_image: int) -> int:
    """torch's seed for the batch starting at image ``first_image`` of a run seeded ``seed`` (independent streams)."""
    return int(np.random.SeedSequence([int(seed), int(first_image)]).generate_state(1, dtype=np.uint64)[0] >> 1)


@dataclass
class Suite:
    """The fixed context every check runs in (docs/design.md)."""

    model: ModelWrapper
    dataset: Dataset
    device: torch.device
    seed: int = 0
    batch_size: int = 32
    limit: int | None = None  # images 0 .. limit of the dataset (all by default)
    start: int = 0  # the first of them this suite streams (an image shard: images start .. limit)
    num_workers: int = 0
    progress: bool = True
    progress_label: str = ""  # what the progress bar names besides the check (the methods being run)

    @property
    def stop(self) -> int:
        """One past the last image streamed."""
        return len(self.dataset) if self.limit is None else min(self.limit, len(self.dataset))

    @property
    def num_images(self) -> int:
        return max(0, self.stop - self.start)

    def shard(self, start: int, stop: int) -> "Suite":
        """The same suite streaming images ``start .. stop`` only (an image shard of a run)."""
        return replace(self, start=start, limit=stop)

    def batches(self, desc: str = "") -> Iterator[dict]:
        """Batches of images ``start .. stop``, in order, moved to ``device``; torch's generators seeded per batch.

        Before a batch is yielded torch is seeded from the run's seed and the batch's first image index
        (``batch_seed``), so seeded noise (SmoothGrad, the random control) is the same for an image whichever
        shards, executors or earlier checks a run had; the DataLoader draws from a generator of its own (seeded
        from the run's seed and the shard's first image), never from torch's global one. Each batch holds
        ``images`` [B,3,H,W] in [0,1], ``inputs`` (normalised for the model), ``labels`` [B,K], ``masks``
        [B,K,H,W], ``trials`` [B,K] and ``index`` [B].
        """
        subset = torch.utils.data.Subset(self.dataset, range(self.start, self.start + self.num_images))
        loader = torch.utils.data.DataLoader(  # its own generator: the loader draws nothing from torch's global one
            subset, batch_size=self.batch_size, shuffle=False, num_workers=self.num_workers,
            generator=torch.Generator().manual_seed(batch_seed(self.seed, self.start)),
        )
        total = (self.num_images + self.batch_size - 1) // self.batch_size
        desc = f"{desc} [{self.progress_label}]" if self.progress_label else desc
        for number, batch in enumerate(progress(loader, total, desc, enabled=self.progress)):
            batch = {k: (v.to(self.device, non_blocking=True) if torch.is_tensor(v) else v) for k, v in batch.items()}
            if "trials" not in batch:
                batch["trials"] = batch["labels"] > 0
            if "index" not in batch:  # a dataset that does not say (the contract asks for it): its position here
                first = self.start + number * self.batch_size
                batch["index"] = torch.arange(first, first + len(batch["labels"]), device=self.device)
            batch["images"] = batch.pop("image")
            batch["inputs"] = self.model.normalize(batch["images"])
            torch.manual_seed(batch_seed(self.seed, self.start + number * self.batch_size))
            yield batch

    def describe(self) -> dict:
        """The configuration results depend on (batch size too: it fixes the draws of seeded noise); device excluded."""
        return {
            "model": self.model.describe(),
            "dataset": self.dataset.describe(),
            "images": self.stop,
            "seed": self.seed,
            "batch_size": self.batch_size,
        }
