"""Tiny model, dataset, check and methods registered as fake plugins by the core tests."""
from __future__ import annotations

import contextlib
import io
import time
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

from saliency_bench import Check, Dataset, DatasetSpec, Method, ModelSpec, ModelWrapper, NotApplicable, Param, hookimpl

SIZE = 32
CLASSES = ["red", "green", "blue"]


def tiny_vgg(num_classes: int = 3, width: int = 4, seed: int = 0) -> nn.Module:
    """Five conv+ReLU+max-pool blocks on 32 px, then a linear head (a VGG in miniature)."""
    torch.manual_seed(seed)
    layers, channels = [], 3
    for block in range(5):
        out = width * (block + 1)
        layers += [nn.Conv2d(channels, out, 3, padding=1), nn.ReLU(inplace=block % 2 == 0), nn.MaxPool2d(2)]
        channels = out
    net = nn.Sequential()
    net.features = nn.Sequential(*layers)
    net.flatten = nn.Flatten()
    net.classifier = nn.Linear(channels, num_classes)
    return net


class SquaresDataset(Dataset):
    """Images with one coloured square per present class; masks are the squares."""

    name = "squares"
    class_names = CLASSES
    has_masks = True

    def __init__(self, size: int = 12, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.items = []
        for index in range(size):
            image = torch.from_numpy(rng.random((3, SIZE, SIZE), dtype=np.float32) * 0.2)
            labels = torch.zeros(len(CLASSES))
            masks = torch.zeros(len(CLASSES), SIZE, SIZE, dtype=torch.bool)
            for k, (y, x) in zip(rng.choice(3, size=2, replace=False), [(2, 2), (18, 18)]):
                masks[k, y:y + 10, x:x + 10] = True
                image[k, y:y + 10, x:x + 10] = 1.0
                labels[k] = 1.0
            self.items.append({"image": image, "labels": labels, "masks": masks, "index": index})

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        return self.items[index]


def load_model(weights=None, allow_download=False, **options) -> ModelWrapper:
    """The fake model plugin's loader."""
    return ModelWrapper(tiny_vgg(), name="fake_vgg", class_names=CLASSES, input_size=SIZE)


class MeanMap(Check):
    """Fake check: the mean of each map for the top label (one number per image)."""

    name = "mean_map"
    description = "fake check for tests"

    parameters = {"scale": Param(float, 1.0, help="a factor on every value")}

    def run(self, suite, group, params):
        values: dict[str, list[float]] = {}
        for batch in suite.batches(desc=self.name):
            maps = group(batch["inputs"], batch["labels"].argmax(dim=1))
            for name, m in maps.items():
                values.setdefault(name, []).extend((m.mean(dim=(1, 2)) * params["scale"]).tolist())
        return {
            name: {"metrics": {"mean": {"value": round(float(np.mean(v)), 6), "n": len(v)}}, "headline": "mean"}
            for name, v in values.items() if name in group.active
        }


class Raises(Method):
    """A method that raises."""

    name, family, positive = "raises", "control", False

    def attribute(self, model, inputs, targets):
        raise RuntimeError("boom")


class ReturnsNaN(Method):
    """A method that returns NaN."""

    name, family, positive = "nan_map", "control", False

    def attribute(self, model, inputs, targets):
        return torch.full(inputs.shape[:1] + inputs.shape[2:], float("nan"))


class WrongShape(Method):
    """A method that returns [B,3,H,W]."""

    name, family, positive = "wrong_shape", "control", False

    def attribute(self, model, inputs, targets):
        return inputs.detach().clone()


class Slow(Method):
    """A method that takes a while per batch (to interrupt a run)."""

    name, family, positive = "slow", "control", False

    def attribute(self, model, inputs, targets):
        time.sleep(0.4)
        return model.denormalize(inputs.detach()).mean(dim=1)


class Undefined(Method):
    """A method with no defined map on this model (as GradMid at a block before a global-average-pool head)."""

    name, family, positive = "undefined", "control", False

    def attribute(self, model, inputs, targets):
        raise NotApplicable("undefined on this model by construction")


class FakePlugin:
    """Registers the fake model, dataset and check."""

    @hookimpl
    def register_models(self, register):
        register(ModelSpec("fake_vgg", load_model, "tiny test VGG", default_dataset="squares"))

    @hookimpl
    def register_datasets(self, register):
        register(DatasetSpec("squares", lambda model, root=None, split=None, **o: SquaresDataset(), "test squares"))

    @hookimpl
    def register_checks(self, register):
        register(MeanMap())


class BrokenMethodsPlugin:
    """Registers the three broken methods and the slow one."""

    @hookimpl
    def register_methods(self, register):
        for method in (Raises(), ReturnsNaN(), WrongShape(), Slow(), Undefined()):
            register(method)


@contextmanager
def fake_plugins_registered(pm, suffix: str = ""):
    """The fake model, dataset and check, plus the broken methods, registered on ``pm`` for the block."""
    pm.register(FakePlugin(), name=f"fakes{suffix}")
    pm.register(BrokenMethodsPlugin(), name=f"broken{suffix}")
    try:
        yield pm
    finally:
        pm.unregister(name=f"fakes{suffix}")
        pm.unregister(name=f"broken{suffix}")


class Captured:
    """stdout and stderr of one in-process CLI call (capsys cannot be reset between hypothesis examples)."""

    def __enter__(self):
        self._out, self._err = io.StringIO(), io.StringIO()
        self._stack = contextlib.ExitStack()
        self._stack.enter_context(contextlib.redirect_stdout(self._out))
        self._stack.enter_context(contextlib.redirect_stderr(self._err))
        return self

    def __exit__(self, *exc):
        self._stack.close()
        self.out, self.err = self._out.getvalue(), self._err.getvalue()
        return False


def small_model() -> ModelWrapper:
    """A 3-class conv net on 8 px inputs, seeded: the isolation and guard tests' model."""
    torch.manual_seed(0)
    network = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                            nn.Linear(4, 3))
    return ModelWrapper(network, name="small", class_names=["a", "b", "c"], input_size=8, blocks={"B1": "1"},
                        randomization_order=["4", "0"])
