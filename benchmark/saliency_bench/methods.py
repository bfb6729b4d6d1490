"""The method contract (docs/writing-a-method.md) and validation of what a method returns."""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable, ClassVar, Iterable, Sequence

import torch

from .errors import MethodError

if TYPE_CHECKING:  # pragma: no cover
    from .models.wrapper import ModelWrapper

CONTROL = "control"  # the family of the controls: methods that explain nothing by construction (random, edge)
FAMILIES = ("aggregation", "propagation", CONTROL)
LEGACY_FAMILIES = {"baseline": CONTROL}  # boards and plugins written before the controls' family was named so


def is_control(family: object) -> bool:
    """Whether ``family`` is the controls' (``control``; a board or plugin written earlier says ``baseline``)."""
    return family == CONTROL or LEGACY_FAMILIES.get(family) == CONTROL


class Method:
    """A saliency method: ``attribute(model, inputs[B,3,H,W], targets[B]) -> maps[B,H,W]``.

    Subclasses set ``name``, ``family`` and ``positive`` (the paper's grouping: does the method
    aggregate/propagate positive information only) and implement :meth:`attribute`. Maps are
    float, at input resolution, on the input's device, sign kept, never normalised.

    Methods that can compute several maps from one forward/backward pass (for instance every
    block variant of GradCAM) set the same ``shared_key`` and override :meth:`attribute_shared`;
    the harness then calls it once per batch for all selected methods with that key.
    """

    name: str = ""
    family: str = CONTROL
    positive: bool = False
    layer: str | None = None  # the block/layer the method reads, where it has one ("B3")
    shared_key: ClassVar[str | None] = None
    settings: ClassVar[tuple[str, ...]] = ()  # attributes whose values define the map (recorded on the board)
    # Forward+backward passes per map (SmoothGrad's noisy samples, say): the run's attribution floor counts them.
    passes: int = 1

    def attribute(self, model: "ModelWrapper", inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Return the saliency maps ``[B,H,W]`` of ``targets`` for the (normalised) ``inputs``."""
        raise NotImplementedError

    def attribute_shared(
        self, model: "ModelWrapper", inputs: torch.Tensor, targets: torch.Tensor, methods: Sequence["Method"]
    ) -> dict[str, torch.Tensor]:
        """Return ``{method.name: maps}`` for every method object in ``methods`` (this one among them), all sharing
        this method's ``shared_key``: the run's own registered objects, computed from one pass."""
        return {self.name: self.attribute(model, inputs, targets)}

    def peers(self, model: "ModelWrapper") -> "Iterable[tuple[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]]":
        """Other libraries' implementations of this method (captum, grad-cam, zennit), where installed.

        ``(label, fn(inputs, targets) -> maps)`` pairs, timed beside the method by ``saliency-bench bench``; a method
        yields only the peers whose library imports, with its own settings (steps, epsilon). Default: none.
        """
        return ()

    def setting_values(self) -> dict:
        """``{setting: value}`` of the attributes named in ``settings`` (SmoothGrad's noise level, say)."""
        return {name: getattr(self, name, None) for name in self.settings}

    def describe(self) -> str:
        """One line for ``saliency-bench list``."""
        doc = (type(self).__doc__ or "").strip().splitlines()
        return doc[0] if doc else ""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} family={self.family} positive={self.positive}>"


def check_method_declaration(method: object) -> None:
    """Raise ``ValueError`` unless ``method`` declares a name, a known family and a bool ``positive``."""
    name = getattr(method, "name", None)
    if not isinstance(name, str) or not name:
        raise ValueError(f"{method!r} has no name")
    if getattr(method, "family", None) not in FAMILIES and getattr(method, "family", None) not in LEGACY_FAMILIES:
        raise ValueError(f"method '{name}' has family {getattr(method, 'family', None)!r}; expected one of {FAMILIES}")
    if not isinstance(getattr(method, "positive", None), bool):
        raise ValueError(f"method '{name}' must declare positive: bool")
    if not callable(getattr(method, "attribute", None)):
        raise ValueError(f"method '{name}' has no attribute(model, inputs, targets)")


def validate_maps(name: str, maps: object, inputs: torch.Tensor) -> torch.Tensor:
    """Check a method's output is a finite floating tensor ``[B,H,W]`` at input size; raise MethodError."""
    if not isinstance(maps, torch.Tensor):
        raise MethodError(name, f"returned {type(maps).__name__}, expected a torch.Tensor")
    batch, _, height, width = inputs.shape
    if tuple(maps.shape) != (batch, height, width):
        raise MethodError(name, f"returned shape {tuple(maps.shape)}, expected {(batch, height, width)} [B,H,W]")
    if not maps.is_floating_point():
        raise MethodError(name, f"returned dtype {maps.dtype}, expected floating point")
    if maps.device != inputs.device:
        raise MethodError(name, f"returned maps on {maps.device}, inputs are on {inputs.device}")
    # one reduction: NaN and inf propagate through a sum; only then (or on overflow) look element-wise
    if not bool(torch.isfinite(maps.sum())) and not bool(torch.isfinite(maps).all()):
        bad = int((~torch.isfinite(maps)).sum())
        raise MethodError(name, f"returned {bad} non-finite values (NaN or inf)")
    return maps.detach().float()
