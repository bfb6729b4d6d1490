"""Speed: milliseconds per image of each method beside the forward+backward floor, and peer libraries."""
from __future__ import annotations

import time
from typing import Callable, Sequence

import torch

from .checks.base import MethodGroup
from .models.wrapper import ModelWrapper
from .peers import peer_implementations
from .plugins import Registry


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], object], device: torch.device, repeats: int = 3, warmup: int = 1) -> float:
    """Median seconds of ``fn()`` over ``repeats`` runs after ``warmup`` runs (synchronised on CUDA)."""
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def floor_pass(model: ModelWrapper, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The floor every method pays: one forward and one backward of the target logits to the input."""
    x = inputs.detach().requires_grad_(True)
    score = model(x).gather(1, targets.view(-1, 1)).sum()
    (grad,) = torch.autograd.grad(score, x)
    return grad


def bench_batch(model: ModelWrapper, batch_size: int, device: torch.device, seed: int = 0):
    """A seeded random batch at the model's input size and random targets."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(batch_size, 3, model.input_size, model.input_size, generator=generator)
    targets = torch.randint(0, model.num_classes, (batch_size,), generator=generator)
    return model.normalize(images).to(device), targets.to(device)


def measure(
    registry: Registry, names: Sequence[str], model: ModelWrapper, batch_size: int = 64, repeats: int = 3,
    peers: bool = True, seed: int = 0,
) -> dict:
    """Seconds per batch of the floor, each method alone, each shared group together, and peers."""
    device = model.device
    inputs, targets = bench_batch(model, batch_size, device, seed)
    floor = time_call(lambda: floor_pass(model, inputs, targets), device, repeats)
    rows = []

    def add(label: str, seconds: float, kind: str, of: str | None = None) -> None:
        rows.append({
            "name": label, "kind": kind, "of": of, "ms_per_image": 1000 * seconds / batch_size,
            "ratio_to_floor": seconds / floor,
        })

    shared: dict[str, list[str]] = {}
    for name in names:
        method = registry.methods[name].obj
        group = MethodGroup([method], model)
        seconds = time_call(lambda: group(inputs, targets), device, repeats)
        if name in group.failures:
            rows.append({"name": name, "kind": "method", "of": None, "error": group.failures[name]})
            continue
        add(name, seconds, "method")
        if method.shared_key:
            shared.setdefault(method.shared_key, []).append(name)
    for key, members in shared.items():
        if len(members) > 1:
            group = MethodGroup([registry.methods[n].obj for n in members], model)
            add(f"{key} (all {len(members)} together)", time_call(lambda: group(inputs, targets), device, repeats),
                "shared")
    if peers:
        for name in names:
            try:
                implementations = list(peer_implementations(name, model))
            except Exception as exc:  # a broken optional library is reported, not fatal
                rows.append({"name": "peers", "kind": "peer", "of": name, "error": f"{type(exc).__name__}: {exc}"})
                continue
            for label, fn in implementations:
                try:
                    seconds = time_call(lambda: fn(inputs, targets), device, repeats)
                except Exception as exc:  # a peer that cannot handle this model is reported, not fatal
                    rows.append({"name": label, "kind": "peer", "of": name, "error": f"{type(exc).__name__}: {exc}"})
                    continue
                add(label, seconds, "peer", of=name)
    return {
        "device": describe_device(device), "batch_size": batch_size, "model": model.name,
        "floor_ms_per_image": 1000 * floor / batch_size, "rows": rows,
    }


def describe_device(device: torch.device) -> str:
    """``cpu (N threads)`` or the GPU's name."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.get_num_threads()} threads)"


def format_speed(result: dict) -> str:
    """The table ``saliency-bench bench`` prints."""
    from tabulate import tabulate

    rows = []
    for row in result["rows"]:
        if "error" in row:
            rows.append([row["name"], row["kind"], row.get("of") or "", "error", row["error"][:60]])
        else:
            rows.append([row["name"], row["kind"], row.get("of") or "", f"{row['ms_per_image']:.2f}",
                         f"{row['ratio_to_floor']:.2f}x"])
    head = (f"model {result['model']}, batch {result['batch_size']}, {result['device']}; "
            f"floor (forward + backward to the input): {result['floor_ms_per_image']:.2f} ms/image")
    return head + "\n" + tabulate(rows, headers=["name", "kind", "peer of", "ms/image", "vs floor"])
