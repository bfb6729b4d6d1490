"""Installing a plugin distribution for real in a test: a renamed copy (an installed original cannot interfere), pip."""
import shutil
import subprocess
import sys
from pathlib import Path


def renamed_copy(source: Path, tmp_path: Path, distribution: str, package: str) -> Path:
    """``source`` (a plugin folder) copied under ``<distribution>-copy`` / ``<package>_copy``."""
    target = tmp_path / f"{package}_copy_src"
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("*.egg-info", "__pycache__", "build"))
    (target / package).rename(target / f"{package}_copy")
    pyproject = (target / "pyproject.toml").read_text()
    pyproject = pyproject.replace(f'name = "{distribution}"', f'name = "{distribution}-copy"')
    pyproject = pyproject.replace(package, f"{package}_copy")
    (target / "pyproject.toml").write_text(pyproject)
    return target


def pip(*args: str) -> subprocess.CompletedProcess:
    """``python -m pip -q ARGS`` in the test's interpreter."""
    return subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args],
                          capture_output=True, text=True, timeout=300)
