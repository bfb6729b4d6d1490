"""Reading user files safely: state dicts (``torch.load(weights_only=True)``) and RGB images.

Every failure becomes a one-line ``UserError`` that names the file, never a pickle or PIL traceback.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import torch
from PIL import Image
from torch import nn

from .errors import UserError

# Checkpoints often wrap the state dict in a dict of training state; these keys hold it.
WRAPPER_KEYS = ("state_dict", "model_state_dict", "model")
PARALLEL_PREFIX = "module."  # what torch.nn.DataParallel / DDP prepend to every key
IMAGE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError)


def first_line(error: BaseException, limit: int = 160) -> str:
    """The first non-empty line of an exception's message (or its type name), cut to ``limit`` characters."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = lines[0] if lines else type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """``torch.load(path, weights_only=True, map_location="cpu")``, unwrapped to a flat ``{name: tensor}`` dict.

    A checkpoint dict holding ``state_dict`` / ``model_state_dict`` / ``model`` is unwrapped, and a
    ``module.`` prefix on every key (DataParallel) is dropped.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"weights file {path} does not exist")
    try:
        loaded = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as error:  # noqa: BLE001 - any failure to unpickle means an unusable file
        raise UserError(f"weights file {path} is not a readable state dict: {first_line(error)}") from None
    for key in WRAPPER_KEYS:
        if isinstance(loaded, Mapping) and isinstance(loaded.get(key), Mapping):
            loaded = loaded[key]
            break
    if not isinstance(loaded, Mapping) or not loaded:
        raise UserError(f"weights file {path} holds {type(loaded).__name__}, not a state dict of tensors")
    for key, value in loaded.items():
        if not isinstance(value, torch.Tensor):
            raise UserError(f"weights file {path}: entry {key!r} is {type(value).__name__}, not a tensor")
    state = dict(loaded)
    if all(key.startswith(PARALLEL_PREFIX) for key in state):
        state = {key[len(PARALLEL_PREFIX):]: value for key, value in state.items()}
    return state


def state_dict_mismatch(network: nn.Module, state: Mapping[str, torch.Tensor]) -> str | None:
    """The first difference between ``network``'s parameters/buffers and ``state`` (missing, unexpected, shape)."""
    expected = network.state_dict()
    for key, reference in expected.items():
        if key not in state:
            return f"missing key {key!r}"
        if tuple(state[key].shape) != tuple(reference.shape):
            return f"{key!r} has shape {list(state[key].shape)}, the model needs {list(reference.shape)}"
    for key in state:
        if key not in expected:
            return f"unexpected key {key!r}"
    return None


def apply_state_dict(network: nn.Module, state: Mapping[str, torch.Tensor], source: str | Path) -> nn.Module:
    """Check ``state`` against ``network`` (strict, first mismatch named) and assign it in place.

    Floating tensors are cast to the model's dtype and made contiguous; ``assign=True`` lets a network built
    on the ``meta`` device take the file's tensors without ever allocating random weights.
    """
    mismatch = state_dict_mismatch(network, state)
    if mismatch is not None:
        raise UserError(f"weights file {source} does not fit the architecture: {mismatch}")
    expected = network.state_dict()
    prepared = {
        key: (value.to(expected[key].dtype) if value.is_floating_point() else value).contiguous()
        for key, value in state.items()
    }
    network.load_state_dict(prepared, strict=True, assign=True)
    return network


def read_rgb_image(path: str | Path) -> Image.Image:
    """Open an image file as a fully decoded RGB PIL image; unreadable files raise a UserError naming them."""
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except FileNotFoundError:
        raise UserError(f"image {path} does not exist") from None
    except IMAGE_ERRORS as error:
        reason = first_line(error).replace(f" '{path}'", "").rstrip(":")  # PIL repeats the path
        raise UserError(f"cannot read image {path}: {reason}") from None
