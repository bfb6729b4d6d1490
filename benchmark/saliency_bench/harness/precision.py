"""Numeric precision of a run: float32 (the default and the board's), TF32 on CUDA, bfloat16 autocast; channels-last.

Float32 on CUDA turns cuDNN's TF32 off for the call (PyTorch lets cuDNN use TF32 for convolutions by default).
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
        if device.type == "cuda":  # float32 is float32: cuDNN would round convolutions to TF32 unless told not to
            saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = self.mode == "tf32"
            try:
                yield
            finally:
                torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
            return
        yield  # float32 (TF32 has no CPU kernels: on the CPU it computes in float32)

    def prepare_network(self, network: torch.nn.Module) -> torch.nn.Module:
        """The network in this precision's memory layout (in place; before any guard takes its reference)."""
        return network.to(memory_format=self.memory_format)

    def prepare_inputs(self, inputs: torch.Tensor) -> torch.Tensor:
        """Inputs in this precision's memory layout."""
        return inputs.contiguous(memory_format=self.memory_format) if inputs.dim() == 4 else inputs

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format


FP32 = Precision()


def default_channels_last(network: torch.nn.Module, device: torch.device) -> bool:
    """The layout a run uses unless told: channels-last for a network with 2-D convolutions on the CPU.

    oneDNN's CPU convolutions run NHWC natively; on the default model the forward+backward floor takes 2.0 instead
    of 2.9 ms per image on 2 cores (float32 both, maps within 1e-6 relative). On CUDA the standard layout stays the
    default (channels-last pays with tensor cores, i.e. with ``tf32`` or ``bf16``: pass ``--channels-last``).
    """
    return device.type == "cpu" and any(isinstance(module, torch.nn.Conv2d) for module in network.modules())
