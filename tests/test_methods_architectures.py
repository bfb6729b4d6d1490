"""The shipped methods on torchvision ResNet and ViT (issue 18): oracles, per-call ReLU rules, n/a where undefined.

Random weights, 64 px, batch 2; every model is built here (no registry, no download).
"""
from __future__ import annotations

import copy

import captum.attr as captum_attr
import pytest
import torch
import torch.nn.functional as F
import torchvision
import zennit.attribution as zennit_attribution
from torch import nn
from zennit.composites import LayerMapComposite
from zennit.layer import Sum
from zennit.rules import Epsilon, Norm, Pass, ZPlus
from zennit.torchvision import ResNetCanonizer
from zennit.types import Activation, AvgPool, BatchNorm, Convolution, Linear

from saliency_bench import ModelWrapper, NotApplicable
from saliency_bench_aggregation import (
    CumulativeGradCAM,
    CumulativeGradMid,
    FullGrad,
    GradCAM,
    GradCAMPlusPlus,
    GradCAMPos,
    GradMid,
    compute_maps,
    fullgrad_decomposition,
)
from saliency_bench_aggregation.formulas import upsample
from saliency_bench_propagation import (
    Deconvnet,
    Gradient,
    GuidedBackprop,
    InputXGradient,
    IntegratedGradients,
    LRP0,
    LRPEpsilon,
    LRPGammaInf,
    RectGrad,
    SmoothGrad,
)

SIZE = 64
CLASSES = 10
RESNET_BLOCKS = {"B1": "maxpool", "B2": "layer1", "B3": "layer2", "B4": "layer3", "B5": "layer4"}
VIT_BLOCKS = {f"B{i + 1}": f"encoder.layers.encoder_layer_{layer}.ln_1" for i, layer in enumerate((1, 3, 5, 8, 11))}
# a layer's output at the last layer: the head reads the class token alone, so the patch tokens get no gradient
VIT_LAST_OUTPUT = {"B5": "encoder.layers.encoder_layer_11"}


def relative_error(ours: torch.Tensor, reference: torch.Tensor) -> float:
    """max |ours - reference| / max |reference|."""
    ours, reference = ours.detach().float(), torch.as_tensor(reference).detach().float()
    return float((ours - reference).abs().max() / reference.abs().max().clamp(min=1e-30))


def randomize_batch_norms(network: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial eval statistics and affine parameters, so BatchNorm is neither identity nor bias-free."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in network.modules():
            if isinstance(module, nn.BatchNorm2d):
                n = module.num_features
                module.weight.copy_(0.5 + torch.rand(n, generator=generator))
                module.bias.copy_(0.2 * torch.randn(n, generator=generator))
                module.running_mean.copy_(0.2 * torch.randn(n, generator=generator))
                module.running_var.copy_(0.5 + torch.rand(n, generator=generator))
    return network.eval()


def resnet(depth: int = 50) -> ModelWrapper:
    torch.manual_seed(0)
    network = getattr(torchvision.models, f"resnet{depth}")(num_classes=CLASSES)
    return ModelWrapper(randomize_batch_norms(network), name=f"resnet{depth}", class_names=[str(i) for i in range(CLASSES)],
                        input_size=SIZE, blocks=RESNET_BLOCKS, randomization_order=["fc"])


@pytest.fixture(scope="module")
def resnet50() -> ModelWrapper:
    return resnet(50)


@pytest.fixture(scope="module")
def vit() -> ModelWrapper:
    torch.manual_seed(0)
    network = torchvision.models.vit_b_16(image_size=SIZE, num_classes=CLASSES)  # 16 px patches: a 4x4 grid
    nn.init.normal_(network.heads.head.weight, std=0.5)  # torchvision starts the head at zero: no gradient at all
    return ModelWrapper(network, name="vit_b_16", class_names=[str(i) for i in range(CLASSES)], input_size=SIZE,
                        blocks=VIT_BLOCKS, randomization_order=["heads.head"], prefix_tokens=1)


@pytest.fixture(scope="module")
def vit_last_output(vit) -> ModelWrapper:
    """The ViT read at the last encoder layer's output (what the block rule avoids)."""
    twin = vit.copy()
    twin.block_names = {**VIT_BLOCKS, **VIT_LAST_OUTPUT}
    return twin


@pytest.fixture(scope="module")
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return torch.randn(2, 3, SIZE, SIZE, generator=generator), torch.tensor([0, 6])  # classes whose GradCAM is non-zero on this random ResNet


# -- 1. gradient-based methods ---------------------------------------------------------------------------
@pytest.mark.parametrize("model_name", ["resnet50", "vit"])
def test_gradient_methods_run_and_match_captum_saliency(model_name, batch, request):
    model = request.getfixturevalue(model_name)
    inputs, targets = batch
    for method in (Gradient(), InputXGradient(), SmoothGrad(n_samples=2), IntegratedGradients(n_steps=2)):
        maps = method.attribute(model, inputs, targets)
        assert maps.shape == (2, SIZE, SIZE) and bool(torch.isfinite(maps).all()) and bool(maps.abs().sum() > 0)
    theirs = captum_attr.Saliency(model.network).attribute(inputs, target=targets).amax(1)
    assert relative_error(Gradient().attribute(model, inputs, targets), theirs) < 1e-5


# -- 2. GradCAM family and FullGrad through to_grid -----------------------------------------------------
@pytest.mark.parametrize("block, layer", [("B5", "layer4"), ("B3", "layer2")])
def test_gradcam_on_resnet_equals_captum_layer_gradcam(resnet50, batch, block, layer):
    inputs, targets = batch
    ours = GradCAM(block).attribute(resnet50, inputs, targets)
    cam = captum_attr.LayerGradCam(resnet50.network, resnet50.module(layer)).attribute(
        inputs, target=targets, relu_attributions=True)
    theirs = captum_attr.LayerAttribution.interpolate(cam, (SIZE, SIZE), "bilinear").squeeze(1)
    assert bool(theirs.abs().sum() > 0)
    assert relative_error(ours, theirs) < 1e-5


def vit_reshape_transform(tensor: torch.Tensor, height: int = 4, width: int = 4) -> torch.Tensor:
    """pytorch-grad-cam's ViT reshape_transform (its vit_example.py): drop the class token, tokens to a grid."""
    result = tensor[:, 1:, :].reshape(tensor.size(0), height, width, tensor.size(2))
    return result.transpose(2, 3).transpose(1, 2)


@pytest.mark.parametrize("block", ["B2", "B4"])
def test_gradcam_on_vit_equals_grad_cam_with_reshape_transform(vit, batch, block):
    inputs, targets = batch
    ours = GradCAM(block).attribute(vit, inputs, targets)
    layer = vit.blocks[block]
    from pytorch_grad_cam import GradCAM as LibraryGradCAM  # here: a missing grad-cam fails this test only
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    with LibraryGradCAM(model=vit.network, target_layers=[layer], reshape_transform=vit_reshape_transform) as cam:
        cam(input_tensor=inputs, targets=[ClassifierOutputTarget(int(t)) for t in targets])
        activations = cam.activations_and_grads.activations[0]
        grads = cam.activations_and_grads.gradients[0]
        raw = cam.get_cam_image(inputs, layer, None, activations.numpy(), grads.numpy())  # before its min-max scaling and cv2 resize
    theirs = upsample(torch.relu(torch.as_tensor(raw)).float(), (SIZE, SIZE))
    assert bool(theirs.abs().sum() > 0)
    assert relative_error(ours, theirs) < 1e-4


def all_aggregation_methods() -> list:
    per_block = [cls(block) for cls in (GradCAM, GradCAMPos, GradCAMPlusPlus, GradMid) for block in RESNET_BLOCKS]
    return per_block + [CumulativeGradCAM(), CumulativeGradMid(), FullGrad()]


@pytest.mark.parametrize("model_name, undefined", [
    ("resnet50", {"gradmid@B5"}),  # global-average-pool head: df/dA constant in space at layer4
    ("vit", set()),  # read at each layer's ln_1 (the tokens it attends over): defined at the last layer too
    ("vit_last_output", {"gradcam@B5", "gradcam_pos@B5", "gradcampp@B5", "gradmid@B5"}),  # only the class token
])
def test_every_aggregation_method_at_every_block(model_name, undefined, batch, request):
    model = request.getfixturevalue(model_name)
    inputs, targets = batch
    maps = compute_maps(model, inputs, targets, all_aggregation_methods())
    assert {name for name, value in maps.items() if isinstance(value, NotApplicable)} == undefined
    for name, value in maps.items():
        if not isinstance(value, NotApplicable):
            assert value.shape == (2, SIZE, SIZE) and bool(torch.isfinite(value).all()), name
            if not name.startswith(("gradcam@", "gradcampp@")):  # ReLU(sum_k w_k A^k) may be all zero by chance
                assert bool(value.abs().sum() > 0), name
    if model_name == "vit_last_output":
        assert "class) token" in maps["gradcam@B5"].reason


def test_fullgrad_on_resnet_counts_batch_norm_biases_and_is_complete(resnet50, batch):
    inputs, targets = batch
    decomposition = fullgrad_decomposition(resnet50.network, inputs, targets)
    names = {name for name, _ in decomposition.bias_terms}
    assert "bn1" in names and "layer4.2.bn3" in names and "layer1.0.downsample.1" in names
    # eval BatchNorm is affine: grad_x f * x + sum of bias terms = f (Srinivas & Fleuret 2019, eq. 3)
    assert torch.allclose(decomposition.total(), decomposition.target_logits, rtol=1e-4, atol=1e-4)


def test_fullgrad_on_vit_reads_token_terms_through_to_grid(vit, batch):
    inputs, targets = batch
    maps = FullGrad().attribute(vit, inputs, targets)
    decomposition = fullgrad_decomposition(vit.network, inputs, targets)
    token_terms = [term for _, term in decomposition.bias_terms if term.dim() == 3]
    assert token_terms and vit.to_grid(token_terms[0]).shape[-2:] == (4, 4)
    from saliency_bench_aggregation import fullgrad_map

    without_tokens = fullgrad_map(decomposition)  # to_grid not given: conv terms only, as the official code
    assert maps.shape == (2, SIZE, SIZE) and not torch.allclose(maps, without_tokens)


# -- 3. ReLU rules: one per call, n/a where unseen ------------------------------------------------------
class GuidedReLU(torch.autograd.Function):
    """Reference guided ReLU, one autograd node per call (independent of the plugin)."""

    @staticmethod
    def forward(ctx, x):
        out = x.clamp(min=0)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        return grad.clamp(min=0) * (out > 0)


class ReferenceGuidedReLU(nn.Module):
    def forward(self, x):
        return GuidedReLU.apply(x)


def test_guided_backprop_on_resnet_matches_a_per_call_reference(resnet50, batch):
    inputs, targets = batch
    ours = GuidedBackprop().input_attribution(resnet50, inputs, targets)
    reference = copy.deepcopy(resnet50.network)
    for module in list(reference.modules()):
        for name, child in module.named_children():
            if isinstance(child, nn.ReLU):
                setattr(module, name, ReferenceGuidedReLU())
    x = inputs.clone().requires_grad_(True)
    (theirs,) = torch.autograd.grad(reference(x).gather(1, targets.view(-1, 1)).sum(), x)
    assert bool(theirs.abs().sum() > 0)
    assert relative_error(ours, theirs) < 1e-5
    # captum's GuidedBackprop hooks each nn.ReLU's backward per call too: it agrees on the shared Bottleneck ReLU
    captum = captum_attr.GuidedBackprop(resnet50.network).attribute(inputs, target=targets)
    assert relative_error(captum, theirs) < 1e-5


class Twice(nn.Module):
    """Calls the SAME ReLU module twice with different inputs."""

    def __init__(self):
        super().__init__()
        self.first, self.second, self.head = nn.Linear(4, 6), nn.Linear(6, 6), nn.Linear(6, 3)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.head(self.relu(self.second(self.relu(self.first(x)))))


def test_reentrant_relu_gets_one_rule_per_call():
    torch.manual_seed(4)
    network = Twice().eval()
    x, targets = torch.randn(2, 4), torch.tensor([0, 2])
    ours = GuidedBackprop().input_attribution(network, x, targets)
    # hand computation: g_out = one-hot; each ReLU call masks with ITS OWN output and the sign of its own signal
    with torch.no_grad():
        h1 = torch.relu(network.first(x))
        h2 = torch.relu(network.second(h1))
        g = network.head.weight[targets]  # d f_t / d h2
        g = g.clamp(min=0) * (h2 > 0)
        g = g @ network.second.weight
        g = g.clamp(min=0) * (h1 > 0)
        expected = g @ network.first.weight
        # the test can fail: a rule keeping one activation per module (the last call's) gives another answer
        wrong = (network.head.weight[targets].clamp(min=0) * (h2 > 0)) @ network.second.weight
        wrong = (wrong.clamp(min=0) * (h2 > 0)) @ network.first.weight
    assert not torch.allclose(expected, wrong)
    assert torch.allclose(ours, expected, atol=1e-6)


class FunctionalReLU(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.head = nn.Conv2d(3, 4, 3), nn.Linear(4, 3)
        self.relu = nn.ReLU()

    def forward(self, x):
        x = self.relu(self.conv(x))
        return self.head(F.relu(x - 0.1).mean(dim=(2, 3)))  # a ReLU no module rule sees


class ModuleGELU(FunctionalReLU):
    def __init__(self):
        super().__init__()
        self.gelu = nn.GELU()

    def forward(self, x):
        return self.head(self.gelu(self.relu(self.conv(x))).mean(dim=(2, 3)))


class FunctionalGELU(FunctionalReLU):
    def forward(self, x):
        return self.head(F.gelu(self.relu(self.conv(x))).mean(dim=(2, 3)))


@pytest.mark.parametrize("network_cls, reason", [
    (FunctionalReLU, "functional ReLU"), (ModuleGELU, "GELU"), (FunctionalGELU, "gelu")])
@pytest.mark.parametrize("method_cls", [GuidedBackprop, Deconvnet, RectGrad])
def test_unseen_nonlinearities_make_relu_rules_not_applicable(network_cls, reason, method_cls):
    network = network_cls().eval()
    x = torch.randn(2, 3, 8, 8)
    with pytest.raises(NotApplicable, match=reason):
        method_cls().attribute(network, x, torch.tensor([0, 1]))
    assert Gradient().attribute(network, x, torch.tensor([0, 1])).shape == (2, 8, 8)  # the plain gradient is defined
    assert not any(module._forward_hooks or module._forward_pre_hooks for module in network.modules())


def test_guided_backprop_and_lrp_on_vit_are_not_applicable(vit, batch):
    inputs, targets = batch
    with pytest.raises(NotApplicable, match="GELU|MultiheadAttention"):
        GuidedBackprop().attribute(vit, inputs, targets)
    with pytest.raises(NotApplicable, match="GELU") as info:
        LRPEpsilon().attribute(vit, inputs, targets)
    assert "MultiheadAttention" in info.value.reason


# -- 4. LRP on ResNets: BatchNorm merged, residual sums split; zennit's ResNetCanonizer as the oracle ----
LRP_CASES = [(LRP0, lambda: Epsilon(1e-9)), (LRPEpsilon, lambda: Epsilon(0.25)), (LRPGammaInf, lambda: ZPlus(1e-9))]


@pytest.mark.parametrize("depth", [18, 50])
@pytest.mark.parametrize("method_cls, zennit_rule", LRP_CASES)
def test_lrp_on_resnet_equals_zennit_resnet_canonizer(depth, method_cls, zennit_rule, batch):
    model = resnet(depth)
    for module in model.network.modules():
        # zennit's merge leaves BatchNorm's eps in place: its "identity" BatchNorm divides by sqrt(1 + eps), which
        # the epsilon rule amplifies (2.7% on resnet50 at eps = 1e-5); with eps = 0 both run the same network
        if isinstance(module, nn.BatchNorm2d):
            module.eps = 0.0
    inputs, targets = batch
    if method_cls is LRP0:  # z / (z + 1e-9) amplifies float32 rounding (merged vs sequential BatchNorm): 4e-4 on resnet50
        model.network.double()
        inputs = inputs.double()
    ours = method_cls().input_attribution(model, inputs, targets)
    layer_map = [(Activation, Pass()), (Sum, Norm(1e-9)), (AvgPool, Norm(1e-9)), (BatchNorm, Pass()),
                 (Convolution, zennit_rule()), (Linear, zennit_rule())]
    composite = LayerMapComposite(layer_map=layer_map, canonizers=[ResNetCanonizer()])
    twin = copy.deepcopy(model.network)
    with zennit_attribution.Gradient(model=twin, composite=composite) as attributor:
        _, theirs = attributor(inputs, lambda logits: torch.eye(CLASSES, dtype=logits.dtype)[targets] * logits)  # R = f_t at the top
    assert bool(theirs.abs().sum() > 0)
    assert relative_error(ours, theirs) < 1e-4
    assert not any(module._forward_hooks for module in model.network.modules())


class OpenResidual(nn.Module):
    """A residual sum written in forward, in no block LRP knows."""

    def __init__(self):
        super().__init__()
        self.conv, self.head = nn.Conv2d(3, 3, 3, padding=1), nn.Linear(3, 2)
        self.relu = nn.ReLU()

    def forward(self, x):
        h = self.relu(self.conv(x))
        return self.head((h + self.relu(self.conv(h))).mean(dim=(2, 3)))


def test_lrp_on_an_unknown_residual_sum_is_not_applicable():
    with pytest.raises(NotApplicable, match="residual"):
        LRP0().attribute(OpenResidual().eval(), torch.randn(2, 3, 8, 8), torch.tensor([0, 1]))
