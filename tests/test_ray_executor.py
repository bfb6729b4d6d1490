"""``--executor ray``: the same results as the local executor, byte for byte, on a real local Ray cluster.

Ray is a test dependency (``pip install -e ".[test,ray]"``): without it these tests fail, they are not skipped.
Every Ray run here is started in a session of its own, and every process left in that session (the local
cluster's GCS, raylet, agents and workers) is killed afterwards, so no Ray process outlives a test; a cluster
started with ``ray start`` is stopped the same way, never with ``ray stop`` (which stops every cluster on the machine).
"""
from __future__ import annotations

import json
import os
import pickle
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

import pytest
import ray  # noqa: F401 - a missing Ray fails this module (the README's test set-up installs it)

from saliency_bench.run import ray_executor
from saliency_bench.errors import UserError
from saliency_bench.run.options import RunOptions
from saliency_bench.run.pipeline import run_benchmark
from saliency_bench.run.plan import Task

PLUGINS = "saliency-bench-aggregation"
CHECKS = ["pointing_game", "restricted_pointing_game", "class_sensitivity", "randomization"]
METHODS = ["random", "gradcam@B5", "gradcam_pos@B5"]  # the seeded control, and two methods sharing one pass
# 16 images in shards of 8: 2 shards x 2 method groups, the 3 map checks in one pass (shared maps), and
# 1 shard (8 images) x 2 groups of randomization
TASKS = 6
ARGS = ["run", "-m", *METHODS, "--checks", *CHECKS, "--limit", "16", "--batch-size", "8", "--shard-size", "8",
        "--param", "randomization.images=8", "--no-speed", "--no-progress"]
TOKEN = secrets.token_hex(32)  # the test clusters' token: Ray reads no ~/.ray/auth_token and writes none
TIMEOUT = 300


_RAY_TMPDIR: dict[str, str] = {}


@pytest.fixture(scope="module", autouse=True)
def ray_temp_dir():
    """One short folder for the session files (logs, sockets) of every local cluster here, removed afterwards."""
    _RAY_TMPDIR["path"] = tempfile.mkdtemp(prefix="sbray", dir="/tmp")  # short: socket paths must fit in 107 bytes
    yield _RAY_TMPDIR["path"]
    shutil.rmtree(_RAY_TMPDIR.pop("path"), ignore_errors=True)


def _env(**extra: str) -> dict:
    env = {key: value for key, value in os.environ.items() if key not in ("RAY_ADDRESS", "RAY_AUTH_TOKEN_PATH")}
    return {**env, "SALIENCY_BENCH_PLUGINS": PLUGINS, "TQDM_DISABLE": "1", "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN": TOKEN, "RAY_USAGE_STATS_ENABLED": "0", "RAY_TMPDIR": _RAY_TMPDIR["path"], **extra}


# -- processes: a run and its Ray cluster live in one session, and are killed by it ----------------------------------

def _session_of(pid: int) -> tuple[int, str] | None:
    """(session id, state) of a process, None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) ": state ppid pgrp session ...
    return int(fields[3]), fields[0]


def _session_pids(sid: int) -> list[int]:
    """The live processes of session ``sid`` (zombies excluded: they hold nothing and cannot be killed)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            found = _session_of(int(entry.name))
            if found is not None and found[0] == sid and found[1] != "Z":
                pids.append(int(entry.name))
    return pids


def _kill_session(sid: int) -> None:
    """SIGKILL every process of session ``sid`` until none is left (a dying raylet may still spawn one)."""
    deadline = time.time() + 30
    while (pids := _session_pids(sid)) and time.time() < deadline:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.1)
    assert not _session_pids(sid), f"processes of session {sid} survived SIGKILL"


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _start(argv: list[str], env: dict, log: Path) -> subprocess.Popen:
    with open(log, "w") as handle:
        return subprocess.Popen([sys.executable, "-m", "saliency_bench", *argv], env=env, stdout=handle,
                                stderr=subprocess.STDOUT, start_new_session=True)


def _cli(argv: list[str], env: dict, log: Path) -> tuple[int, str]:
    """Run the CLI in a new session to the end; whatever it leaves in its session is killed."""
    proc = _start(argv, env, log)
    try:
        proc.wait(timeout=TIMEOUT)
    finally:
        _kill_session(proc.pid)
        proc.wait()
    return proc.returncode, log.read_text()


def _argv(folder: Path, *extra: str, board: bool = False) -> list[str]:
    """The command into ``folder/out`` (a board there too), and with ``board`` one more in ``folder/board``."""
    return [*ARGS, "--out", str(folder / "out"), *(["--board-dir", str(folder / "board")] if board else []), *extra]


def _run(folder: Path, *extra: str, env: dict | None = None, board: bool = False) -> tuple[int, str]:
    folder.mkdir(parents=True, exist_ok=True)
    return _cli(_argv(folder, *extra, board=board), env or _env(), folder / "log.txt")


# -- what is compared ------------------------------------------------------------------------------------------------

def _results(folder: Path) -> dict[str, bytes]:
    """Every (method, check) result file's bytes, and the board (leaderboard.json) of --out and of --board-dir."""
    files = {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted((folder / "out" / "results").glob("*/*.json"))}
    for board in ("out/leaderboard.json", "board/leaderboard.json"):
        if (folder / board).exists():
            files[board] = (folder / board).read_bytes()
    return files


def _shards(folder: Path) -> dict[str, tuple[int, bytes]]:
    return {p.relative_to(folder).as_posix(): (p.stat().st_mtime_ns, p.read_bytes())
            for p in sorted((folder / "out" / "results").glob("*/*/*.json"))}


def _assert_same(folder: Path, reference: dict[str, bytes]) -> None:
    results = _results(folder)
    assert len([name for name in results if name.startswith("out/results/")]) == len(METHODS) * len(CHECKS)
    assert set(results) <= set(reference) and "out/leaderboard.json" in results
    for name, data in results.items():
        assert data == reference[name], f"{name} differs from the local executor's"
    for name in results:
        if name.startswith("out/results/"):
            assert json.loads(results[name])["status"] == "ok", name


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, bytes]:
    """The local executor's results and board of the same command."""
    folder = tmp_path_factory.mktemp("local")
    code, log = _run(folder, board=True)
    assert code == 0, log
    assert (folder / "board" / "leaderboard.json").read_bytes() == (folder / "out" / "leaderboard.json").read_bytes()
    return _results(folder)


# -- the CLI on real Ray -----------------------------------------------------------------------------------------------

def test_local_cluster_gives_the_local_executors_results(reference, tmp_path):
    code, log = _run(tmp_path, "--executor", "ray", board=True)
    assert code == 0, log
    assert "board/leaderboard.json" in _results(tmp_path)
    assert f"ray: {TASKS} task(s) on a local Ray cluster of" in log and f"ray: {TASKS} task(s) done in" in log, log
    assert "Traceback" not in log and "FAILED" not in log, log
    _assert_same(tmp_path, reference)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_ray_start_cluster_at_an_address_gives_the_same_results(reference, tmp_path):
    port = _free_port()
    temp = tempfile.mkdtemp(prefix="sbray", dir="/tmp")  # the cluster's own session files (short, like the above)
    env = _env()
    ray_cli = str(Path(sys.executable).with_name("ray"))
    with open(tmp_path / "cluster.txt", "w") as handle:
        cluster = subprocess.Popen(
            [ray_cli, "start", "--head", "--block", "--num-cpus", "2", "--port", str(port), "--temp-dir", temp,
             "--node-ip-address", "127.0.0.1", "--include-dashboard", "false", "--disable-usage-stats"],
            env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 120
        while "Ray runtime started" not in (tmp_path / "cluster.txt").read_text():
            assert cluster.poll() is None and time.time() < deadline, (tmp_path / "cluster.txt").read_text()
            time.sleep(0.2)
        code, log = _run(tmp_path / "run", "--executor", "ray", "--ray-address", f"127.0.0.1:{port}", env=env)
        assert code == 0, log
        assert f"on the Ray cluster at 127.0.0.1:{port} of 2 CPU(s)" in log, log
        _assert_same(tmp_path / "run", reference)
    finally:
        cluster.send_signal(signal.SIGTERM)  # `ray start --block` stops the processes it started
        try:
            cluster.wait(timeout=60)
        finally:
            _kill_session(cluster.pid)
            cluster.wait()
            shutil.rmtree(temp, ignore_errors=True)


def test_a_worker_killed_in_a_task_is_retried_and_the_results_are_the_same(reference, tmp_path):
    tmp_path.mkdir(exist_ok=True)
    proc = _start(_argv(tmp_path, "--executor", "ray"), _env(), tmp_path / "log.txt")
    killed = None
    try:
        deadline = time.time() + TIMEOUT
        while proc.poll() is None and time.time() < deadline:
            if killed is None:
                busy = [pid for pid in _session_pids(proc.pid)
                        if _cmdline(pid).startswith(f"ray::{ray_executor.TASK_FUNCTION}")]
                if busy:
                    os.kill(busy[0], signal.SIGKILL)
                    killed = busy[0]
            time.sleep(0.02)
        assert proc.poll() is not None, "the run did not finish"
    finally:
        _kill_session(proc.pid)
        proc.wait()
    log = (tmp_path / "log.txt").read_text()
    assert killed is not None, "no worker was seen running a task"
    assert proc.returncode == 0, log
    assert "FAILED" not in log, log
    _assert_same(tmp_path, reference)


def test_killed_driver_resumes_from_its_stored_shards(reference, tmp_path):
    tmp_path.mkdir(exist_ok=True)
    argv = _argv(tmp_path, "--executor", "ray")
    proc = _start(argv, _env(), tmp_path / "first.txt")
    try:
        deadline = time.time() + TIMEOUT
        while not _shards(tmp_path) and proc.poll() is None and time.time() < deadline:
            time.sleep(0.02)
    finally:
        _kill_session(proc.pid)  # the driver and its local cluster: nothing is shut down cleanly
        proc.wait()
    stored = _shards(tmp_path)
    assert stored, "no shard was stored before the driver was killed:\n" + (tmp_path / "first.txt").read_text()
    finished = list((tmp_path / "out" / "results").glob("*/*.json"))
    assert len(finished) < len(METHODS) * len(CHECKS), "killed too late to test resume"
    code, log = _cli(argv, _env(), tmp_path / "second.txt")
    assert code == 0, log
    assert "shard(s) already stored" in log, log
    after = _shards(tmp_path)
    for name, (mtime, data) in stored.items():  # never recomputed: the same file, untouched
        assert after[name] == (mtime, data), f"{name} was recomputed"
    _assert_same(tmp_path, reference)


def test_without_ray_the_run_is_refused_in_one_line(tmp_path):
    hidden = tmp_path / "no_ray" / "ray"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text("raise ImportError(\"No module named 'ray' (hidden by the test)\")\n")
    code, log = _run(tmp_path / "run", "--executor", "ray", env=_env(PYTHONPATH=str(hidden.parent)))
    lines = log.strip().splitlines()
    assert code == 2, log
    assert lines[-1] == f"saliency-bench: error: {ray_executor.RAY_MISSING}", log
    assert all(line.startswith(("run: ", "warning: ")) for line in lines[:-1]), log  # at most the run's header before
    assert "Traceback" not in log


# -- the driver's logic, in this process, with Ray stood in for (order, failures) ------------------------------------

class FakeRayError(Exception):
    pass


class Ref:
    """A task submitted to the stand-in Ray (hashable, like an ObjectRef)."""

    def __init__(self, function, spec):
        self.function, self.spec = function, spec


def fake_ray(crash=lambda task: False) -> types.ModuleType:
    """A stand-in ``ray`` that runs each task here, hands them back last first, and fails those ``crash`` picks."""
    module = types.ModuleType("ray")
    module.exceptions = types.SimpleNamespace(RayError=FakeRayError)
    module.init = lambda **kwargs: None
    module.shutdown = lambda: None
    module.cluster_resources = lambda: {"CPU": 2.0}
    module.cancel = lambda ref: None

    class Remote:
        def __init__(self, function):
            self.function = function

        def options(self, **options):
            assert options == {"num_cpus": 1, "num_gpus": 0, "max_retries": ray_executor.MAX_RETRIES,
                               "retry_exceptions": False}
            return self

        def remote(self, spec):
            return Ref(self.function, spec)

    def get(ref):
        if crash(ref.spec["task"]):
            raise FakeRayError("The worker died unexpectedly\nwhile executing this task.")
        return ref.function(pickle.loads(pickle.dumps(ref.spec)))  # what a worker gets: a copy

    module.remote = Remote
    module.wait = lambda refs, num_returns=1: ([refs[-1]], refs[:-1])
    module.get = get
    return module


IN_PROCESS_CHECKS = ["pointing_game", "restricted_pointing_game"]


def _in_process(folder: Path, executor: str) -> RunOptions:
    """edge and random on 16 images in shards of 8: 2 methods x 2 shards, both games in one pass = 4 tasks."""
    return RunOptions(methods=["edge", "random"], checks=IN_PROCESS_CHECKS, limit=16, batch_size=8, shard_size=8,
                      speed=False, progress=False, out=str(folder / executor), executor=executor)


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted((folder / "results").glob("*/*.json"))}


@pytest.fixture(scope="module")
def local_files(tmp_path_factory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("in_process")
    run_benchmark(_in_process(folder, "local"), log=lambda line: None)
    return _files(folder / "local")


def test_tasks_finishing_in_any_order_give_the_local_results(local_files, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", fake_ray())
    lines: list[str] = []
    report = run_benchmark(_in_process(tmp_path, "ray"), log=lines.append)
    assert not report.failures
    assert _files(tmp_path / "ray") == local_files
    assert set(report.seconds) == {"+".join(IN_PROCESS_CHECKS)}  # both pointing games in one pass per shard
    assert any(line.startswith("ray: 4 task(s) on a local Ray cluster of 2 CPU(s), 0 GPU(s)") for line in lines), lines


def test_a_task_ray_cannot_run_fails_its_methods_on_that_shard_only(local_files, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", fake_ray(
        crash=lambda task: task.check == "pointing_game" and "edge" in task.names and task.start == 8))
    lines: list[str] = []
    report = run_benchmark(_in_process(tmp_path, "ray"), log=lines.append)
    # the task computed edge's maps for both pointing games (shared maps): both fail on that shard
    results = [f"results/{check}/edge.json" for check in IN_PROCESS_CHECKS]
    for result in results:
        failed = json.loads((tmp_path / "ray" / result).read_text())
        assert failed["status"] == "failed"
        assert failed["error"] == ("Ray could not run the task (FakeRayError: The worker died unexpectedly while "
                                   "executing this task.)")
    assert report.failures == {"edge": failed["error"]}
    assert sum(line.startswith("FAILED edge on pointing_game") for line in lines) == 1
    local, ray_files = local_files, _files(tmp_path / "ray")
    assert {k: v for k, v in ray_files.items() if k not in results} == {
        k: v for k, v in local.items() if k not in results}
    # a rerun computes the failed shards again, and only them (edge's first shard of each game is kept)
    monkeypatch.setitem(sys.modules, "ray", fake_ray())
    lines.clear()
    report = run_benchmark(_in_process(tmp_path, "ray"), log=lines.append)
    assert not report.failures and _files(tmp_path / "ray") == local
    assert any(line.startswith("ray: 1 task(s)") and "2 shard(s) already stored" in line for line in lines), lines


def test_a_run_whose_shards_are_all_stored_merges_them_without_a_cluster(local_files, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", fake_ray())
    run_benchmark(_in_process(tmp_path, "ray"), log=lambda line: None)
    for result in (tmp_path / "ray" / "results").glob("*/*.json"):  # as if killed after its last shard, before merging
        result.unlink()
    stand_in = fake_ray()
    stand_in.init = lambda **kwargs: pytest.fail("started a Ray cluster with nothing to compute")
    monkeypatch.setitem(sys.modules, "ray", stand_in)
    lines: list[str] = []
    report = run_benchmark(_in_process(tmp_path, "ray"), log=lines.append)
    assert "ray: nothing to compute; 8 shard(s) already stored" in lines
    assert _files(tmp_path / "ray") == local_files and len(report.computed) == 4
    assert report.seconds == {}


def _spec(tmp_path: Path) -> dict:
    """What the driver sends for edge on images 0-7 of pointing_game (default model, 16 images)."""
    from saliency_bench.run.versions import package_versions
    from saliency_bench.store.files import plain
    from saliency_bench.plugins import get_plugin_manager
    from saliency_bench.checks.params import check_parameters
    from saliency_bench.run.session import open_suite

    registry = get_plugin_manager().registry()
    options = RunOptions(limit=16, batch_size=8, progress=False, device="cpu")
    suite = open_suite(options, registry)
    check = registry.checks["pointing_game"]
    return {"options": options, "task": Task("pointing_game", ("edge",), 0, 8, 0),
            "params": {"pointing_game": check_parameters(check.obj, suite, {})}, "root": str(tmp_path),
            "config": plain({**suite.describe(), "weights_sha256": suite.model.weights_sha256,
                             "versions": package_versions()}),
            "plugins": os.environ.get("SALIENCY_BENCH_PLUGINS"), "whole": False,
            "check_provenance": {"pointing_game": [check.distribution, check.version]},
            "provenance": {"edge": registry.provenance("edge")}}


def test_a_worker_refuses_another_configuration_in_one_line(tmp_path):
    spec = _spec(tmp_path)
    outcome = ray_executor.saliency_bench_task({**spec, "config": {**spec["config"], "seed": 1}})
    assert set(outcome) == {"user_error", "pid"}
    message = outcome["user_error"]
    assert message.startswith("the Ray worker on ") and "another configuration than this run (seed: 1 != 0)" in message
    assert "\n" not in message
    assert not list(tmp_path.rglob("*.json"))


def test_a_worker_refuses_a_method_of_another_plugin_version(tmp_path):
    spec = _spec(tmp_path)
    outcome = ray_executor.saliency_bench_task(
        {**spec, "provenance": {"edge": {**spec["provenance"]["edge"], "version": "0.0.1"}}})
    assert "method 'edge' is " in outcome["user_error"] and "install the same plugins on every node" in outcome["user_error"]


def test_a_worker_loads_the_suite_once_and_keeps_it(tmp_path, monkeypatch):
    spec = _spec(tmp_path)
    ray_executor._CONTEXT.clear()
    first = ray_executor.saliency_bench_task(spec)
    assert first.get("statuses") == {"edge": "ok"}, first
    context = next(iter(ray_executor._CONTEXT.values()))
    monkeypatch.setattr("saliency_bench.run.session.open_suite", lambda *a, **k: pytest.fail("opened the suite again"))
    second = ray_executor.saliency_bench_task({**spec, "task": Task("pointing_game", ("edge",), 8, 16, 0)})
    assert second.get("statuses") == {"edge": "ok"}, second
    assert list(ray_executor._CONTEXT.values()) == [context]
    assert sorted(p.name for p in (tmp_path / "results" / "pointing_game" / "edge").iterdir()) == [
        "000000000-000000008.json", "000000008-000000016.json"]


def test_missing_ray_is_a_user_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(UserError, match=r"^--executor ray needs Ray: pip install 'saliency-bench\[ray\]'$"):
        ray_executor.require_ray()
