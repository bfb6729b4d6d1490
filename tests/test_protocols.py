"""Round-2 protocol rules on hand-made cases: pointing ties, dataset reference points, vanished maps,
several weight draws and the layer-scale re-initialisation of the randomisation check."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from saliency_bench import Method, UserError
from saliency_bench.checks.pointing import (
    PointingGame,
    RestrictedPointingGame,
    argmax_points,
    first_index_points,
    hits_within,
    peak_points,
    within_tolerance,
)
from saliency_bench.checks.cascade import random_parameters
from saliency_bench.checks.randomization import CascadingRandomization
from saliency_bench.checks.stats import summarize_crossed
from test_checks import LAYOUT, MULTI, SIZE, Edge, Gradient, PeakAtTarget, images_of, make_suite, run, value

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


# -- pointing-game ties ------------------------------------------------------------------------


def test_a_plateau_points_at_its_center_not_its_first_index():
    maps = torch.zeros(1, 20, 20)
    maps[0, 4:9, 10:17] = 1.0  # a 5 x 7 plateau: rows 4..8, cols 10..16
    assert argmax_points(maps).tolist() == [[6, 13]]
    assert first_index_points(maps).tolist() == [[4, 10]]


def test_a_border_plateau_from_upsampling_no_longer_lands_on_the_edge():
    """Bilinear up-sampling copies a border cell over several pixels: the first index is the image corner."""
    low = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]])
    maps = torch.nn.functional.interpolate(low[:, None], size=(30, 30), mode="bilinear", align_corners=False)[:, 0]
    assert first_index_points(maps).tolist() == [[0, 0]]  # the image's corner
    mask = torch.zeros(1, 30, 30, dtype=torch.bool)
    mask[0, 3:9, 3:9] = True  # the object the peak cell stands for, off the border
    assert not bool(hits_within(first_index_points(maps), mask, 2.0))
    point = argmax_points(maps)
    assert bool(hits_within(point, mask, 2.0))
    assert float(maps[0, point[0, 0], point[0, 1]]) == float(maps.max())  # always a maximal pixel


def test_a_constant_map_points_at_the_center_and_a_nonconvex_plateau_stays_on_itself():
    constant = torch.zeros(1, 9, 9)
    assert argmax_points(constant).tolist() == [[4, 4]]
    ring = torch.zeros(1, 11, 11)
    ring[0, 1:10, 1:10] = 1.0
    ring[0, 3:8, 3:8] = 0.0  # a square ring: its centroid (5, 5) is not on the plateau
    row, col = argmax_points(ring)[0].tolist()
    assert ring[0, row, col] == 1.0


def test_unknown_tie_rule_is_a_user_error():
    with pytest.raises(UserError, match="tie_rule"):
        peak_points(torch.zeros(1, 4, 4), "random")


class PlateauAtTarget(Method):
    """A flat 5 x 5 plateau whose top-left corner is 3 px off the target's square and whose centre is on it."""

    name, family = "plateau", "control"

    def attribute(self, model, inputs, targets):
        masks = images_of(model, inputs)[torch.arange(len(targets)), targets] > 0.5
        maps = torch.zeros(masks.shape)
        for i, mask in enumerate(masks):
            rows, cols = torch.nonzero(mask, as_tuple=True)
            if len(rows):
                r, c = int(rows.min()) - 3, int(cols.min()) - 3
                maps[i, max(r, 0) : r + 5, max(c, 0) : c + 5] = 1.0
        return maps


def test_pointing_game_records_and_applies_the_tie_rule():
    suite = make_suite()
    params = PointingGame().default_params(suite)
    assert params["tie_rule"] == "plateau_centre"
    center = run(PointingGame(), suite, [PlateauAtTarget()])["plateau"]
    first = run(PointingGame(), suite, [PlateauAtTarget()], tie_rule="first_index")["plateau"]
    assert value(center, "accuracy") == 1.0 and value(first, "accuracy") == 0.0


# -- the restricted game's dataset reference points ----------------------------------------------


def test_disk_dilation_matches_the_exact_distance_test():
    generator = torch.Generator().manual_seed(0)
    masks = torch.rand(3, 2, 24, 24, generator=generator) > 0.995
    near = within_tolerance(masks, 3.7)
    rows, cols = torch.meshgrid(torch.arange(24), torch.arange(24), indexing="ij")
    points = torch.stack([rows.flatten(), cols.flatten()], 1)
    for b in range(3):
        for k in range(2):
            exact = hits_within(points, masks[b, k].expand(len(points), 24, 24), 3.7).view(24, 24)
            assert torch.equal(near[b, k], exact)


def test_reference_points_by_hand_on_disjoint_squares():
    """Squares far apart: one point hits one class per image, so the best single point scores like the oracle
    that hits the top class; both are reported beside every method and do not depend on the method."""
    suite = make_suite()
    results = run(RestrictedPointingGame(), suite, [PeakAtTarget(), Edge()])
    reference = results["peak"]["dataset_reference"]
    assert reference == results["edge"]["dataset_reference"]
    # hand count: per class, hits / trials where the single hit goes to the top class (oracle) or any one class
    hits, trials = np.zeros(3), np.zeros(3)
    for i in MULTI:
        image = suite.dataset[i]["image"].unsqueeze(0)
        with torch.no_grad():
            top = int(suite.model(suite.model.normalize(image)).argmax())
        for k in LAYOUT[i]:
            trials[k] += 1
            hits[k] += k == top
    assert reference["top_object_oracle"]["value"] == pytest.approx(float(np.mean(hits / trials)), abs=1e-6)
    best = reference["best_single_point"]
    assert best["value"] >= reference["top_object_oracle"]["value"] - 1e-9
    assert best["trials"] == sum(len(LAYOUT[i]) for i in MULTI)


def test_overlapping_boxes_let_one_point_hit_two_classes():
    """Nested boxes (a bottle on a table): the best single point hits both classes of the image."""
    masks = torch.zeros(1, 2, 20, 20, dtype=torch.bool)
    masks[0, 0, 2:18, 2:18] = True
    masks[0, 1, 8:12, 8:12] = True
    near = within_tolerance(masks, 1.0)
    point = argmax_points(near.sum(1).float())
    assert near[0, :, point[0, 0], point[0, 1]].tolist() == [True, True]


# -- randomisation: vanished maps, draws, re-initialisation ----------------------------------------


class VanishesWhenRandomized(Edge):
    """Edge maps on the trained model; all zero once any weight differs from it (LRP-epsilon underflowing)."""

    name = "vanishes"

    def __init__(self, original):
        self.original = {k: v.clone() for k, v in original.network.state_dict().items()}

    def attribute(self, model, inputs, targets):
        state = model.network.state_dict()
        changed = any(not torch.equal(state[k], v) for k, v in self.original.items())
        maps = super().attribute(model, inputs, targets)
        return torch.zeros_like(maps) if changed else maps


def test_a_vanished_map_counts_as_complete_change_in_every_measure():
    suite = make_suite()
    result = run(CascadingRandomization(), suite, [VanishesWhenRandomized(suite.model)])["vanishes"]
    draws = CascadingRandomization().default_params(suite)["draws"]
    for measure in ("spearman_hog", "spearman_abs", "spearman_signed", "ssim"):
        final = result["metrics"][f"{measure}_final"]
        mean = result["metrics"][f"{measure}_mean"]
        assert (final["value"], final["n"], final["dropped"]) == (0.0, len(LAYOUT), 0)  # the old check: n = 0
        assert final["vanished"] == final["maps"] == len(LAYOUT) * draws
        steps = len(result["curve"]["layers"])
        assert mean["value"] == 0.0 and mean["vanished"] == mean["maps"] == len(LAYOUT) * draws * steps


class DrawSpy(Edge):
    """Records the top layer's weights at every call."""

    name = "draw_spy"

    def __init__(self, layer: str):
        self.layer, self.seen = layer, []

    def attribute(self, model, inputs, targets):
        self.seen.append(model.module(self.layer).weight.detach().clone())
        return super().attribute(model, inputs, targets)


def test_each_draw_uses_other_weights_and_every_batch_the_same_draws():
    suite = make_suite()
    top = suite.model.randomization_order[0]
    spy = DrawSpy(top)
    steps = len(suite.model.randomization_order)
    run(CascadingRandomization(), suite, [spy], draws=3)
    per_batch = 1 + 3 * steps
    first_steps = [spy.seen[1 + d * steps] for d in range(3)]  # the top layer right after its re-initialisation
    assert not torch.equal(first_steps[0], first_steps[1]) and not torch.equal(first_steps[1], first_steps[2])
    second_batch = [spy.seen[per_batch + 1 + d * steps] for d in range(3)]
    assert all(torch.equal(a, b) for a, b in zip(first_steps, second_batch))


def test_draws_widen_the_interval_to_cover_the_spread_between_draws():
    """Crossed bootstrap: identical images whose value depends only on the draw give a CI spanning the draws."""
    data = np.tile(np.array([[0.2, 0.5, 0.8]]), (40, 1))
    crossed = summarize_crossed(data, seed=0, n_boot=2000)
    assert crossed["value"] == pytest.approx(0.5) and crossed["draws"] == 3 and crossed["n"] == 40
    assert crossed["ci_low"] < 0.35 and crossed["ci_high"] > 0.65
    single = summarize_crossed(data[:, :1], seed=0, n_boot=2000)
    assert single["ci_low"] == single["ci_high"] == pytest.approx(0.2)


def test_layer_std_reinitialization_keeps_each_layers_trained_scale():
    suite = make_suite()
    order = suite.model.randomization_order
    with torch.no_grad():
        suite.model.module(order[-1]).weight.mul_(50.0)  # a layer trained at a very different scale
    drawn = random_parameters(suite.model, order, 0.01, 0.0, seed=0, init="layer_std")
    for layer, values in zip(order, drawn):
        trained = float(suite.model.module(layer).weight.detach().std())
        assert float(values["weight"].std()) == pytest.approx(trained, rel=0.35)
        assert bool((values["bias"] == 0).all())
    fixed = random_parameters(suite.model, order, 0.01, 0.0, seed=0, init="fixed")
    assert float(fixed[-1]["weight"].std()) == pytest.approx(0.01, rel=0.35)
    with pytest.raises(UserError, match="init"):
        random_parameters(suite.model, order, 0.01, 0.0, seed=0, init="xavier")


def test_gradient_randomization_has_finite_curves_over_draws():
    result = run(CascadingRandomization(), make_suite(), [Gradient()], draws=2)["gradient"]
    final = result["metrics"]["spearman_hog_final"]
    assert final["draws"] == 2 and final["n"] == len(LAYOUT) and np.isfinite(final["value"])
