"""tiny_vgg's data-randomisation twin (Adebayo et al. 2018): the same architecture and recipe trained on permuted
labels. Its weights ship with a card that says how far it memorised and how it does on held-out images."""
import json

import pytest
import torch

from saliency_bench.datasets.scenes import SceneShapesDataset
from saliency_bench.models.embedded import WEIGHTS_DIR, load_embedded, sha256_of
from saliency_bench.models.tiny_resnet import MODEL as TINY_RESNET
from saliency_bench.models.tiny_vgg import MODEL as TINY_VGG
from saliency_bench.models.training import mean_average_precision, permuted_labels, predict, train

TWIN = WEIGHTS_DIR / "tiny_vgg_random_labels.pt"


@pytest.fixture(scope="module")
def card() -> dict:
    return json.loads(TWIN.with_suffix(".json").read_text())


def test_the_twin_ships_small_with_its_card_and_is_the_trained_models_architecture(card):
    assert TWIN.stat().st_size < 10 * 2**20 and sha256_of(TWIN) == card["sha256"]
    trained = json.loads(TINY_VGG.card_file.read_text())
    assert card["architecture"] == trained["architecture"] and card["class_names"] == trained["class_names"]
    assert "permuted" in card["recipe"]["data"] and card["recipe"]["epochs"] == 100 and card["recipe"]["n_train"] == 2000
    for key in ("optimizer", "lr", "batch_size", "schedule", "loss"):
        assert card["recipe"][key] == trained["recipe"][key], key  # the same recipe, on permuted labels


def test_the_card_says_it_memorised_its_labels_and_knows_nothing_of_held_out_images(card):
    assert card["train"]["labels"] == "permuted" and card["train"]["map"] > 0.99  # memorised
    assert card["val"]["map"] < 0.45  # chance: the class frequencies alone score about 0.34


def test_held_out_images_score_at_chance_and_the_trained_model_does_not():
    twin, trained = load_embedded(TINY_VGG, TWIN), load_embedded(TINY_VGG)
    data = SceneShapesDataset(size=96, split="benchmark", count=200)
    twin_map = mean_average_precision(*predict(twin.network, data))
    trained_map = mean_average_precision(*predict(trained.network, data))
    assert twin_map < 0.45 < 0.95 < trained_map


def test_the_model_finds_its_twin_only_with_its_shipped_weights(tmp_path):
    model = TINY_VGG
    shipped = load_embedded(model)
    twin = shipped.twin("random_labels")
    assert twin is not None and twin.weights_sha256 == sha256_of(TWIN) and twin.device == shipped.device
    assert shipped.describe()["twins"] == {"random_labels": sha256_of(TWIN)}  # results depend on the twin's bytes
    assert shipped.twin("random_labels") is twin  # loaded once
    assert shipped.twin("another_kind") is None
    named = load_embedded(model, model.weights_file)  # the shipped weights named by path: the same model, its twin
    assert named.twin("random_labels") is not None and named.describe()["twins"] == shipped.describe()["twins"]
    other = tmp_path / "other.pt"  # other weights (the twin's own file, copied with its card): no twin
    other.write_bytes(TWIN.read_bytes())
    other.with_suffix(".json").write_bytes(TWIN.with_suffix(".json").read_bytes())
    assert load_embedded(model, other).twin("random_labels") is None
    assert load_embedded(TINY_RESNET).twin("random_labels") is None  # not shipped


def test_labels_are_permuted_among_the_images_and_the_twin_trains_deterministically(tmp_path):
    labels = torch.eye(6)[torch.arange(12) % 6]
    shuffled = permuted_labels(labels, seed=0)
    assert not torch.equal(shuffled, labels) and torch.equal(shuffled.sum(0), labels.sum(0))  # frequencies kept
    cards = [train(tmp_path / str(run), epochs=1, n_train=32, n_val=16, random_labels=True, progress=False,
                   log=lambda line: None) for run in range(2)]
    assert cards[0]["sha256"] == cards[1]["sha256"] and cards[0]["name"] == "tiny_vgg_random_labels"
    assert cards[0]["train"]["labels"] == "permuted" and 0.0 <= cards[0]["train"]["map"] <= 1.0
