"""Architectures beyond VGG: blocks per architecture, --blocks, torchvision loaders, cascade over every parameter.

Big networks are built on the ``meta`` device (structure only); the cascade runs on a random ResNet-18 and a
small ViT; weight files are stride-0 expanded state dicts (a few kB on disk).
"""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import torchvision
from torch import nn
from torchvision.models import SwinTransformer
from torchvision.models.vision_transformer import VisionTransformer

from fakes import tiny_vgg
from saliency_bench import ModelWrapper, UserError
from saliency_bench.checks.cascade import (random_parameters, randomize_layer, restore_layers, step_parameters,
                                                 weight_scale)
from saliency_bench.cli.parser import build_parser
from saliency_bench.models import torchvision_models as tvm
from saliency_bench.models.blocks import ROOT, cascade_order, resolve_blocks, token_layout, vit_layer_indices
from saliency_bench.models.real_plugin import register_models
from saliency_bench.models.tiny_vgg import load_tiny_vgg
from saliency_bench.run.session import RunOptions, open_model


def meta(name: str, **kwargs) -> nn.Module:
    """torchvision model ``name`` on the meta device (structure, no memory, no init)."""
    with torch.device("meta"):
        return torchvision.models.get_model(name, weights=None, **kwargs).eval()


def wrap(network: nn.Module, size: int, **kwargs) -> ModelWrapper:
    """A wrapper with dummy classes and the architecture's token layout."""
    layout = token_layout(network)
    return ModelWrapper(network, name="net", class_names=["a", "b"], input_size=size,
                        prefix_tokens=layout.prefix_tokens, channels_last_blocks=layout.channels_last_blocks, **kwargs)


def small_vit() -> VisionTransformer:
    """A 6-layer ViT on 32 px (patch 8: a 4x4 grid), random weights."""
    torch.manual_seed(0)
    return VisionTransformer(image_size=32, patch_size=8, num_layers=6, num_heads=2, hidden_dim=16, mlp_dim=32,
                             num_classes=3).eval()


def block_outputs(wrapper: ModelWrapper, images: torch.Tensor) -> dict[str, torch.Tensor]:
    """Each block's output on ``images``, through forward hooks."""
    seen = {}
    hooks = [m.register_forward_hook(lambda mod, i, o, b=b: seen.__setitem__(b, o)) for b, m in wrapper.blocks.items()]
    try:
        with torch.no_grad():
            wrapper(images)
    finally:
        for hook in hooks:
            hook.remove()
    return seen


# -- blocks ------------------------------------------------------------------------------------------------------
def test_resnet50_blocks_are_stem_and_layers():
    wrapper = wrap(meta("resnet50"), 224)
    assert wrapper.block_names == {"B1": "maxpool", "B2": "layer1", "B3": "layer2", "B4": "layer3", "B5": "layer4"}
    assert wrapper.prefix_tokens == 0 and not wrapper.channels_last_blocks


def test_vit_b_16_blocks_are_evenly_spaced_encoder_layers():
    wrapper = wrap(meta("vit_b_16", image_size=64), 64)
    assert wrapper.block_names == {f"B{k + 1}": f"encoder.layers.encoder_layer_{i}.ln_1"
                                   for k, i in enumerate((3, 5, 7, 9, 11))}
    assert wrapper.prefix_tokens == 1


@pytest.mark.parametrize("layers, expected", [(12, [3, 5, 7, 9, 11]), (24, [7, 11, 15, 19, 23]),
                                              (32, [7, 13, 19, 25, 31]), (5, [0, 1, 2, 3, 4]), (3, [0, 1, 2])])
def test_vit_layer_rule(layers, expected):
    assert vit_layer_indices(layers) == expected


def test_vit_blocks_come_out_on_the_patch_grid():
    wrapper = wrap(small_vit(), 32)
    assert list(wrapper.block_names.values()) == [f"encoder.layers.encoder_layer_{i}.ln_1" for i in (1, 2, 3, 4, 5)]
    for name, out in block_outputs(wrapper, torch.rand(2, 3, 32, 32)).items():
        assert out.shape == (2, 17, 16)
        grid = wrapper.to_grid(out)
        assert grid.shape == (2, 16, 4, 4)
        assert torch.equal(grid[:, :, 1, 2], out[:, 1 + 1 * 4 + 2])  # token 1 + row*4 + col, class token dropped


@pytest.mark.parametrize("name, expected", [
    ("convnext_tiny", ["features.1", "features.3", "features.5", "features.7"]),
    ("efficientnet_b0", ["features.1", "features.2", "features.3", "features.5", "features.8"]),
    ("densenet121", ["features.relu0", "features.denseblock1", "features.denseblock2", "features.denseblock3",
                     "features.norm5"]),
])
def test_stage_models_use_their_stage_outputs(name, expected):
    assert list(resolve_blocks(meta(name), 224).values()) == expected


def test_swin_stage_outputs_are_permuted_to_channels_first():
    blocks = {"B1": "features.1", "B2": "features.3", "B3": "features.5", "B4": "features.7"}
    swin_t = wrap(meta("swin_t"), 224)
    assert swin_t.block_names == blocks and swin_t.channels_last_blocks
    torch.manual_seed(0)  # swin_t's layout at a fraction of its width and depth (random init of swin_t takes ~10 s)
    small = SwinTransformer(patch_size=[4, 4], embed_dim=8, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1],
                            window_size=[4, 4], num_classes=3).eval()
    wrapper = wrap(small, 64)
    assert wrapper.block_names == blocks and wrapper.channels_last_blocks
    outputs = block_outputs(wrapper, torch.rand(2, 3, 64, 64))
    assert outputs["B1"].shape == (2, 16, 16, 8)  # torchvision Swin: [B, h, w, C]
    grid = wrapper.to_grid(outputs["B1"])
    assert grid.shape == (2, 8, 16, 16) and torch.equal(grid[:, :, 3, 5], outputs["B1"][:, 3, 5])
    assert [tuple(wrapper.to_grid(outputs[b]).shape[1:]) for b in ("B2", "B3", "B4")] == [(16, 8, 8), (32, 4, 4),
                                                                                        (64, 2, 2)]


def test_vgg_blocks_unchanged():
    assert resolve_blocks(meta("vgg16")) == {"B1": "features.3", "B2": "features.8", "B3": "features.15",
                                             "B4": "features.22", "B5": "features.29"}
    assert resolve_blocks(tiny_vgg())["B5"] == "features.13"
    assert load_tiny_vgg().block_names == {"B1": "features.1", "B2": "features.4", "B3": "features.9",
                                           "B4": "features.16", "B5": "features.23"}


def test_unknown_architecture_asks_for_blocks():
    network = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    wrapper = ModelWrapper(network, name="odd", class_names=["a", "b"], input_size=16)
    with pytest.raises(UserError, match=r"model 'odd': no block rule for a Sequential .*--blocks NAME") as error:
        wrapper.blocks
    assert "\n" not in str(error.value)
    assert wrapper.set_blocks(["0", "1"]).block_names == {"B1": "0", "B2": "1"}
    with pytest.raises(UserError, match="no block rule"):
        resolve_blocks(meta("shufflenet_v2_x0_5"))


def test_blocks_override_and_its_error():
    wrapper = wrap(meta("resnet50"), 224)
    wrapper.set_blocks(["layer2", "layer4.2.relu"])
    assert wrapper.block_names == {"B1": "layer2", "B2": "layer4.2.relu"}
    assert wrapper.describe()["blocks"] == {"B1": "layer2", "B2": "layer4.2.relu"}
    with pytest.raises(UserError, match=r"--blocks: no module 'layer9' in this model \(e\.g\. conv1, bn1, ") as error:
        wrapper.set_blocks(["layer1", "layer9"])
    assert "\n" not in str(error.value)
    assert wrapper.block_names == {"B1": "layer2", "B2": "layer4.2.relu"}  # a refused override changes nothing


def registry_of(load) -> SimpleNamespace:
    """A registry holding one model ``m`` loaded by ``load``."""
    spec = SimpleNamespace(name="m", load=load, default_dataset=None)
    return SimpleNamespace(models={"m": SimpleNamespace(obj=spec)})


def test_open_model_applies_blocks_and_refuses_unknown_architectures():
    registry = registry_of(lambda **_: ModelWrapper(small_vit(), name="m", class_names=["a"], input_size=32))
    model = open_model(RunOptions(model="m", device="cpu", blocks=["conv_proj", "encoder.layers.encoder_layer_0"]),
                       registry)
    assert model.describe()["blocks"] == {"B1": "conv_proj", "B2": "encoder.layers.encoder_layer_0"}
    with pytest.raises(UserError, match="--blocks: no module 'nope'"):
        open_model(RunOptions(model="m", device="cpu", blocks=["nope"]), registry)
    odd = registry_of(lambda **_: ModelWrapper(nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 2)), name="m",
                                               class_names=["a", "b"], input_size=8))
    with pytest.raises(UserError, match="pass --blocks"):
        open_model(RunOptions(model="m", device="cpu"), odd)
    assert open_model(RunOptions(model="m", device="cpu", blocks=["1"]), odd).block_names == {"B1": "1"}


@pytest.mark.parametrize("command", [["run", "--all"], ["check", "x", "--against", "b.json"], ["bench"]])
def test_cli_takes_blocks(command):
    args = build_parser().parse_args([*command, "--blocks", "layer1, layer2,layer3"])
    assert args.blocks == ["layer1", "layer2", "layer3"]
    with pytest.raises(UserError, match="--blocks needs module names"):
        build_parser().parse_args([*command, "--blocks", ","])


# -- torchvision loaders -----------------------------------------------------------------------------------------
def light_state_dict(network: nn.Module, seed: int = 0) -> dict[str, torch.Tensor]:
    """A state dict for ``network`` (may live on ``meta``): one random value per output unit, expanded (stride 0)."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, reference in network.state_dict().items():
        shape = tuple(reference.shape)
        if not reference.is_floating_point():
            state[key] = torch.zeros(shape, dtype=reference.dtype)
            continue
        rows = shape[0] if shape else 1
        values = torch.randn(rows, generator=generator) * 0.01
        if key.endswith("running_var"):  # a variance is positive: a negative one is NaN in the forward pass
            values = values.abs() + 1.0
        state[key] = values.view(rows, *[1] * (len(shape) - 1)).expand(shape) if shape else values[0].clone()
    return state


@pytest.fixture()
def empty_hub(tmp_path, monkeypatch):
    """An empty torch hub dir, and a download that fails the test if called."""
    hub = tmp_path / "hub"
    hub.mkdir()
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))

    def refuse(weights):
        raise AssertionError("downloaded without allow_download")

    monkeypatch.setattr(tvm, "download_state_dict", refuse)
    return hub


@pytest.mark.parametrize("name, arch, prefix", [("resnet50", "resnet50", 0), ("vit_b_16", "vit_b_16", 1)])
def test_named_models_load_a_weights_file(tmp_path, empty_hub, name, arch, prefix):
    weights_enum = tvm.NAMED[name][1]
    state = light_state_dict(tvm.build_network(arch, weights_enum))
    path = tmp_path / f"{name}.pth"
    torch.save(state, path)
    wrapper = tvm.load_torchvision(name, arch, weights_enum, weights=str(path))
    parameters = dict(wrapper.network.named_parameters())
    assert all(torch.equal(parameters[key], state[key]) for key in parameters)
    assert all(p.device.type == "cpu" for p in wrapper.network.parameters())
    assert (wrapper.name, wrapper.input_size, wrapper.num_classes, wrapper.multilabel) == (name, 224, 1000, False)
    assert wrapper.class_names[0] == "tench" and wrapper.mean == (0.485, 0.456, 0.406)
    assert wrapper.std == (0.229, 0.224, 0.225) and wrapper.prefix_tokens == prefix
    assert not wrapper.network.training
    assert not any(getattr(m, "inplace", False) for m in wrapper.network.modules())
    assert wrapper.randomization_order[0] == ("fc" if name == "resnet50" else "heads")


@pytest.mark.parametrize("name", ["resnet50", "vit_b_16"])
def test_named_models_refuse_to_download(empty_hub, name):
    arch, weights_enum = tvm.NAMED[name]
    with pytest.raises(UserError) as error:
        tvm.load_torchvision(name, arch, weights_enum)
    message = str(error.value)
    assert "\n" not in message and "--weights PATH" in message and "--allow-download" in message
    assert weights_enum.url.rsplit("/", 1)[-1] in message and str(empty_hub / "checkpoints") in message


def test_hub_cache_then_download_for_torchvision_prefix(empty_hub, monkeypatch):
    weights_enum = torchvision.models.ResNet18_Weights.DEFAULT
    state = light_state_dict(tvm.build_network("resnet18", weights_enum))
    with pytest.raises(UserError, match="resnet18-f37072fd.pth"):
        tvm.load_torchvision("torchvision:resnet18", "resnet18")
    monkeypatch.setattr(tvm, "download_state_dict", lambda weights: state)
    downloaded = tvm.load_torchvision("torchvision:resnet18", "resnet18", allow_download=True)
    assert torch.equal(downloaded.network.fc.weight, state["fc.weight"])
    (empty_hub / "checkpoints").mkdir()
    torch.save(state, empty_hub / "checkpoints" / "resnet18-f37072fd.pth")
    monkeypatch.setattr(tvm, "download_state_dict", lambda weights: pytest.fail("downloaded"))
    cached = tvm.load_torchvision("torchvision:resnet18", "resnet18")
    assert cached.name == "torchvision:resnet18" and torch.equal(cached.network.conv1.weight, state["conv1.weight"])
    with pytest.raises(UserError, match="has no option"):
        tvm.load_torchvision("torchvision:resnet18", "resnet18", head="voc")


def test_plugin_registers_every_torchvision_classifier():
    specs = []
    register_models(specs.append)
    names = [spec.name for spec in specs]
    assert {"vgg16", "vgg16_voc", "resnet50", "vit_b_16"} <= set(names)
    expected = torchvision.models.list_models(module=torchvision.models)
    assert sorted(n.removeprefix("torchvision:") for n in names if n.startswith("torchvision:")) == sorted(expected)
    assert "torchvision:swin_t" in names and "torchvision:regnet_y_400mf" in names


# -- cascading randomisation -------------------------------------------------------------------------------------
def trained_like(network: nn.Module, seed: int = 1) -> nn.Module:
    """Add noise to every parameter, so that no bias is 0, no norm weight is all ones, no class token is zero."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in network.parameters():
            param.add_(torch.randn(param.shape, generator=generator) * 0.05)
    return network


def assert_cascade_changes_each_block_once(wrapper: ModelWrapper) -> None:
    """Each step changes exactly the parameters of its subtree not taken before; all are changed at the end."""
    order = wrapper.randomization_order
    copy = wrapper.copy()
    original = dict(wrapper.network.named_parameters())
    values = random_parameters(copy, order, 0.01, 0.0, seed=0, init="layer_std")
    changed_so_far: set[str] = set()
    for layer, step in zip(order, values):
        own = {f"{layer}.{name}" if layer else name for name in step}
        assert own and not own & changed_so_far, layer
        randomize_layer(copy, layer, step)
        changed = {name for name, p in copy.network.named_parameters() if not torch.equal(p, original[name])}
        assert changed == changed_so_far | own, layer  # this step's parameters, every one of them, nothing else
        changed_so_far = changed
    assert changed_so_far == set(original)  # every parameter of the model
    restore_layers(copy, wrapper, order)
    assert all(torch.equal(p, original[name]) for name, p in copy.network.named_parameters())


def test_resnet18_cascade_randomizes_every_parameter_block_by_block(one_thread):
    torch.manual_seed(0)
    wrapper = wrap(trained_like(torchvision.models.resnet18(weights=None)), 32)
    order = wrapper.randomization_order
    assert order == ["fc", "layer4.1", "layer4.0", "layer3.1", "layer3.0", "layer2.1", "layer2.0", "layer1.1",
                     "layer1.0", ROOT]
    assert_cascade_changes_each_block_once(wrapper)


def test_resnet50_cascade_structure():
    wrapper = wrap(meta("resnet50"), 224)
    blocks = [f"layer{i}.{j}" for i, n in ((4, 3), (3, 6), (2, 4), (1, 3)) for j in reversed(range(n))]
    assert wrapper.randomization_order == ["fc", *blocks, ROOT]
    steps = step_parameters(wrapper, wrapper.randomization_order)
    assert [name for name, _ in steps[-1]] == ["conv1.weight", "bn1.weight", "bn1.bias"]  # the stem
    assert "bn3.bias" in [name for name, _ in steps[1]] and "downsample.1.weight" in [n for n, _ in steps[3]]
    assert sum(len(s) for s in steps) == len(list(wrapper.network.parameters()))


def test_vit_cascade_randomizes_every_parameter_block_by_block(one_thread):
    wrapper = wrap(trained_like(small_vit()), 32)
    layers = [f"encoder.layers.encoder_layer_{i}" for i in reversed(range(6))]
    assert wrapper.randomization_order == ["heads", "encoder.ln", *layers, ROOT]
    steps = dict(zip(wrapper.randomization_order, step_parameters(wrapper, wrapper.randomization_order)))
    assert sorted(name for name, _ in steps[ROOT]) == ["class_token", "conv_proj.bias", "conv_proj.weight",
                                                       "encoder.pos_embedding"]
    assert {"self_attention.in_proj_weight", "self_attention.in_proj_bias", "self_attention.out_proj.weight",
            "ln_1.weight", "ln_2.bias"} <= {name for name, _ in steps[layers[0]]}
    assert_cascade_changes_each_block_once(wrapper)


def test_vit_b_16_cascade_structure():
    wrapper = wrap(meta("vit_b_16"), 224)
    assert wrapper.randomization_order[:3] == ["heads", "encoder.ln", "encoder.layers.encoder_layer_11"]
    assert wrapper.randomization_order[-2:] == ["encoder.layers.encoder_layer_0", ROOT]
    assert len(wrapper.randomization_order) == 15


DENSENET121_STEPS = ["classifier", "features.norm5", "features.denseblock4", "features.transition3",
                     "features.denseblock3", "features.transition2", "features.denseblock2", "features.transition1",
                     "features.denseblock1", "features.norm0", "features.conv0"]


def staged_steps(network: nn.Module, head: list[str]) -> list[str]:
    """The staged rule spelled out: ``head``, each parameterised child of ``features`` from the last, then the root
    if any parameter is left outside them."""
    children = [f"features.{name}" for name, child in network.features.named_children()
                if any(True for _ in child.parameters())]
    covered = {id(p) for name in head + children for p in network.get_submodule(name).parameters()}
    left = any(id(p) not in covered for p in network.parameters())
    return head + children[::-1] + ([ROOT] if left else [])


def assert_each_parameter_in_one_step(wrapper: ModelWrapper) -> None:
    """Every parameter of the network is taken by exactly one step, and it lies in that step's subtree."""
    order = wrapper.randomization_order
    seen = []
    for layer, step in zip(order, step_parameters(wrapper, order)):
        assert step, layer
        subtree = {id(p) for p in wrapper.module(layer).parameters()}
        assert all(id(p) in subtree for _, p in step), layer
        seen += [id(p) for _, p in step]
    assert len(seen) == len(set(seen)) == len(list(wrapper.network.parameters()))


@pytest.mark.parametrize("name, head", [
    ("convnext_tiny", ["classifier"]), ("densenet121", ["classifier"]), ("swin_t", ["head", "norm"]),
    ("efficientnet_b0", ["classifier"]), ("mobilenet_v3_small", ["classifier"]), ("squeezenet1_1", ["classifier"]),
])
def test_stage_model_cascade_is_head_then_stages_from_the_last(name, head):
    wrapper = wrap(meta(name), 224)
    order = wrapper.randomization_order
    assert order == staged_steps(wrapper.network, head)
    assert len(order) < 20  # one step per parameterised leaf module was 26 (squeezenet1_1) to 242 (densenet121)
    assert_each_parameter_in_one_step(wrapper)
    if name == "convnext_tiny":
        assert order == ["classifier", *[f"features.{i}" for i in reversed(range(8))]]
    if name == "densenet121":
        assert order == DENSENET121_STEPS


def small_convnext() -> nn.Module:
    """ConvNeXt's torchvision layout (stem, stages with downsampling layers between, LayerNorm+linear head), tiny."""
    from torchvision.models.convnext import CNBlockConfig, ConvNeXt

    torch.manual_seed(0)
    setting = [CNBlockConfig(8, 16, 1), CNBlockConfig(16, None, 2)]
    return ConvNeXt(setting, num_classes=3).eval()


def small_densenet() -> nn.Module:
    """DenseNet's torchvision layout (conv0/norm0/pool0, dense blocks and transitions, norm5, classifier), tiny."""
    torch.manual_seed(0)
    return torchvision.models.DenseNet(growth_rate=4, block_config=(1, 2, 1, 1), num_init_features=8, bn_size=2,
                                       num_classes=3).eval()


def test_convnext_cascade_randomizes_every_parameter_stage_by_stage(one_thread):
    wrapper = wrap(trained_like(small_convnext()), 32)
    assert wrapper.randomization_order == ["classifier", "features.3", "features.2", "features.1", "features.0"]
    assert_each_parameter_in_one_step(wrapper)
    assert_cascade_changes_each_block_once(wrapper)


def test_densenet_cascade_randomizes_every_parameter_block_by_block(one_thread):
    wrapper = wrap(trained_like(small_densenet()), 32)
    assert wrapper.randomization_order == DENSENET121_STEPS
    steps = dict(zip(wrapper.randomization_order, step_parameters(wrapper, wrapper.randomization_order)))
    assert {"denselayer1.conv1.weight", "denselayer2.norm2.bias"} <= {n for n, _ in steps["features.denseblock2"]}
    assert_cascade_changes_each_block_once(wrapper)


def test_staged_cascade_leaves_what_runs_before_features_to_the_root(one_thread):
    class Stemmed(nn.Module):
        """A stem and a free parameter outside ``features``, two stages, a head defined first."""

        def __init__(self):
            super().__init__()
            self.head = nn.Linear(6, 2)
            self.stem = nn.Conv2d(3, 4, 3, padding=1)
            self.scale = nn.Parameter(torch.tensor(1.5))
            self.features = nn.Sequential(nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.ReLU()), nn.MaxPool2d(2),
                                          nn.Sequential(nn.Conv2d(4, 6, 3, padding=1), nn.BatchNorm2d(6)))

        def forward(self, x):
            return self.head(self.features(self.stem(x) * self.scale).mean((2, 3)))

    wrapper = wrap(trained_like(Stemmed()), 16)
    assert wrapper.randomization_order == ["head", "features.2", "features.0", ROOT]
    steps = step_parameters(wrapper, wrapper.randomization_order)
    assert sorted(name for name, _ in steps[-1]) == ["scale", "stem.bias", "stem.weight"]
    assert_cascade_changes_each_block_once(wrapper)


def test_order_follows_execution_not_definition():
    class Backwards(nn.Module):
        """Defines its head before its body."""

        def __init__(self):
            super().__init__()
            self.head = nn.Linear(4, 2)
            self.features = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.MaxPool2d(2))

        def forward(self, x):
            return self.head(self.features(x).mean((2, 3)))

    assert cascade_order(Backwards(), 16) == ["head", "features.0"]
    not_images = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))  # cannot run on images: definition order, reversed
    assert cascade_order(not_images, 16) == ["1", "0"]


def test_biases_and_degenerate_scales():
    ln = nn.LayerNorm(8)  # weight: all ones (std 0), bias: zeros
    assert weight_scale(ln.weight, "layer_std", 0.01) == 0.01
    assert weight_scale(torch.tensor([3.0]), "layer_std", 0.02) == 0.02
    assert weight_scale(torch.tensor([1.0, 3.0]), "layer_std", 0.02) == pytest.approx(2 ** 0.5)
    wrapper = wrap(small_vit(), 32)
    values = random_parameters(wrapper, wrapper.randomization_order, 0.01, 0.5, seed=0, init="layer_std")
    layer = dict(zip(wrapper.randomization_order, values))["encoder.layers.encoder_layer_5"]
    assert torch.all(layer["self_attention.in_proj_bias"] == 0.5) and torch.all(layer["ln_1.bias"] == 0.5)
    assert layer["ln_1.weight"].std() == pytest.approx(0.01, rel=0.6)  # ones -> init_std


def old_random_parameters(model, order, std, bias, seed, init, draw):
    """The previous formula: own parameters per layer, weights N(0, trained std or std), biases = bias."""
    from saliency_bench.checks.cascade import draw_seed

    generator = torch.Generator().manual_seed(draw_seed(seed, draw))
    layers = []
    for layer in order:
        new = {}
        for pname, param in model.module(layer).named_parameters(recurse=False):
            if pname == "bias":
                value = torch.full(param.shape, float(bias))
            else:
                trained = param.detach().cpu().double()
                scale = float(trained.std()) if init == "layer_std" and param.numel() > 1 else float(std)
                value = torch.randn(param.shape, generator=generator) * scale
            new[pname] = value.to(device=param.device, dtype=param.dtype)
        layers.append(new)
    return layers


def test_tiny_vgg_order_and_values_unchanged():
    model = load_tiny_vgg()
    old_order = [name for name, m in model.network.named_modules()
                 if any(True for _ in m.parameters(recurse=False))][::-1]
    assert model.randomization_order == old_order
    assert old_order[0] == "classifier" and old_order[-1] == "features.0"
    for init in ("layer_std", "fixed"):
        for draw in (0, 2):
            new = random_parameters(model, model.randomization_order, 0.01, 0.0, seed=3, init=init, draw=draw)
            old = old_random_parameters(model, old_order, 0.01, 0.0, 3, init, draw)
            assert [sorted(n) for n in new] == [sorted(o) for o in old]
            assert all(torch.equal(n[k], o[k]) for n, o in zip(new, old) for k in o)
