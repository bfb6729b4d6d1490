"""Reliability, round three (issue 25): weights that cannot work are refused at load, in one line naming the cause.

A state dict that does not fit (a shape, a missing or extra key, another model's weights, a sparse tensor) names
its first mismatch instead of torch's "Error(s) in loading state_dict for TinyVGG:"; integer, boolean and complex
values where the model computes in floating point, NaN and inf, and weights that overflow in the forward pass
(x 1e38) are refused, naming the tensor or the logits. The timm plugin records timm's version and takes its
options as a command line would pass them.
"""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from saliency_bench import UserError
from saliency_bench.models.embedded import load_embedded, sha256_of
from saliency_bench.models.loading import apply_state_dict
from saliency_bench.models.tiny_resnet import MODEL as TINY_RESNET
from saliency_bench.models.tiny_vgg import MODEL as TINY_VGG


def _shipped(model=TINY_VGG) -> dict[str, torch.Tensor]:
    return torch.load(model.weights_file, weights_only=True)


def _save_embedded(state: dict, tmp_path):
    """``state`` as tiny_vgg weights with a card whose digest matches them (only their content is wrong)."""
    path = tmp_path / TINY_VGG.weights_file.name
    torch.save(state, path)
    card = json.loads(TINY_VGG.card_file.read_text())
    card["sha256"] = sha256_of(path)
    path.with_suffix(".json").write_text(json.dumps(card))
    return path


def _changed(key: str, value) -> dict:
    return {**_shipped(), key: value}


def _without(key: str) -> dict:
    state = _shipped()
    del state[key]
    return state


def _nan_at_one(key: str, value: float) -> dict:
    state = _shipped()
    state[key] = state[key].clone()
    state[key].view(-1)[7] = value
    return state


CASES = {  # name: (state dict, the one line's cause)
    "shape": (lambda: _changed("features.0.weight", torch.zeros(16, 3, 5, 5)),
              "does not fit the architecture in its card: 'features.0.weight' has shape [16, 3, 5, 5], "
              "the model needs [16, 3, 3, 3]"),
    "missing": (lambda: _without("classifier.bias"), "in its card: missing key 'classifier.bias'"),
    "extra": (lambda: {**_shipped(), "extra.weight": torch.zeros(2)}, "in its card: unexpected key 'extra.weight'"),
    "another_model": (lambda: _shipped(TINY_RESNET), "in its card: missing key 'features.0.weight'"),
    "sparse": (lambda: _changed("classifier.weight", _shipped()["classifier.weight"].to_sparse()),
               "'classifier.weight' is a sparse_coo tensor, the model needs a dense one"),
    "integer": (lambda: _changed("features.0.bias", torch.ones(16, dtype=torch.int64)),
                "'features.0.bias' holds int64 values, the model needs floating point"),
    "boolean": (lambda: _changed("features.0.bias", torch.ones(16, dtype=torch.bool)),
                "'features.0.bias' holds bool values, the model needs floating point"),
    "complex": (lambda: _changed("features.0.bias", torch.ones(16, dtype=torch.complex64)),
                "'features.0.bias' holds complex64 values, the model needs floating point"),
    "nan": (lambda: _nan_at_one("features.3.weight", float("nan")),
            "is unusable: 'features.3.weight' holds 1 non-finite value (NaN or inf)"),
    "inf": (lambda: _nan_at_one("classifier.weight", float("inf")),
            "is unusable: 'classifier.weight' holds 1 non-finite value (NaN or inf)"),
    "float64_beyond_float32": (lambda: _changed("features.0.bias", torch.full((16,), 1e300, dtype=torch.float64)),
                               "'features.0.bias' holds 16 non-finite values (NaN or inf)"),
    "overflow_in_forward": (lambda: {key: value * 1e38 for key, value in _shipped().items()},
                            "of the model's logits on a fixed test batch are NaN or inf (its weights overflow in "
                            "the forward pass)"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_embedded_weights_that_cannot_work_are_refused_in_one_line_naming_the_cause(tmp_path, case):
    state, cause = CASES[case]
    path = _save_embedded(state(), tmp_path)
    with pytest.raises(UserError) as error:
        load_embedded(TINY_VGG, path)
    message = str(error.value)
    assert "\n" not in message and message.startswith(f"weights file {path} ") and cause in message, message
    assert "Error(s) in loading" not in message


def test_the_shipped_weights_still_load_and_a_good_copy_too(tmp_path):
    path = _save_embedded(_shipped(), tmp_path)
    assert load_embedded(TINY_VGG, path).non_finite_logits() == 0


def _on_meta() -> nn.Module:
    with torch.device("meta"):
        return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))


def _state(**changes) -> dict[str, torch.Tensor]:
    state = {"0.weight": torch.ones(4, 3, 3, 3), "0.bias": torch.zeros(4), "1.weight": torch.ones(4),
             "1.bias": torch.zeros(4), "1.running_mean": torch.zeros(4), "1.running_var": torch.ones(4),
             "1.num_batches_tracked": torch.tensor(7)}
    return {**state, **changes}


def test_apply_state_dict_takes_integer_buffers_and_refuses_what_the_embedded_loader_refuses():
    network = apply_state_dict(_on_meta(), _state(), "ok.pt")  # BatchNorm's num_batches_tracked is an integer
    assert int(network[1].num_batches_tracked) == 7 and network[0].weight.dtype == torch.float32
    refused = {
        "'0.weight' holds int64 values, the model needs floating point":
            _state(**{"0.weight": torch.ones(4, 3, 3, 3, dtype=torch.int64)}),
        "'0.bias' holds complex64 values": _state(**{"0.bias": torch.zeros(4, dtype=torch.complex64)}),
        "'1.running_var' is a sparse_coo tensor": _state(**{"1.running_var": torch.ones(4).to_sparse()}),
        "'1.running_var' holds 1 non-finite value": _state(**{"1.running_var": torch.tensor([1, float("nan"), 1, 1])}),
    }
    for cause, state in refused.items():
        with pytest.raises(UserError) as error:
            apply_state_dict(_on_meta(), state, "bad.pt")
        message = str(error.value)
        assert "\n" not in message and message.startswith("weights file bad.pt ") and cause in message, message


def test_torchvision_weights_that_overflow_in_the_forward_pass_are_refused(tmp_path):
    import torchvision

    from saliency_bench.models.torchvision_models import load_torchvision

    torch.manual_seed(0)
    state = torchvision.models.resnet18().state_dict()
    path = tmp_path / "huge.pt"
    torch.save({key: value * 1e30 if key.endswith("conv1.weight") else value for key, value in state.items()}, path)
    with pytest.raises(UserError, match="of the model's logits on a fixed test batch are NaN or inf") as error:
        load_torchvision("torchvision:resnet18", "resnet18", weights=str(path))
    assert "\n" not in str(error.value) and str(path) in str(error.value)


# -- the timm plugin ------------------------------------------------------------------------------------------------
def test_timm_records_its_version_and_takes_options_as_a_command_line_passes_them(one_thread):
    timm = pytest.importorskip("timm")
    from saliency_bench_timm import load_timm

    wrapper = load_timm("timm:vit_tiny_patch16_224", "vit_tiny_patch16_224", img_size="64",
                        class_names="circle, square,triangle")
    assert wrapper.input_size == 64 and wrapper.class_names == ["circle", "square", "triangle"]
    assert wrapper.describe()["packages"] == {"timm": timm.__version__}
    assert wrapper.copy().describe()["packages"] == {"timm": timm.__version__}
    for options, message in [({"img_size": "sixty"}, "img_size must be a positive integer"),
                             ({"class_names": "a,,b"}, "class_names must be a non-empty list of distinct names")]:
        with pytest.raises(UserError, match=message):
            load_timm("timm:vit_tiny_patch16_224", "vit_tiny_patch16_224", **options)


def test_timm_weights_that_overflow_in_the_forward_pass_are_refused(one_thread, tmp_path):
    pytest.importorskip("timm")
    from saliency_bench_timm import load_timm

    state = load_timm("timm:resnet18", "resnet18").network.state_dict()
    path = tmp_path / "huge.pt"
    torch.save({key: value * 1e30 if key.endswith("conv1.weight") else value for key, value in state.items()}, path)
    with pytest.raises(UserError, match="logits on a fixed test batch are NaN or inf") as error:
        load_timm("timm:resnet18", "resnet18", weights=str(path))
    assert "\n" not in str(error.value) and str(path) in str(error.value)
