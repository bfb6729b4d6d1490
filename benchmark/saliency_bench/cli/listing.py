"""The text of ``saliency-bench list``: methods with family, positive flag and providing distribution."""
from __future__ import annotations

from tabulate import tabulate

from ..plugins import Registry


def format_listing(registry: Registry) -> str:
    """Four tables (methods, checks, models, datasets) in plain text."""
    methods = [
        [name, r.obj.family, "yes" if r.obj.positive else "no", r.obj.layer or "", f"{r.distribution} {r.version}"]
        for name, r in registry.methods.items()
    ]
    parts = ["Methods", tabulate(methods, headers=["name", "family", "positive", "layer", "provided by"])]
    for title, table in (("Checks", registry.checks), ("Models", registry.models), ("Datasets", registry.datasets)):
        rows = [[name, _describe(r.obj), f"{r.distribution} {r.version}"] for name, r in table.items()]
        parts += ["", title, tabulate(rows, headers=["name", "description", "provided by"])]
    return "\n".join(parts)


def _describe(obj) -> str:
    text = getattr(obj, "description", "") or (type(obj).__doc__ or "")
    return text.strip().splitlines()[0] if text.strip() else ""
