"""How the harness groups methods: those declaring one ``shared_key`` share one pass per batch."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from ..plugins import Registry


def group_by_shared_pass(names: list[str], registry: "Registry") -> list[list[str]]:
    """Methods with the same ``shared_key`` run as one group (one pass per batch); others alone."""
    groups: dict[object, list[str]] = {}
    for name in names:
        key = registry.methods[name].obj.shared_key or ("alone", name)
        groups.setdefault(key, []).append(name)
    return list(groups.values())
