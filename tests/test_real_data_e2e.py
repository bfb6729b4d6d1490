"""End to end on tiny generated VOC and image-folder trees with a small random-weight VGG."""
import json

import pytest

from fakes import tiny_vgg
from saliency_bench import ModelSpec, ModelWrapper, hookimpl
from saliency_bench.cli import main
from saliency_bench.datasets.voc2007 import VOC_CLASSES
from voc_fixtures import make_image_folder, make_voc_tree


class SmallVGGPlugin:
    """A random-weight 5-block VGG at 50 px for the 20 VOC classes (100 px test images scale exactly)."""

    @hookimpl
    def register_models(self, register):
        register(ModelSpec("small_voc_vgg", lambda weights=None, allow_download=False, **o: ModelWrapper(
            tiny_vgg(num_classes=20), name="small_voc_vgg", class_names=VOC_CLASSES, input_size=50)))


@pytest.fixture
def small_vgg(pm):
    pm.register(SmallVGGPlugin(), name="small-vgg")
    try:
        yield
    finally:
        pm.unregister(name="small-vgg")


def test_voc_pointing_games_and_class_sensitivity(small_vgg, tmp_path, capsys):
    devkit = make_voc_tree(tmp_path)
    out = tmp_path / "out"
    code = main(["run", "-m", "edge", "random", "--model", "small_voc_vgg", "--dataset", "voc2007",
                 "--data-root", str(devkit), "--checks", "pointing_game", "restricted_pointing_game",
                 "class_sensitivity", "--out", str(out), "--no-progress"])
    assert code == 0, capsys.readouterr().err
    board = json.loads((out / "leaderboard.json").read_text())
    assert board["config"]["images"] == 3  # the test split: 000001, 000002, 000003
    for check in ("pointing_game", "restricted_pointing_game"):
        result = board["methods"]["edge"]["results"][check]
        # multi-class subset = 000001 (dog, person) and 000003 (car, bottle); bottle has only difficult boxes
        trials = {name: c["trials"] for name, c in result["per_class"].items() if c["trials"]}
        assert trials == {"dog": 1, "person": 1, "car": 1}
        assert result["metrics"]["accuracy"]["n"] == 2
    sensitivity = board["methods"]["random"]["results"]["class_sensitivity"]["metrics"]["spearman_hog"]
    assert sensitivity["n"] == 3


def test_image_folder_class_sensitivity_and_refused_pointing(small_vgg, tmp_path, capsys):
    root = make_image_folder(tmp_path)
    out = tmp_path / "out"
    argv = ["run", "-m", "random", "--model", "small_voc_vgg", "--dataset", "imagefolder", "--data-root",
            str(root), "--out", str(out), "--no-progress"]
    assert main(argv + ["--checks", "class_sensitivity"]) == 0, capsys.readouterr().err
    board = json.loads((out / "leaderboard.json").read_text())
    assert board["methods"]["random"]["results"]["class_sensitivity"]["metrics"]["spearman_hog"]["n"] == 4
    capsys.readouterr()
    assert main(argv + ["--checks", "pointing_game"]) == 2
    err = capsys.readouterr().err
    assert "needs per-class masks" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("breakage, message", [
    ("missing_root", "nowhere is not a folder"),
    ("missing_split", "test.txt"),
    ("bad_xml", "000002.xml"),
    ("bad_image", "000001.jpg"),
    ("bad_image_in_worker", "000001.jpg"),
])
def test_voc_errors_are_one_line_exit_2(small_vgg, tmp_path, capsys, breakage, message):
    devkit = make_voc_tree(tmp_path)
    voc = devkit / "VOC2007"
    root = devkit
    if breakage == "missing_root":
        root = tmp_path / "nowhere"
    elif breakage == "missing_split":
        (voc / "ImageSets" / "Main" / "test.txt").unlink()
    elif breakage == "bad_xml":
        (voc / "Annotations" / "000002.xml").write_text("<annotation><object>")
    elif breakage.startswith("bad_image"):
        (voc / "JPEGImages" / "000001.jpg").write_bytes(b"not a jpeg")
    workers = ["--workers", "1"] if breakage.endswith("worker") else []
    code = main(["run", "-m", "edge", "--model", "small_voc_vgg", "--dataset", "voc2007", "--data-root", str(root),
                 "--checks", "pointing_game", "--out", str(tmp_path / "out"), "--no-progress", *workers])
    err = capsys.readouterr().err
    # the run's header ("run: model ...") comes before an error found while reading the data; the error is one line
    err = "\n".join(l for l in err.splitlines() if not l.startswith(("warning: plugin", "run: model ")))
    assert code == 2, err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
