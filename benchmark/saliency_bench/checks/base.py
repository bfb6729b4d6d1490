"""The check contract, and MethodGroup: the methods a check runs together, validated and fault-isolated."""
from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import torch

from ..errors import MethodError, NotApplicable, exception_line
from ..methods import Method, validate_maps

if TYPE_CHECKING:  # pragma: no cover
    from ..models.wrapper import ModelWrapper
    from ..suite import Suite


class Check:
    """A sanity check. ``run`` streams the suite's batches once for a whole MethodGroup.

    It returns ``{method_name: result}`` for every method still active in the group at the end,
    where ``result`` is JSON-able: ``{"metrics": {metric: {"value", "ci_low", "ci_high", "n", ...}},
    "headline": metric, ...extra}``.
    """

    name: str = ""
    requires_masks: bool = False
    description: str = ""

    def default_params(self, suite: "Suite") -> dict:
        """Parameters derived from the model and dataset (recorded with every result)."""
        return {}

    def run(self, suite: "Suite", group: "MethodGroup", params: dict) -> dict[str, dict]:
        raise NotImplementedError


class MethodGroup:
    """Methods computed together on each batch (those sharing ``shared_key`` share one pass).

    Calling the group returns ``{name: maps}`` for its active methods. A method that raises or
    returns an invalid map is recorded in ``failures`` and dropped from later calls, so one
    broken method never stops the others; one that raises ``NotApplicable`` is recorded in
    ``not_applicable`` (shown as "n/a", neither a failure nor a number) and dropped likewise.
    """

    def __init__(self, methods: Sequence[Method], model: "ModelWrapper"):
        self.methods = {m.name: m for m in methods}
        self.model = model
        self.failures: dict[str, str] = {}
        self.not_applicable: dict[str, str] = {}

    @property
    def active(self) -> list[str]:
        return [name for name in self.methods if name not in self.failures and name not in self.not_applicable]

    def __call__(
        self, inputs: torch.Tensor, targets: torch.Tensor, model: "ModelWrapper | None" = None
    ) -> dict[str, torch.Tensor]:
        """Maps ``[B,H,W]`` of every active method for ``targets`` (optionally on another model)."""
        model = model or self.model
        maps: dict[str, torch.Tensor] = {}
        pending = self.active
        while pending:
            leader = self.methods[pending[0]]
            key = leader.shared_key
            names = [n for n in pending if key is not None and self.methods[n].shared_key == key] or [leader.name]
            pending = [n for n in pending if n not in names]
            try:
                with torch.enable_grad():
                    out = leader.attribute_shared(model, inputs, targets, names) if key else {
                        leader.name: leader.attribute(model, inputs, targets)
                    }
            except NotApplicable as exc:
                for name in names:
                    self.not_applicable[name] = exc.reason
                continue
            except Exception as exc:  # a plugin's bug must not stop the run
                reason = f"raised {exception_line(exc)}"
                for name in names:
                    self.failures[name] = f"method '{name}' failed: {reason}"
                continue
            for name in names:
                if isinstance(out.get(name), NotApplicable):  # a shared pass declares one of its maps undefined
                    self.not_applicable[name] = out[name].reason
                    continue
                try:
                    if name not in out:
                        raise MethodError(name, "shared computation returned no map for it")
                    maps[name] = validate_maps(name, out[name], inputs)
                except MethodError as exc:
                    self.failures[name] = str(exc)
        return maps
