"""training.train on a tiny set, and the average-precision helper it reports."""
from __future__ import annotations

import json

import torch

from saliency_bench.models.tiny_vgg import load_tiny_vgg, sha256_of
from saliency_bench.models.training import average_precision, mean_average_precision, train


def test_average_precision_by_hand():
    scores = torch.tensor([[0.9, 0.1], [0.8, 0.7], [0.3, 0.2], [0.1, 0.6]])
    labels = torch.tensor([[1, 0], [0, 1], [1, 0], [0, 0]])
    ap = average_precision(scores, labels)
    assert torch.allclose(ap, torch.tensor([(1 / 1 + 2 / 3) / 2, 1.0]))
    assert abs(mean_average_precision(scores, labels) - float(ap.mean())) < 1e-6


def test_average_precision_ignores_classes_without_positives():
    scores = torch.tensor([[0.2, 0.5], [0.4, 0.1]])
    labels = torch.tensor([[0, 1], [0, 0]])
    assert torch.isnan(average_precision(scores, labels)[0])
    assert mean_average_precision(scores, labels) == 1.0


def test_train_writes_loadable_weights_and_card(tmp_path):
    lines = []
    card = train(tmp_path, seed=1, epochs=1, n_train=16, n_val=8, batch_size=8, log=lines.append)
    assert (tmp_path / "tiny_vgg.pt").is_file() and sha256_of(tmp_path / "tiny_vgg.pt") == card["sha256"]
    assert json.loads((tmp_path / "tiny_vgg.json").read_text())["sha256"] == card["sha256"]
    assert card["recipe"]["n_train"] == 16 and len(card["history"]) == 1 and 0 <= card["val"]["map"] <= 1
    assert any("val mAP" in line for line in lines)
    model = load_tiny_vgg(tmp_path / "tiny_vgg.pt")
    assert model(model.normalize(torch.rand(1, 3, model.input_size, model.input_size))).shape == (1, 6)


def test_train_is_deterministic(tmp_path):
    first = train(tmp_path / "a", seed=2, epochs=1, n_train=8, n_val=4, batch_size=4, log=lambda s: None)
    second = train(tmp_path / "b", seed=2, epochs=1, n_train=8, n_val=4, batch_size=4, log=lambda s: None)
    assert first["sha256"] == second["sha256"]


def test_train_command_runs_a_few_steps(tmp_path, capsys):
    from saliency_bench.cli import main

    code = main(["train", "--out", str(tmp_path), "--epochs", "1", "--n-train", "16", "--n-val", "8",
                 "--batch-size", "8"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "val mAP" in err and str(tmp_path / "tiny_vgg.pt") in err
    model = load_tiny_vgg(tmp_path / "tiny_vgg.pt")
    assert model.class_names == ["circle", "square", "triangle", "cross", "ring", "diamond"]
