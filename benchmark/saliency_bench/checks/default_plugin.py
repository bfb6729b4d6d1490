"""Default plugin of the core: registers the four sanity checks (docs/protocol.md, "The four checks")."""
from __future__ import annotations

from ..hookspecs import hookimpl
from .class_sensitivity import ClassSensitivity
from .pointing import PointingGame, RestrictedPointingGame
from .randomization import CascadingRandomization


@hookimpl
def register_checks(register) -> None:
    """Register the pointing game, restricted pointing game, class sensitivity and cascading randomisation."""
    for check in (PointingGame(), RestrictedPointingGame(), ClassSensitivity(), CascadingRandomization()):
        register(check)
