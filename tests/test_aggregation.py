"""Tests of the saliency-bench-aggregation plugin (plugins/aggregation): formulas vs peers and references,
FullGrad completeness, the single shared pass, its one entry point, and that the model is left unchanged."""
from __future__ import annotations

import copy
import importlib.metadata
import importlib.util
from pathlib import Path

import numpy as np
import pluggy
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import saliency_bench
from saliency_bench import MethodGroup, ModelWrapper
from saliency_bench.methods import check_method_declaration
from saliency_bench.plugins import make_plugin_manager

import saliency_bench_aggregation
import saliency_bench_aggregation.capture as capture_module
import saliency_bench_aggregation.formulas as formulas_module
from saliency_bench_aggregation import FullGrad, GradCAM, GradMid, fullgrad_decomposition, fullgrad_map
from saliency_bench_aggregation.formulas import gradcampp_weights

from test_import_graph import find_cycle, import_graph

BLOCKS = ["B1", "B2", "B3", "B4", "B5"]
BLOCK_FORMULAS = ["gradcam", "gradcam_pos", "gradcampp", "gradmid"]
ALL_NAMES = (
    ["gradcam"]
    + [f"{formula}@{block}" for formula in BLOCK_FORMULAS for block in BLOCKS]
    + ["cumulative_gradcam", "cumulative_gradmid", "fullgrad"]
)
SIZE = 48
DISTRIBUTION = "saliency-bench-aggregation"


class TinyVGG(nn.Module):
    """A VGG-like net: 5 blocks of conv+ReLU (two convs in blocks 3-5) + max-pool, then an MLP head with biases."""

    def __init__(self, num_classes: int = 6, inplace: bool = False):
        super().__init__()
        layers, channels = [], 3
        for index, width in enumerate([8, 12, 16, 16, 24]):
            for _ in range(1 if index < 2 else 2):
                layers += [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(inplace=inplace)]
                channels = width
            layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(channels, 16), nn.ReLU(), nn.Linear(16, num_classes))

    def forward(self, x):
        return self.classifier(self.features(x))


def randomize_biases(network: nn.Module, std: float = 0.1) -> None:
    """Give every bias a non-zero random value, so the FullGrad bias terms matter."""
    with torch.no_grad():
        for module in network.modules():
            if getattr(module, "bias", None) is not None:
                module.bias.normal_(0.0, std)


@pytest.fixture
def tiny():
    torch.manual_seed(0)
    network = TinyVGG()
    randomize_biases(network)
    return ModelWrapper(network, name="tiny", class_names=[f"c{i}" for i in range(6)], input_size=SIZE)


@pytest.fixture
def batch():
    generator = torch.Generator().manual_seed(1)
    inputs = torch.randn(4, 3, SIZE, SIZE, generator=generator)
    targets = torch.tensor([0, 3, 5, 1])  # different targets per image
    return inputs, targets


@pytest.fixture(scope="module")
def vgg16():
    """torchvision VGG-16 (random weights and biases, ReLU(inplace=True)) at 48 px, and its maps of every method."""
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    network = torchvision.models.vgg16(weights=None, num_classes=7)
    randomize_biases(network, std=0.05)
    model = ModelWrapper(network, name="vgg16", class_names=[f"c{i}" for i in range(7)], input_size=48)
    inputs = torch.randn(2, 3, 48, 48, generator=torch.Generator().manual_seed(2))
    targets = torch.tensor([2, 5])
    before = network_snapshot(network, inputs, copy_params=False)  # 138M parameters: the output stands for them
    maps = GradCAM().attribute_shared(model, inputs, targets, ALL_METHODS)
    assert_unchanged(network, inputs, before)
    return model, inputs, targets, maps


def distribution_entry_points() -> list[importlib.metadata.EntryPoint]:
    """The installed distribution's entry points in the group ``saliency_bench``."""
    return [ep for ep in importlib.metadata.entry_points(group="saliency_bench") if ep.dist.name == DISTRIBUTION]


def methods_by_name() -> dict:
    """Every method of the installed distribution, collected through its one entry point's hook."""
    [entry_point] = distribution_entry_points()
    registered = []
    entry_point.load().register_methods(registered.append)
    return {method.name: method for method in registered}


METHODS = methods_by_name()  # the plugin's own objects, as the registry hands them to a run
ALL_METHODS = [METHODS[name] for name in ALL_NAMES]


def pick(*names: str) -> list:
    """The plugin's method objects called ``names`` (what the harness hands ``attribute_shared``)."""
    return [METHODS[name] for name in names]


def relative_error(ours: torch.Tensor, reference: torch.Tensor) -> float:
    """max |ours - reference| / max |reference|."""
    return float((ours - reference).abs().max() / reference.abs().max().clamp_min(1e-30))


def network_snapshot(network: nn.Module, inputs: torch.Tensor, copy_params: bool = True) -> dict:
    """What must not change: output, parameters (copied unless ``copy_params`` is False), requires_grad flags."""
    with torch.no_grad():
        output = network(inputs)
    return {
        "output": output,
        "params": [p.detach().clone() for p in network.parameters()] if copy_params else None,
        "flags": [p.requires_grad for p in network.parameters()],
        "training": network.training,
    }


def assert_unchanged(network: nn.Module, inputs: torch.Tensor, before: dict) -> None:
    """No hooks left, no .grad on parameters, same flags, parameters and output."""
    for name, module in network.named_modules():
        for hooks in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks"):
            assert not getattr(module, hooks, {}), f"{hooks} left on {name or 'network'}"
    assert all(p.grad is None for p in network.parameters())
    after = network_snapshot(network, inputs, copy_params=before["params"] is not None)
    assert after["flags"] == before["flags"]
    assert after["training"] == before["training"]
    if before["params"] is not None:
        assert all(torch.equal(a, b) for a, b in zip(after["params"], before["params"]))
    assert torch.equal(after["output"], before["output"])


# -- entry points and declarations ----------------------------------------------------------------------------


def test_one_entry_point_registers_every_method():
    [entry_point] = distribution_entry_points()  # one entry point for the whole distribution
    assert (entry_point.name, entry_point.value) == ("aggregation", "saliency_bench_aggregation.plugin")
    assert importlib.util.find_spec("saliency_bench_aggregation.entry_points") is None
    plugin = entry_point.load()
    assert hasattr(plugin.register_methods, "saliency_bench_impl")
    manager = pluggy.PluginManager("saliency_bench")
    from saliency_bench import hookspecs

    manager.add_hookspecs(hookspecs)
    manager.register(plugin)
    registered = []
    manager.hook.register_methods(register=registered.append)
    assert sorted(m.name for m in registered) == sorted(ALL_NAMES)
    assert len({id(method) for method in registered}) == len(ALL_NAMES)  # a distinct object per method
    for method in registered:
        check_method_declaration(method)
        assert METHODS[method.name] is method  # the same objects every time the hook runs
    registry = make_plugin_manager(allowlist=[DISTRIBUTION]).registry()  # the allowlist names the distribution
    assert not registry.load_errors
    for name in ALL_NAMES:
        provided = registry.methods[name]
        assert provided.obj is METHODS[name]
        assert (provided.plugin, provided.distribution) == (f"{DISTRIBUTION}:aggregation", DISTRIBUTION)
        assert provided.version == importlib.metadata.version(DISTRIBUTION) == saliency_bench_aggregation.__version__
    assert make_plugin_manager(allowlist=["aggregation"]).registry().methods.keys() == registry.methods.keys()


def test_declarations():
    methods = methods_by_name()
    assert set(methods) == set(ALL_NAMES)
    for name, method in methods.items():
        assert method.family == "aggregation"
        assert method.shared_key == "aggregation.single_pass"
        assert method.positive is (not name.startswith("gradcam@") and name != "gradcam")
        expected_layer = name.split("@")[1] if "@" in name else ("B5" if name == "gradcam" else None)
        assert method.layer == expected_layer


def test_the_plugin_has_no_import_cycle():
    """base -> shared, never back: the shared pass knows no method class (a TYPE_CHECKING import counts too)."""
    graph = import_graph(Path(saliency_bench_aggregation.__file__).parent)
    assert find_cycle(graph) is None, "import cycle: " + " -> ".join(find_cycle(graph))
    assert graph["saliency_bench_aggregation.shared"] == {
        "saliency_bench_aggregation.capture", "saliency_bench_aggregation.formulas", "saliency_bench_aggregation.fullgrad"}


# -- GradCAM vs captum ------------------------------------------------------------------------------------


def captum_gradcam(network: nn.Module, layer: nn.Module, inputs, targets) -> torch.Tensor:
    """captum LayerGradCam (relu_attributions) upsampled bilinearly to input size."""
    from captum.attr import LayerAttribution, LayerGradCam

    attributions = LayerGradCam(network, layer).attribute(inputs, target=targets, relu_attributions=True)
    return LayerAttribution.interpolate(attributions, tuple(inputs.shape[-2:]), "bilinear")[:, 0].detach()


def test_gradcam_matches_captum(tiny, batch):
    inputs, targets = batch
    ours = GradCAM().attribute_shared(tiny, inputs, targets, pick(*[f"gradcam@{b}" for b in BLOCKS], "gradcam"))
    for block in BLOCKS:
        reference = captum_gradcam(tiny.network, tiny.blocks[block], inputs, targets)
        assert reference.abs().max() > 0
        assert relative_error(ours[f"gradcam@{block}"], reference) < 1e-4, block
    assert torch.equal(ours["gradcam"], ours["gradcam@B5"])


def test_gradcam_matches_captum_on_torchvision_vgg16(vgg16):
    model, inputs, targets, ours = vgg16
    assert all(relu.inplace for relu in model.network.modules() if isinstance(relu, nn.ReLU))
    for name, block in (("gradcam", "B5"), ("gradcam@B3", "B3")):
        reference = captum_gradcam(model.network, model.blocks[block], inputs, targets)
        assert reference.abs().max() > 0
        assert relative_error(ours[name], reference) < 1e-4, name
    for name in ALL_NAMES:  # every method runs on torchvision's VGG-16 and gives a non-trivial map
        assert ours[name].shape == (2, 48, 48) and bool(torch.isfinite(ours[name]).all())
        assert ours[name].abs().max() > 0, name


# -- GradCAM++ vs pytorch_grad_cam -------------------------------------------------------------------------


def test_gradcampp_weights_match_grad_cam_formula():
    from pytorch_grad_cam import GradCAMPlusPlus

    generator = torch.Generator().manual_seed(3)
    activations = torch.relu(torch.randn(3, 5, 4, 4, generator=generator))
    grads = torch.randn(3, 5, 4, 4, generator=generator) * 1e-2
    grads[grads.abs() < 2e-3] = 0.0  # exact zeros, where alpha must be 0
    assert (grads == 0).any()
    theirs = GradCAMPlusPlus.get_cam_weights(None, None, None, None, activations.numpy(), grads.numpy())
    ours = gradcampp_weights(activations, grads)[:, :, 0, 0]
    np.testing.assert_allclose(ours.numpy(), theirs, rtol=1e-5, atol=1e-9)


def test_gradcampp_matches_grad_cam(tiny, batch):
    """grad-cam returns mm(cv2_resize(mm(cam))) per image. cv2's INTER_LINEAR uses half-pixel centres like our
    bilinear (align_corners=False), and min-max commutes with upsampling up to an affine map, so mm(ours) must
    match its output at input resolution (small differences come only from cv2's interpolation arithmetic)."""
    from pytorch_grad_cam import GradCAMPlusPlus
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    inputs, targets = batch
    ours = GradCAM().attribute_shared(tiny, inputs, targets, pick(*[f"gradcampp@{b}" for b in BLOCKS]))
    network = copy.deepcopy(tiny.network)  # grad-cam calls backward(): keep .grad off the model under test
    modules = dict(network.named_modules())
    for block in ("B2", "B4", "B5"):
        with GradCAMPlusPlus(network, [modules[tiny.block_names[block]]]) as cam:
            theirs = cam(input_tensor=inputs.clone(), targets=[ClassifierOutputTarget(int(t)) for t in targets])
        mine = formulas_module.minmax(ours[f"gradcampp@{block}"]).numpy()
        for image in range(len(targets)):
            assert mine[image].std() > 0 and theirs[image].std() > 0
            correlation = np.corrcoef(mine[image].ravel(), theirs[image].ravel())[0, 1]
            assert correlation > 0.999, (block, image, correlation)


# -- GradMid, GradCAM_Pos, cumulative vs a slow reference ---------------------------------------------------


def slow_block_tensors(model: ModelWrapper, image: torch.Tensor, target: int) -> dict:
    """One image: {block: (A, df/dA)} from its own forward and autograd.grad (no hooks of the plugin)."""
    store, handles = {}, []
    try:
        for block, module in model.blocks.items():
            handles.append(module.register_forward_hook(lambda m, a, out, block=block: store.__setitem__(block, out)))
        logit = model.network(image[None].clone().requires_grad_(True))[0, target]
    finally:
        for handle in handles:
            handle.remove()
    grads = torch.autograd.grad(logit, [store[b] for b in BLOCKS])
    return {b: (store[b][0].detach(), g[0]) for b, g in zip(BLOCKS, grads)}


def slow_reference(model: ModelWrapper, inputs, targets) -> dict:
    """gradcam_pos@Bn, gradmid@Bn and both cumulative sums, image by image and channel by channel."""
    def up(m):
        return F.interpolate(m[None, None], size=inputs.shape[-2:], mode="bilinear", align_corners=False)[0, 0]

    def mm(m):
        return (m - m.min()) / (m.max() - m.min())

    out = {name: [] for name in ["cumulative_gradcam", "cumulative_gradmid"] + [
        f"{f}@{b}" for f in ("gradcam_pos", "gradmid") for b in BLOCKS]}
    for image, target in zip(inputs, targets.tolist()):
        cumulative_cam = cumulative_mid = 0
        for block, (activation, grad) in slow_block_tensors(model, image, target).items():
            cam = torch.zeros(activation.shape[1:])
            mid = torch.zeros(activation.shape[1:])
            for k in range(activation.shape[0]):
                cam += (grad[k].mean() * activation[k]).abs()
                mid += grad[k].abs() * (activation[k] > 0)
            out[f"gradcam_pos@{block}"].append(up(cam))
            out[f"gradmid@{block}"].append(up(mid))
            cumulative_cam = cumulative_cam + up(mm(cam))
            cumulative_mid = cumulative_mid + up(mm(mid))
        out["cumulative_gradcam"].append(cumulative_cam)
        out["cumulative_gradmid"].append(cumulative_mid)
    return {name: torch.stack(maps) for name, maps in out.items()}


def test_gradmid_gradcam_pos_cumulative_match_slow_reference(tiny, batch):
    inputs, targets = batch
    reference = slow_reference(tiny, inputs, targets)
    ours = GradCAM().attribute_shared(tiny, inputs, targets, pick(*reference))
    for name, expected in reference.items():
        assert expected.abs().max() > 0
        assert relative_error(ours[name], expected) < 1e-4, name


def test_gradmid_shows_no_max_pool_lattice_on_dead_windows(tiny, batch):
    """Dead 2x2 windows (all activations 0) get df/dA at their first cell from the pool's backward: a lattice.

    The raw |df/dA| shows it (so this test bites the old formula); GradMid at the pre-activation does not.
    """
    inputs, targets = batch
    with torch.no_grad():
        for module in tiny.network.features:
            if isinstance(module, nn.Conv2d):
                module.bias.sub_(0.1)  # 85-89% dead windows at B3/B4, as the issue measured on tiny_vgg
    tensors = slow_block_tensors(tiny, inputs[0], int(targets[0]))
    found_dead = False
    for block in ("B3", "B4"):
        activation, grad = tensors[block]
        dead = F.max_pool2d(activation[None], 2)[0] == 0  # [K, h/2, w/2] windows whose four cells are 0
        lattice = grad.abs()[:, ::2, ::2][dead]  # the window's first cell, where the pool routes a dead window
        if dead.any():
            found_dead = True
            assert bool((lattice > 0).any()), "the raw gradient should show the lattice"
        ours = formulas_module.gradmid(activation[None], grad[None])[0]
        everywhere_dead = (activation == 0).all(0)
        assert bool((ours[everywhere_dead] == 0).all())
        expected = (grad.abs() * (activation > 0)).sum(0)
        assert torch.allclose(ours, expected)
    assert found_dead


class HeadedVGG(nn.Module):
    """The test VGG's features at 96 px under a global-average-pool head (tiny_vgg's) or a flatten + linear one (VGG-16's)."""

    def __init__(self, head: str):
        super().__init__()
        self.features = TinyVGG().features
        pool = nn.AdaptiveAvgPool2d(1) if head == "gap" else nn.Identity()
        self.head = nn.Sequential(pool, nn.Flatten(), nn.Linear(24 if head == "gap" else 24 * 9, 6))

    def forward(self, x):
        return self.head(self.features(x))


def test_gradmid_is_not_applicable_at_a_block_before_a_gap_head(batch):
    """df/dA at the last block of a GAP head is w_k/(hw) wherever the pool routes: no spatial information, so
    gradmid@B5 is n/a (not a failure, not a number); B4 and the cumulative sum over B1..B4 stay defined."""
    _, targets = batch
    inputs = torch.randn(4, 3, 96, 96, generator=torch.Generator().manual_seed(1))  # B5 6x6: 3x3 pool windows
    torch.manual_seed(0)
    model = ModelWrapper(HeadedVGG("gap"), name="gap", class_names=[f"c{i}" for i in range(6)], input_size=96)
    methods = METHODS
    names = ["gradmid@B4", "gradmid@B5", "cumulative_gradmid", "gradcam"]
    group = MethodGroup([methods[n] for n in names], model)
    maps = group(inputs, targets)
    assert set(maps) == {"gradmid@B4", "cumulative_gradmid", "gradcam"} and not group.failures
    assert "constant in space" in group.not_applicable["gradmid@B5"]
    with pytest.raises(saliency_bench.NotApplicable):
        methods["gradmid@B5"].attribute(model, inputs, targets)
    # on an MLP head (VGG-16's shape) the same block is defined
    mlp = ModelWrapper(HeadedVGG("fc"), name="fc", class_names=[f"c{i}" for i in range(6)], input_size=96)
    assert "gradmid@B5" in MethodGroup([methods["gradmid@B5"]], mlp)(inputs, targets)


def test_an_undefined_block_leaves_no_reference_cycle(batch):
    """A map that is n/a must not keep the pass alive: a raised NotApplicable stored with its traceback holds the
    frames of the shared pass, a cycle that kept every capture (activations and gradients of all blocks) in memory
    until Python's next full collection (0.4 GB of the board's peak on tiny_vgg)."""
    import gc

    _, targets = batch
    inputs = torch.randn(4, 3, 96, 96, generator=torch.Generator().manual_seed(1))
    model = ModelWrapper(HeadedVGG("gap"), name="gap", class_names=[f"c{i}" for i in range(6)], input_size=96)
    names = ["gradmid@B5", "cumulative_gradmid", "gradcam"]
    group = MethodGroup([METHODS[n] for n in names], model)
    group(inputs, targets)  # first call: lazy imports and caches are garbage of their own
    gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    try:
        gc.set_debug(gc.DEBUG_SAVEALL)
        group(inputs, targets)
        with pytest.raises(saliency_bench.NotApplicable):
            METHODS["gradmid@B5"].attribute(model, inputs, targets)
        gc.collect()
        left = [type(o).__name__ for o in gc.garbage if isinstance(o, torch.Tensor) or type(o).__name__ == "SharedPass"]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        if enabled:
            gc.enable()
    assert "gradmid@B5" in group.not_applicable
    assert left == []


# -- FullGrad ---------------------------------------------------------------------------------------------


def test_fullgrad_completeness_tiny(tiny, batch):
    """grad_x*x summed + every conv AND linear bias term = the target logit (piecewise-linear net)."""
    inputs, targets = batch
    decomposition = fullgrad_decomposition(tiny.network, inputs, targets)
    with torch.no_grad():
        logits = tiny.network(inputs).gather(1, targets[:, None])[:, 0]
    names = {name for name, _ in decomposition.bias_terms}
    assert {"classifier.1", "classifier.3"} <= names and "features.0" in names
    assert relative_error(decomposition.total(), logits) < 1e-4
    without_linear = decomposition.total() - sum(
        t.flatten(1).sum(1) for n, t in decomposition.bias_terms if n.startswith("classifier"))
    assert relative_error(without_linear, logits) > 1e-3  # the linear biases matter in this test


def test_fullgrad_completeness_torchvision_vgg16(vgg16):
    """Also shows the conv outputs are captured before torchvision's in-place ReLU overwrites them."""
    model, inputs, targets, _ = vgg16
    decomposition = fullgrad_decomposition(model.network, inputs, targets)
    with torch.no_grad():
        logits = model.network(inputs).gather(1, targets[:, None])[:, 0]
    assert relative_error(decomposition.total(), logits) < 1e-4


def test_fullgrad_hand_computed():
    """1x1 conv (w=2, b=-1) -> ReLU -> flatten -> Linear(4->2), W0 = [1,1,1,1], b0 = 0.5; x = [[1,0],[2,-1]], class 0.
    z = 2x - 1 = [[1,-1],[3,-3]], a = [[1,0],[3,0]], f = 1 + 3 + 0.5 = 4.5.
    df/dz = 1(z > 0) = [[1,0],[1,0]], grad_x = 2 df/dz = [[2,0],[2,0]], grad_x * x = [[2,0],[4,0]] (sum 6).
    conv term df/dz * b = [[-1,0],[-1,0]] (sum -2); linear term 1 * 0.5 = 0.5; 6 - 2 + 0.5 = 4.5 = f.
    map: P(grad_x*x) = [[2,0],[4,0]] / (4 + 1e-6), P(conv term) = [[1,0],[1,0]] / (1 + 1e-6); the linear term is
    not in the map."""
    network = nn.Sequential(nn.Conv2d(1, 1, 1), nn.ReLU(), nn.Flatten(), nn.Linear(4, 2))
    with torch.no_grad():
        network[0].weight.fill_(2.0)
        network[0].bias.fill_(-1.0)
        network[3].weight.copy_(torch.tensor([[1.0, 1, 1, 1], [1, -1, 0, 2]]))
        network[3].bias.copy_(torch.tensor([0.5, 0.0]))
    x = torch.tensor([[[[1.0, 0.0], [2.0, -1.0]]]])
    decomposition = fullgrad_decomposition(network, x, torch.tensor([0]))
    torch.testing.assert_close(decomposition.input_term, torch.tensor([[[[2.0, 0.0], [4.0, 0.0]]]]))
    terms = dict(decomposition.bias_terms)
    torch.testing.assert_close(terms["0"], torch.tensor([[[[-1.0, 0.0], [-1.0, 0.0]]]]))
    torch.testing.assert_close(terms["3"], torch.tensor([[0.5, 0.0]]))
    torch.testing.assert_close(decomposition.total(), torch.tensor([4.5]))
    eps = 1e-6
    expected = torch.tensor([[[2 / (4 + eps) + 1 / (1 + eps), 0.0], [4 / (4 + eps) + 1 / (1 + eps), 0.0]]])
    torch.testing.assert_close(fullgrad_map(decomposition), expected)
    wrapped = ModelWrapper(network, name="hand", class_names=["a", "b"], input_size=2, blocks={"B1": "1"})
    torch.testing.assert_close(FullGrad().attribute(wrapped, x, torch.tensor([0])), expected)


def official_order_fullgrad(network: nn.Module, inputs, targets) -> torch.Tensor:
    """The idiap FullGrad.saliency order, image by image: P on [C,h,w], interpolate every channel
    (bilinear, align_corners=True), then sum channels; gradients from full backward hooks on conv outputs."""
    def post(t):
        t = t.abs()
        t = t - t.flatten(1).min(1).values.view(-1, 1, 1, 1)
        return t / (t.flatten(1).max(1).values.view(-1, 1, 1, 1) + 1e-6)

    maps = []
    for image, target in zip(inputs, targets.tolist()):
        grads_out, handles = {}, []
        convs = {n: m for n, m in network.named_modules() if isinstance(m, nn.Conv2d)}
        try:
            for name, conv in convs.items():
                handles.append(conv.register_full_backward_hook(
                    lambda m, gi, go, name=name: grads_out.__setitem__(name, go[0])))
            x = image[None].clone().requires_grad_(True)
            (input_grad,) = torch.autograd.grad(network(x)[0, target], x)
        finally:
            for handle in handles:
                handle.remove()
        cam = post(input_grad * x.detach()).sum(1)
        for name, conv in convs.items():
            term = post(grads_out[name] * conv.bias.detach().view(1, -1, 1, 1))
            cam = cam + F.interpolate(term, size=inputs.shape[-2:], mode="bilinear", align_corners=True).sum(1)
        maps.append(cam[0])
    return torch.stack(maps)


def test_fullgrad_matches_official_order(tiny, batch):
    inputs, targets = batch
    ours = FullGrad().attribute(tiny, inputs, targets)
    reference = official_order_fullgrad(tiny.network, inputs, targets)
    assert relative_error(ours, reference) < 1e-5


def test_inplace_relu_gives_the_same_maps(tiny, batch):
    """With ReLU(inplace=True) (as torchvision's VGG) every map equals the one of the same net without in-place."""
    inputs, targets = batch
    twin = TinyVGG(inplace=True)
    twin.load_state_dict(tiny.network.state_dict())
    inplace_model = ModelWrapper(twin, name="inplace", class_names=tiny.class_names, input_size=SIZE)
    before = network_snapshot(twin, inputs)
    inplace_maps = GradCAM().attribute_shared(inplace_model, inputs, targets, ALL_METHODS)
    assert_unchanged(twin, inputs, before)
    plain_maps = GradCAM().attribute_shared(tiny, inputs, targets, ALL_METHODS)
    for name in ALL_NAMES:
        assert plain_maps[name].abs().max() > 0, name
        torch.testing.assert_close(inplace_maps[name], plain_maps[name], rtol=1e-5, atol=1e-7, msg=name)


# -- the shared pass --------------------------------------------------------------------------------------


class CountingForward:
    """A forward hook (of the test) counting the network's forward calls."""

    def __init__(self, network: nn.Module):
        self.calls = 0
        self.handle = network.register_forward_hook(self)

    def __call__(self, module, args, output):
        self.calls += 1


def test_shared_pass_equals_single_methods_with_one_forward_and_backward(tiny, batch, monkeypatch):
    inputs, targets = batch
    methods = METHODS
    alone = {name: methods[name].attribute(tiny, inputs, targets) for name in ALL_NAMES}

    grad_calls = []
    real_grad = torch.autograd.grad
    monkeypatch.setattr(torch.autograd, "grad", lambda *a, **k: grad_calls.append(1) or real_grad(*a, **k))
    counter = CountingForward(tiny.network)
    try:
        group = MethodGroup([methods[name] for name in ALL_NAMES], tiny)
        shared = group(inputs, targets)
        assert (counter.calls, len(grad_calls)) == (1, 1)
        assert not group.failures
        blocks_only = methods["gradmid@B2"].attribute_shared(tiny, inputs, targets, ALL_METHODS[:-1])
        assert (counter.calls, len(grad_calls)) == (2, 2)
    finally:
        counter.handle.remove()
    for name in ALL_NAMES:
        torch.testing.assert_close(shared[name], alone[name], rtol=1e-5, atol=1e-8, msg=name)
        assert shared[name].shape == (4, SIZE, SIZE) and shared[name].dtype == torch.float32
        if name != "fullgrad":
            torch.testing.assert_close(blocks_only[name], alone[name], rtol=1e-5, atol=1e-8, msg=name)


def test_backward_stops_at_the_lowest_block_unless_fullgrad(tiny, batch):
    inputs, targets = batch
    first_conv = tiny.network.features[0]
    calls = []
    handle = first_conv.register_full_backward_hook(lambda m, gi, go: calls.append(1))
    try:
        GradCAM().attribute_shared(tiny, inputs, targets, ALL_METHODS[:-1])
        assert calls == []  # B1 is the ReLU after features[0]: nothing below it is differentiated
        FullGrad().attribute(tiny, inputs, targets)
        assert calls == [1]
    finally:
        handle.remove()


# -- the model is left unchanged --------------------------------------------------------------------------


def test_model_unchanged_after_every_call(tiny, batch):
    inputs, targets = batch
    methods = METHODS
    before = network_snapshot(tiny.network, inputs)
    shared = GradCAM().attribute_shared(tiny, inputs, targets, ALL_METHODS)
    assert_unchanged(tiny.network, inputs, before)
    for name in ("gradcam@B1", "cumulative_gradmid", "fullgrad"):
        methods[name].attribute(tiny, inputs, targets)
        assert_unchanged(tiny.network, inputs, before)
    # frozen parameters: no requires_grad needed, flags stay as they were, same maps
    for parameter in tiny.network.parameters():
        parameter.requires_grad_(False)
    frozen = network_snapshot(tiny.network, inputs)
    with torch.no_grad():  # also from a no-grad context
        frozen_maps = GradCAM().attribute_shared(tiny, inputs, targets, ALL_METHODS)
    assert_unchanged(tiny.network, inputs, frozen)
    for name in ALL_NAMES:
        torch.testing.assert_close(frozen_maps[name], shared[name], msg=name)


def test_model_unchanged_when_a_method_raises(tiny, batch, monkeypatch):
    inputs, targets = batch
    before = network_snapshot(tiny.network, inputs)
    with pytest.raises(ValueError, match="out of range"):  # raised after the forward, hooks in place
        GradCAM().attribute_shared(tiny, inputs, torch.tensor([0, 1, 2, 6]), ALL_METHODS)
    assert_unchanged(tiny.network, inputs, before)

    def failing_grad(*args, **kwargs):
        raise RuntimeError("injected backward failure")

    monkeypatch.setattr(capture_module.torch.autograd, "grad", failing_grad)
    with pytest.raises(RuntimeError, match="injected"):
        FullGrad().attribute(tiny, inputs, targets)
    monkeypatch.undo()
    assert_unchanged(tiny.network, inputs, before)

    def failing_formula(self, activations, grads):
        raise RuntimeError("injected formula failure")

    monkeypatch.setattr(GradMid, "formula", failing_formula)
    group = MethodGroup(list(METHODS.values()), tiny)
    maps = group(inputs, targets)
    assert maps == {} and set(group.failures) == set(ALL_NAMES)  # the whole shared pass failed, recorded
    assert_unchanged(tiny.network, inputs, before)


def test_missing_block_is_a_clear_error_and_gradcam_uses_the_last_block(batch):
    inputs, targets = batch
    torch.manual_seed(0)
    network = TinyVGG()
    network.features = network.features[:-5]  # drop block 5 (conv, ReLU, conv, ReLU, pool): a 4-block net with a 16-channel B4
    network.classifier[1] = nn.Linear(16 * 3 * 3, 16)
    model = ModelWrapper(network, name="four", class_names=[f"c{i}" for i in range(6)], input_size=SIZE)
    assert list(model.block_names) == ["B1", "B2", "B3", "B4"]
    with pytest.raises(ValueError, match="no block B5"):
        GradCAM("B5").attribute(model, inputs, targets)
    maps = GradCAM().attribute_shared(model, inputs, targets, pick("gradcam", "gradcam@B4", "cumulative_gradcam"))
    assert torch.equal(maps["gradcam"], maps["gradcam@B4"])
    assert float(maps["cumulative_gradcam"].max()) <= 4.0 + 1e-5  # four blocks, each min-max map in [0,1]


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU")
def test_cuda_maps_match_cpu(tiny, batch):
    inputs, targets = batch
    on_cpu = GradCAM().attribute_shared(tiny, inputs, targets, ALL_METHODS)
    tiny.to("cuda")
    try:
        on_gpu = GradCAM().attribute_shared(tiny, inputs.cuda(), targets.cuda(), ALL_METHODS)
    finally:
        tiny.to("cpu")
    for name in ALL_NAMES:
        assert on_gpu[name].device.type == "cuda"
        torch.testing.assert_close(on_gpu[name].cpu(), on_cpu[name], rtol=1e-3, atol=1e-5, msg=name)
