"""The README's "Check your method in CI" job, run as written in a fresh virtual environment against the committed board.

The environment is a new venv whose only view of the test environment is a folder of links to its installed
packages without any saliency-bench distribution: so `pip install ./saliency-bench ./saliency-bench/plugins/sanity-2023 .` installs the benchmark, its check plugin
and the plugin for real (a wheel, not this checkout's editable install) while torch comes from the links
(the job's first command only downloads CPU wheels of torch from pytorch.org; CI machines are offline).
"""
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BOARD_FILES = ("leaderboard.json", "leaderboard.md", "leaderboard-speed.json")
COPY_IGNORE = shutil.ignore_patterns(".git", ".venv", "venv", "runs", "build", "dist", "*.egg-info", "__pycache__",
                                     ".pytest_cache", ".hypothesis", ".benchmarks", ".devcheck", "tests", "figures")

BROKEN_PLUGIN = '''
import torch

from saliency_bench import Method, hookimpl


class Noise(Method):
    """Uniform noise: explains nothing."""

    name, family, positive = "my_noise", "propagation", False

    def attribute(self, model, inputs, targets):
        batch, _, height, width = inputs.shape
        return torch.rand(batch, height, width, device=inputs.device)


class Flipped(Method):
    """The gradient map mirrored left to right: right values, wrong places."""

    name, family, positive = "my_flipped", "propagation", False

    def attribute(self, model, inputs, targets):
        inputs = inputs.detach().requires_grad_(True)
        score = model(inputs).gather(1, targets.view(-1, 1)).sum()
        (grad,) = torch.autograd.grad(score, inputs)
        return grad.abs().amax(dim=1).flip(-1)


class InputTimesGradient(Method):
    """Input x gradient, summed over the colour channels: as the board's `input_x_gradient`, which passes."""

    name, family, positive = "my_input_x_gradient", "propagation", False

    def attribute(self, model, inputs, targets):
        inputs = inputs.detach().requires_grad_(True)
        score = model(inputs).gather(1, targets.view(-1, 1)).sum()
        (grad,) = torch.autograd.grad(score, inputs)
        return (grad * inputs).sum(dim=1).detach()


class Plugin:
    @hookimpl
    def register_methods(self, register):
        register(Noise())
        register(Flipped())
        register(InputTimesGradient())


plugin = Plugin()
'''

BROKEN_PYPROJECT = '''
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "my-broken-methods"
version = "0.0.1"
dependencies = ["saliency-bench"]

[project.entry-points.saliency_bench]
my_noise = "my_broken_methods:plugin"

[tool.setuptools]
packages = ["my_broken_methods"]
'''


def job_commands() -> list[str]:
    """The ``run:`` commands of the YAML job in the README's "Check your method in CI" section, in order."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Check your method in CI"):]
    block = re.search(r"```yaml\n(.*?)```", section, re.S).group(1)
    return [line.split("- run:", 1)[1].strip() for line in block.splitlines() if line.strip().startswith("- run:")]


def fresh_environment(folder: Path) -> Path:
    """A venv seeing the test environment's packages, but no saliency-bench distribution, through a folder of links."""
    venv.create(folder / "venv", with_pip=True)
    links = folder / "site-links"
    links.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        name = entry.name.lower().replace("-", "_")
        if not name.startswith(("saliency_bench", "__editable__", "_saliency_bench")) and not name.endswith(".pth"):
            (links / entry.name).symlink_to(entry)
    site = next((folder / "venv" / "lib").glob("python3*/site-packages"))
    (site / "test-environment.pth").write_text(f"{links}\n")
    return folder / "venv" / "bin"


def run_job(commands: list[str], method: str, cwd: Path, bin_dir: Path) -> subprocess.CompletedProcess:
    """Run the job's commands in ``cwd`` with ``bin_dir`` first on PATH; the last one's result."""
    env = {k: v for k, v in os.environ.items() if k not in ("SALIENCY_BENCH_PLUGINS", "PYTHONPATH", "VIRTUAL_ENV")}
    env.update(PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}", VIRTUAL_ENV=str(bin_dir.parent),
               PIP_DISABLE_PIP_VERSION_CHECK="1")
    result = None
    for command in commands:
        command = command.replace("your_method", method)
        result = subprocess.run(command, shell=True, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
        if command.startswith("pip "):
            assert result.returncode == 0, f"{command}: {result.stderr[-2000:]}"
    return result


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    """(commands to run, a venv's bin folder, a copy of this repository as the job checks it out)."""
    commands = job_commands()
    assert len(commands) == 3 and "torch" in commands[0] and "download.pytorch.org" in commands[0]
    assert commands[1].startswith("pip install ./saliency-bench ./saliency-bench/plugins/sanity-2023 .")
    assert commands[2].startswith("saliency-bench check your_method --against saliency-bench/leaderboard.json")
    folder = tmp_path_factory.mktemp("ci")
    bin_dir = fresh_environment(folder)
    benchmark = folder / "checkout"
    shutil.copytree(ROOT, benchmark, ignore=COPY_IGNORE, symlinks=True)
    return commands[1:], bin_dir, benchmark


def _user_repo(tmp_path: Path, benchmark: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "saliency-bench").symlink_to(benchmark, target_is_directory=True)
    return repo


def test_the_readme_job_passes_a_sound_method_and_fails_noise_and_a_flipped_map(job, tmp_path):
    """One job over three methods of a user's plugin: input x gradient passes, noise and a mirrored gradient fail
    (exit 1, as one candidate failing fails the job); the board's files are untouched. One run keeps CI short."""
    commands, bin_dir, benchmark = job
    repo = _user_repo(tmp_path, benchmark)
    (repo / "pyproject.toml").write_text(BROKEN_PYPROJECT)
    (repo / "my_broken_methods").mkdir()
    (repo / "my_broken_methods" / "__init__.py").write_text(BROKEN_PLUGIN)
    before = {name: (ROOT / name).read_bytes() for name in BOARD_FILES}
    result = run_job(commands, "my_input_x_gradient my_noise my_flipped", repo, bin_dir)
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    assert "my_input_x_gradient (my-broken-methods 0.0.1): not on" in result.stdout
    assert "my_input_x_gradient: PASSES the required criteria (overall)" in result.stdout
    assert "my_noise: FAILS the required criteria (overall)" in result.stdout
    assert "my_flipped: FAILS the required criteria (overall)" in result.stdout
    assert {name: (benchmark / name).read_bytes() for name in BOARD_FILES} == before
    assert {name: (ROOT / name).read_bytes() for name in BOARD_FILES} == before
