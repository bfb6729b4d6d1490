"""Isolation: a method that changes the model (weights, hooks, flags) or hangs fails alone, named, and every
other method's results equal a clean run's; the guard itself on hand-made changes."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from saliency_bench import Method, MethodGroup
from saliency_bench.harness.isolation import ModelGuard
from saliency_bench.harness.timeouts import MethodTimeout, time_limit
from fakes import small_model

DRIVER = str(Path(__file__).with_name("cli_driver.py"))




@pytest.mark.parametrize("change, named", [
    (lambda net: net[0].weight.data.mul_(0.5), "values of 0.weight"),
    (lambda net: net[4].bias.data.zero_(), "values of 4.bias"),
    (lambda net: net[0].register_forward_hook(lambda m, a, out: out * 2), "hooks: forward_hooks on 0"),
    (lambda net: net[2].register_forward_pre_hook(lambda m, a: None), "hooks: forward_pre_hooks on 2"),
    (lambda net: net[0].weight.requires_grad_(False), "flags: 0.weight.requires_grad"),
    (lambda net: net.train(), "flags: "),
    (lambda net: setattr(net[1], "inplace", True), "flags: 1.inplace"),
    (lambda net: setattr(net[4], "weight", nn.Parameter(net[4].weight.detach() * 0)), "replaced"),
    (lambda net: nn.modules.module.register_module_forward_hook(lambda m, a, out: out), "hooks: "),
    (lambda net: setattr(net[0].weight, "data", net[0].weight.data.double()), "values of 0.weight"),
    (lambda net: net[0].weight.data.copy_(net[0].weight.data.flip(0)), "values of 0.weight"),  # same norm
    (lambda net: net.__setitem__(1, nn.Sigmoid()), "modules replaced"),
    (lambda net: setattr(net[0], "forward", lambda x: x), "forward replaced"),
    (lambda net: net[0].register_forward_hook(lambda m, a, k, out: out * 2, with_kwargs=True), "hooks: "),
    (lambda net: net[4].weight.register_hook(lambda g: g * 0), "tensor_hooks"),
    (lambda net: net[4](torch.ones(1, 4)).sum().backward(), "4.weight.grad"),
])
def test_guard_names_each_change_and_restores_the_reference_exactly(change, named):
    model = small_model()
    model.network.eval()
    inputs = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        before = model.network(inputs)
    state = {k: v.clone() for k, v in model.network.state_dict().items()}
    guard = ModelGuard(model.network)
    assert guard.changes() == []
    change(model.network)
    found = guard.changes()
    assert found and named in "; ".join(found)
    guard.restore()
    assert guard.changes() == []
    with torch.no_grad():
        assert torch.equal(model.network(inputs), before)
    assert all(torch.equal(v, state[k]) for k, v in model.network.state_dict().items())


def test_refresh_accepts_a_checks_own_change():
    model = small_model()
    guard = ModelGuard(model.network)
    with torch.no_grad():
        model.network[0].weight.add_(1.0)
    assert guard.changes()
    guard.refresh()
    assert guard.changes() == []


class InputGradient(Method):
    """Max over channels of |df/dx| (depends on every weight)."""

    name, family = "neighbour", "propagation"

    def attribute(self, model, inputs, targets):
        inputs = inputs.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(model(inputs).gather(1, targets[:, None]).sum(), inputs)
        return grad.abs().amax(1)


class HalvesWeights(InputGradient):
    name = "halves_weights"

    def attribute(self, model, inputs, targets):
        model.network[0].weight.data.mul_(0.5)
        return super().attribute(model, inputs, targets)


class Hangs(InputGradient):
    name = "hangs"

    def attribute(self, model, inputs, targets):
        while True:  # a hung method: only the time limit ends it
            pass


def test_group_fails_the_culprit_restores_the_model_and_neighbors_match_a_clean_run():
    inputs = torch.randn(3, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    targets = torch.tensor([0, 1, 2])
    clean = MethodGroup([InputGradient()], small_model())(inputs, targets)["neighbour"]
    model = small_model()
    group = MethodGroup([HalvesWeights(), Hangs(), InputGradient()], model, timeout=0.5)
    for _ in range(2):  # the culprits are dropped after their first call; the neighbour is unaffected
        maps = group(inputs, targets)
        assert set(maps) == {"neighbour"} and torch.equal(maps["neighbour"], clean)
    assert "changed the model: values of 0.weight" in group.failures["halves_weights"]
    assert "timed out" in group.failures["hangs"]


def test_time_limit_interrupts_and_clears_the_alarm():
    with pytest.raises(MethodTimeout):
        with time_limit(0.2):
            while True:
                pass
    with time_limit(5.0):
        pass  # no stray alarm afterwards
    with pytest.raises(MethodTimeout):
        with time_limit(0.0):
            pass


BAD_PLUGIN = '''
"""Careless and hostile methods for the isolation test."""
import time

import torch

from saliency_bench import Method, method_plugin


class Neighbour(Method):
    name, family, positive = "neighbour_gradient", "propagation", False

    def attribute(self, model, inputs, targets):
        inputs = inputs.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(model(inputs).gather(1, targets[:, None]).sum(), inputs)
        return grad.abs().amax(1)


class ChangesWeights(Neighbour):
    name = "changes_weights"

    def attribute(self, model, inputs, targets):
        for p in model.network.parameters():
            p.data.mul_(0.5)
        return super().attribute(model, inputs, targets)


class LeavesHook(Neighbour):
    name = "leaves_hook"

    def attribute(self, model, inputs, targets):
        first = next(m for m in model.network.modules() if isinstance(m, torch.nn.Conv2d))
        first.register_forward_hook(lambda m, a, out: out * 3)
        for p in model.network.parameters():
            p.requires_grad_(False)
        return super().attribute(model, inputs, targets)


class Hangs(Neighbour):
    name = "hangs"

    def attribute(self, model, inputs, targets):
        time.sleep(600)


neighbour_gradient = method_plugin(Neighbour())
changes_weights = method_plugin(ChangesWeights())
leaves_hook = method_plugin(LeavesHook())
hangs = method_plugin(Hangs())
'''


def _pip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args],
                          capture_output=True, text=True, timeout=300)


def test_installed_bad_plugins_fail_alone_and_neighbors_equal_a_clean_run(tmp_path):
    source = tmp_path / "bad_plugins"
    (source / "saliency_bench_bad").mkdir(parents=True)
    (source / "saliency_bench_bad" / "__init__.py").write_text(textwrap.dedent(BAD_PLUGIN))
    names = ("neighbour_gradient", "changes_weights", "leaves_hook", "hangs")
    entry_points = "\n".join(f'{n} = "saliency_bench_bad:{n}"' for n in names)
    (source / "pyproject.toml").write_text(textwrap.dedent(f"""\
        [build-system]
        requires = ["setuptools>=68"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "saliency-bench-bad-test"
        version = "0.1.0"

        [project.entry-points.saliency_bench]
        """) + entry_points + '\n\n[tool.setuptools]\npackages = ["saliency_bench_bad"]\n')
    installed = _pip("install", "--no-deps", "--no-build-isolation", str(source))
    assert installed.returncode == 0, installed.stderr
    env = {**os.environ, "SALIENCY_BENCH_PLUGINS": "saliency-bench-bad-test", "TQDM_DISABLE": "1"}

    def run(out: str, *methods: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, DRIVER, "run", "-m", *methods, "--model", "fake_vgg", "--checks", "mean_map",
             "--out", str(tmp_path / out), "--no-progress", "--no-speed", "--method-timeout", "3"],
            env=env, capture_output=True, text=True, timeout=300)

    def result(out: str, method: str) -> dict:
        return json.loads((tmp_path / out / "results" / "mean_map" / f"{method}.json").read_text())

    try:
        clean = run("clean", "neighbour_gradient")
        assert clean.returncode == 0, clean.stderr
        dirty = run("dirty", "changes_weights", "leaves_hook", "hangs", "neighbour_gradient")
        assert dirty.returncode == 1  # some methods failed; the others finished
        assert "Traceback" not in dirty.stderr
        assert result("dirty", "neighbour_gradient")["metrics"] == result("clean", "neighbour_gradient")["metrics"]
        assert "changed the model: values of" in result("dirty", "changes_weights")["error"]
        error = result("dirty", "leaves_hook")["error"]
        assert "hooks: forward_hooks on" in error and "requires_grad" in error
        assert "timed out" in result("dirty", "hangs")["error"]
        stamp = (tmp_path / "dirty" / "results" / "mean_map" / "hangs.json").stat().st_mtime_ns
        again = run("dirty", "hangs", "neighbour_gradient")  # resume retries the timed-out method only
        assert again.returncode == 1 and "1 results computed, 1 reused" in again.stderr
        assert (tmp_path / "dirty" / "results" / "mean_map" / "hangs.json").stat().st_mtime_ns != stamp
    finally:
        removed = _pip("uninstall", "-y", "saliency-bench-bad-test")
    assert removed.returncode == 0, removed.stderr


def test_a_replaced_hook_is_named_and_the_original_put_back():
    model = small_model()
    calls = []
    model.network[0].register_forward_hook(lambda m, a, out: calls.append("original"))
    guard = ModelGuard(model.network)
    model.network[0]._forward_hooks.clear()  # a plugin that removes the user's hook ...
    model.network[0].register_forward_hook(lambda m, a, out: calls.append("plugin"))  # ... and adds its own
    assert "hooks: forward_hooks on 0" in "; ".join(guard.changes())
    guard.restore()
    assert guard.changes() == []
    with torch.no_grad():
        model.network(torch.zeros(1, 3, 8, 8))
    assert calls == ["original"]


def test_a_plugin_cannot_swallow_the_time_limit():
    def careless():
        try:
            while True:
                pass
        except Exception:  # a plugin's blanket handler
            return "swallowed"

    with pytest.raises(MethodTimeout):
        with time_limit(0.2):
            careless()
