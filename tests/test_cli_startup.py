"""A CLI that starts fast (issue 27.5): listing imports neither torchvision nor timm (nor ``torch._dynamo``).

Importing torchvision costs about 2 s (it pulls ``torch._dynamo``), timm about 0.7 s; ``saliency-bench list`` only
needs names, so they are recorded: torchvision's classification models and the named models' weights
(``models/torchvision_models.py``), VGG-16's hub file (``models/vgg16.py``), timm's architectures
(``plugins/timm/saliency_bench_timm/names.py``). The tests here fail when a recording drifts from what the installed
torchvision or timm reports, and check that every model still loads through the libraries when used.
"""
from __future__ import annotations

import importlib.metadata
import json
import os
import pickle
import subprocess
import sys

import pytest
import torch
import torchvision

from saliency_bench.models import tiny_resnet, tiny_vit, vgg16
from saliency_bench.models import torchvision_models as tvm

HEAVY = ("torchvision", "timm", "torch._dynamo")
PLUGINS = ("saliency-bench-aggregation", "saliency-bench-propagation", "saliency-bench-sanity-2023",
           "saliency-bench-timm")


def installed(distribution: str) -> bool:
    try:
        importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


# Records, for the first import of each heavy top-level package, the project's line that asked for it.
WATCH = """
import sys, traceback
first = {}
class Watch:
    def find_spec(self, name, path=None, target=None):
        if name in ("torchvision", "timm") and name not in first:
            frames = [f for f in traceback.extract_stack() if "importlib" not in f.filename]
            first[name] = f"{frames[-2].filename}:{frames[-2].lineno}" if len(frames) > 1 else "?"
        return None
sys.meta_path.insert(0, Watch())
"""


def heavy_modules_after(code: str, plugins: list[str]) -> tuple[list[str], dict[str, str], str]:
    """Run ``code`` in a fresh interpreter with ``plugins`` allowed: the heavy modules it imported, where the first
    import of torchvision / timm came from, and its stdout."""
    probe = (f"{WATCH}\nimport json\n{code}\n"
             f"heavy = sorted(m for m in sys.modules if any(m == h or m.startswith(h + '.') for h in {HEAVY!r}))\n"
             "print(json.dumps([heavy, first]), file=sys.stderr)")
    env = dict(os.environ, SALIENCY_BENCH_PLUGINS=",".join(plugins))
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    heavy, first = json.loads(done.stderr.strip().splitlines()[-1])
    return heavy, first, done.stdout


def check_light(heavy: list[str], first: dict[str, str]) -> None:
    """No heavy module; else the sorted names (printed) and where torchvision / timm were first imported."""
    print(heavy)
    assert heavy == [], f"{len(heavy)} heavy modules imported, first imports from: {first}"


def test_list_imports_neither_torchvision_nor_timm():
    plugins = [name for name in PLUGINS if installed(name)]
    heavy, first, listing = heavy_modules_after("from saliency_bench.cli import main\nmain(['list'])", plugins)
    check_light(heavy, first)
    assert "torchvision:resnet18 " in listing and "tiny_vit " in listing and "vgg16_voc " in listing
    if "saliency-bench-timm" in plugins:
        assert "timm:resnet18 " in listing


def test_registering_the_models_imports_neither_torchvision_nor_timm():
    """The model registry alone (the datasets aside): every model plugin registers its names without the libraries."""
    plugins = [name for name in PLUGINS if installed(name)]
    code = ("from saliency_bench.models import default_plugin, real_plugin\nspecs = []\n"
            "default_plugin.register_models(specs.append)\nreal_plugin.register_models(specs.append)\n"
            "try:\n    import saliency_bench_timm\nexcept ImportError:\n    pass\n"
            "else:\n    saliency_bench_timm.register_models(specs.append)\n"
            "print('\\n'.join(spec.name + ' ' + spec.description for spec in specs))")
    heavy, first, listing = heavy_modules_after(code, plugins)
    check_light(heavy, first)
    assert "torchvision:resnet18 " in listing
    assert "vit_b_16 torchvision vit_b_16 (ViT_B_16_Weights.IMAGENET1K_V1), 224 px" in listing


def test_loading_the_embedded_vgg_imports_no_torchvision_nor_reference_operators():
    """What `check NEW` pays before its first map: the default model traces its blocks with one real pass (it is small
    and in eval mode) instead of the meta device, whose ``torch.func.functional_call`` imports ``torch._dynamo``,
    sympy and triton (about 2 s), and asks whether it is torchvision's Swin without importing torchvision."""
    code = "from saliency_bench.models.tiny_vgg import load_tiny_vgg\nprint(sorted(load_tiny_vgg().block_names))"
    heavy, first, out = heavy_modules_after(code, [])
    check_light(heavy, first)
    assert out.strip() == "['B1', 'B2', 'B3', 'B4', 'B5']"


def test_recorded_torchvision_models_are_torchvisions():
    live = sorted(torchvision.models.list_models(module=torchvision.models))
    assert tvm.installed_version("torchvision") == tvm.TORCHVISION_VERSION, \
        "torchvision changed: record its version and sorted(list_models(module=torchvision.models)) in " \
        "models/torchvision_models.py (TORCHVISION_VERSION, CLASSIFICATION_MODELS)"
    assert list(tvm.CLASSIFICATION_MODELS) == live
    assert tvm.classification_models() == live


def test_another_torchvision_version_asks_torchvision(monkeypatch):
    monkeypatch.setattr(tvm, "installed_version", lambda distribution: "0.0.0")
    assert tvm.classification_models() == sorted(torchvision.models.list_models(module=torchvision.models))


def test_named_models_resolve_to_their_weights():
    for name, (arch, weights, crop_size) in tvm.NAMED_WEIGHTS.items():
        enum = torchvision.models.get_weight(weights)
        assert str(enum) == weights and enum.transforms().crop_size[0] == crop_size
        assert tvm.NAMED[name] == (arch, enum) and tvm.resolve_weights(weights) is enum
    assert tvm.NAMED["resnet50"][1] is torchvision.models.ResNet50_Weights.IMAGENET1K_V1
    assert tvm.resolve_weights(None) is None


def test_vgg16_hub_file_and_weights():
    assert vgg16.IMAGENET_WEIGHTS is torchvision.models.VGG16_Weights.IMAGENET1K_V1
    assert vgg16.HUB_FILE == vgg16.IMAGENET_WEIGHTS.url.rsplit("/", 1)[-1]
    assert vgg16.imagenet_weights() is vgg16.IMAGENET_WEIGHTS
    with pytest.raises(AttributeError):
        vgg16.NO_SUCH_NAME  # noqa: B018


def test_embedded_networks_are_torchvisions():
    from torchvision.models.resnet import BasicBlock
    from torchvision.models.vision_transformer import VisionTransformer

    assert tiny_resnet.BasicBlock is BasicBlock
    torch.manual_seed(0)
    resnet = tiny_resnet.build(tiny_resnet.MODEL.architecture, 3)
    assert isinstance(resnet.layer1[0], BasicBlock) and not resnet.layer1[0].bn2.weight.any()
    arch = {"patch_size": 8, "num_layers": 1, "num_heads": 2, "hidden_dim": 8, "mlp_dim": 8, "conv_stem": [4, 4, 8]}
    vit = tiny_vit.build(arch, 3, input_size=16)
    assert type(vit) is tiny_vit.TinyViT and isinstance(vit, VisionTransformer)
    assert tiny_vit.TinyViT.__module__ == tiny_vit.__name__ and tiny_vit.TinyViT.__qualname__ == "TinyViT"
    copy = pickle.loads(pickle.dumps(vit))
    assert type(copy) is tiny_vit.TinyViT
    images = torch.zeros(1, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(copy.eval()(images), vit.eval()(images))


def test_recorded_timm_models_are_timms(monkeypatch):
    timm = pytest.importorskip("timm")
    from saliency_bench_timm import models, names

    assert models.installed_timm() == names.TIMM_VERSION, \
        "timm changed: regenerate plugins/timm/saliency_bench_timm/names.py (python -m saliency_bench_timm.names)"
    live = list(timm.list_models())
    assert list(names.MODEL_NAMES) == live and models.model_names() == live
    assert names.source() == open(names.__file__, encoding="utf-8").read()
    monkeypatch.setattr(models, "installed_timm", lambda: "0.0.0")
    assert models.model_names() == live
