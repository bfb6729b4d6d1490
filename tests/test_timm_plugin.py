"""The timm plugin (plugins/timm, ``saliency-bench-timm``): ``timm:<name>`` through the ``register_models`` hook.

Random weights only (``pretrained=False``: nothing is downloaded); timm's ResNet-18 and ViT-Tiny (at 64 px,
``img_size``: a 4x4 patch grid) are built for real, other architectures on the ``meta`` device (structure only).
"""
from __future__ import annotations

import importlib.metadata

import pytest
import torch

timm = pytest.importorskip("timm")

import saliency_bench_timm  # noqa: E402
from saliency_bench import MethodGroup, ModelSpec, ModelWrapper, UserError  # noqa: E402
from saliency_bench.plugins import make_plugin_manager  # noqa: E402
from saliency_bench_aggregation import GradCAM  # noqa: E402
from saliency_bench_propagation import Gradient  # noqa: E402
from saliency_bench_timm import layout, load_timm  # noqa: E402
from saliency_bench_timm.models import prepare, wrap  # noqa: E402
from test_architectures import assert_cascade_changes_each_block_once, trained_like  # noqa: E402

SIZE = 64
RESNET = "timm:resnet18"
VIT = "timm:vit_tiny_patch16_224"
VIT_NORMS = {f"B{k + 1}": f"blocks.{i}.norm1" for k, i in enumerate((3, 5, 7, 9, 11))}


@pytest.fixture(scope="module")
def resnet(one_thread) -> ModelWrapper:
    return load_timm(RESNET, "resnet18")


@pytest.fixture(scope="module")
def vit(one_thread) -> ModelWrapper:
    return load_timm(VIT, "vit_tiny_patch16_224", img_size=SIZE)


@pytest.fixture(scope="module")
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return torch.randn(2, 3, SIZE, SIZE, generator=generator), torch.tensor([0, 7])


def on_meta(arch: str) -> ModelWrapper:
    """timm's ``arch`` built on the meta device (no memory, no init), wrapped by the plugin's rules."""
    with torch.device("meta"):
        network = prepare(timm.create_model(arch, pretrained=False))
    side = timm.data.resolve_data_config({}, model=network)["input_size"][-1]
    return wrap(network, layout.network_layout(network, side), name=f"timm:{arch}", class_names=["a", "b"],
                input_size=side)


def parameters(wrapper: ModelWrapper) -> dict[str, torch.Tensor]:
    return dict(wrapper.network.state_dict())


# -- registration ------------------------------------------------------------------------------------------------
def test_every_timm_model_is_registered_through_the_hook(pm):
    pm.register(saliency_bench_timm, name="timm-plugin")
    try:
        models = pm.registry().models
        spec = models[RESNET].obj
        assert isinstance(spec, ModelSpec) and models[RESNET].plugin == "timm-plugin"
        assert {name for name in models if name.startswith("timm:")} == {f"timm:{n}" for n in timm.list_models()}
        assert "random weights" in spec.description and set(spec.options) == {"img_size", "class_names"}
        assert "torchvision:resnet18" in models and "resnet50" in models  # the core's models are untouched
    finally:
        pm.unregister(name="timm-plugin")
    assert RESNET not in pm.registry().models


def test_the_installed_distribution_declares_one_entry_point():
    entries = importlib.metadata.entry_points(group="saliency_bench")
    [entry] = [ep for ep in entries if ep.value == "saliency_bench_timm"]
    assert entry.name == "timm" and entry.dist.name == "saliency-bench-timm"
    registry = make_plugin_manager(allowlist=["saliency-bench-timm"]).registry()  # the entry-point path
    assert registry.models[VIT].distribution == "saliency-bench-timm" and registry.models[VIT].version == "0.1.0"
    assert not registry.load_errors


# -- loading -----------------------------------------------------------------------------------------------------
def test_resnet18_blocks_classes_and_normalization(resnet, batch):
    info = [level["module"] for level in resnet.network.feature_info]
    assert info == ["act1", "layer1", "layer2", "layer3", "layer4"]
    # saliency-bench's ResNet rule (B1 the stem's max-pool, as for torchvision's resnet50); B2..B5 are feature_info's
    assert resnet.block_names == {"B1": "maxpool", "B2": "layer1", "B3": "layer2", "B4": "layer3", "B5": "layer4"}
    assert (resnet.name, resnet.input_size, resnet.num_classes, resnet.multilabel) == (RESNET, 224, 1000, False)
    assert resnet.class_names[:2] == ["class_0", "class_1"] and resnet.class_names[-1] == "class_999"
    assert resnet.mean == (0.485, 0.456, 0.406) and resnet.std == (0.229, 0.224, 0.225)
    assert resnet.prefix_tokens == 0 and not resnet.channels_last_blocks
    assert not resnet.network.training and not any(getattr(m, "inplace", False) for m in resnet.network.modules())
    with torch.no_grad():
        assert resnet(batch[0]).shape == (2, 1000)


def test_random_weights_are_seeded_and_leave_the_callers_random_state_alone(resnet):
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    again = load_timm(RESNET, "resnet18")
    assert torch.equal(torch.random.get_rng_state(), before)
    first, second = parameters(resnet), parameters(again)
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


def test_a_saved_state_dict_loads_through_weights(resnet, tmp_path):
    network = trained_like(resnet.copy().network, seed=3)  # not the seed-0 initialisation
    path = tmp_path / "resnet18.pth"
    torch.save({"state_dict": network.state_dict()}, path)  # a checkpoint dict is unwrapped
    loaded = load_timm(RESNET, "resnet18", weights=str(path))
    saved, got = network.state_dict(), parameters(loaded)
    assert saved.keys() == got.keys() and all(torch.equal(saved[k], got[k]) for k in saved)
    assert not any(torch.equal(got[k], v) for k, v in parameters(resnet).items() if k.endswith("conv1.weight"))


def test_the_checkpoints_classifier_sets_the_classes(tmp_path):
    torch.manual_seed(0)
    state = timm.create_model("resnet18", num_classes=6).state_dict()
    path = tmp_path / "six.pth"
    torch.save(state, path)
    model = load_timm(RESNET, "resnet18", weights=path)
    assert model.num_classes == 6 and model.class_names == [f"class_{i}" for i in range(6)]
    names = ["circle", "square", "triangle", "star", "cross", "ring"]
    assert load_timm(RESNET, "resnet18", weights=path, class_names=names).class_names == names
    with pytest.raises(UserError, match="6 classes, class_names names 2"):
        load_timm(RESNET, "resnet18", weights=path, class_names=["a", "b"])


@pytest.mark.parametrize("change, message", [
    (lambda s: s.pop("layer4.1.bn2.running_var"), "missing key 'layer4.1.bn2.running_var'"),
    (lambda s: s.__setitem__("conv1.weight", torch.zeros(8, 3, 7, 7)), "'conv1.weight' has shape [8, 3, 7, 7]"),
    (lambda s: s.__setitem__("extra.weight", torch.zeros(1)), "unexpected key 'extra.weight'"),
])
def test_a_state_dict_of_another_architecture_is_a_one_line_error(resnet, tmp_path, change, message):
    state = dict(resnet.network.state_dict())
    change(state)
    path = tmp_path / "wrong.pth"
    torch.save(state, path)
    with pytest.raises(UserError) as error:
        load_timm(RESNET, "resnet18", weights=str(path))
    text = str(error.value)
    assert "\n" not in text and "does not fit the architecture" in text and message in text and str(path) in text


def test_unreadable_weights_and_unknown_options_are_one_line_errors(tmp_path):
    path = tmp_path / "list.pth"
    torch.save([1, 2, 3], path)
    with pytest.raises(UserError, match="holds a list, not a state dict") as error:
        load_timm(RESNET, "resnet18", weights=path)
    assert "\n" not in str(error.value)
    with pytest.raises(UserError, match=r"model 'timm:resnet18' has no option\(s\) depth, head \(options: img_size"):
        load_timm(RESNET, "resnet18", head="voc", depth=3)
    with pytest.raises(UserError, match="timm cannot build resnet18 with img_size=64") as error:
        load_timm(RESNET, "resnet18", img_size=SIZE)  # ResNet's constructor takes no input size
    assert "\n" not in str(error.value)
    with pytest.raises(UserError, match="img_size must be a positive integer"):
        load_timm(VIT, "vit_tiny_patch16_224", img_size="64px")  # "64", as a command line passes it, is taken


def test_vit_gets_prefix_token_and_five_norm1_blocks(vit, batch):
    assert vit.block_names == VIT_NORMS and vit.prefix_tokens == 1 and not vit.channels_last_blocks
    assert (vit.input_size, vit.mean, vit.std) == (SIZE, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    seen = {}
    hook = vit.blocks["B5"].register_forward_hook(lambda module, args, output: seen.setdefault("B5", output))
    try:
        with torch.no_grad():
            assert vit(batch[0]).shape == (2, 1000)
    finally:
        hook.remove()
    assert seen["B5"].shape == (2, 1 + 16, 192) and vit.to_grid(seen["B5"]).shape == (2, 192, 4, 4)


def test_vit_at_its_own_size():
    wrapper = on_meta("vit_tiny_patch16_224")
    assert wrapper.input_size == 224 and wrapper.block_names == VIT_NORMS and wrapper.prefix_tokens == 1


# -- blocks of other architectures (meta device) -----------------------------------------------------------------
@pytest.mark.parametrize("arch, blocks, channels_last", [
    ("vgg16", ["features.3", "features.8", "features.15", "features.22", "features.29"], False),  # the seed paper's
    ("convnext_atto", ["stages.0", "stages.1", "stages.2", "stages.3"], False),  # feature_info
    ("swin_tiny_patch4_window7_224", ["layers.0", "layers.1", "layers.2", "layers.3"], True),  # NHWC stages
    ("efficientnet_b0", ["blocks.0", "blocks.1", "blocks.2", "blocks.4", "blocks.6"], False),
])
def test_blocks_of_other_architectures(one_thread, arch, blocks, channels_last):
    wrapper = on_meta(arch)
    assert list(wrapper.block_names.values()) == blocks and wrapper.channels_last_blocks is channels_last


def test_a_model_without_stages_asks_for_blocks(one_thread):
    wrapper = on_meta("convit_tiny")  # the class token joins halfway through `blocks`: no rule fits
    with pytest.raises(UserError, match=r"model 'timm:convit_tiny': no block rule .*pass --blocks NAME"):
        wrapper.block_names  # noqa: B018
    assert wrapper.set_blocks(["blocks.3", "blocks.11"]).block_names == {"B1": "blocks.3", "B2": "blocks.11"}


# -- methods through the harness's call path ---------------------------------------------------------------------
@pytest.mark.parametrize("model_name, block", [("resnet", "B5"), ("resnet", "B1"), ("vit", "B5"), ("vit", "B2")])
def test_gradient_and_gradcam_give_finite_maps_of_the_input_size(model_name, block, batch, request):
    model = request.getfixturevalue(model_name)
    inputs, targets = batch
    group = MethodGroup([Gradient(), GradCAM(block)], model)
    maps = group(inputs, targets)
    assert not group.failures and not group.not_applicable
    assert set(maps) == {"gradient", f"gradcam@{block}"}
    for name, value in maps.items():
        assert value.shape == (2, SIZE, SIZE) and bool(torch.isfinite(value).all()), name
    assert bool(maps["gradient"].abs().sum() > 0)


# -- cascading randomisation -------------------------------------------------------------------------------------
def test_resnet_cascade_randomizes_every_parameter(resnet):
    blocks = [f"layer{i}.{j}" for i in (4, 3, 2, 1) for j in (1, 0)]
    assert resnet.randomization_order == ["fc", *blocks, ""]
    twin = resnet.copy()
    trained_like(twin.network)  # timm starts some norms at zero: every parameter must visibly change
    assert_cascade_changes_each_block_once(twin)


def test_vit_cascade_randomizes_every_parameter_layer_by_layer(vit):
    layers = [f"blocks.{i}" for i in reversed(range(12))]
    assert vit.randomization_order == ["head", "norm", *layers, ""]
    twin = vit.copy()
    trained_like(twin.network)
    assert_cascade_changes_each_block_once(twin)
    root = {name for name, _ in twin.network.named_parameters() if not name.startswith(("head", "norm", "blocks"))}
    assert root == {"cls_token", "pos_embed", "patch_embed.proj.weight", "patch_embed.proj.bias"}
