"""Each map computed once: checks that share maps give the same bytes as each check run alone, with fewer maps."""
import pytest
import torch

from saliency_bench import noise
from saliency_bench.harness.group import MethodGroup
from saliency_bench.checks.shared_maps import BatchMaps
from saliency_bench.controls import RandomMap

from small_board import run, run_and_write

METHODS = ["gradient", "random", "smoothgrad", "gradcam@B5"]  # deterministic, a seeded control, seeded noise, a CAM
MAP_CHECKS = ["pointing_game", "restricted_pointing_game", "class_sensitivity"]


def _board_bytes(folder):
    return (folder / "leaderboard.json").read_bytes(), (folder / "leaderboard-values.json").read_bytes()


def _both_schedules(folder, device):
    """The three map checks run together (shared maps) and one at a time on ``device``; the maps each asked for."""
    asked = {"shared": 0, "alone": 0}
    original = MethodGroup.__call__
    mode = {"now": "shared"}

    def counting(self, inputs, targets, model=None, seeds=None):
        asked[mode["now"]] += len(targets)
        return original(self, inputs, targets, model=model, seeds=seeds)

    MethodGroup.__call__ = counting
    try:
        options = dict(methods=METHODS, check_params={}, device=device)
        together = run_and_write(folder / "together", checks=MAP_CHECKS, **options)
        mode["now"] = "alone"
        for check in MAP_CHECKS:
            run(folder / "alone", checks=[check], **options)
        mode["now"] = "board"  # every result is stored (only the board's figures draw maps)
        asked["board"] = 0
        alone = run_and_write(folder / "alone", checks=MAP_CHECKS, **options)
    finally:
        MethodGroup.__call__ = original
    assert together.failures == {} and alone.failures == {}
    return folder, asked, together


@pytest.fixture(scope="module")
def counted(tmp_path_factory):
    """Both schedules on the CPU (where the board is made)."""
    return _both_schedules(tmp_path_factory.mktemp("shared"), "cpu")


def test_shared_maps_give_the_bytes_of_each_check_run_alone(counted):
    folder, asked, _ = counted
    assert _board_bytes(folder / "together") == _board_bytes(folder / "alone")


def test_shared_maps_compute_each_map_once(counted):
    folder, asked, together = counted
    # per image: the trial classes (pointing), the top class (restricted, class sensitivity) and the bottom one;
    # every method group asks for every map, whatever its members (each of the four methods is its own group)
    assert asked["shared"] < asked["alone"]
    suite = together.suite
    union = alone = 0
    for batch in suite.batches():
        with torch.no_grad():
            scores = suite.model(batch["inputs"])
        logits = scores.argmax(1), scores.argmin(1)
        trials = batch["trials"].bool().cpu()
        logits = logits[0].cpu(), logits[1].cpu()
        kept = ((batch["labels"].cpu() > 0).sum(1) >= 2) & trials.any(1)
        needed = trials & kept[:, None]
        rows = torch.arange(len(trials))
        pointing, restricted = int(needed.sum()), int(kept.sum())
        needed[rows[kept], logits[0][kept]] = True
        needed[rows, logits[0]] = True
        needed[rows, logits[1]] = True
        union += int(needed.sum())
        alone += pointing + restricted + 2 * len(trials)
    assert asked["shared"] - asked["board"] == union * len(METHODS)  # writing a board draws the same figures
    assert asked["alone"] == alone * len(METHODS)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU")
def test_on_a_gpu_the_schedules_agree_to_float_rounding(tmp_path):
    """cuDNN picks kernels by batch shape, so a map computed in another batch can differ in its last bits: on a GPU
    the schedules agree to rounding (measured on an H200: see README "Performance"), not byte for byte."""
    import json

    _both_schedules(tmp_path, "cuda")
    boards = [json.loads((tmp_path / side / "leaderboard.json").read_text()) for side in ("together", "alone")]
    worst = 0.0
    for name, row in boards[0]["methods"].items():
        for check, result in row["results"].items():
            for metric, value in result.get("metrics", {}).items():
                other = boards[1]["methods"][name]["results"][check]["metrics"][metric]["value"]
                if value["value"] is not None:
                    worst = max(worst, abs(value["value"] - other))
    print(f"largest difference between the schedules on the GPU: {worst:.3g}")
    assert worst <= 1e-3


def test_the_run_summary_times_the_maps_and_each_check(counted):
    _, _, together = counted
    assert set(together.seconds) >= {"shared maps", *MAP_CHECKS}
    assert all(seconds >= 0 for seconds in together.seconds.values())


def test_a_map_that_no_check_asked_for_cannot_be_read():
    slots = torch.tensor([[0, -1], [-1, 1]])
    maps = BatchMaps(slots, {"m": torch.arange(2.0).view(2, 1, 1)})
    assert maps.of("m", torch.tensor([1]), torch.tensor([1])).item() == 1.0
    with pytest.raises(KeyError):
        maps.of("m", torch.tensor([0]), torch.tensor([1]))


def test_map_seeds_name_the_map_not_its_batch():
    seeds = noise.map_seeds(0, [3, 4, 3], [1, 1, 2])
    assert seeds == noise.map_seeds(0, torch.tensor([3, 4, 3]), torch.tensor([1, 1, 2]))
    assert len(set(seeds)) == 3  # another image or another class: another seed
    assert noise.map_seeds(0, [3], [1], stream=1) != noise.map_seeds(0, [3], [1])
    assert noise.map_seeds(1, [3], [1]) != noise.map_seeds(0, [3], [1])


def test_seeded_noise_draws_each_row_from_its_own_seed():
    seeds = noise.map_seeds(0, [0, 1, 2, 3], [5, 5, 5, 5])
    with noise.seeded_rows(seeds):
        batch = noise.rand((4, 6, 6))
    with noise.seeded_rows(seeds[2:3]):
        alone = noise.rand((1, 6, 6))
    assert torch.equal(batch[2:3], alone)
    assert not torch.equal(batch[0], batch[1])
    with noise.seeded_rows(seeds[:2]), pytest.raises(ValueError, match="2 maps"):
        noise.randn((3, 2))
    torch.manual_seed(7)
    unseeded = noise.rand((2, 3))  # outside the harness: torch's global generator, as torch.rand
    torch.manual_seed(7)
    assert torch.equal(unseeded, torch.rand((2, 3)))


def test_the_random_control_is_noise_per_map_whatever_its_batch():
    from saliency_bench.models.tiny_vgg import load_tiny_vgg

    model = load_tiny_vgg()
    inputs = torch.zeros(3, 3, model.input_size, model.input_size)
    targets = torch.tensor([0, 1, 0])
    group = MethodGroup([RandomMap()], model)
    together = group(inputs, targets, seeds=noise.map_seeds(0, [0, 0, 1], targets))["random"]
    alone = group(inputs[:1], targets[1:2], seeds=noise.map_seeds(0, [0], [1]))["random"]
    assert torch.equal(together[1], alone[0])  # the same (image, class) map in another batch
    assert not torch.equal(together[0], together[1])  # the same image, another class: independent noise


def test_a_dataset_without_indices_gets_its_positions_for_the_map_seeds():
    """The seeds of a map need the image's index; a dataset that does not yield one gets its position in the run."""
    from saliency_bench import Suite
    from saliency_bench.datasets.synthetic import ShapesDataset
    from saliency_bench.models.tiny_vgg import load_tiny_vgg

    model = load_tiny_vgg()
    shapes = ShapesDataset(model.input_size, "val", 10)

    class NoIndex(torch.utils.data.Dataset):
        def __len__(self):
            return len(shapes)

        def __getitem__(self, i):
            return {key: value for key, value in shapes[i].items() if key != "index"}

    suite = Suite(model=model, dataset=NoIndex(), device=torch.device("cpu"), batch_size=4, start=2, limit=10,
                  progress=False)
    assert [batch["index"].tolist() for batch in suite.batches()] == [[2, 3, 4, 5], [6, 7, 8, 9]]
