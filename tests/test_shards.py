"""Image shards: 1 or N shards in any order give the same bytes; torn or foreign shards are refused; resume per shard."""
import json
import shutil

import numpy as np
import pytest

from saliency_bench import UserError
from saliency_bench.run import local as local_module
from saliency_bench.run import pipeline as pipeline_module
from saliency_bench.store.results import record_digest
from saliency_bench.store.arrays import decode_array, decode_values, encode_array, encode_values

from small_board import run, run_and_write


def _board_bytes(folder):
    return (folder / "leaderboard.json").read_bytes(), (folder / "leaderboard-values.json").read_bytes()


@pytest.fixture(scope="module")
def one_shard(tmp_path_factory):
    """The small board computed as one shard per (method, check)."""
    folder = tmp_path_factory.mktemp("one")
    run_and_write(folder / "out", folder / "board", shard_size=24)
    return folder


@pytest.fixture(scope="module")
def three_shards(tmp_path_factory):
    """The small board computed in shards of 8 images, in reverse order."""
    folder = tmp_path_factory.mktemp("three")
    planned = pipeline_module.plan

    def reversed_plan(*args, **kwargs):
        found = planned(*args, **kwargs)
        found.tasks.reverse()
        return found

    pipeline_module.plan = reversed_plan
    try:
        report = run_and_write(folder / "out", folder / "board", shard_size=8)
    finally:
        pipeline_module.plan = planned
    assert report.failures == {}
    return folder


def test_many_shards_in_reverse_order_give_the_same_bytes_as_one(one_shard, three_shards):
    shards = sorted((three_shards / "out" / "results" / "class_sensitivity" / "random").glob("*.json"))
    assert [p.name for p in shards] == ["000000000-000000008.json", "000000008-000000016.json",
                                        "000000016-000000024.json"]
    assert [p.name for p in (one_shard / "out" / "results" / "class_sensitivity" / "random").glob("*.json")] == [
        "000000000-000000024.json"]
    assert _board_bytes(three_shards / "board") == _board_bytes(one_shard / "board")


@pytest.fixture
def sharded(three_shards, tmp_path):
    """A copy of the sharded run's folder, to spoil."""
    shutil.copytree(three_shards / "out", tmp_path / "out")
    return tmp_path / "out"


def _count_tasks(monkeypatch):
    computed = []
    original = local_module.execute

    def counting(task, *args, **kwargs):
        computed.append((task.check, task.names, task.start))
        return original(task, *args, **kwargs)

    monkeypatch.setattr(local_module, "execute", counting)
    return computed


def _rerun(out, method, check, monkeypatch):
    """Forget ``method``'s result on ``check`` (so it is merged again) and rerun; (tasks computed, warnings)."""
    (out / "results" / check / f"{method}.json").unlink()
    computed, lines = _count_tasks(monkeypatch), []
    run(out, log=lines.append, shard_size=8)
    assert all("\n" not in line for line in lines)
    return computed, [line for line in lines if line.startswith("warning:")]


def _same_board(out, tmp_path, one_shard):
    run_and_write(out, tmp_path / "board", shard_size=8)
    assert _board_bytes(tmp_path / "board") == _board_bytes(one_shard / "board")


def test_resume_computes_only_the_missing_shard(one_shard, sharded, tmp_path, monkeypatch):
    (sharded / "results" / "class_sensitivity" / "random" / "000000008-000000016.json").unlink()
    computed, warnings = _rerun(sharded, "random", "class_sensitivity", monkeypatch)
    assert computed == [("class_sensitivity", ("random",), 8)] and warnings == []
    _same_board(sharded, tmp_path, one_shard)


def test_a_torn_shard_is_refused_in_one_line_and_recomputed(one_shard, sharded, tmp_path, monkeypatch):
    torn = sharded / "results" / "pointing_game" / "gradient" / "000000016-000000024.json"
    torn.write_bytes(torn.read_bytes()[:200])  # cut short, as by a crash without the atomic rename
    computed, warnings = _rerun(sharded, "gradient", "pointing_game", monkeypatch)
    assert computed == [("pointing_game", ("gradient",), 16)]
    assert any("torn shard" in w and str(torn) in w for w in warnings), warnings
    _same_board(sharded, tmp_path, one_shard)


def _forged(path, **changes):
    """The shard at ``path`` with ``changes`` and a valid digest (a foreign shard, not a torn one)."""
    record = json.loads(path.read_text())
    record.update(changes)
    record["digest"] = record_digest(record)
    return json.dumps(record)


@pytest.mark.parametrize("how, says", [
    ("another method's shard", "recorded for 'gradient'"),
    ("another image range", "holds images"),
    ("another configuration", "another configuration"),
    ("other check parameters", "other check parameters"),
])
def test_a_foreign_shard_is_refused_and_recomputed(one_shard, sharded, tmp_path, monkeypatch, how, says):
    folder = sharded / "results" / "class_sensitivity"
    target = folder / "random" / "000000008-000000016.json"
    if how == "another method's shard":
        shutil.copy(folder / "gradient" / "000000008-000000016.json", target)
    elif how == "another image range":
        shutil.copy(folder / "random" / "000000000-000000008.json", target)
    elif how == "another configuration":
        config = json.loads(target.read_text())["config"]
        target.write_text(_forged(target, config={**config, "seed": 1}))
    else:
        params = json.loads(target.read_text())["params"]
        target.write_text(_forged(target, params={**params, "hog_cell": 3}))
    computed, warnings = _rerun(sharded, "random", "class_sensitivity", monkeypatch)
    assert computed == [("class_sensitivity", ("random",), 8)]
    assert any("foreign shard" in w and says in w and str(target) in w for w in warnings), warnings
    _same_board(sharded, tmp_path, one_shard)


def test_a_shard_size_that_splits_a_batch_is_refused(tmp_path):
    with pytest.raises(UserError, match="multiple of the batch size"):
        run(tmp_path / "out", shard_size=12)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("array", [
    np.array([True, False, True, True, False, False, True, False, True]),
    np.arange(24, dtype=np.float64).reshape(2, 3, 4) / 7,
    np.array([np.nan, 1.5, -0.0], dtype=np.float32),
    np.arange(-3, 3, dtype=np.int64),
    np.zeros((0, 5), dtype=bool),
])
def test_values_round_trip_exactly_and_deterministically(array):
    entry = encode_array(array)
    back = decode_array(entry)
    assert back.dtype == array.dtype and back.shape == array.shape
    assert np.array_equal(back, array, equal_nan=True) and back.tobytes() == array.tobytes()
    assert encode_array(array.copy()) == entry


def test_values_that_do_not_match_their_shape_or_dtype_are_refused():
    entry = encode_array(np.ones((4, 3)))
    with pytest.raises(ValueError, match="bytes, not the"):
        decode_array({**entry, "shape": [4, 4]})
    with pytest.raises(ValueError, match="dtype"):
        decode_array({**entry, "dtype": "object"})
    with pytest.raises(ValueError, match="base64"):
        decode_array({**entry, "data": "not base64 !"})
    with pytest.raises(ValueError, match="rows, not 5"):
        decode_values(encode_values({"x": np.ones((4, 3))}), rows=5)
    with pytest.raises(TypeError, match="per-image values must be"):
        encode_array(np.array(["a"]))
