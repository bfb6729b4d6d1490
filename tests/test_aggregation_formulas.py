"""The aggregation methods carry their formula and block (issue 15, point 3) and their peers (point 4).

The shared pass reads both from the method objects, never from their names: a new CAM variant is one small
class, runs in the same forward and backward as its siblings, and methods built directly work under any name.
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from saliency_bench import MethodGroup, ModelWrapper

import saliency_bench_aggregation.base as base_module
import saliency_bench_aggregation.peers as peers_module
from saliency_bench_aggregation import (
    LAST_BLOCK,
    AggregationMethod,
    BlockMethod,
    CAMMethod,
    CumulativeGradCAM,
    FullGrad,
    GradCAM,
    GradCAMPlusPlus,
    GradCAMPos,
    GradMid,
)
from saliency_bench_aggregation.formulas import minmax

from test_aggregation import SIZE, CountingForward, TinyVGG, captum_gradcam, randomize_biases, relative_error
from test_aggregation import tiny  # noqa: F401 - the same small model fixture
from test_aggregation import slow_block_tensors


@pytest.fixture
def batch():
    inputs = torch.randn(4, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    return inputs, torch.tensor([0, 3, 5, 1])


class SquaredGradCAM(CAMMethod):
    """A third party's CAM variant: ReLU(sum_k w_k A^k) with w_k = mean_ij (df/dA^k_ij)^2."""

    stem = "squared_gradcam"

    def weights(self, activations, grads):
        return grads.pow(2).mean(dim=(2, 3), keepdim=True)


class ActivationTimesGradient(BlockMethod):
    """A block map that is not a CAM: sum_k A^k df/dA^k, the formula overridden whole."""

    stem = "a_times_g"

    def formula(self, activations, grads):
        return (activations * grads).sum(dim=1)


class RenamedGradCAMPlusPlus(GradCAMPlusPlus):
    """A subclass of a shipped method under its own name (same formula)."""

    stem = "their_gradcampp"


def hand_maps(model: ModelWrapper, inputs, targets, block: str) -> dict[str, torch.Tensor]:
    """Image by image, channel by channel, from the test's own hooks: the two new formulas at ``block``, up-sampled."""
    squared, product = [], []
    for image, target in zip(inputs, targets.tolist()):
        activation, grad = slow_block_tensors(model, image, target)[block]
        cam = torch.zeros(activation.shape[1:])
        mixed = torch.zeros(activation.shape[1:])
        for k in range(activation.shape[0]):
            cam += (grad[k] ** 2).mean() * activation[k]
            mixed += activation[k] * grad[k]
        squared.append(torch.relu(cam))
        product.append(mixed)

    def up(maps):
        return F.interpolate(torch.stack(maps)[:, None], size=inputs.shape[-2:], mode="bilinear",
                             align_corners=False)[:, 0]

    return {"squared_gradcam": up(squared), "a_times_g": up(product)}


def test_a_new_variant_class_runs_in_the_shared_pass_with_its_siblings(tiny, batch, monkeypatch):
    inputs, targets = batch
    new = [SquaredGradCAM("B3"), ActivationTimesGradient("B3"), RenamedGradCAMPlusPlus("B4")]
    siblings = [GradCAM("B3"), GradCAMPos("B4"), GradCAMPlusPlus("B4"), GradMid("B2"), CumulativeGradCAM(), GradCAM()]
    assert [m.name for m in new] == ["squared_gradcam@B3", "a_times_g@B3", "their_gradcampp@B4"]
    assert all(m.layer == block for m, block in zip(new, ["B3", "B3", "B4"]))
    alone = {m.name: m.attribute(tiny, inputs, targets) for m in new + siblings}

    grad_calls = []
    real_grad = torch.autograd.grad
    monkeypatch.setattr(torch.autograd, "grad", lambda *a, **k: grad_calls.append(1) or real_grad(*a, **k))
    counter = CountingForward(tiny.network)
    try:
        for order in (siblings + new, new + siblings):  # a sibling leads the shared pass, then a new variant does
            group = MethodGroup(order, tiny)
            maps = group(inputs, targets)
            assert not group.failures and not group.not_applicable
            for name, expected in alone.items():
                torch.testing.assert_close(maps[name], expected, rtol=1e-5, atol=1e-8, msg=name)
        assert (counter.calls, len(grad_calls)) == (2, 2)  # one forward and one backward per group call
    finally:
        counter.handle.remove()

    reference = hand_maps(tiny, inputs, targets, "B3")
    for name, expected in reference.items():
        assert expected.abs().max() > 0 and expected.std() > 0
        assert relative_error(maps[f"{name}@B3"], expected) < 1e-5, name
    assert not torch.allclose(maps["squared_gradcam@B3"], maps["gradcam@B3"])  # its own formula, not GradCAM's
    torch.testing.assert_close(maps["their_gradcampp@B4"], maps["gradcampp@B4"], rtol=0, atol=0)


NEW_VARIANT = '''"""A new variant: one class in one file of the variants package."""
import torch

from ..base import CAMMethod
from .gradcam import GradCAM  # imported, not defined here: never registered a second time


class SquaredGradCAM(CAMMethod):
    """ReLU(sum_k w_k A^k) with w_k = mean_ij (df/dA^k_ij)^2."""

    stem = "squared_gradcam"
    positive = False

    def weights(self, activations: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
        return grads.pow(2).mean(dim=(2, 3), keepdim=True)
'''

THIRD_PARTY = """
import json, sys

import saliency_bench_aggregation.variants as variants
from saliency_bench_aggregation import GradCAM

variants.__path__.append(sys.argv[1])  # the new file, as if it had been added to the package


class TheirGradCAM(GradCAM):  # a third party's subclass, defined outside the package
    stem = "their_gradcam"
    positive = False


from saliency_bench.plugins import make_plugin_manager

registry = make_plugin_manager(allowlist=["saliency-bench-aggregation"]).registry()
print(json.dumps({"names": list(registry.methods), "errors": registry.load_errors,
                  "module": type(registry.methods["squared_gradcam@B3"].obj).__module__}))
"""


@pytest.fixture
def new_variant_file(tmp_path, monkeypatch):
    """A new variant module in a folder on the variants package's search path (removed after the test)."""
    import saliency_bench_aggregation.variants as variants

    (tmp_path / "sb_test_squared_gradcam.py").write_text(NEW_VARIANT)
    monkeypatch.setattr(variants, "__path__", [*variants.__path__, str(tmp_path)])
    yield tmp_path
    sys.modules.pop(f"{variants.__name__}.sb_test_squared_gradcam", None)


def test_a_new_variant_file_is_all_it_takes_to_register_it_at_every_block(new_variant_file, tiny, batch):
    from saliency_bench_aggregation.plugin import METHODS, shipped_methods

    methods = {m.name: m for m in shipped_methods()}
    added = [f"squared_gradcam@B{n}" for n in range(1, 6)]
    assert set(methods) == {m.name for m in METHODS} | set(added)  # nothing else changes; no plain "squared_gradcam"
    assert type(methods["squared_gradcam@B3"]).__module__ == "saliency_bench_aggregation.variants.sb_test_squared_gradcam"
    assert [m.name for m in shipped_methods() if type(m) is GradCAM] == ["gradcam", *[f"gradcam@B{n}" for n in range(1, 6)]]
    inputs, targets = batch
    maps = MethodGroup([methods["squared_gradcam@B3"], methods["gradcam@B3"]], tiny)(inputs, targets)
    torch.testing.assert_close(maps["squared_gradcam@B3"], SquaredGradCAM("B3").attribute(tiny, inputs, targets),
                               rtol=0, atol=0)  # the test's own class of the same formula: the same map
    # classes defined outside the package (this module's) are never discovered, whatever they subclass
    from saliency_bench_aggregation.variants import variant_classes

    assert all(cls.__module__.startswith("saliency_bench_aggregation.variants.") for cls in variant_classes())
    assert not {"their_gradcampp@B4", "a_times_g@B3"} & set(methods)


def test_the_registry_picks_up_a_new_variant_file_but_no_third_party_subclass(new_variant_file):
    """Through the installed entry point and the core's registry, in a fresh process."""
    done = subprocess.run([sys.executable, "-c", THIRD_PARTY, str(new_variant_file)], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "SALIENCY_BENCH_PLUGINS": ""})
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["errors"] == []
    assert found["module"] == "saliency_bench_aggregation.variants.sb_test_squared_gradcam"
    assert {f"squared_gradcam@B{n}" for n in range(1, 6)} <= set(found["names"])
    assert not [name for name in found["names"] if name.startswith("their_gradcam")]
    assert len(found["names"]) == 2 + 24 + 5  # the core's controls, the shipped 24 and the new variant's 5


def test_methods_built_directly_work_with_default_arguments(tiny, batch):
    inputs, targets = batch
    for method, block_name in ((GradCAMPos(), "gradcam_pos@B5"), (GradMid(), "gradmid@B5"), (GradCAM(), "gradcam@B5")):
        assert method.block is LAST_BLOCK and method.layer == "B5"
        expected = type(method)("B5").attribute(tiny, inputs, targets)
        assert expected.abs().max() > 0
        assert torch.equal(method.attribute(tiny, inputs, targets), expected), method.name
        maps = MethodGroup([method, GradCAM("B3")], tiny)(inputs, targets)
        assert torch.equal(maps[method.name], expected), block_name
    assert GradCAMPos().name == "gradcam_pos"


def test_names_are_never_decoded(tiny, batch):
    """The module that parsed names and the registry of live objects are gone: the shared pass computes what the
    objects it is handed compute, and an object's formula, never its name, decides its map."""
    inputs, targets = batch
    assert importlib.util.find_spec("saliency_bench_aggregation.names") is None
    assert importlib.util.find_spec("saliency_bench_aggregation.methods") is None
    assert not hasattr(AggregationMethod, "members") and not hasattr(AggregationMethod, "computes_like")
    assert "__new__" not in vars(AggregationMethod)  # objects are no longer recorded when built
    assert not hasattr(base_module, "_LIVE")

    class OtherGradCAM(CAMMethod):
        """A different formula that takes a shipped method's name."""

        stem = "gradcam"

        def weights(self, activations, grads):
            return -grads.mean(dim=(2, 3), keepdim=True)

    shipped, other = GradCAM("B3"), OtherGradCAM("B3")
    assert other.name == shipped.name == "gradcam@B3"
    # each object computes its own formula, whatever other object of that name is alive
    mine = GradMid("B2").attribute_shared(tiny, inputs, targets, [GradMid("B2"), other])
    assert set(mine) == {"gradmid@B2", "gradcam@B3"}
    assert torch.equal(mine["gradcam@B3"], other.attribute(tiny, inputs, targets))
    assert other.attribute(tiny, inputs, targets).max() > 0
    assert not torch.equal(other.attribute(tiny, inputs, targets), shipped.attribute(tiny, inputs, targets))
    maps = GradMid("B2").attribute_shared(tiny, inputs, targets, [GradMid("B2"), shipped])
    assert torch.equal(maps["gradcam@B3"], shipped.attribute(tiny, inputs, targets))
    assert torch.equal(maps["gradmid@B2"], mine["gradmid@B2"])


# -- peers ------------------------------------------------------------------------------------------------


def correlations(ours: torch.Tensor, theirs) -> list[float]:
    """Per image, the correlation of mm(ours) with a peer's output (grad-cam returns mm(resize(mm(cam)))).

    An image whose map is all zeros (ReLU of a negative sum everywhere) must be all zeros in both; it has no
    correlation and is left out.
    """
    mine = minmax(ours).numpy()
    theirs = np.asarray(theirs)
    assert theirs.shape == mine.shape
    found = []
    for image in range(len(mine)):
        if mine[image].std() == 0 or theirs[image].std() == 0:
            assert not mine[image].any() and not theirs[image].any(), image
            continue
        found.append(float(np.corrcoef(mine[image].ravel(), theirs[image].ravel())[0, 1]))
    assert len(found) >= len(mine) - 1
    return found


def test_gradcam_peers_are_captum_and_grad_cam_and_match_the_method(tiny, batch):
    inputs, targets = batch
    for method in (GradCAM(), GradCAM("B5")):
        ours = method.attribute(tiny, inputs, targets)
        model = tiny.copy()  # grad-cam calls backward(): keep .grad off the model under test
        peers = dict(method.peers(model))
        assert list(peers) == ["captum LayerGradCam", "grad-cam GradCAM"]
        captum = peers["captum LayerGradCam"](inputs.clone(), targets)
        assert tuple(captum.shape) == (4, 1, SIZE, SIZE)
        assert relative_error(ours, captum[:, 0].detach()) < 1e-4  # test_gradcam_matches_captum's tolerance
        assert relative_error(captum_gradcam(tiny.network, tiny.blocks["B5"], inputs, targets), captum[:, 0].detach()) < 1e-6
        assert min(correlations(ours, peers["grad-cam GradCAM"](inputs.clone(), targets))) > 0.999
    assert list(GradCAM("B3").peers(tiny)) == []  # as before the move: peers only at the model's last block


def test_gradcampp_and_fullgrad_peers(tiny, batch):
    inputs, targets = batch
    model = tiny.copy()
    (label, run), = GradCAMPlusPlus("B5").peers(model)
    assert label == "grad-cam GradCAMPlusPlus"
    ours = GradCAMPlusPlus("B5").attribute(tiny, inputs, targets)
    assert min(correlations(ours, run(inputs.clone(), targets))) > 0.999
    (label, run), = FullGrad().peers(model)
    assert label == "grad-cam FullGrad"  # it min-max normalises every channel: same shape, not the same numbers
    assert np.asarray(run(inputs.clone(), targets)).shape == (4, SIZE, SIZE)
    assert [list(m.peers(model)) for m in (GradCAMPos("B5"), GradMid("B5"), CumulativeGradCAM())] == [[], [], []]


def test_peers_yield_nothing_for_a_library_that_is_not_installed(tiny, monkeypatch):
    missing = {"captum"}
    monkeypatch.setattr(peers_module, "installed", lambda module: module not in missing)
    assert [label for label, _ in GradCAM().peers(tiny)] == ["grad-cam GradCAM"]
    missing.add("pytorch_grad_cam")
    assert list(GradCAM().peers(tiny)) == [] and list(FullGrad().peers(tiny)) == []
    missing.clear()
    assert [label for label, _ in GradCAM().peers(tiny)] == ["captum LayerGradCam", "grad-cam GradCAM"]
    monkeypatch.undo()
    assert peers_module.installed("captum") and not peers_module.installed("no_such_library_here")


class ImpostorGradCAM(GradCAM):
    """A third party's method under a shipped name (gradcam@B3) computing something else: left out of the run."""

    def weights(self, activations, grads):
        return grads.abs().mean(dim=(2, 3), keepdim=True)


def test_a_live_method_left_out_of_the_run_under_a_shipped_name_changes_nothing(tiny, batch):
    """The harness hands the shared pass its own objects: an impostor alive in the process is never picked up."""
    inputs, targets = batch
    shipped = [GradCAM(), GradCAM("B3"), GradMid("B2")]
    alone = MethodGroup(shipped, tiny)(inputs, targets)
    impostor = ImpostorGradCAM("B3")  # alive, as a third party's plugin module would keep it
    group = MethodGroup(shipped, tiny)
    maps = group(inputs, targets)
    assert group.failures == {} and set(maps) == {"gradcam", "gradcam@B3", "gradmid@B2"}
    for name in maps:
        assert torch.equal(maps[name], alone[name])
    assert impostor.name == "gradcam@B3"


def test_spatially_constant_gradients_by_hand():
    """df/dA equal at every routed cell (a GAP head) is constant in space; one sample that varies makes it not; one
    non-zero cell per channel proves nothing; the CPU's first-sample shortcut gives the full test's answer."""
    from saliency_bench_aggregation.formulas import _constant_per_sample, spatially_constant, spatially_constant_flag

    routed = torch.zeros(3, 2, 4, 4)
    routed[:, :, ::2, ::2] = torch.tensor([0.25, -0.5]).view(1, 2, 1, 1)  # w_k / (h w) wherever the pool routes
    assert spatially_constant(routed)
    varied = routed.clone()
    varied[2, 1, 0, 0] = 0.75  # the last sample only: the first-sample shortcut must not decide alone
    assert not spatially_constant(varied)
    varied_first = routed.clone()
    varied_first[0, 0, 2, 2] = 1.0
    assert not spatially_constant(varied_first)
    single = torch.zeros(3, 2, 4, 4)
    single[:, :, 1, 1] = 1.0  # one non-zero cell per channel
    assert not spatially_constant(single)
    assert not spatially_constant(torch.zeros(3, 2, 4, 4))  # a vanished gradient: zeros, not this case
    for grads in (routed, varied, varied_first, single, torch.randn(3, 2, 4, 4),
                  routed.contiguous(memory_format=torch.channels_last)):
        repeated, constant = _constant_per_sample(grads, 1e-5)
        assert bool(spatially_constant_flag(grads)) == bool(repeated.any() & constant.all())


def test_fullgrad_postprocess_is_the_official_order_bit_for_bit():
    """psi reduced over (C,H,W) without a flattened copy equals the official ``_postProcess`` (abs, subtract the
    flattened min, divide by the flattened max + eps) bit for bit, in both memory layouts."""
    import inspect

    from saliency_bench_aggregation.fullgrad import postprocess

    eps = inspect.signature(postprocess).parameters["eps"].default

    def official(term):
        term = term.abs()
        shape = (-1,) + (1,) * (term.dim() - 1)
        term = term - term.flatten(start_dim=1).min(dim=1).values.view(shape)
        return term / (term.flatten(start_dim=1).max(dim=1).values.view(shape) + eps)

    generator = torch.Generator().manual_seed(0)
    for scale in (1e-6, 1.0, 1e4):
        term = torch.randn(4, 8, 12, 12, generator=generator) * scale
        for layout in (torch.contiguous_format, torch.channels_last):
            laid = term.contiguous(memory_format=layout)
            assert torch.equal(postprocess(laid.clone()), official(laid.clone()))
            assert torch.equal(postprocess(laid.clone()).sum(1), official(laid.clone()).sum(1))
