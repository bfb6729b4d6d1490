"""Reading user files safely: state dicts (``torch.load(weights_only=True)``) and RGB images.

Every failure becomes a one-line ``UserError`` that names the file, never a pickle or PIL traceback.
"""
from __future__ import annotations

import pickle
import warnings
from pathlib import Path
from typing import Mapping

import torch
from PIL import Image
from torch import nn

from ..errors import UserError

# Checkpoints often wrap the state dict in a dict of training state; these keys hold it.
WRAPPER_KEYS = ("state_dict", "model_state_dict", "model")
PARALLEL_PREFIX = "module."  # what torch.nn.DataParallel / DDP prepend to every key
IMAGE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError)


def first_line(error: BaseException, limit: int = 160) -> str:
    """The first non-empty line of an exception's message (or its type name), cut to ``limit`` characters."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = lines[0] if lines else type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def weights_file(path: str | Path, missing: str = "does not exist") -> Path:
    """``path`` if it names an existing regular file; a directory or a missing path is a one-line UserError."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"weights file {path} is a directory, expected a file (a state dict saved with torch.save)")
    if not path.exists():
        raise UserError(f"weights file {path} {missing}")
    if not path.is_file():
        raise UserError(f"weights file {path} is not a regular file, expected a state dict saved with torch.save")
    return path


def load_weights(path: str | Path) -> object:
    """``torch.load(path, weights_only=True, map_location="cpu")``, its warnings silenced and its errors one line.

    Nothing but plain tensors (and containers of them) is ever unpickled: torch's advice to retry with
    ``weights_only=False`` (arbitrary code execution) is never passed on.
    """
    try:
        with warnings.catch_warnings():  # torch warns in three lines about pickle protocols it will refuse anyway
            warnings.simplefilter("ignore")
            return torch.load(path, weights_only=True, map_location="cpu")
    except EOFError:
        raise UserError(f"weights file {path} is not a readable state dict: the file is empty or cut short") from None
    except Exception as error:  # noqa: BLE001 - any failure to unpickle means an unusable file
        if isinstance(error, pickle.UnpicklingError) or "weights_only" in str(error):
            raise UserError(f"weights file {path} is not a readable state dict of plain tensors "
                            "(refused: only weights_only loading is allowed)") from None
        raise UserError(f"weights file {path} is not a readable state dict: {first_line(error)}") from None


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """``torch.load(path, weights_only=True, map_location="cpu")``, unwrapped to a flat ``{name: tensor}`` dict.

    A checkpoint dict holding ``state_dict`` / ``model_state_dict`` / ``model`` is unwrapped, and a
    ``module.`` prefix on every key (DataParallel) is dropped.
    """
    path = weights_file(path)
    loaded = load_weights(path)
    for key in WRAPPER_KEYS:
        if isinstance(loaded, Mapping) and isinstance(loaded.get(key), Mapping):
            loaded = loaded[key]
            break
    if not isinstance(loaded, Mapping) or not loaded:
        what = f"an empty {type(loaded).__name__}" if isinstance(loaded, Mapping) else f"a {type(loaded).__name__}"
        raise UserError(f"weights file {path} holds {what}, not a state dict of tensors "
                        "(save one with torch.save(model.state_dict(), PATH))")
    for key, value in loaded.items():
        if not isinstance(key, str):
            raise UserError(f"weights file {path}: key {key!r} is {type(key).__name__}, not a parameter name")
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


def hookable(network: nn.Module) -> nn.Module:
    """``network`` with every module that has an ``inplace`` flag (ReLU, GELU, Dropout, timm's layer scales) made
    non-inplace, so that methods may hook any activation; returned for chaining."""
    for module in network.modules():
        if isinstance(getattr(module, "inplace", None), bool):
            module.inplace = False
    return network


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a weights file (results depend on its bytes, not on its path); unreadable: a one-line UserError."""
    import hashlib

    try:
        with open(path, "rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError as exc:
        raise UserError(f"weights file {path}: {exc.strerror}") from None
