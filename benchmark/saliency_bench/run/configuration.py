"""The run configuration: what a result depends on (recorded in every result file) and package versions."""
from __future__ import annotations

import importlib.metadata
import json
import platform

PACKAGES = ("saliency-bench", "torch", "torchvision", "numpy", "scikit-image", "pluggy")


def package_versions(extra: tuple[str, ...] = ()) -> dict[str, str]:
    """Installed versions of the packages results depend on (``missing`` where not installed)."""
    versions = {}
    for name in PACKAGES + extra:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "missing"
    versions["python"] = platform.python_version()
    return versions


def plain(data: object) -> object:
    """The JSON round trip of ``data`` (tuples become lists), so recorded and fresh values compare equal."""
    return json.loads(json.dumps(data, sort_keys=True))
