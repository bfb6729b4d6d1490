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
    """The first difference between ``network``'s parameters/buffers and ``state`` (None if none).

    A missing, unexpected or sparse tensor, a shape, or integer / boolean / complex values where the model computes
    in floating point.
    """
    expected = network.state_dict()
    for key, reference in expected.items():
        if key not in state:
            return f"missing key {key!r}"
        value = state[key]
        if value.layout != torch.strided:
            return f"{key!r} is a {str(value.layout).removeprefix('torch.')} tensor, the model needs a dense one"
        if tuple(value.shape) != tuple(reference.shape):
            return f"{key!r} has shape {list(value.shape)}, the model needs {list(reference.shape)}"
        if reference.is_floating_point() and not value.is_floating_point():
            return f"{key!r} holds {str(value.dtype).removeprefix('torch.')} values, the model needs floating point"
    for key in state:
        if key not in expected:
            return f"unexpected key {key!r}"
    return None


def non_finite_tensor(state: Mapping[str, torch.Tensor]) -> str | None:
    """The first floating tensor of ``state`` holding NaN or inf: ``'features.0.weight' holds 3 NaN/inf values``."""
    for key, value in state.items():
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            count = int((~torch.isfinite(value)).sum())
            return f"{key!r} holds {count} non-finite value{'s' if count > 1 else ''} (NaN or inf)"
    return None


def check_state_dict(network: nn.Module, state: Mapping[str, torch.Tensor], source: str | Path,
                     what: str = "the architecture") -> None:
    """A state dict that does not fit ``network`` or holds NaN / inf is a one-line UserError naming the first tensor.

    Values are checked at the model's dtype: float64 weights beyond float32's range would become inf there.
    """
    mismatch = state_dict_mismatch(network, state)
    if mismatch is not None:
        raise UserError(f"weights file {source} does not fit {what}: {mismatch}")
    expected = network.state_dict()
    problem = non_finite_tensor({key: value.to(expected[key].dtype) if value.is_floating_point() else value
                                 for key, value in state.items()})
    if problem is not None:
        raise UserError(f"weights file {source} is unusable: {problem}; every map and logit would be NaN")


def apply_state_dict(network: nn.Module, state: Mapping[str, torch.Tensor], source: str | Path) -> nn.Module:
    """Check ``state`` against ``network`` (strict, first problem named) and assign it in place.

    Floating tensors are cast to the model's dtype and made contiguous; ``assign=True`` lets a network built
    on the ``meta`` device take the file's tensors without ever allocating random weights.
    """
    check_state_dict(network, state, source)
    expected = network.state_dict()
    prepared = {
        key: (value.to(expected[key].dtype) if value.is_floating_point() else value).contiguous()
        for key, value in state.items()
    }
    network.load_state_dict(prepared, strict=True, assign=True)
    return network


def check_finite_logits(wrapper, source: str | Path) -> None:
    """A model whose logits on a fixed small batch are NaN or inf is a one-line UserError naming ``source``.

    This refuses weights that are finite but overflow in the forward pass (finite weights x 1e38): every map of such
    a model would be NaN.
    """
    bad = wrapper.non_finite_logits()
    if bad:
        raise UserError(f"weights file {source} is unusable: {bad} of the model's logits on a fixed test batch are "
                        "NaN or inf (its weights overflow in the forward pass)")


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
