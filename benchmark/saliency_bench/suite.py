"""Suite: one model, one dataset, a device, a seed and a batch size; yields batches on the device."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch

from .datasets.base import Dataset
from .models.wrapper import ModelWrapper
from .progress import progress


@dataclass
class Suite:
    """The fixed context every check runs in (DESIGN.md "Data flow")."""

    model: ModelWrapper
    dataset: Dataset
    device: torch.device
    seed: int = 0
    batch_size: int = 32
    limit: int | None = None
    num_workers: int = 0
    progress: bool = True
    progress_label: str = ""  # what the progress bar names besides the check (the methods being run)

    @property
    def num_images(self) -> int:
        return len(self.dataset) if self.limit is None else min(self.limit, len(self.dataset))

    def batches(self, desc: str = "") -> Iterator[dict]:
        """Batches of the first ``num_images`` samples, in order, moved to ``device``.

        Each batch holds ``images`` [B,3,H,W] in [0,1], ``inputs`` (normalised for the model),
        ``labels`` [B,K], ``masks`` [B,K,H,W], ``trials`` [B,K] and ``index`` [B].
        """
        subset = torch.utils.data.Subset(self.dataset, range(self.num_images))
        loader = torch.utils.data.DataLoader(
            subset, batch_size=self.batch_size, shuffle=False, num_workers=self.num_workers
        )
        total = (self.num_images + self.batch_size - 1) // self.batch_size
        desc = f"{desc} [{self.progress_label}]" if self.progress_label else desc
        for batch in progress(loader, total, desc, enabled=self.progress):
            batch = {k: (v.to(self.device, non_blocking=True) if torch.is_tensor(v) else v) for k, v in batch.items()}
            if "trials" not in batch:
                batch["trials"] = batch["labels"] > 0
            batch["images"] = batch.pop("image")
            batch["inputs"] = self.model.normalize(batch["images"])
            yield batch

    def describe(self) -> dict:
        """The configuration results depend on (batch size too: it fixes the draws of seeded noise); device excluded."""
        return {
            "model": self.model.describe(),
            "dataset": self.dataset.describe(),
            "images": self.num_images,
            "seed": self.seed,
            "batch_size": self.batch_size,
        }
