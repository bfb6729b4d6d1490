"""Two processes on one folder (issue 25): a board folder is locked like a run folder, from the moment a run
decides to write it until its board is published; a `check` killed with SIGKILL leaves nothing for good."""
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from saliency_bench.cli import main
from saliency_bench.run.options import RunOptions
from saliency_bench.run.pipeline import run_benchmark

RUN = ["run", "-m", "edge", "random", "--checks", "pointing_game", "--limit", "4", "--batch-size", "2",
       "--shard-size", "2", "--no-speed", "--no-progress"]
RESPONSE_SECONDS = 120  # the most a child may take to reach its pause (a bound on failure, never a delay)

# A child process that runs the CLI with ``argv`` and stops at PAUSED (a module attribute it replaces), saying so
# on stdout, until a line arrives on its stdin.
CHILD = """
import sys
module, name, argv = sys.argv[1], sys.argv[2], sys.argv[3:]
import importlib
target = importlib.import_module(module)
real = getattr(target, name)

def paused(*args, **kwargs):
    print("paused", flush=True)
    sys.stdin.readline()
    return real(*args, **kwargs)

setattr(target, name, paused)
import saliency_bench.board.leaderboard as leaderboard
leaderboard.draw_figures = lambda *args, **kwargs: []
from saliency_bench.cli import main
sys.exit(main(argv))
"""


class PausedChild:
    """The CLI in another process, stopped inside ``module.name`` until ``resume()`` (or ``kill()``)."""

    def __init__(self, module: str, name: str, argv: list[str], env: dict | None = None):
        self.process = subprocess.Popen([sys.executable, "-c", CHILD, module, name, *argv], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                        env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})
        line = self.process.stdout.readline()  # blocks until the child is inside the paused function
        if line != "paused\n":
            self.process.kill()
            pytest.fail(f"the child did not pause: {line!r} {self.process.communicate()[1][-2000:]}")

    def resume(self) -> tuple[int, str]:
        """Let it go on; its exit code and stderr."""
        _, err = self.process.communicate("\n", timeout=RESPONSE_SECONDS)
        return self.process.returncode, err

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.communicate(timeout=RESPONSE_SECONDS)


@pytest.fixture(scope="module")
def no_figures(one_thread):
    """The board without its figures (no figure is compared here), torch on one thread (tiny tensors)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("saliency_bench.board.leaderboard.draw_figures", lambda *args, **kwargs: [])
        yield


def _options(out: Path, board: Path, wait: bool) -> RunOptions:
    """RUN's options (the same configuration) into ``out``, with ``board`` as --board-dir."""
    return RunOptions(methods=["edge", "random"], checks=["pointing_game"], limit=4, batch_size=2, shard_size=2,
                      out=str(out), board_dir=str(board), board=True, wait=wait, progress=False)


def test_a_second_run_on_the_same_board_dir_is_refused_or_waits(no_figures, tmp_path, capsys):
    board = tmp_path / "board"
    first = PausedChild("saliency_bench.board.publish", "publish",
                        [*RUN, "--out", str(tmp_path / "a"), "--board-dir", str(board)])
    try:
        code = main([*RUN, "--out", str(tmp_path / "b"), "--board-dir", str(board)])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and err == [f"saliency-bench: error: board folder {board} is in use by another run "
                                     f"(pid {first.process.pid}); wait for it, use --wait, or choose another "
                                     "--board-dir"]
        assert not (tmp_path / "b").exists()  # refused before any work
        waiting, reports, lines = threading.Event(), [], []

        def log(line: str) -> None:
            lines.append(line)
            if line.startswith("waiting: "):
                waiting.set()

        second = threading.Thread(target=lambda: reports.append(run_benchmark(_options(tmp_path / "c", board, True),
                                                                              log=log)))
        second.start()
        assert waiting.wait(RESPONSE_SECONDS), lines
        assert not (tmp_path / "c" / "results").exists()  # it waits before it opens its own store
    finally:
        code, err = first.resume()
    second.join(RESPONSE_SECONDS)
    assert code == 0, err
    assert not second.is_alive() and len(reports) == 1
    reports[0].store.close()
    assert lines[0] == f"waiting: board folder {board} is in use by another run (pid {first.process.pid})"
    assert (board / "leaderboard.json").read_bytes() == (tmp_path / "a" / "leaderboard.json").read_bytes()


def test_every_run_takes_its_folders_in_one_order(tmp_path, monkeypatch):
    """Two runs each waiting for a folder the other holds would wait forever: every run locks its folders sorted,
    so the one that got the first folder gets the others too."""
    from saliency_bench.store import locking

    taken = []

    class Recorded:
        def __init__(self, folder, **kwargs):
            taken.append(Path(folder).name)

        def close(self):
            taken.append("released")

    monkeypatch.setattr(locking, "FolderLock", Recorded)
    folders = [(tmp_path / "y", "output folder", "--out"), (tmp_path / "x", "board folder", "--board-dir")]
    locking.release(locking.hold_folders(folders, wait=True, log=None))
    locking.release(locking.hold_folders(folders[::-1], wait=True, log=None))
    assert taken == ["x", "y", "released", "released"] * 2


def test_a_refused_folder_releases_the_folders_taken_before_it(tmp_path):
    from saliency_bench import UserError
    from saliency_bench.store import locking

    ready_read, ready_write = os.pipe()
    go_read, go_write = os.pipe()
    pid = os.fork()
    if pid == 0:  # another run holding the board folder "b"
        try:
            os.close(ready_read)
            os.close(go_write)
            (tmp_path / "b").mkdir()
            held = locking.FolderLock(tmp_path / "b")  # noqa: F841 (kept until the process exits)
            os.write(ready_write, b"1")
            os.read(go_read, 1)
        finally:
            os._exit(0)
    os.close(ready_write)
    os.close(go_read)
    try:
        assert os.read(ready_read, 1) == b"1"  # b"" if the child failed: never a hang
        with pytest.raises(UserError, match=f"board folder {tmp_path / 'b'} is in use by another run \\(pid {pid}\\)"):
            locking.hold_folders([(tmp_path / "a", "output folder", "--out"),
                                  (tmp_path / "b", "board folder", "--board-dir")], wait=False, log=None)
        assert not locking.is_locked(tmp_path / "a")
    finally:
        os.write(go_write, b"1")
        os.waitpid(pid, 0)


def test_a_check_killed_with_sigkill_leaves_a_folder_the_next_check_removes(no_figures, tmp_path, capsys,
                                                                           monkeypatch):
    import tempfile

    board = tmp_path / "board"
    assert main([*RUN, "--out", str(board)]) == 0
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    check = ["check", "random", "--against", str(board / "leaderboard.json"), "--no-progress"]
    killed = PausedChild("saliency_bench.board.recheck", "rerun_under_board", check, env={"TMPDIR": str(scratch)})
    killed.kill()
    left = list(scratch.iterdir())
    assert [p.name.startswith(f"saliency-bench-check-{killed.process.pid}-") for p in left] == [True]
    older = scratch / "saliency-bench-check-abc123"  # named without a pid (an older version): not judged
    older.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    seen = []
    from saliency_bench.board import recheck

    real = recheck.rerun_under_board

    def spy(*args, **kwargs):
        seen.append(Path(kwargs["out"]))
        assert not left[0].exists()  # removed before this check's rerun
        return real(*args, **kwargs)

    monkeypatch.setattr(recheck, "rerun_under_board", spy)
    assert main(check) == 0, capsys.readouterr().err
    assert seen[0].name.startswith(f"saliency-bench-check-{os.getpid()}-") and seen[0].parent == scratch
    assert list(scratch.iterdir()) == [older]
