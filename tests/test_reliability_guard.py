"""Reliability, round three (issue 25): what a method or a plugin can change beyond the network is named and undone.

The guard compares weights bit for bit (NaN weights are no change); a method that writes the wrapper's block names,
patches a torch.nn class or function, changes torch's global settings or raises SystemExit fails alone, named, and
its neighbour's maps are byte-identical to a clean run's; a plugin that changes torch's state at import is named
and left out. Also: the suite's loader draws nothing from torch's global generator, an empty allowlist is said,
and GradCAM++ is finite and the same in a shared pass and alone where its denominator vanishes.
"""
from __future__ import annotations

import importlib.metadata
import json
import sys
import textwrap
import types

import pytest
import torch
from torch import nn

from fakes import MeanMap, SquaresDataset, load_model, small_model
from saliency_bench import Method, MethodGroup, ModelWrapper, hookimpl
from saliency_bench.cli import main
from saliency_bench.controls import EdgeMap
from saliency_bench.harness.isolation import ModelGuard, TorchState
from saliency_bench.harness.suite import Suite
from saliency_bench.plugins import make_plugin_manager

RELU_FORWARD, F_RELU = nn.ReLU.forward, nn.functional.relu


# -- bitwise comparison ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("flat", [(), ("cpu",)], ids=["per-tensor", "flat-copy"])
def test_guard_compares_bits_so_nan_weights_are_no_change_on_either_path(flat):
    model = small_model()
    with torch.no_grad():
        model.network[0].weight[0, 0, 0, 0] = float("nan")
        model.network[4].bias[0] = 0.0
    guard = ModelGuard(model.network, flat_devices=flat)
    assert guard.changes() == []  # NaN equals itself bit for bit (torch.equal says it does not)
    with torch.no_grad():
        model.network[4].bias[0] = -0.0  # equal as a number, not as bits: a change
    assert "values of 4.bias" in "; ".join(guard.changes())
    guard.restore()
    assert guard.changes() == [] and str(model.network[4].bias[0].item()) == "0.0"


def test_controls_run_on_a_model_whose_weights_hold_nan():
    model = small_model()
    with torch.no_grad():
        model.network[0].weight[0, 0, 0, 0] = float("nan")
    group = MethodGroup([EdgeMap()], model)
    maps = group(torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0)), torch.tensor([0, 1]))
    assert group.failures == {} and set(maps) == {"edge"}


# -- a method that changes what its neighbour computes: in-process runs through the pipeline -------------------------
class RecordMaps(MeanMap):
    """The fake check, keeping every map each method returned (to compare bytes across runs)."""

    name = "record_maps"
    seen: dict[str, list[torch.Tensor]] = {}

    def run(self, suite, group, params):
        for batch in suite.batches(desc=self.name):
            for name, maps in group(batch["inputs"], batch["labels"].argmax(dim=1)).items():
                self.seen.setdefault(name, []).append(maps.clone())
        return {name: {"metrics": {"mean": {"value": 0.0, "n": 1}}, "headline": "mean"}
                for name in self.seen if name in group.active}


class Neighbor(Method):
    """Noise from torch's generator (in the default dtype), the model's forward and gradient, and block B5."""

    name, family, positive = "neighbour", "propagation", False

    def attribute(self, model, inputs, targets):
        noisy = (inputs + 0.1 * torch.randn(inputs.shape)).to(inputs.dtype).detach().requires_grad_(True)
        seen = {}
        handle = model.blocks["B5"].register_forward_hook(lambda module, args, out: seen.setdefault("B5", out))
        try:
            (grad,) = torch.autograd.grad(model(noisy).gather(1, targets[:, None]).sum(), noisy)
        finally:
            handle.remove()
        return grad.abs().amax(1) + seen["B5"].detach().mean()


def _offender(name: str, act) -> Method:
    """A method that does ``act(model)`` and then computes as its neighbour does."""

    class Offender(Neighbor):
        def attribute(self, model, inputs, targets):
            act(model)
            return super().attribute(model, inputs, targets)

    offender = Offender()
    offender.name = name
    return offender


def _exit(model):
    raise SystemExit(0)


def _rename_block(model):
    model.block_names["B5"] = model.block_names["B1"]  # what the wrapper hands out is read-only


OFFENDERS = {  # name: (what it does, what its failure line says)
    "writes_block_names": (_rename_block, "raised TypeError: 'mappingproxy' object does not support item assignment"),
    "patches_relu_forward": (lambda m: setattr(nn.ReLU, "forward", lambda self, x: RELU_FORWARD(self, x) * 2),
                             "changed torch's global state: patched torch.nn.ReLU.forward"),
    "patches_functional_relu": (lambda m: setattr(nn.functional, "relu", lambda x, inplace=False: F_RELU(x) * 2),
                                "patched torch.nn.functional.relu"),
    "sets_float64": (lambda m: torch.set_default_dtype(torch.float64), "default dtype float32 -> float64"),
    "turns_mkldnn_off": (lambda m: setattr(torch.backends.mkldnn, "enabled", False),
                         "torch.backends.mkldnn.enabled True -> False"),
    "sets_cudnn_benchmark": (lambda m: setattr(torch.backends.cudnn, "benchmark", True),
                             "torch.backends.cudnn.benchmark False -> True"),
    "sets_threads": (lambda m: torch.set_num_threads(torch.get_num_threads() + 1), "threads "),
    "renames_classes": (lambda m: m.class_names.reverse(), "changed the model wrapper: class_names"),
    "exits": (_exit, "raised SystemExit: 0"),
}


class OffendersPlugin:
    """The neighbour, every offender, the fake model and dataset, and the recording check."""

    @hookimpl
    def register_methods(self, register):
        register(Neighbor())
        for name, (act, _) in OFFENDERS.items():
            register(_offender(name, act))

    @hookimpl
    def register_checks(self, register):
        register(RecordMaps())


def _run(capsys, tmp_path, label: str, *methods: str) -> tuple[int, dict[str, list[torch.Tensor]], str]:
    """One in-process run of ``methods`` on the fake model (4 images, batches of 2): exit code, maps, stderr."""
    RecordMaps.seen = {}
    code = main(["run", "-m", *methods, "--model", "fake_vgg", "--checks", "record_maps", "--limit", "4",
                 "--batch-size", "2", "--out", str(tmp_path / label), "--no-progress", "--no-speed"])
    return code, RecordMaps.seen, capsys.readouterr().err


@pytest.fixture
def offenders(fakes):
    threads, benchmark = torch.get_num_threads(), torch.backends.cudnn.benchmark
    fakes.register(OffendersPlugin(), name="offenders")
    try:
        yield fakes
    finally:  # whatever happened, no test after this one sees an offender's change
        fakes.unregister(name="offenders")
        nn.ReLU.forward, nn.functional.relu = RELU_FORWARD, F_RELU
        torch.set_default_dtype(torch.float32)
        torch.set_num_threads(threads)
        torch.backends.mkldnn.enabled, torch.backends.cudnn.benchmark = True, benchmark


@pytest.mark.parametrize("offender", list(OFFENDERS))
def test_an_offender_fails_alone_named_and_its_neighbors_maps_equal_a_clean_runs(offenders, capsys, tmp_path,
                                                                                  offender):
    before = TorchState()
    code, clean, err = _run(capsys, tmp_path, "clean", "neighbour")
    assert code == 0, err
    code, dirty, err = _run(capsys, tmp_path, "dirty", offender, "neighbour")
    assert code == 1 and "Traceback" not in err  # one method failed, the run went on and wrote its board
    record = json.loads((tmp_path / "dirty" / "results" / "record_maps" / f"{offender}.json").read_text())
    assert record["status"] == "failed" and OFFENDERS[offender][1] in record["error"]
    assert record["error"].startswith(f"method '{offender}' failed: ")
    assert set(dirty) == {"neighbour"} and len(dirty["neighbour"]) == len(clean["neighbour"]) == 2
    for ours, theirs in zip(dirty["neighbour"], clean["neighbour"]):
        assert torch.equal(ours.view(torch.int32), theirs.view(torch.int32))  # byte-identical
    assert before.changes() == [] and nn.ReLU.forward is RELU_FORWARD
    assert (tmp_path / "dirty" / "leaderboard.json").is_file()


class Interrupts(Neighbor):
    name = "interrupts"

    def attribute(self, model, inputs, targets):
        raise KeyboardInterrupt


def test_keyboard_interrupt_still_stops_the_run():
    group = MethodGroup([Interrupts(), EdgeMap()], small_model())
    with pytest.raises(KeyboardInterrupt):
        group(torch.zeros(1, 3, 8, 8), torch.tensor([0]))


# -- plugins that change torch's global state ------------------------------------------------------------------------
WIDE_PLUGIN = '''
import torch
from saliency_bench import Method, hookimpl

torch.set_default_dtype(torch.float64)  # at import: every method of every plugin would compute in float64


class Wide(Method):
    name, family, positive = "wide", "control", False

    def attribute(self, model, inputs, targets):
        return inputs.mean(1)


@hookimpl
def register_methods(register):
    register(Wide())
'''


def _entry_points(monkeypatch, entries):
    """importlib.metadata sees ``entries`` [(name, 'module')] of distribution fake-dist in our group."""
    dist = types.SimpleNamespace(name="fake-dist", version="9.9")
    points = [importlib.metadata.EntryPoint(name=name, value=value, group="saliency_bench")._for(dist)
              for name, value in entries]
    real = importlib.metadata.entry_points
    monkeypatch.setattr(importlib.metadata, "entry_points",
                        lambda **selection: points if selection.get("group") == "saliency_bench" else real(**selection))


def test_a_plugin_that_changes_torchs_state_or_exits_at_import_is_named_and_left_out(monkeypatch, tmp_path):
    (tmp_path / "sb_wide_plugin.py").write_text(textwrap.dedent(WIDE_PLUGIN))
    (tmp_path / "sb_exit_plugin.py").write_text("raise SystemExit(3)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    _entry_points(monkeypatch, [("exits", "sb_exit_plugin"), ("wide", "sb_wide_plugin")])
    try:
        registry = make_plugin_manager(allowlist=None).registry()
    finally:
        sys.modules.pop("sb_wide_plugin", None)
        torch.set_default_dtype(torch.float32)
    assert registry.load_errors == [
        "plugin 'exits' from fake-dist failed to load: SystemExit: 3",
        "plugin 'wide' from fake-dist changed torch's global state at import (default dtype float32 -> float64); "
        "left out"]
    assert torch.get_default_dtype() == torch.float32 and "wide" not in registry.methods
    assert "edge" in registry.methods


def test_a_plugin_that_changes_torchs_state_in_its_hook_is_named_and_left_out(pm):
    class Plugin:
        @hookimpl
        def register_methods(self, register):
            register(Neighbor())
            torch.backends.mkldnn.enabled = False

    pm.register(Plugin(), name="mkldnn-off")
    try:
        registry = pm.registry()
    finally:
        pm.unregister(name="mkldnn-off")
        torch.backends.mkldnn.enabled = True
    assert "plugin 'mkldnn-off' changed torch's global state in register_methods (torch.backends.mkldnn.enabled " \
           "True -> False); left out" in registry.load_errors
    assert "neighbour" not in registry.methods and torch.backends.mkldnn.enabled


def test_an_empty_allowlist_is_said_where_a_missing_plugin_shows(monkeypatch):
    _entry_points(monkeypatch, [("wide", "sb_not_imported")])
    registry = make_plugin_manager(allowlist=[]).registry()
    assert registry.notes == ["SALIENCY_BENCH_PLUGINS is set but empty: no plugin loaded (installed: fake-dist); "
                              "unset it to load every installed plugin, or name those to load"]
    with pytest.raises(Exception) as error:
        registry.select_methods(["gradcam"])
    assert str(error.value).startswith("unknown method 'gradcam' (known: edge, random); SALIENCY_BENCH_PLUGINS is")
    assert make_plugin_manager(allowlist=None).registry().notes == []


def test_list_says_that_an_empty_allowlist_loaded_no_plugin(monkeypatch, capsys):
    from saliency_bench.cli import main

    monkeypatch.setenv("SALIENCY_BENCH_PLUGINS", "")
    monkeypatch.setattr("saliency_bench.plugins._PM", None)
    assert main(["list"]) == 0
    assert "note: SALIENCY_BENCH_PLUGINS is set but empty: no plugin loaded" in capsys.readouterr().err


# -- the suite's loader and torch's global generator ----------------------------------------------------------------
def test_suite_batches_draw_nothing_from_torchs_global_generator(monkeypatch):
    monkeypatch.setattr(torch, "manual_seed", lambda seed: None)  # the per-batch reseed, out of the way
    suite = Suite(model=load_model(), dataset=SquaresDataset(), device=torch.device("cpu"), batch_size=4, limit=8,
                  progress=False)
    state = torch.get_rng_state()
    batches = list(suite.batches())
    assert len(batches) == 2 and torch.equal(torch.get_rng_state(), state)


# -- GradCAM++: a vanishing denominator, in a shared pass and alone --------------------------------------------------
DENOMINATOR_ZERO = (-2.0 ** -11, 12685.9345703125)  # g, sum_ab A_ab: 2 g^2 + sum A g^3 + 1e-6 is 0.0 in float32


def vanishing_model() -> tuple[ModelWrapper, torch.Tensor, torch.Tensor]:
    """A ReLU block whose one active cell has g < 0 and a GradCAM++ denominator of exactly 0; g > 0 elsewhere."""
    g, total = DENOMINATOR_ZERO
    conv = nn.Conv2d(3, 1, 1)
    head = nn.Linear(16, 2)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1))
        conv.bias.zero_()
        head.weight.zero_()
        head.weight[0, 0], head.weight[0, 5], head.weight[1, 3] = g, 0.5, 1.0
        head.bias.zero_()
    network = nn.Sequential(conv, nn.ReLU(), nn.Flatten(), head)
    model = ModelWrapper(network, name="vanishing", class_names=["a", "b"], input_size=4, blocks={"B1": "1"},
                         randomization_order=["3", "0"])
    inputs = torch.zeros(1, 3, 4, 4)
    inputs[0, 0, 0, 0] = total
    return model, inputs, torch.tensor([0])


def test_gradcampp_is_finite_and_the_same_in_a_shared_pass_and_alone_where_its_denominator_vanishes():
    aggregation = pytest.importorskip("saliency_bench_aggregation")
    from saliency_bench_aggregation.formulas import GRADCAMPP_EPS

    model, inputs, targets = vanishing_model()
    g, total = DENOMINATOR_ZERO
    assert float(2 * torch.tensor(g) ** 2 + total * torch.tensor(g) ** 3 + GRADCAMPP_EPS) == 0.0
    plusplus = aggregation.GradCAMPlusPlus("B1")
    shared = MethodGroup([plusplus, aggregation.GradCAM("B1"), aggregation.FullGrad()], model)(inputs, targets)
    alone_group = MethodGroup([aggregation.GradCAMPlusPlus("B1")], model)
    alone = alone_group(inputs, targets)
    assert alone_group.failures == {} and torch.equal(shared["gradcampp@B1"], alone["gradcampp@B1"])
    weight = 0.25 / (2 * 0.25 + total * 0.125 + GRADCAMPP_EPS) * 0.5  # the g = 0.5 cell alone: alpha * g
    expected = torch.zeros(1, 4, 4)
    expected[0, 0, 0] = weight * total
    torch.testing.assert_close(alone["gradcampp@B1"], expected, rtol=1e-6, atol=0)
