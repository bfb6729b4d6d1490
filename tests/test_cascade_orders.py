"""The randomisation cascade's order (top down, bottom up) and mode (cascading, independent), on hand-made models
and on the three embedded models: every parameter is redrawn exactly once, each state is the one the order and mode
name, and the default (top down, cascading) is what the board has always run."""
import json

import pytest
import torch
from torch import nn

from saliency_bench.checks.cascade import MODES, ORDERS, Cascade
from saliency_bench.cli import main
from saliency_bench.harness.group import MethodGroup
from saliency_bench.models.wrapper import ModelWrapper

PARAMS = {"init_std": 0.01, "init_bias": 0.0, "seed": 0, "init": "layer_std"}


def _three_layers() -> ModelWrapper:
    torch.manual_seed(0)
    network = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    return ModelWrapper(network, name="three", class_names=["a", "b"], input_size=2)


def _changed(model: ModelWrapper, copy: ModelWrapper) -> set[str]:
    """The parameters of ``copy`` whose values differ from ``model``'s."""
    original = dict(model.network.named_parameters())
    return {name for name, param in copy.network.named_parameters() if not torch.equal(param, original[name])}


def _states(model: ModelWrapper, layers: list[str], order: str, mode: str) -> list[tuple[str, set[str]]]:
    copy = model.copy()
    cascade = Cascade(model, copy, layers, {**PARAMS, "order": order, "mode": mode}, draw=0)
    group = MethodGroup([], model)
    return [(layer, _changed(model, copy)) for layer in cascade.states(group)]


def _owned(model: ModelWrapper, layers: list[str]) -> dict[str, set[str]]:
    """Each step's parameters by full name (a step takes its subtree's parameters no earlier step took)."""
    from saliency_bench.checks.cascade import step_parameters

    return {layer: {f"{layer}.{name}" if layer else name for name, _ in params}
            for layer, params in zip(layers, step_parameters(model, layers))}


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("mode", MODES)
def test_each_state_is_the_one_the_order_and_mode_name(order, mode):
    model = _three_layers()
    layers = ["4", "2", "0"]  # from the logits down
    owned = _owned(model, layers)
    states = _states(model, layers, order, mode)
    visited = layers if order == "top_down" else layers[::-1]
    assert [layer for layer, _ in states] == visited
    for index, (layer, changed) in enumerate(states):
        expected = owned[layer] if mode == "independent" else set().union(*(owned[l] for l in visited[:index + 1]))
        assert changed == expected, (order, mode, layer)


@pytest.mark.parametrize("order", ORDERS)
def test_every_parameter_is_redrawn_exactly_once_and_both_orders_end_alike(order):
    model = _three_layers()
    layers = ["4", "2", "0"]
    states = _states(model, layers, order, "cascading")
    added = [states[0][1]] + [now - before for (_, before), (_, now) in zip(states, states[1:])]
    assert sum(map(len, added)) == len(set().union(*added)) == len(list(model.network.parameters()))
    copies = []
    for direction in ORDERS:
        copy = model.copy()
        for _ in Cascade(model, copy, layers, {**PARAMS, "order": direction, "mode": "cascading"}, 0).states(
                MethodGroup([], model)):
            pass
        copies.append(copy)
    assert all(torch.equal(a, b) for a, b in zip(copies[0].network.parameters(), copies[1].network.parameters()))


@pytest.mark.parametrize("name", ["tiny_vgg", "tiny_resnet", "tiny_vit"])
def test_on_the_embedded_models_every_parameter_is_redrawn_once_per_step(name):
    from saliency_bench.plugins import make_plugin_manager

    model = make_plugin_manager(entry_points=False).registry().models[name].obj.load()
    layers = list(model.randomization_order)
    owned = _owned(model, layers)
    everything = {n for n, _ in model.network.named_parameters()}
    assert set().union(*owned.values()) == everything and sum(map(len, owned.values())) == len(everything)
    same = {n for n in everything if _constant_draw(model, n)}  # zero biases set to 0 again: equal, yet redrawn
    for order in ORDERS:
        for layer, changed in _states(model, layers, order, "independent"):
            assert changed == owned[layer] - same, (name, order, layer)  # one step at a time, the rest trained
        assert _states(model, layers, order, "cascading")[-1][1] == everything - same


def _constant_draw(model: ModelWrapper, name: str) -> bool:
    """A parameter the draw may leave equal: a bias set to its trained value 0 (init_bias 0 on a zero bias)."""
    param = dict(model.network.named_parameters())[name]
    return name.rsplit(".", 1)[-1].endswith("bias") and bool((param == 0).all())


@pytest.mark.parametrize("order, mode", [("bottom_up", "cascading"), ("top_down", "independent"),
                                         ("bottom_up", "independent")])
def test_a_run_records_the_order_and_mode_and_a_weight_free_map_stays_identical(tmp_path, capsys, order, mode):
    out = tmp_path / "out"
    code = main(["run", "-m", "edge", "--checks", "randomization", "--limit", "4", "--batch-size", "4", "--out",
                 str(out), "--no-progress", "--no-speed", "--param", f"randomization.order={order}", "--param",
                 f"randomization.mode={mode}", "--param", "randomization.draws=1"])
    assert code == 0, capsys.readouterr().err
    board = json.loads((out / "leaderboard.json").read_text())
    params = board["checks"]["randomization"]
    assert (params["order"], params["mode"]) == (order, mode)
    curve = board["methods"]["edge"]["results"]["randomization"]["curve"]
    layers = params["layers"]
    assert curve["layers"] == (layers[::-1] if order == "bottom_up" else layers)
    assert all(point["value"] == 1.0 for point in curve["spearman_hog"])  # the edge map ignores every weight
