"""--precision and --channels-last: maps within the stated tolerance of float32, verdicts unchanged, configuration kept apart.

Stated tolerance (README "Performance"): channels-last and TF32 (no TF32 kernels on a CPU) agree with float32
to 1e-5 relative L2 per map; bfloat16 autocast keeps each non-constant map's Pearson correlation with the float32
map >= 0.95 and its relative L2 difference <= 0.3 (measured on the embedded model: >= 0.97 and <= 0.24).
"""
import json

import pytest
import torch

from saliency_bench import MethodGroup
from saliency_bench.cli import main
from saliency_bench.plugins import make_plugin_manager
from saliency_bench.harness.precision import Precision
from saliency_bench.run.session import RunOptions, open_suite

METHODS = ["gradient", "gradcam", "input_x_gradient", "guided_backprop", "lrp_epsilon"]


@pytest.fixture(scope="module")
def embedded():
    registry = make_plugin_manager(allowlist=None).registry()
    suite = open_suite(RunOptions(limit=8, batch_size=8, progress=False, channels_last=False, device="cpu"),
                       registry)  # NCHW float32
    batch = next(iter(suite.batches()))
    return registry, suite, batch["inputs"], batch["labels"].argmax(1)


def _maps(registry, model, inputs, targets):
    group = MethodGroup([registry.methods[n].obj for n in METHODS], model)
    maps = group(model.precision.prepare_inputs(inputs), targets)
    assert group.failures == {} and set(maps) == set(METHODS)
    return maps


@pytest.mark.parametrize("precision, bound", [(Precision("fp32", channels_last=True), 1e-5),
                                              (Precision("tf32"), 1e-5), (Precision("bf16"), 0.3)])
def test_maps_stay_within_the_stated_tolerance_of_float32(embedded, precision, bound):
    registry, suite, inputs, targets = embedded
    reference = _maps(registry, suite.model, inputs, targets)
    maps = _maps(registry, suite.model.copy().set_precision(precision), inputs, targets)
    for name in METHODS:
        a, b = reference[name].flatten(1).double(), maps[name].flatten(1).double()
        assert maps[name].dtype == torch.float32
        relative = (a - b).norm(dim=1) / a.norm(dim=1).clamp_min(1e-12)
        assert float(relative.max()) <= bound, name
        if precision.mode == "bf16":
            varied = (a.std(1) > 0) & (b.std(1) > 0)
            corr = [torch.corrcoef(torch.stack([x, y]))[0, 1] for x, y in zip(a[varied], b[varied])]
            assert min(float(c) for c in corr) >= 0.95, name


def test_bf16_keeps_the_verdicts_and_is_recorded_in_the_configuration(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("saliency_bench.plugins._PM", make_plugin_manager(allowlist=None))  # the shipped methods
    common = ["-m", "gradient", "gradcam", "edge", "random", "--limit", "16", "--checks", "pointing_game",
              "restricted_pointing_game", "class_sensitivity", "--no-progress", "--no-speed", "--device", "cpu"]
    assert main(["run", *common, "--out", str(tmp_path / "fp32")]) == 0
    assert main(["run", *common, "--out", str(tmp_path / "bf16"), "--precision", "bf16"]) == 0
    assert main(["run", *common, "--out", str(tmp_path / "nchw"), "--no-channels-last"]) == 0
    fp32 = json.loads((tmp_path / "fp32" / "leaderboard.json").read_text())
    bf16 = json.loads((tmp_path / "bf16" / "leaderboard.json").read_text())
    nchw = json.loads((tmp_path / "nchw" / "leaderboard.json").read_text())
    assert "precision" not in nchw["config"]["model"]  # the standard layout in float32: as boards were before
    for name in fp32["methods"]:  # the CPU's default layout (channels-last) changes no verdict
        assert nchw["methods"][name]["verdicts"] == fp32["methods"][name]["verdicts"], name
    assert bf16["config"]["model"]["precision"] == {"mode": "bf16", "channels_last": True}  # the CPU's default layout
    assert fp32["config"]["model"]["precision"] == {"mode": "fp32", "channels_last": True}
    for name in fp32["methods"]:
        assert bf16["methods"][name]["verdicts"] == fp32["methods"][name]["verdicts"], name
    capsys.readouterr()
    code = main(["run", *common, "--out", str(tmp_path / "fp32"), "--precision", "bf16"])
    assert code == 2 and "another configuration" in capsys.readouterr().err  # never mixed with float32 results


def test_channels_last_is_the_default_layout_of_a_convolutional_network_on_the_cpu(embedded):
    from saliency_bench.harness.precision import default_channels_last

    registry, suite, _, _ = embedded
    assert default_channels_last(suite.model.network, torch.device("cpu"))
    assert not default_channels_last(suite.model.network, torch.device("cuda"))  # opt in there (with tf32 or bf16)
    assert not default_channels_last(torch.nn.Sequential(torch.nn.Linear(3, 2)), torch.device("cpu"))
    default = open_suite(RunOptions(limit=8, batch_size=8, progress=False, device="cpu"), registry)
    assert default.model.precision == Precision("fp32", channels_last=True)
    assert next(iter(default.batches()))["inputs"].is_contiguous(memory_format=torch.channels_last)


def test_an_unknown_precision_is_refused():
    with pytest.raises(ValueError, match="precision must be one of"):
        Precision("fp8")
    assert main(["run", "--all", "--precision", "fp8"]) == 2
