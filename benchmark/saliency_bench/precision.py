"""Numeric precision of a run: float32 (the default and the board's), TF32 on CUDA, bfloat16 autocast; channels-last.

TF32 rounds the inputs of CUDA matrix products and convolutions to a 10-bit mantissa (float32 range);
bfloat16 autocast runs convolutions and matrix products in bfloat16 (8-bit mantissa) and keeps reductions in
float32; channels-last only changes the memory layout (NHWC) that convolution kernels read. A precision other
than the default is part of the run's configuration (``ModelWrapper.describe``), so its results are never mixed
with float32 ones.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import torch

MODES = ("fp32", "tf32", "bf16")


@dataclass(frozen=True)
class Precision:
    """How a method call computes: ``mode`` of MODES and the ``channels_last`` memory layout."""

    mode: str = "fp32"
    channels_last: bool = False

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"precision must be one of {', '.join(MODES)}, got {self.mode!r}")

    @property
    def is_default(self) -> bool:
        return self.mode == "fp32" and not self.channels_last

    def describe(self) -> dict:
        """What the configuration records (only for a precision other than the default)."""
        return {"mode": self.mode, "channels_last": self.channels_last}

    @contextmanager
    def active(self, device: torch.device) -> Iterator[None]:
        """Compute inside the block at this precision on ``device``; TF32 flags are restored afterwards."""
        if self.mode == "bf16":
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
                yield
            return
        if self.mode == "tf32" and device.type == "cuda":
            saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
            try:
                yield
            finally:
                torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
            return
        yield  # float32 (TF32 has no CPU kernels: on the CPU it computes in float32)

    def prepare_network(self, network: torch.nn.Module) -> torch.nn.Module:
        """The network in this precision's memory layout (in place; before any guard takes its reference)."""
        return network.to(memory_format=torch.channels_last) if self.channels_last else network

    def prepare_inputs(self, inputs: torch.Tensor) -> torch.Tensor:
        """Inputs in this precision's memory layout."""
        return inputs.contiguous(memory_format=torch.channels_last) if self.channels_last else inputs


FP32 = Precision()
