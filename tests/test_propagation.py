"""Tests of the propagation plugin (plugins/propagation): oracles captum/zennit, LRP properties, RectGrad
thresholds by hand, model left unchanged (also on errors), the one entry point."""
from __future__ import annotations

import copy
import importlib.metadata
import importlib.util
from pathlib import Path

import captum.attr as captum_attr
import pytest
import torch
import torchvision
import zennit.attribution as zennit_attribution
from torch import nn
from zennit.composites import LayerMapComposite
from zennit.rules import Epsilon, Norm, Pass, ZPlus
from zennit.types import Activation, AvgPool, Convolution, Linear

import saliency_bench
from saliency_bench import ModelWrapper, validate_maps
from saliency_bench.methods import check_method_declaration
from saliency_bench.plugins import make_plugin_manager

import saliency_bench_propagation
from saliency_bench_propagation import (
    LRP0,
    Deconvnet,
    Gradient,
    GuidedBackprop,
    InputXGradient,
    IntegratedGradients,
    LRPEpsilon,
    LRPGammaInf,
    RectGrad,
    RectGradMod,
    SmoothGrad,
    lrp,
    methods,
    rules,
)

from test_import_graph import find_cycle, import_graph

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:captum")
TOLERANCE = 1e-4
METHOD_NAMES = (
    "gradient", "guided_backprop", "deconvnet", "rectgrad", "rectgrad_mod", "input_x_gradient",
    "smoothgrad", "integrated_gradients", "lrp_0", "lrp_epsilon", "lrp_gamma_inf",
)
POSITIVE = {"guided_backprop", "deconvnet", "rectgrad", "lrp_gamma_inf"}
SUMMED = {"input_x_gradient", "integrated_gradients", "lrp_0", "lrp_epsilon", "lrp_gamma_inf"}


def all_methods():
    """One small-budget instance of every method of the plugin, by name."""
    return {
        "gradient": Gradient(),
        "guided_backprop": GuidedBackprop(),
        "deconvnet": Deconvnet(),
        "rectgrad": RectGrad(),
        "rectgrad_mod": RectGradMod(),
        "input_x_gradient": InputXGradient(),
        "smoothgrad": SmoothGrad(n_samples=4, max_batch=5),
        "integrated_gradients": IntegratedGradients(n_steps=4, max_batch=5),
        "lrp_0": LRP0(),
        "lrp_epsilon": LRPEpsilon(),
        "lrp_gamma_inf": LRPGammaInf(),
    }


class TinyVGG(nn.Module):
    """A VGG-like net: 5 blocks conv-ReLU-maxpool, then average pool and a linear head."""

    def __init__(self, inplace: bool = False, bias: bool = True, classes: int = 5):
        super().__init__()
        layers, channels = [], 3
        for width in (8, 12, 16, 16, 24):
            layers += [nn.Conv2d(channels, width, 3, padding=1, bias=bias), nn.ReLU(inplace=inplace), nn.MaxPool2d(2)]
            channels = width
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, classes, bias=bias)

    def forward(self, x):
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


def wrap(network: nn.Module, size: int, name: str) -> ModelWrapper:
    """A ModelWrapper around a random network."""
    return ModelWrapper(network, name=name, class_names=[f"c{i}" for i in range(5)], input_size=size)


def make_tiny(inplace: bool = False, bias: bool = True, seed: int = 0) -> ModelWrapper:
    """A seeded TinyVGG at 32 px."""
    torch.manual_seed(seed)
    return wrap(TinyVGG(inplace=inplace, bias=bias), 32, "tiny")


def make_inputs(size: int, batch: int = 3, seed: int = 1):
    """Seeded normalised inputs and DIFFERENT targets per sample."""
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(batch, 3, size, size, generator=generator)
    targets = torch.tensor([0, 3, 1, 4][:batch])
    return inputs, targets


@pytest.fixture(scope="module", autouse=True)
def one_cpu_thread():
    """Small nets on a shared 2-core machine run faster on one thread (no OpenMP spin-waits); restored after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_inplace():
    return make_tiny(inplace=True)


@pytest.fixture(scope="module")
def vgg16():
    torch.manual_seed(0)
    return wrap(torchvision.models.vgg16(weights=None, num_classes=5), 64, "vgg16")


@pytest.fixture(scope="module")
def tiny_inplace_twin(tiny_inplace):
    return oracle_twin(tiny_inplace)


@pytest.fixture(scope="module")
def vgg16_twin(vgg16):
    return oracle_twin(vgg16)


def oracle_twin(model: ModelWrapper) -> nn.Module:
    """A deep copy for the peer libraries, with in-place modules switched off (their hooks need that)."""
    twin = copy.deepcopy(model.network)
    for module in twin.modules():
        if getattr(module, "inplace", False):
            module.inplace = False
    return twin


def relative_error(ours: torch.Tensor, reference: torch.Tensor) -> float:
    """max |ours - reference| / max |reference|."""
    ours, reference = ours.detach(), reference.detach()
    return float((ours - reference).abs().max() / reference.abs().max().clamp(min=1e-30))


def zennit_relevance(network: nn.Module, inputs, targets, rule) -> torch.Tensor:
    """zennit oracle: ``rule`` at every Conv/Linear, Pass at activations, Norm at average pools, R = f_t."""
    composite = LayerMapComposite(
        [(Activation, Pass()), (Convolution, rule), (Linear, rule), (AvgPool, Norm(stabilizer=1e-9))]
    )
    with zennit_attribution.Gradient(model=network, composite=composite) as attributor:
        _, relevance = attributor(
            inputs, lambda logits: torch.zeros_like(logits).scatter(1, targets.view(-1, 1), 1.0) * logits
        )
    return relevance


CAPTUM_ORACLES = {
    "gradient": (Gradient, lambda net: captum_attr.Saliency(net), {"abs": False}),
    "guided_backprop": (GuidedBackprop, lambda net: captum_attr.GuidedBackprop(net), {}),
    "deconvnet": (Deconvnet, lambda net: captum_attr.Deconvolution(net), {}),
    "input_x_gradient": (InputXGradient, lambda net: captum_attr.InputXGradient(net), {}),
}


# torchvision VGG-16 (in-place ReLUs in features and classifier, Dropout, 2x2 -> 7x7 adaptive average pool)
# runs the cases whose rules touch those modules; the cheap net runs everything.
@pytest.mark.parametrize(
    "model_name, name", [("tiny_inplace", name) for name in sorted(CAPTUM_ORACLES)] + [("vgg16", "guided_backprop")]
)
def test_gradient_methods_match_captum(name, model_name, request):
    model = request.getfixturevalue(model_name)
    inputs, targets = make_inputs(model.input_size, batch=2 if model_name == "vgg16" else 3)
    ours_cls, captum_factory, options = CAPTUM_ORACLES[name]
    ours = ours_cls().input_attribution(model, inputs, targets)
    oracle = captum_factory(request.getfixturevalue(f"{model_name}_twin"))
    theirs = oracle.attribute(inputs.clone(), target=targets, **options)
    assert ours.shape == inputs.shape
    assert relative_error(ours, theirs) < TOLERANCE


@pytest.mark.parametrize("method", ["gausslegendre", "riemann_trapezoid"])
def test_integrated_gradients_matches_captum(tiny_inplace, method):
    inputs, targets = make_inputs(32)
    ours = IntegratedGradients(n_steps=6, method=method, max_batch=4).input_attribution(tiny_inplace, inputs, targets)
    theirs = captum_attr.IntegratedGradients(oracle_twin(tiny_inplace)).attribute(
        inputs, baselines=0.0, target=targets, n_steps=6, method=method
    )
    assert relative_error(ours, theirs) < TOLERANCE


LRP_ORACLES = {
    "lrp_0": (LRP0, lambda: Epsilon(epsilon=1e-9)),
    "lrp_epsilon": (LRPEpsilon, lambda: Epsilon(epsilon=0.25)),
    "lrp_gamma_inf": (LRPGammaInf, lambda: ZPlus(stabilizer=1e-9)),
}


@pytest.mark.parametrize(
    "model_name, name",
    [("tiny_inplace", name) for name in sorted(LRP_ORACLES)] + [("vgg16", "lrp_0"), ("vgg16", "lrp_gamma_inf")],
)
def test_lrp_matches_zennit(name, model_name, request):
    model = request.getfixturevalue(model_name)
    inputs, targets = make_inputs(model.input_size, batch=2 if model_name == "vgg16" else 3)
    ours_cls, zennit_rule = LRP_ORACLES[name]
    ours = ours_cls().input_attribution(model, inputs, targets)
    theirs = zennit_relevance(request.getfixturevalue(f"{model_name}_twin"), inputs, targets, zennit_rule())
    assert ours.shape == inputs.shape
    assert relative_error(ours, theirs) < TOLERANCE


def test_zplus_knows_relu_outputs_are_nonnegative_and_tests_only_the_others(monkeypatch):
    # conv -> conv (no ReLU between: negative hidden input) -> ReLU -> max-pool -> conv -> ReLU -> pool -> linear
    torch.manual_seed(0)
    network = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Conv2d(4, 5, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(5, 3),
    )
    inputs, targets = torch.randn(4, 3, 8, 8), torch.tensor([0, 1, 2, 0])
    looked, forms = [], []
    amin, contributions = torch.Tensor.amin, lrp.positive_contributions
    inside = []  # the LRP watch (a TorchFunctionMode) re-dispatches Tensor.amin by name: count the outer call only

    def counting_amin(t, *a, **k):
        if not inside:
            looked.append(tuple(t.shape))
        inside.append(True)
        try:
            return amin(t, *a, **k)
        finally:
            inside.pop()

    monkeypatch.setattr(torch.Tensor, "amin", counting_amin)
    monkeypatch.setattr(lrp, "positive_contributions",
                        lambda m, x, nonnegative, **merged: forms.append(nonnegative)
                        or contributions(m, x, nonnegative, **merged))
    ours = LRPGammaInf().input_attribution(network, inputs, targets)
    # the image and the first conv's output are unknown, so looked at (a host sync on a GPU), and negative
    # somewhere; the ReLU outputs, through max-pool, average pool and flatten, are known without a look
    assert looked == [(4, 3, 8, 8), (4, 4, 8, 8)]
    assert forms == [False, False, True, True]
    monkeypatch.undo()
    theirs = zennit_relevance(copy.deepcopy(network), inputs, targets, ZPlus(stabilizer=1e-9))
    assert relative_error(ours, theirs) < TOLERANCE


@pytest.mark.parametrize("method_cls", [LRP0, LRPGammaInf])
def test_lrp_conserves_relevance_without_biases(method_cls):
    model = make_tiny(bias=False)
    inputs, targets = make_inputs(32)
    logits = model(inputs).gather(1, targets.view(-1, 1)).squeeze(1)
    relevance = method_cls().input_attribution(model, inputs, targets).sum(dim=(1, 2, 3))
    assert torch.allclose(relevance, logits.detach(), rtol=1e-4, atol=1e-7)


def test_lrp_0_is_input_x_gradient_on_a_relu_network(tiny_inplace):
    # Ancona et al. 2018: with ReLUs (biases allowed), LRP-0 = x * df/dx
    inputs, targets = make_inputs(32)
    lrp_zero = LRP0().input_attribution(tiny_inplace, inputs, targets)
    assert relative_error(lrp_zero, InputXGradient().input_attribution(tiny_inplace, inputs, targets)) < TOLERANCE


def test_lrp_gamma_inf_differs_from_lrp_0(tiny_inplace):
    inputs, targets = make_inputs(32)
    zero = LRP0().input_attribution(tiny_inplace, inputs, targets)
    plus = LRPGammaInf().input_attribution(tiny_inplace, inputs, targets)
    assert relative_error(plus, zero) > 1e-2


def test_rectgrad_with_tau_zero_is_guided_backprop_and_mod_is_gradient(tiny_inplace):
    inputs, targets = make_inputs(32)
    assert torch.equal(
        RectGrad(tau=0.0).input_attribution(tiny_inplace, inputs, targets),
        GuidedBackprop().input_attribution(tiny_inplace, inputs, targets),
    )
    assert torch.equal(
        RectGradMod(tau=0.0).input_attribution(tiny_inplace, inputs, targets),
        Gradient().input_attribution(tiny_inplace, inputs, targets),
    )
    default = RectGrad().input_attribution(tiny_inplace, inputs, targets)
    assert not torch.equal(default, GuidedBackprop().input_attribution(tiny_inplace, inputs, targets))


def two_layer_model() -> ModelWrapper:
    """x[3] -> 1x1 conv W1 (4 units) -> ReLU -> linear W2 (2 logits), no biases, weights chosen by hand."""
    conv = nn.Conv2d(3, 4, 1, bias=False)
    head = nn.Linear(4, 2, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1]]).view(4, 3, 1, 1))
        head.weight.copy_(torch.tensor([[4.0, -2.5, 1, 1], [1, 2, -1, 0.5]]))
    network = nn.Sequential(conv, nn.ReLU(inplace=True), nn.Flatten(), head)
    return ModelWrapper(network, name="two_layer", class_names=["a", "b"], input_size=1, blocks={"B1": "1"})


def test_rectgrad_percentile_threshold_by_hand():
    # x = (1, 2, 3) gives a = W1 x = (1, 2, 3, 6); R_out at the ReLU = W2[target].
    # sample 0, target 0: a R = (4, -5, 3, 6); sorted (-5, 3, 4, 6); q=50 -> position 1.5 -> tau = 3.5
    #   -> units {0, 3} pass -> R_in = W1^T (4, 0, 0, 1) = (5, 1, 1)
    #   mod: |a R| sorted (3, 4, 5, 6) -> tau = 4.5 -> units {1, 3} -> W1^T (0, -2.5, 0, 1) = (1, -1.5, 1)
    # sample 1, target 1: a R = (1, 4, -3, 3); sorted (-3, 1, 3, 4) -> tau = 2 -> units {1, 3}
    #   -> W1^T (0, 2, 0, 0.5) = (0.5, 2.5, 0.5); mod: |a R| sorted (1, 3, 3, 4) -> tau = 3 -> unit {1} -> (0, 2, 0)
    model = two_layer_model()
    inputs = torch.tensor([1.0, 2, 3]).view(1, 3, 1, 1).repeat(2, 1, 1, 1)
    targets = torch.tensor([0, 1])
    rect = RectGrad(q=50).input_attribution(model, inputs, targets).view(2, 3)
    mod = RectGradMod(q=50).input_attribution(model, inputs, targets).view(2, 3)
    assert torch.allclose(rect, torch.tensor([[5.0, 1, 1], [0.5, 2.5, 0.5]]))
    assert torch.allclose(mod, torch.tensor([[1.0, -1.5, 1], [0, 2, 0]]))
    # q = 75 on sample 0: position 2.25 -> tau = 4 + 0.25 (6 - 4) = 4.5 -> unit {3} only -> (1, 1, 1)
    assert torch.allclose(RectGrad(q=75).input_attribution(model, inputs, targets)[0].flatten(), torch.ones(3))
    assert isinstance(model.network[1], nn.ReLU) and model.network[1].inplace


def test_above_percentile_is_the_mask_of_the_interpolated_percentile():
    generator = torch.Generator().manual_seed(3)
    continuous = torch.randn(3, 5, 7, 6, generator=generator)
    tied = torch.randint(-3, 4, (3, 5, 7, 6), generator=generator).float()  # many ties at the threshold
    for values in (continuous, tied):
        for q in (0.0, 37.5, 50.0, 90.0, 98.0, 99.9, 100.0):
            tau = torch.quantile(values.flatten(1), q / 100, dim=1).view(-1, 1, 1, 1)
            assert torch.equal(rules.above_percentile(values, q), values > tau), q
    assert not rules.above_percentile(continuous, 100.0).any()
    # exact arithmetic: tau = 1 + 0.9 ulp lies below the next float, which passes (numpy's rounded tau says no)
    neighbors = torch.tensor([[1.0, float(torch.nextafter(torch.tensor(1.0), torch.tensor(2.0)))]])
    assert rules.above_percentile(neighbors, 90.0).tolist() == [[False, True]]
    assert rules.above_percentile(continuous, 0.0).flatten(1).sum(1).tolist() == [209] * 3  # all but the minimum
    with pytest.raises(ValueError):
        RectGrad(q=101)


def model_state(model: ModelWrapper) -> dict:
    """Everything a method could leave behind on a model."""
    modules = list(model.network.modules())
    return {
        "hooks": sum(
            len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
            + len(getattr(m, "_backward_pre_hooks", {}))
            for m in modules
        ),
        "inplace": [getattr(m, "inplace", None) for m in modules],
        "requires_grad": [p.requires_grad for p in model.network.parameters()],
        "grads": [p.grad is not None for p in model.network.parameters()],
        "training": [m.training for m in modules],
    }


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_method_leaves_model_unchanged_and_honors_contract(name):
    model = make_tiny(inplace=True)
    model.network.features[0].weight.requires_grad_(False)  # a mixed requires_grad pattern must survive too
    inputs, targets = make_inputs(32)
    kept_inputs = inputs.clone()
    before, output = model_state(model), model(inputs).detach()
    method = all_methods()[name]
    maps = method.attribute(model, inputs, targets)
    assert model_state(model) == before
    assert torch.equal(model(inputs).detach(), output)
    assert torch.equal(inputs, kept_inputs) and not inputs.requires_grad
    validate_maps(name, maps, inputs)
    assert maps.dtype == torch.float32 and not maps.requires_grad
    reduce = (lambda a: a.sum(1)) if name in SUMMED else (lambda a: a.abs().amax(1))
    assert torch.allclose(maps, reduce(method.input_attribution(model, inputs, targets)))
    assert method.family == "propagation" and method.positive == (name in POSITIVE) and method.name == name


def exploding_gradient(network, inputs, targets):
    """Runs the forward (rules active) and checks they are, then raises midway through the call."""
    network(inputs)
    assert any(len(m._forward_hooks) for m in network.modules())
    raise RuntimeError("boom")


def exploding_rule(*args, **kwargs):
    """A backward rule that fails inside autograd's backward pass."""
    raise RuntimeError("boom")


@pytest.mark.parametrize(
    "name, target, attribute",
    [
        ("guided_backprop", methods, "target_gradient"),
        ("lrp_gamma_inf", methods, "target_gradient"),
        ("guided_backprop", rules, "guided"),
        ("lrp_0", lrp._RelevanceRatio, "backward"),
        ("lrp_gamma_inf", lrp, "positive_contributions"),
    ],
)
def test_model_unchanged_when_method_raises_midway(name, target, attribute, monkeypatch):
    model = make_tiny(inplace=True)
    inputs, targets = make_inputs(32)
    before, output = model_state(model), model(inputs).detach()
    replacement = exploding_gradient if attribute == "target_gradient" else exploding_rule
    if attribute == "backward":
        replacement = staticmethod(exploding_rule)
    monkeypatch.setattr(target, attribute, replacement)
    with pytest.raises(RuntimeError, match="boom"):
        all_methods()[name].attribute(model, inputs, targets)
    assert model_state(model) == before
    assert torch.equal(model(inputs).detach(), output)


def test_smoothgrad_is_seeded_batched_and_reduces_to_gradient_without_noise(tiny_inplace):
    inputs, targets = make_inputs(32)
    first = SmoothGrad(n_samples=5, seed=7, max_batch=4).input_attribution(tiny_inplace, inputs, targets)
    again = SmoothGrad(n_samples=5, seed=7, max_batch=100).input_attribution(tiny_inplace, inputs, targets)
    other = SmoothGrad(n_samples=5, seed=8).input_attribution(tiny_inplace, inputs, targets)
    assert torch.allclose(first, again, rtol=1e-5, atol=1e-8)
    assert not torch.allclose(first, other)
    noiseless = SmoothGrad(n_samples=3, noise_level=0.0).input_attribution(tiny_inplace, inputs, targets)
    assert torch.allclose(noiseless, Gradient().input_attribution(tiny_inplace, inputs, targets), atol=1e-7)


def test_rules_need_relu_modules():
    network = nn.Sequential(nn.Conv2d(3, 2, 3), nn.Flatten(), nn.LazyLinear(2))
    inputs = torch.randn(1, 3, 8, 8)
    network(inputs)
    with pytest.raises(ValueError, match="ReLU"):
        GuidedBackprop().attribute(network, inputs, torch.tensor([0]))
    lone_norm = nn.Sequential(nn.BatchNorm2d(3), nn.Conv2d(3, 2, 3), nn.Flatten(), nn.LazyLinear(2)).eval()
    lone_norm(inputs)
    with pytest.raises(saliency_bench.NotApplicable, match="BatchNorm"):  # a BatchNorm after a conv is merged
        LRP0().attribute(lone_norm, inputs, torch.tensor([0]))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU")
def test_methods_on_cuda_match_cpu():
    model = make_tiny(inplace=True)
    inputs, targets = make_inputs(32)
    cpu = {name: m.attribute(model, inputs, targets) for name, m in all_methods().items()}
    model.to("cuda")
    for name, method in all_methods().items():
        maps = method.attribute(model, inputs.cuda(), targets.cuda())
        validate_maps(name, maps, inputs.cuda())
        if name != "smoothgrad":  # the CUDA generator draws other noise than the CPU one
            assert relative_error(maps.cpu(), cpu[name]) < 1e-3, name


def test_one_entry_point_registers_every_method():
    distribution = "saliency-bench-propagation"
    [entry_point] = [ep for ep in importlib.metadata.entry_points(group="saliency_bench")
                     if ep.dist.name == distribution]  # one entry point for the whole distribution
    assert (entry_point.name, entry_point.value) == ("propagation", "saliency_bench_propagation.plugin")
    assert importlib.util.find_spec("saliency_bench_propagation.entry_points") is None
    plugin = entry_point.load()
    assert hasattr(plugin.register_methods, "saliency_bench_impl")
    registered = []
    plugin.register_methods(register=registered.append)
    assert sorted(m.name for m in registered) == sorted(METHOD_NAMES)
    assert len({id(m) for m in registered}) == len(METHOD_NAMES)  # a distinct object per method
    again = []
    plugin.register_methods(register=again.append)
    assert all(a is b for a, b in zip(registered, again))  # the same objects every time the hook runs
    registry = make_plugin_manager(allowlist=[distribution]).registry()  # the allowlist names the distribution
    assert not registry.load_errors
    for method in registered:
        check_method_declaration(method)
        provided = registry.methods[method.name]
        assert provided.obj is method and provided.plugin == f"{distribution}:propagation"
        assert provided.version == importlib.metadata.version(distribution) == saliency_bench_propagation.__version__
    assert make_plugin_manager(allowlist=["propagation"]).registry().methods.keys() == registry.methods.keys()


def test_the_plugin_has_no_import_cycle():
    graph = import_graph(Path(saliency_bench_propagation.__file__).parent)
    assert find_cycle(graph) is None, "import cycle: " + " -> ".join(find_cycle(graph))


@pytest.mark.parametrize("model_name", ["tiny_vgg", "tiny_resnet", "tiny_vit"])
def test_registered_smoothgrad_noise_is_the_calibrated_level_for_each_shipped_model(model_name):
    """At the registered level the top-1 class holds on >= 95% of noisy copies of held-out images; one grid
    level up it does not, so the registered level is the largest that holds (calibrate_noise_level's rule)."""
    from saliency_bench.datasets.scenes import SceneShapesDataset
    from saliency_bench.models.default_plugin import EMBEDDED
    from saliency_bench.models.embedded import load_embedded
    from saliency_bench_propagation.plugin import METHODS, SMOOTHGRAD_NOISE_LEVEL, SMOOTHGRAD_NOISE_LEVELS
    from saliency_bench_propagation.path import NOISE_LEVELS, top1_kept

    model = load_embedded(EMBEDDED[model_name])
    level = SMOOTHGRAD_NOISE_LEVELS[model_name]
    [smoothgrad] = [method for method in METHODS if method.name == "smoothgrad"]
    assert smoothgrad.level_for(model) == level and smoothgrad.noise_level == SMOOTHGRAD_NOISE_LEVEL
    data = SceneShapesDataset(model.input_size, "val", 256)
    inputs = model.normalize(torch.stack([data[i]["image"] for i in range(len(data))]))
    assert top1_kept(model, inputs, level, n_samples=16, seed=0) >= 0.95
    above = NOISE_LEVELS[NOISE_LEVELS.index(level) + 1]
    assert top1_kept(model, inputs, above, n_samples=16, seed=0) < 0.95


def test_smoothgrad_uses_a_models_own_noise_level_and_the_default_elsewhere():
    from types import SimpleNamespace

    from saliency_bench_propagation.path import SmoothGrad

    method = SmoothGrad(noise_level=0.1, noise_levels={"b": 0.02, "a": 0.05})
    assert method.level_for(SimpleNamespace(name="a")) == 0.05 and method.level_for(SimpleNamespace(name="z")) == 0.1
    assert list(method.setting_values()["noise_levels"]) == ["a", "b"]  # sorted: one fingerprint per table


# What `saliency-bench bench` times beside each method: labels as before the peers moved into this plugin.
PEER_LABELS = {
    "gradient": ["captum Saliency"],
    "guided_backprop": ["captum GuidedBackprop"],
    "deconvnet": ["captum Deconvolution"],
    "input_x_gradient": ["captum InputXGradient"],
    "integrated_gradients": ["captum IntegratedGradients (4 steps)"],
    "smoothgrad": ["captum NoiseTunnel smoothgrad (4 samples)"],
    "lrp_0": ["zennit LRP-0", "zennit EpsilonPlusFlat"],
    "lrp_epsilon": ["zennit LRP-epsilon"],
    "lrp_gamma_inf": ["zennit LRP-gamma_inf"],
}


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_peers_are_the_same_method_in_captum_or_zennit_with_the_methods_settings(name):
    """Each peer's map, reduced like ours, is our map: captum's exactly; zennit's up to relevance starting at 1
    instead of f_t (EpsilonPlusFlat is another LRP, only shaped alike). No peer for RectGrad; SmoothGrad's (captum's
    NoiseTunnel) draws other noise, so it is compared without noise in the next test."""
    model = make_tiny()
    inputs, targets = make_inputs(32)
    method = {**all_methods(), "lrp_epsilon": LRPEpsilon(epsilon=2.0)}[name]  # a setting other than the default
    peers = list(method.peers(model))
    assert [label for label, _ in peers] == PEER_LABELS.get(name, [])
    ours = method.input_attribution(model, inputs, targets)
    start = model(inputs).gather(1, targets.view(-1, 1)).detach().view(-1, 1, 1, 1)
    for label, fn in peers:
        theirs = torch.as_tensor(fn(inputs, targets))
        assert theirs.shape == inputs.shape, label
        if label == "zennit EpsilonPlusFlat" or label.startswith("captum NoiseTunnel"):
            continue
        if label.startswith("zennit"):
            theirs = theirs * start
        elif label == "captum Saliency":
            ours = ours.abs()  # captum's Saliency returns |df/dx|
        assert relative_error(ours, theirs) < TOLERANCE, label


def test_smoothgrads_captum_peer_is_the_same_method_without_noise():
    """At noise level 0 SmoothGrad is the gradient, and captum's NoiseTunnel(Saliency) is |gradient|."""
    model = make_tiny()
    inputs, targets = make_inputs(32)
    method = SmoothGrad(n_samples=3, noise_level=0.0)
    ((label, peer),) = list(method.peers(model))
    assert label == "captum NoiseTunnel smoothgrad (3 samples)"
    assert relative_error(method.input_attribution(model, inputs, targets).abs(), peer(inputs, targets)) < TOLERANCE


def test_smoothgrads_noise_belongs_to_the_image_not_to_its_batch(tiny_inplace):
    """An image's map is the same alone, in another batch, at another position or chunk size (image_seeds)."""
    inputs, targets = make_inputs(32, batch=4)
    method = SmoothGrad(n_samples=3, noise_level=0.2, max_batch=4)
    together = method.input_attribution(tiny_inplace, inputs, targets)
    alone = method.input_attribution(tiny_inplace, inputs[3:4], targets[3:4])
    moved = method.input_attribution(tiny_inplace, inputs[[3, 0]], targets[[3, 0]])
    assert torch.allclose(together[3:4], alone, rtol=1e-5, atol=1e-8)
    assert torch.allclose(together[3], moved[0], rtol=1e-5, atol=1e-8)
    assert not torch.allclose(together[0], together[1])


def test_peers_need_no_peer_library(monkeypatch):
    """captum and zennit are optional: a method whose library is not installed has no peer."""
    import importlib.util

    from saliency_bench_propagation import peers

    real = importlib.util.find_spec
    monkeypatch.setattr(peers.importlib.util, "find_spec",
                        lambda module, *a: None if module in ("captum", "zennit") else real(module, *a))
    model = make_tiny()
    assert all(list(method.peers(model)) == [] for method in all_methods().values())
