"""The versions of the packages a result depends on (recorded in the configuration of every result)."""
from __future__ import annotations

import importlib.metadata
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

