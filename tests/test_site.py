"""`saliency-bench site`: the board as a static web site, checked in a real browser (Debian's Chromium).

The site is built once for the module from the committed board files of every model (tiny_vgg's gradient and
gradcam@B5 pictured, so the pages' images are real), opened from ``file://`` in one headless Chromium, and read as
a user would: the index, sorting and filtering, a method page, the compare page against ``saliency-bench compare``,
and screenshots at 1280x800 and 390x844 (printed: their folder; also copied to $SITE_SCREENSHOTS when set).
"""
from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))

from site_browser import Browser  # noqa: E402
from small_board import run_and_write, shipped_registry  # noqa: E402

from saliency_bench.board.site import build_site, read_section  # noqa: E402
from saliency_bench.board.site.build import site_bytes  # noqa: E402
from saliency_bench.board.site.command import committed_folders, site_command  # noqa: E402
from saliency_bench.board.site.pairs import distributions, headlines, metric_rows, pair_rows  # noqa: E402
from saliency_bench.board.site.selection import extremes, image_scores  # noqa: E402
from saliency_bench.checks.pointing import PointingGame  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PICTURED = ["gradient", "gradcam@B5"]
SIZES = ((1280, 800), (390, 844))


@pytest.fixture(scope="module")
def registry():
    """The shipped methods' and checks' registry (the pictures need the methods; the committed board also has the
    checks of plugins/sanity-2023)."""
    from saliency_bench.plugins import make_plugin_manager
    from small_board import SHIPPED

    return make_plugin_manager(allowlist=[*SHIPPED.split(","), "saliency-bench-sanity-2023"]).registry()


@pytest.fixture(scope="module")
def sections(registry):
    """Every committed board; tiny_vgg's two pictured methods get their maps."""
    from saliency_bench.board.site.wiring import evidence_source

    found = [read_section(folder, registry) for folder in committed_folders(ROOT)]
    found[0].evidence, found[0].pictured = evidence_source(found[0].board, registry, "cpu"), PICTURED
    return found


@pytest.fixture(scope="module")
def site(sections, registry, tmp_path_factory):
    """The built site's folder."""
    out = tmp_path_factory.mktemp("site")
    build_site(sections, out, registry)
    return out


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium for the module."""
    opened = Browser()
    yield opened
    opened.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    """Where the screenshots go (printed; copied to $SITE_SCREENSHOTS at the end when set)."""
    folder = tmp_path_factory.mktemp("screenshots")
    print(f"\nsite screenshots: {folder}")
    yield folder
    if os.environ.get("SITE_SCREENSHOTS"):
        shutil.copytree(folder, os.environ["SITE_SCREENSHOTS"], dirs_exist_ok=True)
        print(f"site screenshots copied to {os.environ['SITE_SCREENSHOTS']}")


def page(site: Path, name: str, **params) -> str:
    """The file:// URL of a page of the site, with its hash parameters."""
    from urllib.parse import quote

    query = "&".join(f"{key}={quote(value, safe='')}" for key, value in params.items())
    return (site / name).as_uri() + (f"#{query}" if query else "")


def table_rows(browser) -> list[dict]:
    """The board table's visible rows: method, family and each cell's sort value."""
    return browser.run("""return Array.from(document.querySelectorAll('table.board tbody tr')).map(tr => ({
        method: tr.dataset.method, family: tr.dataset.family, href: tr.querySelector('a').getAttribute('href'),
        cells: Array.from(tr.children).map(td => td.dataset.sort === undefined ? null : td.dataset.sort)}));""")


# ------------------------------------------------------------------------------------------- without a browser


def test_every_pair_is_compares_numbers_exactly(sections, registry):
    from saliency_bench.board.compare import compare_recorded

    pairs = {".": [("gradcam@B5", "gradcam_pos@B5"), ("gradcam_pos@B5", "gradcam@B5"), ("random", "edge"),
                   ("smoothgrad", "smoothgrad"), ("gradmid@B5", "gradient")],
             "boards/tiny_vit": [("deconvnet", "lrp_0"), ("gradient", "gradcam@B3")]}
    for folder, chosen in pairs.items():
        section = next(s for s in sections if s.folder.resolve() == (ROOT / folder).resolve())
        checks = [registry.checks[name].obj for name in section.board["checks"]]
        rows = metric_rows(checks, section.board)
        table = distributions(rows, section.board, section.values)
        for first, second in chosen:
            expected = compare_recorded(ROOT / folder / "leaderboard.json", first, second, registry)
            assert pair_rows(rows, table, first, second, headlines(section.board)) == expected, (folder, first, second)


def test_the_vectorised_quantiles_are_the_per_pair_ones_for_every_pair(sections, registry):
    from saliency_bench.board.site.pairs import _triple, oriented, pair_row, pairs_document

    section = sections[-1]
    checks = [registry.checks[name].obj for name in section.board["checks"]]
    rows = metric_rows(checks, section.board)
    table = distributions(rows, section.board, section.values)
    document = pairs_document(checks, section.board, section.values)
    for first in document["methods"]:
        for second in document["methods"]:
            one_by_one = [_triple(pair_row(row, table[i].get(first), table[i].get(second)))
                          for i, row in enumerate(rows)]
            assert oriented(document, first, second) == one_by_one, (first, second)


def test_images_are_ranked_by_their_stored_values():
    scores = np.array([0.5, np.nan, 0.1, 0.9, 0.1, 0.7])
    assert extremes(scores, 2, worse="lower") == ([2, 4], [3, 5])
    assert extremes(scores, 2, worse="higher") == ([3, 5], [2, 4])
    counts = np.zeros((2, 2, 3))
    counts[0, 0], counts[0, 1], counts[1, 1] = [1, 0, 0], [1, 1, 0], [0, 1, 1]
    assert image_scores(counts).tolist() == [0.5, 0.0]
    assert image_scores(np.array([[0.2, np.nan], [np.nan, np.nan]]))[0] == 0.2
    labels = np.array([[1, 1, 0], [1, 0, 0], [0, 1, 1]])
    params = {"images": 3, "min_classes": 2}
    assert PointingGame().picture_rows(params, labels, labels > 0, 2).tolist() == [0, 2]


def test_pointing_rows_are_the_images_the_game_counted(sections):
    from saliency_bench.board.site.evidence import as_numpy

    section = sections[0]
    images = int(section.board["checks"]["pointing_game"]["images"])
    labels, trials = (as_numpy(a) for a in section.evidence.labels(images))
    rows = len(section.values["gradient"]["pointing_game"]["accuracy"])
    counted = PointingGame().picture_rows(section.board["checks"]["pointing_game"], labels, trials, rows)
    assert len(counted) == rows == 178


def test_the_committed_site_stays_small(site):
    data = sum(p.stat().st_size for p in (site / "data").rglob("*.js"))
    code = sum((site / name).stat().st_size for name in ("site.css", "site.js", "index.js", "method.js", "compare.js"))
    assert code < 100_000, f"scripts and style are {code} bytes"
    assert data < 4_000_000, f"the data scripts are {data} bytes"
    sprites = [p.stat().st_size for p in (site / "img" / "tiny_vgg").glob("*.png") if not p.name.startswith(
        ("maps_", "randomization", "emprt"))]  # the board's figures
    assert len(sprites) == len(PICTURED) and max(sprites) < 150_000  # about 37 x 3 such sprites fit the 15 MB
    assert site_bytes(site) < 15_000_000


def test_a_run_folders_site_adds_its_stored_per_image_values(tmp_path, registry):
    run_and_write(tmp_path / "run", limit=8, checks=["randomization"],
                  check_params={"randomization": {"images": 8, "draws": 2}})
    summary = site_command(tmp_path / "site", run=tmp_path / "run", registry=registry, root=tmp_path / "none",
                           log=lambda message: None, device="cpu")
    assert "1 board(s)" in summary
    scripts = list((tmp_path / "site" / "data").glob("*/gradient.js"))
    detail = json.loads(scripts[0].read_text().split(" = ", 2)[-1].rstrip(";\n"))
    evidence = detail["evidence"]
    assert evidence["k"] == 6 and evidence["tile"] == 96  # more images, at the maps' own size
    randomization = next(c for c in evidence["checks"] if c["check"] == "randomization")
    assert all(len(item["curve"]) == 11 for item in randomization["worst"])  # each image's own cascade
    recorded = read_section(tmp_path / "run", registry).values
    (tmp_path / "run" / "leaderboard-values.json").unlink()  # the store alone gives the same per-image data
    derived = read_section(tmp_path / "run", registry).values
    assert derived.keys() == recorded.keys() and all(
        np.array_equal(derived[m][c][k], recorded[m][c][k], equal_nan=True)
        for m in recorded for c in recorded[m] for k in recorded[m][c])


def test_site_after_adds_a_run_folder_only_where_no_committed_board_was_written(tmp_path, monkeypatch):
    """``run --site``: a default run rewrites a committed board (the site is the checkout's); a run into its own
    folder adds that folder as a section; ``boards_written`` finds the folders of the written leaderboard.json."""
    from saliency_bench.board.site import command

    asked = []
    monkeypatch.setattr(command, "site_command", lambda out, run=None, **kwargs: asked.append(run) or "site: ok")
    (tmp_path / "boards" / "tiny_resnet").mkdir(parents=True)
    for folder in (tmp_path, tmp_path / "boards" / "tiny_resnet", tmp_path / "runs" / "mine"):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "leaderboard.json").write_text("{}")
    written = [tmp_path / "runs" / "mine" / "leaderboard.md", tmp_path / "runs" / "mine" / "leaderboard.json",
               tmp_path / "leaderboard.json", tmp_path / "figures" / "maps.png"]
    assert command.boards_written(written) == [tmp_path / "runs" / "mine", tmp_path]
    command.site_after(command.boards_written(written), None, root=tmp_path)
    command.site_after([tmp_path / "runs" / "mine"], None, root=tmp_path)
    command.site_after([], None, root=tmp_path)
    assert asked == [None, tmp_path / "runs" / "mine", None]


def test_run_site_writes_the_web_board_of_the_run(tmp_path, monkeypatch, capsys):
    """``saliency-bench run ... --site`` ends with the site of its board (in a folder without committed boards)."""
    from saliency_bench.cli import main

    monkeypatch.chdir(tmp_path)  # a control of the core: whatever plugins the process-wide manager holds
    code = main(["run", "-m", "edge", "--checks", "pointing_game", "--limit", "8", "--no-speed", "--no-progress",
                 "--out", "mine", "--site", "--device", "cpu"])
    assert code == 0
    assert (tmp_path / "site" / "index.html").is_file()
    data = (tmp_path / "site" / "data" / "site.js").read_text()
    assert "tiny_vgg (run mine)" in data and '"edge"' in data
    assert "site: 1 board(s)" in capsys.readouterr().err
    assert main(["check", "edge", "--against", "mine/leaderboard.json", "--site"]) == 2
    assert "--site writes the web board of the board --add writes" in capsys.readouterr().err


# -------------------------------------------------------------------------------------------- in the browser


def test_the_index_lists_every_method_of_every_board_without_console_errors(site, browser, sections):
    for section in sections:
        browser.open(page(site, "index.html", model=section.model), "table.board tbody tr")
        rows = table_rows(browser)
        assert [row["method"] for row in rows] == list(section.board["methods"])
        assert all(row["href"].startswith("method.html#model=") for row in rows)
        assert browser.errors() == []


def test_sorting_by_pointing_orders_the_rows_and_filtering_by_family_hides_the_others(site, browser, sections):
    browser.open(page(site, "index.html", model="tiny_vgg"), "table.board tbody tr")
    header = browser.wait('th[data-column="pointing"] button')
    header.click()
    column = browser.run("""return Array.from(document.querySelectorAll('table.board thead th'))
        .findIndex(th => th.dataset.column === 'pointing');""")
    values = [row["cells"][column] for row in table_rows(browser)]
    numbers = [float(v) for v in values if v not in ("", None)]
    assert numbers == sorted(numbers, reverse=True)  # higher is better: first
    assert values[:len(numbers)] == [row for row in values if row] and len(values) == 37  # n/a (gradmid@B5) last
    assert browser.run("return document.querySelector('th[data-column=\"pointing\"]').getAttribute('aria-sort')") \
        == "descending"
    header.click()
    again = [row["cells"][column] for row in table_rows(browser)]
    assert [float(v) for v in again if v] == sorted(numbers) and not again[-1]
    from selenium.webdriver.support.ui import Select

    Select(browser.wait("#f-family")).select_by_value("propagation")
    shown = table_rows(browser)
    expected = [n for n, e in sections[0].board["methods"].items() if e["family"] == "propagation"]
    assert sorted(row["method"] for row in shown) == sorted(expected)
    assert {row["family"] for row in shown} == {"propagation"}
    assert browser.errors() == []


def test_the_sortable_headers_are_reached_and_used_by_keyboard(site, browser):
    from selenium.webdriver.common.keys import Keys

    browser.open(page(site, "index.html", model="tiny_resnet"), "table.board tbody tr")
    browser.run("document.activeElement.blur(); window.focus();")
    body = browser.driver.switch_to.active_element
    for _ in range(40):
        body.send_keys(Keys.TAB)
        body = browser.driver.switch_to.active_element
        if body.tag_name == "button" and body.text.strip() == "class sens.":
            break
    else:
        pytest.fail("the class sens. header was not reached by Tab")
    body.send_keys(Keys.ENTER)
    assert browser.run("return document.querySelector('th[data-column=\"class sens.\"]').getAttribute('aria-sort')") \
        == "ascending"  # lower is better: first


def test_a_method_page_shows_its_checks_and_its_images_load(site, browser, sections):
    browser.open(page(site, "method.html", model="tiny_vgg", method="gradient"), "#failures .tile img")
    checks = browser.run("return Array.from(document.querySelectorAll('#checks .card h3')).map(h => h.textContent);")
    assert checks == list(sections[0].board["checks"]) or sorted(checks) == sorted(sections[0].board["checks"])
    loaded = browser.run("""const images = Array.from(document.images);
        images.forEach(i => { i.loading = 'eager'; });
        return Promise.all(images.map(i => i.decode().catch(() => null))).then(() =>
            images.map(i => [i.getAttribute('src'), i.complete, i.naturalWidth]));""")
    sources = {src for src, _, _ in loaded}
    assert any("maps_propagation" in src for src in sources) and any("inputs.webp" in src for src in sources)
    assert any(src.endswith("/gradient.png") for src in sources)
    assert all(complete and width > 0 for _, complete, width in loaded), loaded
    assert browser.run("return document.querySelectorAll('#curve svg polyline').length") >= 2  # method and controls
    assert browser.errors() == []


def compare_text(row: dict) -> dict:
    """What the compare page shows of one row of `saliency-bench compare --json`."""
    def number(value, sign=False):
        return "–" if value is None else (f"{value:+.3f}" if sign else f"{value:.3f}")

    interval = "" if row["ci_low"] is None else f"[{row['ci_low']:+.3f}, {row['ci_high']:+.3f}]"
    return {"check": row["check"], "metric": row["metric"], "a": number(row["a"]), "b": number(row["b"]),
            "value": number(row["value"], sign=True), "interval": interval,
            "excludes": "" if row["value"] is None else ("yes" if row["excludes_zero"] else "no"),
            "reading": row["reading"]}


@pytest.mark.parametrize("model,first,second", [("tiny_vgg", "gradcam@B5", "gradcam_pos@B5"),
                                                ("tiny_vgg", "random", "gradient"),
                                                ("tiny_vit", "guided_backprop", "gradcam@B2")])
def test_the_compare_pages_numbers_are_compares(site, browser, capsys, monkeypatch, model, first, second):
    from saliency_bench.cli import main
    from saliency_bench.plugins import make_plugin_manager
    from small_board import SHIPPED

    # `compare` with the board's checks registered, those of plugins/sanity-2023 included
    monkeypatch.setattr("saliency_bench.plugins._PM",
                        make_plugin_manager(allowlist=[*SHIPPED.split(","), "saliency-bench-sanity-2023"]))

    board = ROOT / ("leaderboard.json" if model == "tiny_vgg" else f"boards/{model}/leaderboard.json")
    capsys.readouterr()
    assert main(["compare", first, second, "--against", str(board), "--json"]) == 0
    expected = [compare_text(row) for row in json.loads(capsys.readouterr().out)]
    browser.open(page(site, "compare.html", model=model, a=first, b=second), "#pairs tbody tr[data-metric]")
    shown = browser.run("""return Array.from(document.querySelectorAll('#pairs tbody tr[data-metric]')).map(tr => {
        const row = {check: tr.dataset.check, metric: tr.dataset.metric};
        tr.querySelectorAll('td[data-key]').forEach(td => { row[td.dataset.key] = td.textContent; });
        return row; });""")
    assert shown == expected
    assert browser.errors() == []


def test_screenshots_at_desktop_and_phone_widths(site, browser, shots):
    pages = {"index": page(site, "index.html", model="tiny_vgg"),
             "method": page(site, "method.html", model="tiny_vgg", method="gradient"),
             "compare": page(site, "compare.html", model="tiny_vgg", a="gradcam@B5", b="gradient")}
    for name, url in pages.items():
        browser.open(url, "#main h1")
        browser.wait("table")
        for width, height in SIZES:
            path = browser.screenshot(shots / f"{name}-{width}x{height}.png", width, height)
            assert path.stat().st_size > 10_000
            page_width, viewport = browser.run("return [document.documentElement.scrollWidth, window.innerWidth];")
            assert page_width <= viewport, f"{name} at {width} px is {page_width} px wide"  # tables scroll inside
        assert browser.errors() == []
    browser.resize(1280, 800)
