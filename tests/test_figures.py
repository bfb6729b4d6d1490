"""The figures: colour maps that respect a map's sign, small-multiple randomisation curves, nothing overlapping."""
import itertools
import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.axes import Axes
from matplotlib.colors import to_hex
from matplotlib.image import AxesImage

from saliency_bench.board.figures import map_norm, method_grid_plot
from saliency_bench.checks.figure_style import (CONTROL_COLOR, DIVERGING, OKABE_ITO, SEQUENTIAL, variant_groups,
                                                wrap_name)
from saliency_bench.checks.randomization_figure import MAX_LINES, draw_randomization_curves, randomization_plot

BOARD = Path(__file__).resolve().parents[1] / "leaderboard.json"
LAYERS = ["classifier"] + [f"features.{i}" for i in (22, 20, 18, 15, 13, 11, 8, 6, 3, 0)]
AGGREGATION = (["cumulative_gradcam", "cumulative_gradmid", "fullgrad", "gradcam"]
               + [f"{base}@B{b}" for base in ("gradcam", "gradcam_pos", "gradcampp", "gradmid") for b in range(1, 6)])
PROPAGATION = ["deconvnet", "gradient", "guided_backprop", "input_x_gradient", "integrated_gradients", "lrp_0",
               "lrp_epsilon", "lrp_gamma_inf", "rectgrad", "rectgrad_mod", "smoothgrad", "gradient_l2"]
MIN_FONT = 7.0
TITLE = "tiny_vgg / shapes image 4: maps for two classes (rows)\neach map scaled by its own max |value|"


def fake_board() -> dict:
    """A board shaped like the committed one: 24 aggregation, 12 propagation and the 2 controls."""
    rng = np.random.default_rng(0)
    methods = {}
    families = (("aggregation", AGGREGATION), ("propagation", PROPAGATION), ("control", ["random", "edge"]))
    for family, names in families:
        for name in names:
            values = {"edge": [1.0] * len(LAYERS), "random": [0.02] * len(LAYERS)}.get(
                name, list(np.sort(rng.uniform(0, 1, len(LAYERS)))[::-1]))
            points = [{"value": float(v), "ci_low": 0.0, "ci_high": 1.0} for v in values]
            curve = {"layers": LAYERS, "spearman_hog": points}
            methods[name] = {"family": family, "results": {"randomization": {"status": "ok", "curve": curve}}}
    methods["gradmid@B5"]["results"]["randomization"] = {"status": "n/a"}
    same = methods["gradcam@B5"]["results"]["randomization"]  # gradcam is gradcam@B5: their curves coincide
    methods["gradcam"]["results"]["randomization"] = json.loads(json.dumps(same))
    return {"methods": methods}


def boards() -> list:
    found = [pytest.param(fake_board(), id="fake")]
    if BOARD.exists():
        found.append(pytest.param(json.loads(BOARD.read_text()), id="committed"))
    return found


def all_axes(fig) -> list[Axes]:
    return [ax for ax in fig.findobj(Axes) if ax.get_visible()]


def shown_ticks(axis, coordinate: int) -> list:
    """Tick labels inside the view limits (matplotlib keeps, but does not draw, those beyond)."""
    lo, hi = sorted(axis.get_view_interval())
    slack = 1e-9 * max(1.0, hi - lo)
    return [t for t in axis.get_ticklabels() if lo - slack <= t.get_position()[coordinate] <= hi + slack]


def visible_texts(fig) -> list:
    """Every piece of text the saved image shows: figure titles, axes titles and labels, tick labels, legends."""
    texts = [getattr(fig, name, None) for name in ("_suptitle", "_supxlabel", "_supylabel")]
    for sub in fig.subfigs:
        texts += [getattr(sub, name, None) for name in ("_suptitle", "_supxlabel", "_supylabel")]
    legends = list(fig.legends)
    for ax in all_axes(fig):
        texts += [ax.title, ax._left_title, ax._right_title] + list(ax.texts)
        if ax.axison:
            texts += [ax.xaxis.label, ax.yaxis.label] + shown_ticks(ax.xaxis, 0) + shown_ticks(ax.yaxis, 1)
        if ax.get_legend() is not None:
            legends.append(ax.get_legend())
    for legend in legends:
        texts += list(legend.get_texts()) + [legend.get_title()]
    return [t for t in texts if t is not None and t.get_visible() and t.get_text().strip()]


def assert_nothing_overlaps(fig) -> None:
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    texts = visible_texts(fig)
    assert texts
    boxes = [(t.get_text(), t.get_window_extent(renderer).expanded(0.98, 0.98)) for t in texts]
    page = fig.bbox
    for text, box in boxes:
        inside = page.x0 <= box.x0 and box.x1 <= page.x1 and page.y0 <= box.y0 and box.y1 <= page.y1
        assert inside, f"{text!r} is cut off"
    for (a, box_a), (b, box_b) in itertools.combinations(boxes, 2):
        assert not box_a.overlaps(box_b), f"{a!r} overlaps {b!r}"
    small = sorted({(t.get_text(), t.get_fontsize()) for t in texts if t.get_fontsize() < MIN_FONT})
    assert not small, f"text under {MIN_FONT} pt: {small[:5]}"


# ------------------------------------------------------------------------------------------------ helpers


def test_map_norm_is_diverging_and_symmetric_for_a_signed_map_and_sequential_from_zero_otherwise():
    assert map_norm(np.array([[-1.0, 3.0], [0.5, 0.0]])) == (DIVERGING, -3.0, 3.0)
    assert map_norm(np.array([[-4.0, 3.0]])) == (DIVERGING, -4.0, 4.0)
    assert map_norm(np.array([[0.0, 2.5], [1.0, 0.2]])) == (SEQUENTIAL, 0.0, 2.5)
    assert map_norm(np.array([[1.5, 2.5]])) == (SEQUENTIAL, 0.0, 2.5)  # from 0, not from the minimum
    assert map_norm(np.zeros((3, 3))) == (SEQUENTIAL, 0.0, 1.0)
    assert SEQUENTIAL in ("viridis", "magma", "cividis") and DIVERGING in ("RdBu_r", "coolwarm")


def test_names_wrap_at_underscores_and_at_signs_without_losing_characters():
    for name in AGGREGATION + PROPAGATION:
        wrapped = wrap_name(name)
        assert wrapped.replace("\n", "") == name
        assert all(len(line) <= 13 for line in wrapped.split("\n")), wrapped
    assert wrap_name("integrated_gradients") == "integrated_\ngradients"
    assert wrap_name("gradcam_pos@B1") == "gradcam_pos\n@B1"


def test_variant_groups_keep_the_variants_of_one_base_together_and_stay_under_the_limit():
    groups = variant_groups(AGGREGATION, MAX_LINES)
    assert all(1 <= len(names) <= MAX_LINES for _, names in groups)
    assert sorted(n for _, names in groups for n in names) == sorted(AGGREGATION)
    by_label = dict(groups)
    assert by_label["gradcam"] == ["gradcam"] + [f"gradcam@B{b}" for b in range(1, 6)]
    assert by_label[""] == ["cumulative_gradcam", "cumulative_gradmid", "fullgrad"]
    singles = variant_groups(PROPAGATION, MAX_LINES)
    assert [len(names) for _, names in singles] == [6, 6]


# ------------------------------------------------------------------------------------------------ map grid


@pytest.fixture
def grid():
    rng = np.random.default_rng(1)
    names = AGGREGATION + ["integrated_gradients", "input_x_gradient"]
    maps = {n: [rng.uniform(0, 1, (12, 12)), rng.uniform(0, 1, (12, 12))] for n in names}
    maps["integrated_gradients"] = [rng.normal(0, 1, (12, 12)) + 0.3, rng.normal(0, 1, (12, 12)) - 0.2]
    picture = rng.uniform(0, 1, (12, 12, 3))
    fig = method_grid_plot(picture, ["cross", "ring"], maps, TITLE)
    yield fig, maps
    plt.close(fig)


def images_by_title(fig) -> dict[str, list[AxesImage]]:
    """The images of each method's column (its title is on the first row's axes; same column, same band below)."""
    found: dict[str, list[AxesImage]] = {}
    for sub in fig.subfigs:
        grid = [ax for ax in sub.axes]
        ncols = max(ax.get_subplotspec().colspan.stop for ax in grid)
        for ax in grid:
            spec = ax.get_subplotspec()
            if spec.rowspan.start == 0 and ax.get_title():
                column = [a for a in grid if a.get_subplotspec().colspan.start == spec.colspan.start]
                column.sort(key=lambda a: a.get_subplotspec().rowspan.start)
                found[ax.get_title().replace("\n", "")] = [a.images[0] for a in column if a.images]
        assert ncols >= 2
    return found


def test_signed_maps_get_a_diverging_norm_centered_at_zero_and_non_negative_ones_a_sequential(grid):
    fig, maps = grid
    images = images_by_title(fig)
    for row, image in enumerate(images["integrated_gradients"]):
        bound = float(np.abs(maps["integrated_gradients"][row]).max())
        assert image.get_cmap().name == DIVERGING
        assert image.get_clim() == pytest.approx((-bound, bound))
    for row, image in enumerate(images["gradcam@B1"]):
        assert image.get_cmap().name == SEQUENTIAL
        assert image.get_clim() == pytest.approx((0.0, float(maps["gradcam@B1"][row].max())))
    assert all(image.get_cmap().name != "jet" for column in images.values() for image in column)


def test_the_grid_has_a_color_bar_for_each_kind_of_map_and_class_row_labels(grid):
    fig, _ = grid
    labels = [ax.get_xlabel() for ax in all_axes(fig)]
    assert any("negative" in label and "positive" in label for label in labels)
    assert any(label.startswith("non-negative") for label in labels)
    row_labels = {ax.get_ylabel() for ax in all_axes(fig) if ax.get_ylabel()}
    assert row_labels == {"class: cross", "class: ring"}


def test_the_grid_only_shows_the_color_bars_it_uses():
    fig = method_grid_plot(np.zeros((4, 4, 3)), ["a", "b"], {"edge": [np.ones((4, 4)), np.eye(4)]}, "t")
    labels = [ax.get_xlabel() for ax in all_axes(fig)]
    plt.close(fig)
    assert any(label.startswith("non-negative") for label in labels)
    assert not any("positive" in label and label.startswith("signed") for label in labels)


def test_no_text_of_the_grid_overlaps_another_or_leaves_the_page(grid):
    assert_nothing_overlaps(grid[0])


def test_a_two_method_grid_keeps_its_title_on_the_page():
    maps = {"random": [np.ones((4, 4))] * 2, "edge": [np.eye(4)] * 2}
    fig = method_grid_plot(np.zeros((4, 4, 3)), ["cross", "ring"], maps, TITLE)
    try:
        assert_nothing_overlaps(fig)
    finally:
        plt.close(fig)


# ------------------------------------------------------------------------------------- randomisation curves


def panels(fig) -> list[Axes]:
    return [ax for ax in all_axes(fig) if any((line.get_gid() or "").startswith("method:") for line in ax.lines)]


@pytest.mark.parametrize("board", boards())
def test_curves_are_small_multiples_with_the_controls_in_every_panel(board):
    fig = randomization_plot(board, "randomization")
    try:
        axes = panels(fig)
        assert len(axes) >= 2
        shown = []
        for ax in axes:
            methods = [line for line in ax.lines if (line.get_gid() or "").startswith("method:")]
            controls = [line for line in ax.lines if (line.get_gid() or "").startswith("control:")]
            assert 1 <= len(methods) <= min(8, MAX_LINES)
            assert sorted(line.get_gid() for line in controls) == ["control:edge", "control:random"]
            assert all(to_hex(line.get_color()) == CONTROL_COLOR for line in controls)
            assert all(line.get_linewidth() < min(m.get_linewidth() for m in methods) for line in controls)
            shown += [line.get_gid().split(":", 1)[1] for line in methods]
        expected = [n for n, e in board["methods"].items() if e["family"] != "control"
                    and (e["results"].get("randomization") or {}).get("status") == "ok"]
        assert sorted(shown) == sorted(expected)  # every method once, none lost
    finally:
        plt.close(fig)


@pytest.mark.parametrize("board", boards())
def test_lines_of_a_panel_differ_in_color_and_in_marker_and_use_the_okabe_ito_palette(board):
    fig = randomization_plot(board, "randomization")
    try:
        for ax in panels(fig):
            methods = [line for line in ax.lines if (line.get_gid() or "").startswith("method:")]
            colors = [to_hex(line.get_color()) for line in methods]
            assert set(colors) <= {c.lower() for c in OKABE_ITO}
            assert len(set(colors)) == len(methods)
            assert len({line.get_marker() for line in methods}) == len(methods)  # apart in greyscale too
            assert len({(line.get_marker(), line.get_linestyle()) for line in methods}) == len(methods)
    finally:
        plt.close(fig)


@pytest.mark.parametrize("board", boards())
def test_curve_legends_sit_outside_the_plots_and_no_text_overlaps(board):
    fig = randomization_plot(board, "randomization")
    try:
        assert_nothing_overlaps(fig)
        renderer = fig.canvas.get_renderer()
        plots = [ax.get_window_extent(renderer) for ax in panels(fig)]
        legends = [ax.get_legend() for ax in all_axes(fig) if ax.get_legend() is not None] + list(fig.legends)
        assert len(legends) >= len(plots)
        for legend in legends:
            box = legend.get_window_extent(renderer)
            assert not any(box.overlaps(plot) for plot in plots)
        labels = " ".join(t.get_text() for t in visible_texts(fig))
        assert "Spearman on HOG vs trained model" in labels and "re-initialised cumulatively" in labels
        assert "features.22" in labels
    finally:
        plt.close(fig)


def test_a_curve_that_hides_another_says_so():
    board = fake_board()
    fig = randomization_plot(board, "randomization")
    try:
        texts = [t.get_text() for t in visible_texts(fig)]
        assert "gradcam@B5 (= gradcam)" in texts
    finally:
        plt.close(fig)


def test_draw_randomization_curves_writes_the_png_or_nothing(tmp_path):
    out = draw_randomization_curves(fake_board(), tmp_path / "sub" / "randomization.png", "randomization")
    assert out is not None and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert draw_randomization_curves({"methods": {}}, tmp_path / "none.png", "randomization") is None
    assert not (tmp_path / "none.png").exists()
