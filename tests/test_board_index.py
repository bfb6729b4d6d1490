"""The top-level leaderboard.md holds one section per embedded model; a model's default run replaces only its own."""
from pathlib import Path

import pytest

from saliency_bench.board.index import as_section, board_folder, read_sections, render_index, write_index
from saliency_bench.board.publish import Targets, default_board_folder, is_default_run, update_index
from saliency_bench.run.options import options_from_arguments as run_options
from saliency_bench.cli.parser import build_parser

ORDER = ["tiny_vgg", "tiny_resnet", "tiny_vit"]


def standalone(model: str, marker: str) -> str:
    """A leaderboard.md as ``render_markdown`` writes it (title, headings, a figure, a table)."""
    return "\n".join([
        "# saliency-bench leaderboard", "", "Written by `saliency-bench run`; do not edit by hand.", "",
        f"Model `{model}` (96 px), dataset `shapes`, 8 images, seed 0.", "", "## Summary", "",
        "| method | pointing |", "|---|---|", f"| `gradient` | {marker} |", "", "## Figures", "",
        "![maps_propagation](figures/maps_propagation.png)", "", "## Details", "", "### pointing_game", "",
    ])


def _args(*argv):
    return run_options(build_parser().parse_args(["run", *argv]))


def test_a_default_run_of_each_embedded_model_writes_its_own_folder():
    assert is_default_run(_args("--all", "--model", "tiny_resnet"))
    assert is_default_run(_args("--all", "--model", "tiny_vit"))
    assert is_default_run(_args("--all", "--model", "tiny_vgg"))
    assert not is_default_run(_args("--all", "--model", "vgg16"))  # not embedded: no committed section
    assert not is_default_run(_args("--all", "--model", "tiny_vit", "--limit", "4"))
    assert default_board_folder(_args("--all").model) == Path(".")
    assert default_board_folder(_args("--all", "--model", "tiny_vit").model) == Path("boards/tiny_vit")
    assert board_folder("tiny_resnet", "tiny_vgg") == Path("boards/tiny_resnet")


def test_a_section_drops_the_title_demotes_headings_and_links_figures_from_the_top():
    section = as_section(standalone("tiny_vit", "0.9"), "tiny_vit", "a ViT", Path("boards/tiny_vit"))
    lines = section.splitlines()
    assert lines[0] == "## `tiny_vit`: a ViT"
    assert "# saliency-bench leaderboard" not in lines and "### Summary" in lines and "#### pointing_game" in lines
    assert "![maps_propagation](boards/tiny_vit/figures/maps_propagation.png)" in lines
    assert "[boards/tiny_vit/leaderboard.md](boards/tiny_vit/leaderboard.md)" in section
    top = as_section(standalone("tiny_vgg", "0.8"), "tiny_vgg", "", Path("."))
    assert "![maps_propagation](figures/maps_propagation.png)" in top.splitlines()


def test_sections_survive_a_round_trip_and_keep_the_board_order():
    sections = {name: as_section(standalone(name, name), name, "", board_folder(name, "tiny_vgg"))
                for name in ("tiny_vit", "tiny_vgg")}
    text = render_index(sections, ORDER)
    assert read_sections(text) == sections
    assert text.index("## `tiny_vgg`") < text.index("## `tiny_vit`")  # the order given, not the insertion order


def test_a_board_written_before_sections_becomes_its_models_section():
    sections = read_sections(standalone("tiny_vgg", "0.8"))
    assert list(sections) == ["tiny_vgg"] and "| `gradient` | 0.8 |" in sections["tiny_vgg"]
    assert read_sections("no board here") == {}


def test_a_models_default_run_replaces_only_its_own_section(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    vgg = as_section(standalone("tiny_vgg", "0.8"), "tiny_vgg", "", Path("."))
    vit = as_section(standalone("tiny_vit", "old"), "tiny_vit", "", Path("boards/tiny_vit"))
    write_index(Path("."), {"tiny_vgg": vgg, "tiny_vit": vit}, ORDER)
    before = Path("leaderboard.md").read_text()
    folder = Path("boards/tiny_vit")
    folder.mkdir(parents=True)
    (folder / "leaderboard.md").write_text(standalone("tiny_vit", "new"))  # what write_leaderboard just wrote
    written: list[Path] = []
    from saliency_bench.plugins import make_plugin_manager

    registry = make_plugin_manager(allowlist=None).registry()
    update_index(Targets(index="tiny_vit", index_before=before), registry, written)
    after = read_sections(Path("leaderboard.md").read_text())
    assert after["tiny_vgg"] == vgg  # byte for byte
    assert "| `gradient` | new |" in after["tiny_vit"] and "| `gradient` | old |" not in after["tiny_vit"]
    assert after["tiny_vit"].startswith("## `tiny_vit`: vision transformer")  # the model's description
    assert written == [Path("leaderboard.md")]


@pytest.mark.parametrize("name, shown", [("tiny_vgg", True), ("tiny_resnet", False), ("tiny_vit", False),
                                         ("vgg16", True), ("resnet50", False), ("torchvision:vgg11", True),
                                         ("torchvision:resnet18", False), ("not_registered", True)])
def test_the_papers_vgg_columns_go_beside_vgg_models_only(name, shown):
    from saliency_bench.board.leaderboard import shows_paper
    from saliency_bench.plugins import make_plugin_manager

    registry = make_plugin_manager(allowlist=None).registry()
    assert shows_paper({"model": {"name": name}}, registry) is shown


def test_a_board_without_paper_values_has_no_paper_columns():
    from saliency_bench.board.leaderboard import summary_headers
    from saliency_bench.plugins import make_plugin_manager

    registry = make_plugin_manager(allowlist=None).registry()
    checks = [registry.checks[name].obj for name in registry.checks]
    with_paper = {"methods": {"gradcam": {"paper": {"pointing": 74.0}}}}
    without = {"methods": {"gradcam": {}}}
    assert any(h.startswith("paper P") for h in summary_headers(checks, False, with_paper))
    assert not any(h.startswith("paper") for h in summary_headers(checks, False, without))
