"""The result store: records validated and digested, one run per output folder, files created per the umask."""
import hashlib
import json
import os
import sys
import threading
import time

import pytest

from saliency_bench import UserError
from saliency_bench.run.options import RunOptions
from saliency_bench.run.pipeline import run_benchmark
from saliency_bench.store.results import DIGEST, ResultStore, canonical, dump_json, record_digest

CONFIG = {"seed": 0}


def _options(tmp_path, **kw):
    base = dict(model="fake_vgg", checks=["mean_map"], methods=["edge"], out=str(tmp_path / "out"), batch_size=4,
                progress=False)
    return RunOptions(**{**base, **kw})


def _signed(record: dict) -> dict:
    """``record`` with a digest that matches it (so only its shape can be wrong)."""
    return {**record, DIGEST: record_digest(record)}


def _write(path, data) -> None:
    path.write_text(json.dumps(data))


def _folder(path, record) -> None:
    path.unlink()
    path.mkdir()
    (path / "note.txt").write_text("not a result")


def _edited(record: dict) -> dict:
    metrics = {"mean": {**record["metrics"]["mean"], "value": record["metrics"]["mean"]["value"] + 0.5}}
    return {**record, "metrics": metrics}


def _without(record: dict, key: str) -> dict:
    return {k: v for k, v in record.items() if k != key}


CORRUPTIONS = {  # name: (how the file is spoilt, the word of the warning)
    "empty list": (lambda p, r: p.write_text("[]"), "malformed"),
    "null": (lambda p, r: p.write_text("null"), "malformed"),
    "no metrics": (lambda p, r: _write(p, _signed(_without(_without(r, DIGEST), "metrics"))), "malformed"),
    "metrics a string": (lambda p, r: _write(p, _signed({**_without(r, DIGEST), "metrics": "high"})), "malformed"),
    "metric without value": (lambda p, r: _write(p, _signed({**_without(r, DIGEST), "metrics": {"mean": {"n": 1}}})),
                             "malformed"),
    "metric key with a line break": (
        lambda p, r: _write(p, _signed({**_without(r, DIGEST), "metrics": {"a\nb": "x"}})), "malformed"),
    "unknown status": (lambda p, r: _write(p, _signed({**_without(r, DIGEST), "status": "done"})), "malformed"),
    "n/a without reason": (lambda p, r: _write(p, _signed({**_without(r, DIGEST), "status": "n/a"})), "malformed"),
    "failed without error": (lambda p, r: _write(p, _signed({**_without(r, DIGEST), "status": "failed"})),
                             "malformed"),
    "plugin a list": (lambda p, r: _write(p, _signed({**_without(r, DIGEST), "plugin": []})), "malformed"),
    "params a string": (lambda p, r: _write(p, _signed({**_without(r, DIGEST), "params": "x"})), "malformed"),
    "another method's record": (lambda p, r: _write(p, _signed({**_without(r, DIGEST), "method": "random"})),
                                "malformed"),
    "no digest": (lambda p, r: _write(p, _without(r, DIGEST)), "malformed"),
    "hand-edited value": (lambda p, r: _write(p, _edited(r)), "tampered"),
    "folder in place of the file": (_folder, "unreadable"),
    "unreadable bytes": (lambda p, r: p.write_bytes(b"\xff\xfe{\x00"), "unreadable"),
    "truncated": (lambda p, r: p.write_text(json.dumps(r)[:25]), "unreadable"),
    "NaN value": (lambda p, r: p.write_text(json.dumps(_edited(r)).replace('"value": ', '"value": NaN, "x": ')),
                  "unreadable"),
}


def _stderr(message: str) -> None:
    """The CLI's log: one line on stderr."""
    print(message, file=sys.stderr)


def _warnings(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]


@pytest.mark.parametrize("corruption", list(CORRUPTIONS))
def test_a_spoilt_record_is_reported_in_one_line_and_recomputed(fakes, tmp_path, capsys, corruption):
    spoil, word = CORRUPTIONS[corruption]
    first = run_benchmark(_options(tmp_path), log=_stderr)
    path = first.store.path("edge", "mean_map")
    clean = first.store.get("edge", "mean_map")
    spoil(path, json.loads(path.read_text()))
    capsys.readouterr()
    again = run_benchmark(_options(tmp_path), log=_stderr)
    warnings = _warnings(capsys)
    assert len(warnings) == 1 and warnings[0].startswith(f"warning: {path}: {word} record (")
    assert warnings[0].endswith("); recomputing")
    assert again.computed == [("edge", "mean_map")]
    assert path.is_file() and again.store.get("edge", "mean_map") == clean
    assert _warnings(capsys) == []


def test_a_hand_edited_value_names_the_digest(fakes, tmp_path, capsys):
    first = run_benchmark(_options(tmp_path), log=_stderr)
    path = first.store.path("edge", "mean_map")
    _write(path, _edited(json.loads(path.read_text())))
    capsys.readouterr()
    assert first.store.get("edge", "mean_map") is None
    assert _warnings(capsys) == [f"warning: {path}: tampered record (digest mismatch); recomputing"]


def test_records_carry_a_digest_of_their_canonical_json(tmp_path):
    store = ResultStore(tmp_path, CONFIG, log=pytest.fail)
    store.put("m", "c", {"status": "ok", "metrics": {"x": {"value": 0.5, "ci_low": None, "ci_high": 1, "n": 3}}})
    stored = json.loads(store.path("m", "c").read_text())
    body = {k: v for k, v in stored.items() if k != DIGEST}
    assert stored[DIGEST] == hashlib.sha256(canonical(body).encode()).hexdigest()
    assert store.get("m", "c") == body  # returned without its digest (so it never reaches the leaderboard)
    store.close()


def test_speed_records_are_validated_too(tmp_path):
    messages = []
    store = ResultStore(tmp_path, CONFIG, log=messages.append)
    timing = {"status": "ok", "device": "cpu", "floor_ms_per_image": 1.0, "ms_per_image": 2.0, "ratio_to_floor": 2.0}
    store.put("m", "speed", timing, {"rounds": 3})
    assert store.get("m", "speed")["ratio_to_floor"] == 2.0 and messages == []
    store.put("m", "speed", {**timing, "ms_per_image": "fast"}, {"rounds": 3})
    assert store.get("m", "speed") is None
    assert messages == [f"warning: {store.path('m', 'speed')}: malformed record (no number 'ms_per_image'); "
                        "recomputing"]
    store.close()


@pytest.mark.parametrize("content", ["[]", "null", '{"runs": 1}', '{"config": [1]}', "{not json", "\xff"])
def test_a_run_record_of_the_wrong_shape_is_a_user_error(tmp_path, content):
    run_file = tmp_path / "run.json"
    run_file.write_text(content)
    with pytest.raises(UserError, match="run.json: not a saliency-bench run record.*--out.*--fresh") as info:
        ResultStore(tmp_path, CONFIG)
    assert str(run_file) in str(info.value) and "\n" not in str(info.value)
    assert run_file.read_text() == content  # the user's file is left alone
    ResultStore(tmp_path, CONFIG, fresh=True).close()  # --fresh starts the folder over
    assert json.loads(run_file.read_text()) == {"config": CONFIG}


def test_a_folder_in_place_of_run_json_is_a_user_error(tmp_path):
    (tmp_path / "run.json").mkdir()
    for fresh in (False, True):
        with pytest.raises(UserError, match="run.json is a folder"):
            ResultStore(tmp_path, CONFIG, fresh=fresh)


def test_fresh_still_wipes_and_another_configuration_is_still_refused(tmp_path):
    store = ResultStore(tmp_path, CONFIG)
    store.put("m", "c", {"status": "failed", "error": "x"})
    store.path("n", "c").mkdir()
    store.close()
    with pytest.raises(UserError, match="another configuration"):
        ResultStore(tmp_path, {"seed": 1})
    ResultStore(tmp_path, CONFIG, fresh=True).close()
    assert list((tmp_path / "results").glob("*/*")) == []


class OtherProcess:
    """A forked process that holds the folder (as another run would) until told to let go."""

    def __init__(self, folder, close: bool = True):
        self.go_read, self.go_write = os.pipe()
        self.ready_read, self.ready_write = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            self._child(folder, close)
        os.close(self.go_read)
        os.close(self.ready_write)
        assert os.read(self.ready_read, 1) == b"1"

    def _child(self, folder, close: bool) -> None:
        status = 1
        try:
            os.close(self.go_write)
            os.close(self.ready_read)
            store = ResultStore(folder, CONFIG, log=lambda m: None)
            os.write(self.ready_write, b"1")
            os.read(self.go_read, 1)  # returns when the parent closes its end
            if close:
                store.close()
            status = 0
        finally:
            os._exit(status)

    def release(self) -> None:
        """Let go (close, or just exit) and wait for the process to end."""
        os.close(self.go_write)
        os.close(self.ready_read)
        assert os.waitpid(self.pid, 0)[1] == 0


def test_a_second_run_on_the_folder_is_refused_until_the_first_closes(tmp_path):
    other = OtherProcess(tmp_path)
    try:
        with pytest.raises(UserError) as info:
            ResultStore(tmp_path, CONFIG)
    finally:
        other.release()
    assert str(info.value) == (f"output folder {tmp_path} is in use by another run (pid {other.pid}); "
                               "wait for it, use --wait, or choose another --out")
    ResultStore(tmp_path, CONFIG).close()


def test_the_folder_is_released_when_the_holding_process_exits(tmp_path):
    other = OtherProcess(tmp_path, close=False)
    other.release()
    ResultStore(tmp_path, CONFIG).close()


def test_wait_blocks_until_the_other_run_lets_go(tmp_path):
    other = OtherProcess(tmp_path)
    opened, messages = [], []
    thread = threading.Thread(target=lambda: opened.append(ResultStore(tmp_path, CONFIG, wait=True,
                                                                       log=messages.append)))
    thread.start()
    try:
        time.sleep(0.3)
        assert thread.is_alive() and opened == []
    finally:
        other.release()
    thread.join(timeout=5)
    assert not thread.is_alive() and len(opened) == 1
    assert messages == [f"waiting: output folder {tmp_path} is in use by another run (pid {other.pid})"]
    opened[0].close()


def test_stores_of_one_process_share_the_folder_until_the_last_closes(tmp_path):
    first = ResultStore(tmp_path, CONFIG)
    with ResultStore(tmp_path, CONFIG):  # a resumed run in the same interpreter joins the hold
        pass
    with pytest.raises(UserError, match="another configuration"):
        ResultStore(tmp_path, {"seed": 1})  # a refused store gives its hold back
    pid = os.fork()
    if pid == 0:
        try:
            ResultStore(tmp_path, CONFIG)
            code = 0
        except UserError:
            code = 3
        os._exit(code)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 3  # still held by `first`
    first.close()
    ResultStore(tmp_path, CONFIG).close()


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_files_honour_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        store = ResultStore(tmp_path / "out", CONFIG)
        store.put("m", "c", {"status": "failed", "error": "x"})
        dump_json({"schema": 1}, tmp_path / "leaderboard.json")
        store.close()
    finally:
        os.umask(old)
    for path in (tmp_path / "out" / "run.json", store.path("m", "c"), tmp_path / "leaderboard.json",
                 tmp_path / "out" / ".lock"):
        assert path.stat().st_mode & 0o777 == mode, path
    assert not list(tmp_path.rglob("*.tmp"))
