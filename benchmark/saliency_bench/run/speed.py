"""Speed: milliseconds per image of each method beside the forward+backward floor, and peer libraries.

Every candidate (the floor, each method, shared groups, the randomisation step, peers) is timed in
interleaved rounds: round r times every candidate once, so slow drift of the machine (frequency, other
jobs, allocator state) lands on all of them alike; each candidate's figure is its median over rounds.
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from ..checks.randomization import cascade_step
from ..errors import UserError, exception_line
from ..harness.group import MethodGroup, group_by_shared_pass
from ..methods import Method
from ..models.wrapper import ModelWrapper
from .peers import peer_implementations
from ..plugins import Registry
from ..store.results import SPEED

FLOOR = "floor"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class Candidate:
    """One timed thing: ``fn()`` computes a whole batch; ``check()`` (optional) returns an error text or None."""

    name: str
    kind: str
    fn: Callable[[], object]
    of: str | None = None
    check: Callable[[], str | None] | None = None


def interleaved_medians(candidates: Sequence[Candidate], device: torch.device, rounds: int) -> dict[str, float | str]:
    """``{name: median seconds}`` over ``rounds`` interleaved rounds after one warm-up round; errors as text.

    A candidate that raises, or whose ``check`` reports an error (checked after the warm-up and after the
    rounds), gets its error instead of a time; the others go on.
    """
    results: dict[str, float | str] = {}
    live = []
    for candidate in candidates:
        try:
            candidate.fn()
            error = candidate.check() if candidate.check else None
        except Exception as exc:  # a broken method or peer is reported, not fatal
            error = exception_line(exc)
        if error:
            results[candidate.name] = error
        else:
            live.append(candidate)
    _sync(device)
    times: dict[str, list[float]] = {c.name: [] for c in live}
    for _ in range(rounds):
        for candidate in list(live):
            start = time.perf_counter()
            try:
                candidate.fn()
                _sync(device)
            except Exception as exc:  # failing after the warm-up drops it the same way
                results[candidate.name] = exception_line(exc)
                live.remove(candidate)
                continue
            times[candidate.name].append(time.perf_counter() - start)
    for candidate in live:
        # a method that failed after the warm-up is dropped by its group, so its later rounds timed nothing
        error = candidate.check() if candidate.check else None
        values = sorted(times[candidate.name])
        results[candidate.name] = error or values[len(values) // 2]
    return results


def floor_pass(model: ModelWrapper, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The floor every method pays: one forward and one backward of the target logits to the input, at the
    model's precision (``ModelWrapper.precision``), as every method call computes."""
    x = model.precision.prepare_inputs(inputs.detach()).requires_grad_(True)
    with model.precision.active(x.device):
        score = model(x).gather(1, targets.view(-1, 1)).sum()
        (grad,) = torch.autograd.grad(score, x)
    return grad


class FloorMap(Method):
    """The floor as a map, ``max_c |d f_t / d x_c|``: what the randomisation step times its cascade with.

    Not a registered method: the step's cost is then the check's own (the model copy, the re-initialised
    forward + backward, the four similarities) over the one pass every method pays, whatever methods are selected.
    """

    name = FLOOR

    def attribute(self, model: ModelWrapper, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """``max_c |floor_pass|``: one forward and one backward, the largest magnitude over channels."""
        return floor_pass(model, inputs, targets).abs().amax(dim=1)


def bench_batch(model: ModelWrapper, batch_size: int, device: torch.device, seed: int = 0):
    """A seeded random batch at the model's input size and random targets."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(batch_size, 3, model.input_size, model.input_size, generator=generator)
    targets = torch.randint(0, model.num_classes, (batch_size,), generator=generator)
    return model.normalize(images).to(device), targets.to(device)


def variant_groups(names: Sequence[str], registry: Registry) -> dict[str, list[str]]:
    """Shared-pass groups worth timing together, as the harness forms them (``shared_key``): each whole group of two
    or more methods, and within it the methods of one class read at several layers (``layer``: block variants).
    """
    groups: dict[str, list[str]] = {}
    for members in group_by_shared_pass(list(names), {name: registry.methods[name].obj for name in names}):
        if len(members) < 2:  # a method alone, or the only one of its shared pass
            continue
        methods = [registry.methods[name].obj for name in members]
        by_class: dict[type, list[Method]] = {}
        for method in methods:
            if getattr(method, "layer", None) is not None:
                by_class.setdefault(type(method), []).append(method)
        for cls, variants in by_class.items():
            layers = {method.layer for method in variants}
            if len(layers) > 1 and len(variants) < len(members):
                groups[f"{cls.__name__} at {len(layers)} layers ({len(variants)} together)"] = [
                    method.name for method in variants]
        groups[f"{methods[0].shared_key} (all {len(members)} together)"] = members
    return groups


def group_error(group: MethodGroup) -> str | None:
    """Every failure a method group recorded, joined, or None: the ``check`` of a group's timing candidate."""
    return "; ".join(group.failures.values()) or None


def measure(
    registry: Registry, names: Sequence[str], model: ModelWrapper, batch_size: int = 64, rounds: int = 5,
    peers: bool = True, seed: int = 0, extras: bool = True,
) -> dict:
    """Milliseconds per image and ratio to the floor of each method and, with ``extras``, of shared groups and
    the randomisation step (one cascade step on the floor's map), and (with ``peers``) of peer implementations."""
    device = model.device
    inputs, targets = bench_batch(model, batch_size, device, seed)
    candidates = [Candidate(FLOOR, "floor", lambda: floor_pass(model, inputs, targets))]
    for name in names:
        group = MethodGroup([registry.methods[name].obj], model)
        candidates.append(Candidate(name, "method", lambda g=group: g(inputs, targets),
                                    check=lambda g=group, n=name: g.failures.get(n) or (
                                        f"n/a: {g.not_applicable[n]}" if n in g.not_applicable else None)))
    if extras:
        group = MethodGroup([FloorMap()], model)
        candidates.append(Candidate(f"randomization step ({FLOOR} + 4 similarities)", "check",
                                    cascade_step(model, group, inputs, targets), of=FLOOR,
                                    check=lambda g=group: group_error(g)))
    for label, members in (variant_groups(names, registry) if extras else {}).items():
        group = MethodGroup([registry.methods[n].obj for n in members], model)
        candidates.append(Candidate(label, "shared", lambda g=group: g(inputs, targets),
                                    check=lambda g=group: group_error(g)))
    if peers:
        for name in names:
            try:
                for label, fn in peer_implementations(registry.methods[name].obj, model):
                    candidates.append(Candidate(f"{label} [{name}]", "peer", _quiet(fn, inputs, targets, model),
                                                of=name))
            except Exception as exc:  # a broken optional library is reported, not fatal
                candidates.append(Candidate(f"peers of {name}", "peer", _raiser(exc), of=name))
    seconds = interleaved_medians(candidates, device, rounds)
    floor = seconds[FLOOR]
    if isinstance(floor, str):
        raise UserError(f"model '{model.name}': the forward+backward floor pass failed ({floor})")
    rows = []
    for candidate in candidates[1:]:
        value = seconds[candidate.name]
        label = candidate.name.rsplit(" [", 1)[0] if candidate.kind == "peer" else candidate.name
        if isinstance(value, str):
            rows.append({"name": label, "kind": candidate.kind, "of": candidate.of, "error": value})
        else:
            rows.append({"name": label, "kind": candidate.kind, "of": candidate.of,
                         "ms_per_image": 1000 * value / batch_size, "ratio_to_floor": value / floor})
    return {
        "device": describe_device(device), "batch_size": batch_size, "model": model.name, "rounds": rounds,
        "floor_ms_per_image": 1000 * floor / batch_size, "rows": rows,
        **({} if model.precision.is_default else {"precision": model.precision.describe()}),
    }


def _quiet(fn: Callable, inputs: torch.Tensor, targets: torch.Tensor, model: ModelWrapper) -> Callable[[], object]:
    """``fn(inputs, targets)`` at the model's precision (as every method call), with the peer library's warnings
    silenced (captum warns on every call), leaving no ``.grad`` on the network (grad-cam calls ``backward()``; the
    next method's model guard would see it)."""
    def call():
        with warnings.catch_warnings(), model.precision.active(inputs.device):
            warnings.simplefilter("ignore")
            try:
                return fn(inputs, targets)
            finally:
                for parameter in model.network.parameters():
                    parameter.grad = None
    return call


def _raiser(exc: Exception) -> Callable[[], object]:
    """A candidate that re-raises ``exc`` (a peer library that failed to load), so it is reported like any error."""
    def fn():
        raise exc
    return fn


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
            text = row["error"]  # a method undefined on the model says so, it has not failed
            label, reason = ("n/a", text[len("n/a: "):]) if text.startswith("n/a: ") else ("error", text)
            rows.append([row["name"], row["kind"], row.get("of") or "", label, reason[:60], ""])
        else:
            rows.append([row["name"], row["kind"], row.get("of") or "", f"{row['ms_per_image']:.2f}",
                         f"{1000.0 / row['ms_per_image']:.0f}", f"{row['ratio_to_floor']:.2f}x"])
    floor = result["floor_ms_per_image"]
    described = result.get("precision")
    precision = (f", {described['mode']}" + (" channels-last" if described["channels_last"] else "")) if described else ""
    head = (f"model {result['model']}, batch {result['batch_size']}, {result['device']}{precision}, median of "
            f"{result['rounds']} interleaved rounds; floor (forward + backward to the input): "
            f"{floor:.2f} ms/image = {1000.0 / floor:.0f} images/s")
    return head + "\n" + tabulate(rows, headers=["name", "kind", "peer of", "ms/image", "images/s", "vs floor"])


def bench_command(args, log) -> int:
    """``saliency-bench bench``: each method's ms per image and ratio to the floor (and its peers), printed."""
    import json

    from ..plugins import load_registry
    from .options import RunOptions
    from .session import open_model

    registry = load_registry(log)
    names = registry.select_methods(args.methods or ["*"])
    opened = open_model(RunOptions(model=args.model, weights=args.weights, blocks=args.blocks, device=args.device,
                                   precision=args.precision, channels_last=args.channels_last), registry)
    result = measure(registry, names, opened, batch_size=args.batch_size, rounds=args.rounds, peers=not args.no_peers)
    print(json.dumps(result, indent=1) if args.json else format_speed(result))
    return 0


def measure_speed(report, registry: Registry, options, log) -> None:
    """A run's speed step: time every method not yet timed here (ms per image, ratio to the floor of the same
    process); store each row.

    Speed records live in the run folder beside the results (``results/speed/``) and feed leaderboard.md,
    never leaderboard.json: they depend on the machine, the results do not. A row is reused only from the
    same device and timing parameters. Timing never fails the run: its errors are logged and stored.
    """
    model = report.suite.model
    params = {"batch_size": options.speed_batch_size, "rounds": options.speed_rounds}
    pending = untimed(report, registry, params, describe_device(model.device))
    if not pending:
        return
    log(f"speed: timing {len(pending)} method(s) against the forward+backward floor "
        f"(batch {options.speed_batch_size}, {options.speed_rounds} rounds)")
    started = time.perf_counter()
    torch.manual_seed(options.seed)
    try:
        result = measure(registry, pending, model, batch_size=options.speed_batch_size,
                         rounds=options.speed_rounds, peers=False, seed=options.seed, extras=False)
    except Exception as exc:  # out of memory at batch 64, a broken floor: the board is written without speed
        log(f"speed: not measured ({exception_line(exc)}); the board has no speed figures for these methods")
        return
    report.floor_ms_per_image = result["floor_ms_per_image"]
    for row in result["rows"]:
        meta = registry.provenance(row["name"])
        if "error" in row:
            record = {"status": "failed", "error": row["error"], "plugin": meta}
        else:
            record = {"status": "ok", "plugin": meta, "device": result["device"],
                      "floor_ms_per_image": result["floor_ms_per_image"],
                      "ms_per_image": row["ms_per_image"], "ratio_to_floor": row["ratio_to_floor"]}
        report.store.put(row["name"], SPEED, record, params)
        report.computed.append((row["name"], SPEED))
    report.seconds[SPEED] = time.perf_counter() - started


def measure_floor(model: ModelWrapper, options) -> float | None:
    """ms per image of one forward plus one backward to the input (batch and rounds of the speed step), or None."""
    try:
        result = measure(None, [], model, batch_size=options.speed_batch_size, rounds=options.speed_rounds,
                         peers=False, seed=options.seed, extras=False)
    except Exception:  # noqa: BLE001 - a floor that cannot be timed leaves the summary without it, never the run
        return None
    return result["floor_ms_per_image"]


def untimed(report, registry: Registry, params: dict, device: str) -> list[str]:
    """The methods to time: not failed, not n/a on every check (no map on this model; a check that is n/a for
    every method, data randomisation without a twin, says nothing of the method), and with no ``ok`` speed record
    of this device, timing parameters and plugin (those are reused, noted in ``report``)."""
    pending = []
    for name in report.methods:
        not_applicable = report.not_applicable.get(name, set())
        if name in report.failures or (not_applicable and not_applicable >= set(report.checks)):
            continue
        stored = report.store.get(name, SPEED)
        if (stored is not None and stored.get("status") == "ok" and stored.get("params") == params
                and stored.get("device") == device and stored.get("plugin") == registry.provenance(name)):
            report.reused.append((name, SPEED))
        else:
            pending.append(name)
    return pending
