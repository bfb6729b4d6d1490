"""A spoilt output folder (issue 25): every corruption of a result record or an image shard is recomputed to the
bytes of a clean run, or refused in one line; links, FIFOs and devices are never read; the board is written all
or none; what killed runs left behind is removed."""
import base64
import errno
import json
import os
import secrets
import shutil
import stat
import zlib
from pathlib import Path

import numpy as np
import pytest

from saliency_bench.cli import main
from saliency_bench.store.arrays import decode_array, decode_values, encode_array
from saliency_bench.store.files import _drop, _temporary
from saliency_bench.store.results import MAX_RECORD_BYTES, record_digest
from saliency_bench.store.shards import MAX_SHARD_BYTES

# two cheap controls, one check, 4 images in two shards of 2: a run takes well under a second without figures
RUN = ["run", "-m", "edge", "random", "--checks", "pointing_game", "--limit", "4", "--batch-size", "2",
       "--shard-size", "2", "--no-speed", "--no-progress"]
RECORD = "results/pointing_game/edge.json"
SHARD = "results/pointing_game/edge/000000002-000000004.json"
OTHER = {RECORD: "results/pointing_game/random.json",  # another method's file of the same kind
         SHARD: "results/pointing_game/random/000000002-000000004.json"}
BOARD = ("leaderboard.json", "leaderboard-values.json")


@pytest.fixture(scope="module")
def no_figures(one_thread):
    """The board without its figures (matplotlib is most of a small run's time; no figure is compared here), torch
    on one thread (tiny tensors)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("saliency_bench.board.leaderboard.draw_figures", lambda *args, **kwargs: [])
        yield


@pytest.fixture(scope="module")
def clean(no_figures, tmp_path_factory):
    """The clean run's folder, computed once for the module."""
    out = tmp_path_factory.mktemp("clean") / "out"
    assert main([*RUN, "--out", str(out)]) == 0
    return out


@pytest.fixture
def out(clean, tmp_path):
    """A copy of the clean run's folder, to spoil."""
    shutil.copytree(clean, tmp_path / "out", symlinks=True)
    return tmp_path / "out"


def _tree(folder: Path) -> dict[str, bytes]:
    """Every regular file under ``folder`` (the results), by relative path."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.is_symlink()}


def _run(capsys, out: Path, *extra: str) -> tuple[int, list[str]]:
    code = main([*RUN, "--out", str(out), *extra])
    return code, capsys.readouterr().err.splitlines()


def _signed(path: Path, **changes) -> None:
    """``path``'s record with ``changes`` and a digest that matches them."""
    record = {**json.loads(path.read_text()), **changes}
    record["digest"] = record_digest(record)
    path.write_text(json.dumps(record))


def _altered(path: Path) -> None:
    """The content changed, the old digest kept (a hand edit)."""
    record = json.loads(path.read_text())
    if "values" in record:
        entry = record["values"]["hits"]
        record["values"]["hits"] = encode_array(~decode_array(entry))
    else:
        metric = next(iter(record["metrics"].values()))
        metric["value"] = (metric["value"] or 0) + 0.25
    path.write_text(json.dumps(record))


def _wrong_schema(path: Path) -> None:
    record = json.loads(path.read_text())
    _signed(path, **({"values": [1, 2]} if "values" in record else {"metrics": "high"}))


def _foreign_range(path: Path) -> None:
    """A shard of other images; a record of another image count (which the run refuses: other parameters)."""
    record = json.loads(path.read_text())
    if "shard" in record:
        shutil.copy(path.with_name("000000000-000000002.json"), path)
    else:
        _signed(path, params={**record["params"], "images": 3})


def _huge_shape(path: Path) -> None:
    record = json.loads(path.read_text())
    _signed(path, values={**record["values"], "hits": {**record["values"]["hits"], "shape": [2, 10 ** 15]}})


BOMB = base64.b64encode(zlib.compress(b"\0" * 10 ** 7, 9)).decode()  # 10 kB that inflate to 10 MB


def _zip_bomb(path: Path) -> None:
    """A valid digest over arrays whose data inflates a million times past the 2 bytes their shape declares."""
    record = json.loads(path.read_text())
    _signed(path, values={**record["values"], "hits": {**record["values"]["hits"], "data": BOMB}})


def _replace(path: Path, make) -> None:
    path.unlink()
    make(path)


def _folder(path: Path) -> None:
    path.mkdir()
    (path / "note.txt").write_text("not a result")


def _unreadable(path: Path, monkeypatch) -> None:
    """Mode 000 as it reads for anyone but root (the tests run as root): open refuses with EACCES."""
    real_open = os.open

    def as_a_user(name, flags, *args, **kwargs):
        if kwargs.get("dir_fd") is None and os.path.lexists(name) and os.lstat(name).st_mode & 0o777 == 0:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(name))
        return real_open(name, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", as_a_user)
    path.chmod(0)


# kind: (spoil(path, out, monkeypatch), applies to records, applies to shards); each is recomputed to the clean bytes
KINDS = {
    "truncated": lambda p, o, m: p.write_bytes(p.read_bytes()[:len(p.read_bytes()) // 2]),
    "garbage bytes": lambda p, o, m: p.write_bytes(b"\x00\x9cGARBAGE\x17" * 40),
    "empty": lambda p, o, m: p.write_bytes(b""),
    "JSON list": lambda p, o, m: p.write_text("[]"),
    "JSON null": lambda p, o, m: p.write_text("null"),
    "wrong schema": lambda p, o, m: _wrong_schema(p),
    "altered, old digest": lambda p, o, m: _altered(p),
    "foreign method": lambda p, o, m: shutil.copy(o / OTHER[str(p.relative_to(o))], p),
    "foreign seed": lambda p, o, m: _signed(p, config={**json.loads(p.read_text())["config"], "seed": 1}),
    "foreign range": lambda p, o, m: _foreign_range(p),
    "huge declared shape": lambda p, o, m: _huge_shape(p),
    "zip bomb": lambda p, o, m: _zip_bomb(p),
    "over the size limit": lambda p, o, m: os.truncate(p, 1 + (MAX_SHARD_BYTES if p.parent.name == "edge" else
                                                               MAX_RECORD_BYTES)),  # sparse: no byte is written
    "non-UTF-8": lambda p, o, m: p.write_bytes(b'{"status": "\xff\xfe"}'),
    "a directory": lambda p, o, m: _replace(p, _folder),
    "symlink to another result": lambda p, o, m: _replace(p, lambda q: q.symlink_to(o / OTHER[str(q.relative_to(o))])),
    "symlink to /dev/zero": lambda p, o, m: _replace(p, lambda q: q.symlink_to("/dev/zero")),
    "FIFO": lambda p, o, m: _replace(p, os.mkfifo),
    "unreadable": lambda p, o, m: _unreadable(p, m),
    "deleted": lambda p, o, m: p.unlink(),
}
SHARD_ONLY = {"huge declared shape", "zip bomb"}  # a result record holds no arrays
SILENT = {"deleted"}  # nothing to report: the file is simply absent
SILENT_RECORD = {"foreign seed"}  # a record of another configuration is not this run's: recomputed unreported
REFUSED = {(RECORD, "foreign range")}  # a record of other check parameters: one line, exit 2, nothing touched
MATRIX = [(target, kind) for target in (RECORD, SHARD) for kind in KINDS
          if not (target == RECORD and kind in SHARD_ONLY)]


@pytest.mark.parametrize("target, kind", MATRIX, ids=[f"{'record' if t == RECORD else 'shard'}-{k}" for t, k in MATRIX])
def test_a_spoilt_file_is_recomputed_to_the_bytes_of_a_clean_run(clean, out, capsys, monkeypatch, target, kind):
    path = out / target
    KINDS[kind](path, out, monkeypatch)
    spoilt = _tree(out / "results") if (target, kind) in REFUSED else None
    code, err = _run(capsys, out)
    assert not any("Traceback" in line for line in err)
    if (target, kind) in REFUSED:
        assert code == 2 and len(err) == 1 and err[0].startswith("saliency-bench: error: ") and str(path) in err[0]
        assert "--fresh --yes" in err[0] and _tree(out / "results") == spoilt  # nothing recomputed or removed
        return
    assert code == 0, err
    for name in BOARD:
        assert (out / name).read_bytes() == (clean / name).read_bytes(), name
    assert _tree(out / "results") == _tree(clean / "results")  # every record and shard as a clean run wrote it
    assert stat.S_ISREG(os.lstat(path).st_mode)  # a regular file in place of the link, FIFO or folder
    warnings = [line for line in err if line.startswith("warning:")]
    silent = kind in SILENT or (target == RECORD and kind in SILENT_RECORD)
    assert (warnings == []) if silent else (len(warnings) >= 1 and all(str(path) in w for w in warnings)), warnings
    assert all(w.endswith("; recomputing") for w in warnings)


def test_a_record_and_its_shards_all_spoilt_at_once_are_recomputed(clean, out, capsys):
    for name in ("000000000-000000002.json", "000000002-000000004.json"):
        (out / "results/pointing_game/edge" / name).write_text("null")
    (out / RECORD).write_bytes(b"")
    assert _run(capsys, out)[0] == 0
    assert _tree(out / "results") == _tree(clean / "results")


# the folders of the store: one line, exit 2, no traceback


def _as_a_user(monkeypatch, denied: Path, write_only: bool = False) -> None:
    """Emulate, for root, a folder without permission (mode 000, or read-only with ``write_only``): opening a file
    in it (creating one, with ``write_only``) fails with EACCES."""
    real_open = os.open

    def guarded(name, flags, *args, **kwargs):
        inside = kwargs.get("dir_fd") is None and Path(os.path.abspath(name)).is_relative_to(denied)
        if inside and (not write_only or flags & (os.O_CREAT | os.O_WRONLY | os.O_RDWR)):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(name))
        return real_open(name, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", guarded)


def _refused(code: int, err: list[str], *needles: str) -> None:
    """Exit 2 with one error line, the last, naming every needle (warnings and the run's header may come first)."""
    errors = [line for line in err if line.startswith("saliency-bench: error: ")]
    assert code == 2 and errors == err[-1:] and not any("Traceback" in line for line in err), err
    assert all(n in errors[0] for n in needles), errors


def _one_line_exit_2(capsys, out, *needles):
    _refused(*_run(capsys, out), *needles)


def test_a_file_in_place_of_a_check_folder_is_one_line(out, capsys):
    shutil.rmtree(out / "results/pointing_game")
    (out / "results/pointing_game").write_text("a note")
    _one_line_exit_2(capsys, out, str(out / "results/pointing_game"), "move it away")
    assert (out / "results/pointing_game").read_text() == "a note"


def test_a_read_only_results_folder_with_one_bad_file_is_one_line(out, capsys, monkeypatch):
    (out / SHARD).write_text("null")
    _as_a_user(monkeypatch, out / "results", write_only=True)
    _one_line_exit_2(capsys, out, "cannot write", str(out / SHARD), "Permission denied")
    assert not list((out / "results").rglob("*.tmp"))


def test_a_check_folder_without_permission_is_one_line(out, capsys, monkeypatch):
    _as_a_user(monkeypatch, out / "results/pointing_game")
    _one_line_exit_2(capsys, out, "cannot write", str(out / "results/pointing_game"))


def test_a_results_link_is_never_followed(out, tmp_path, capsys):
    elsewhere = tmp_path / "elsewhere"
    (out / "results").rename(elsewhere)
    (out / "results").symlink_to(elsewhere)
    _one_line_exit_2(capsys, out, "symbolic link", str(out / "results"))


def test_a_method_folder_linked_elsewhere_is_replaced_not_written_through(clean, out, capsys):
    folder = out / "results/pointing_game/edge"
    shutil.rmtree(folder)
    folder.symlink_to(out / "results/pointing_game/random")
    before = _tree(out / "results/pointing_game/random")
    assert _run(capsys, out)[0] == 0
    assert not folder.is_symlink() and _tree(out / "results") == _tree(clean / "results")
    assert _tree(out / "results/pointing_game/random") == before


# the lock file


@pytest.mark.parametrize("target", ["a file", "/dev/zero"])
def test_a_lock_file_that_is_a_link_is_refused_and_its_target_untouched(out, tmp_path, capsys, target):
    victim = tmp_path / "victim"
    victim.write_text("keep me\n")
    (out / ".lock").unlink()
    (out / ".lock").symlink_to(victim if target == "a file" else target)
    _one_line_exit_2(capsys, out, str(out / ".lock"), "symbolic link")
    assert victim.read_text() == "keep me\n"


def test_a_fifo_as_the_lock_file_is_refused(out, capsys):
    (out / ".lock").unlink()
    os.mkfifo(out / ".lock")
    _one_line_exit_2(capsys, out, "not a regular file")


# the board: all files or none


def test_a_folder_where_leaderboard_md_goes_leaves_the_board_as_it_was(no_figures, tmp_path, capsys):
    out = tmp_path / "out"
    assert main([*RUN[:3], *RUN[4:], "--out", str(out)]) == 0  # edge alone
    before = {name: (out / name).read_bytes() for name in BOARD}
    (out / "leaderboard.md").unlink()
    (out / "leaderboard.md").mkdir()
    code, err = _run(capsys, out)  # edge and random: every board file would change
    _refused(code, err, f"{out}/leaderboard.md is a folder where a board file goes")
    assert {name: (out / name).read_bytes() for name in BOARD} == before
    assert not [p for p in out.iterdir() if p.name.endswith((".tmp", ".partial"))]
    (out / "leaderboard.md").rmdir()
    assert _run(capsys, out)[0] == 0  # the results were kept: the board is written now


def test_a_board_dir_that_cannot_take_the_board_is_refused_before_any_work(no_figures, tmp_path, capsys):
    board = tmp_path / "board"
    (board / "leaderboard-values.json").mkdir(parents=True)
    code, err = _run(capsys, tmp_path / "out", "--board-dir", str(board))
    assert len(err) == 1
    _refused(code, err, "leaderboard-values.json is a folder where a board file goes")
    assert not (tmp_path / "out").exists()


def test_the_wrote_line_names_each_board_file_once_when_board_dir_is_out(no_figures, tmp_path, capsys):
    out = tmp_path / "out"
    code, err = _run(capsys, out, "--board-dir", str(out))
    wrote = next(line for line in err if line.startswith("wrote: "))
    named = wrote.split(", ")[1:]
    assert code == 0 and len(named) == len(set(named)) and f"{out}/leaderboard.json" in named, wrote


# what killed runs left


def test_temporary_files_of_a_killed_write_are_removed_when_the_store_opens(out, capsys):
    left = []
    for target in (SHARD, RECORD, "run.json", "leaderboard.json"):  # as a run killed mid-write leaves them
        path = out / target
        left.append(path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp"))
        left[-1].write_text('{"half": ')
    mine = out / "results/pointing_game/notes.tmp"  # not a name the store gives: left alone
    mine.write_text("mine")
    fd, live = _temporary(out / "results/pointing_game/random.json")  # this process is writing it: kept
    try:
        assert _run(capsys, out)[0] == 0
        assert [p for p in left if p.exists()] == [] and mine.read_text() == "mine" and Path(live).exists()
    finally:
        os.close(fd)
        _drop(live)


# arrays: the declared size is checked before anything is inflated


def test_a_declared_shape_beyond_what_a_shard_can_hold_is_refused_before_inflating():
    entry = encode_array(np.ones((4, 3)))
    with pytest.raises(ValueError, match="declares 8000000000000000000000 bytes, over the"):
        decode_array({**entry, "shape": [10 ** 21]})
    with pytest.raises(ValueError, match="declares .* bytes, over the 4194304"):
        decode_values({"x": {**entry, "shape": [4, 10 ** 6]}}, rows=4)


def test_data_that_inflates_past_its_shape_is_refused_without_inflating_it_all(monkeypatch):
    inflated = []
    real = zlib.decompressobj

    class Counted:
        def __init__(self):
            self.inflater = real()

        def decompress(self, data, max_length=0):
            inflated.append(len(self.inflater.decompress(data, max_length)))
            return b"\0" * inflated[-1]

        def __getattr__(self, name):
            return getattr(self.inflater, name)

    monkeypatch.setattr(zlib, "decompressobj", Counted)
    with pytest.raises(ValueError, match="inflates to more than the 12 bytes"):
        decode_array({"dtype": "uint8", "shape": [12], "data": BOMB})
    assert sum(inflated) <= 13


# `check --out`: the refusals suggest what `check` has


def test_check_out_of_another_configuration_suggests_what_check_can_do(clean, tmp_path, capsys):
    other = tmp_path / "other"
    assert main([*RUN, "--out", str(other), "--seed", "1"]) == 0
    capsys.readouterr()
    code = main(["check", "random", "--against", str(clean / "leaderboard.json"), "--out", str(other),
                 "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    _refused(code, err, f"{other} holds results of another configuration", "choose another --out",
             "leave --out out: check then reruns in a temporary folder")
    assert "--fresh" not in err[-1] and "--yes" not in err[-1]


def test_check_out_holding_no_run_record_suggests_what_check_can_do(clean, tmp_path, capsys):
    other = tmp_path / "other"
    other.mkdir()
    (other / "run.json").write_text("[]")
    code = main(["check", "random", "--against", str(clean / "leaderboard.json"), "--out", str(other),
                 "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    _refused(code, err, "not a saliency-bench run record", "leave --out out")
    assert "--fresh" not in err[-1]
