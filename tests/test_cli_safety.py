"""Nothing the user did not ask for is deleted or overwritten; what a person sees (header, lines, digest, help)."""
import argparse
import io
import json

import pytest

from saliency_bench.cli import main
from saliency_bench.cli.parser import build_parser


def _options(*argv):
    """RunOptions of ``saliency-bench run ARGV``."""
    from saliency_bench.run.options import options_from_arguments as run_options

    return run_options(build_parser().parse_args(["run", *argv]))

RUN = ["--model", "fake_vgg", "--checks", "mean_map", "--no-progress", "--no-speed"]


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def full_board(fakes, capsys, tmp_path):
    """A folder holding the board of a two-method run (as the committed board is a whole run's)."""
    board = tmp_path / "board"
    code, _, err = _run(capsys, "run", "-m", "edge", "random", *RUN, "--out", str(tmp_path / "full"),
                        "--board-dir", str(board))
    assert code == 0, err
    return board


def _snapshot(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def test_a_partial_run_never_overwrites_a_board_with_rows_it_lacks(full_board, capsys, tmp_path):
    before = _snapshot(full_board)
    code, _, err = _run(capsys, "run", "-m", "edge", *RUN, "--out", str(tmp_path / "part"),
                        "--board-dir", str(full_board))
    assert code == 2 and "holds 1 row(s) this run does not compute (random)" in err
    assert "nothing was run" in err and len(err.strip().splitlines()) == 1
    assert _snapshot(full_board) == before
    assert not (tmp_path / "part").exists()  # refused before any work


def test_a_partial_run_writes_its_board_into_a_folder_without_one(full_board, capsys, tmp_path):
    code, _, err = _run(capsys, "run", "-m", "edge", *RUN, "--out", str(tmp_path / "part"),
                        "--board-dir", str(tmp_path / "mine"))
    assert code == 0, err
    assert set(json.loads((tmp_path / "mine" / "leaderboard.json").read_text())["methods"]) == {"edge"}


def test_a_board_of_another_configuration_is_not_overwritten(full_board, capsys, tmp_path):
    before = _snapshot(full_board)
    code, _, err = _run(capsys, "run", "-m", "edge", "random", *RUN, "--limit", "3", "--out", str(tmp_path / "few"),
                        "--board-dir", str(full_board))
    assert code == 2 and "another configuration (images" in err and "results are kept" in err
    assert _snapshot(full_board) == before
    assert (tmp_path / "few" / "results" / "mean_map" / "edge.json").exists()  # the work is not lost


def test_a_partial_run_without_board_dir_writes_no_top_level_board(fakes, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = _run(capsys, "run", "-m", "edge", "--model", "fake_vgg", "--checks", "mean_map", "--no-progress",
                        "--no-speed")
    assert code == 0, err
    assert not (tmp_path / "leaderboard.json").exists() and not (tmp_path / "leaderboard.md").exists()
    assert (tmp_path / "runs" / "fake_vgg-default" / "leaderboard.json").exists()


def test_default_out_names_every_setting_that_changes_results():
    from saliency_bench.run.options import default_out

    assert default_out(_options("-m", "x", "--limit", "32", "--seed", "3")) == "runs/tiny_vgg-default-n32-seed3"
    assert default_out(_options("--all")) == "runs/tiny_vgg-default"


def test_another_configuration_suggests_another_out_before_fresh(fakes, capsys, tmp_path):
    out = str(tmp_path / "o")
    assert _run(capsys, "run", "-m", "edge", *RUN, "--out", out)[0] == 0
    code, _, err = _run(capsys, "run", "-m", "edge", *RUN, "--out", out, "--limit", "3")
    assert code == 2
    assert err.index("choose another --out") < err.index("--fresh --yes") and "1 stored result(s)" in err


def test_fresh_says_what_it_deletes_and_needs_yes_off_a_terminal(fakes, capsys, tmp_path, monkeypatch):
    out = tmp_path / "o"
    assert _run(capsys, "run", "-m", "edge", "random", *RUN, "--out", str(out))[0] == 0
    kept = (out / "results" / "mean_map" / "edge.json").read_bytes()
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # not a terminal
    code, _, err = _run(capsys, "run", "-m", "edge", *RUN, "--out", str(out), "--fresh")
    assert code == 2 and "--fresh deletes the 2 result(s) stored in" in err and "--yes" in err
    assert (out / "results" / "mean_map" / "edge.json").read_bytes() == kept
    assert _run(capsys, "run", "-m", "edge", *RUN, "--out", str(out), "--fresh", "--yes")[0] == 0
    assert not (out / "results" / "mean_map" / "random.json").exists()


def test_fresh_asks_on_a_terminal(fakes, capsys, tmp_path, monkeypatch):
    out = tmp_path / "o"
    assert _run(capsys, "run", "-m", "edge", *RUN, "--out", str(out))[0] == 0

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr("sys.stdin", Terminal("n\n"))
    code, _, err = _run(capsys, "run", "-m", "edge", *RUN, "--out", str(out), "--fresh")
    assert code == 2 and "nothing deleted" in err
    assert (out / "results" / "mean_map" / "edge.json").exists()


def test_header_before_the_work_and_digest_with_every_file_at_the_end(fakes, capsys, tmp_path):
    code, _, err = _run(capsys, "run", "-m", "edge", "raises", *RUN, "--out", str(tmp_path / "o"))
    assert code == 1
    lines = err.strip().splitlines()
    header = next(l for l in lines if l.startswith("run: "))
    for part in ("model fake_vgg", "dataset squares", "images", "2 method(s)", "checks mean_map", "device cpu",
                 str(tmp_path / "o")):
        assert part in header
    assert lines.index(header) < next(i for i, l in enumerate(lines) if l.startswith("FAILED raises"))
    wrote = next(l for l in lines if l.startswith("wrote: "))
    assert "leaderboard.md" in wrote and "leaderboard.json" in wrote and "result files" in wrote
    assert any(l.startswith("FAILED raises: ") for l in lines[lines.index(wrote):])
    assert any(l.startswith(("pass overall", "fail overall")) for l in lines)


def test_plain_progress_lines_off_a_terminal_never_carriage_returns():
    from saliency_bench.harness.progress import plain_lines, progress

    stream = io.StringIO()
    assert list(plain_lines(range(5), 5, "pointing_game [methods 1-3 of 9: gradcam +2]", stream, interval=0)) == \
        list(range(5))
    text = stream.getvalue()
    assert "\r" not in text and text.count("\n") == 5 and "5/5 batches" in text
    quiet = io.StringIO()
    list(plain_lines(range(5), 5, "x", quiet, interval=3600))
    assert quiet.getvalue().count("\n") == 1  # only the final line within the interval
    assert list(progress(range(3), 3, "x", enabled=False, stream=stream)) == [0, 1, 2]


def test_the_bar_counts_methods_not_groups():
    from saliency_bench.run.plan import progress_label

    assert progress_label(3, ["cumulative_gradcam", "gradcam@B1", "gradcam@B2"], 37) == \
        "methods 4-6 of 37: cumulative_gradcam +2 in one shared pass"
    assert progress_label(0, ["gradient"], 2) == "method 1 of 2: gradient"


def test_a_usage_error_has_one_prefix(capsys):
    code, _, err = _run(capsys, "run", "--all", "--limit", "x")
    assert code == 2 and err.startswith("saliency-bench: error: run: argument --limit")
    assert err.count("saliency-bench") == 1


def test_every_option_of_every_command_says_what_it_does(capsys):
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    for name, command in commands.items():
        for action in command._actions:
            if action.option_strings and action.dest != "help":
                assert action.help, f"{name} {action.option_strings[0]} has no help"
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = capsys.readouterr().out
    assert "saliency-bench list" in text and "docs/command-line.md" in text  # where the names and ranges are


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["run", "--help"], ["check", "--help"], ["run"],
                                  ["run", "--all", "-m", "x"], ["run", "--all", "--limit", "1e30"],
                                  ["run", "--all", "--model", ""], ["compare", "a"],
                                  ["check", "m", "--against", "board.json", "--site"]])
def test_help_version_and_user_errors_that_need_no_model_import_no_torch(argv):
    """``--help``, ``--version`` and every usage error answer without importing torch (issue 27: a CLI that starts in
    a second)."""
    import subprocess
    import sys

    probe = ("import sys\nfrom saliency_bench.cli import main\ntry:\n    code = main(sys.argv[1:])\n"
             "except SystemExit as exit:\n    code = exit.code\n"
             "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH', code, file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", probe, *argv], capture_output=True, text=True, timeout=120)
    verdict = done.stderr.strip().splitlines()[-1]
    assert verdict.startswith("NO-TORCH"), done.stderr
    assert verdict.endswith(" 0") or verdict.endswith(" 2"), done.stderr


def test_only_the_whole_default_run_writes_the_top_level_board():
    from saliency_bench.board.publish import is_default_run

    def default(*argv):
        return is_default_run(_options(*argv))

    assert default("--all")
    for partial in (["-m", "gradcam"], ["--all", "--checks", "pointing_game"], ["--all", "--limit", "3"],
                    ["--all", "--no-speed"], ["--all", "--param", "pointing_game.tolerance=10"], ["--all", "--seed", "1"]):
        assert not default(*partial), partial


def test_a_narrower_rerun_keeps_the_larger_board_of_its_out_folder(fakes, capsys, tmp_path):
    out = tmp_path / "o"
    assert _run(capsys, "run", "-m", "edge", "random", *RUN, "--out", str(out))[0] == 0
    before = (out / "leaderboard.json").read_bytes()
    code, _, err = _run(capsys, "run", "-m", "edge", *RUN, "--out", str(out))
    assert code == 0 and "not rewritten" in err and "--board-dir" in err
    assert (out / "leaderboard.json").read_bytes() == before


def test_default_out_names_other_settings_by_a_digest():
    from saliency_bench.run.options import default_out

    plain = default_out(_options("--all"))
    tuned = default_out(_options("--all", "--param", "pointing_game.tolerance=10"))
    other = default_out(_options("--all", "--param", "pointing_game.tolerance=12"))
    assert tuned.startswith(plain + "-cfg") and len({plain, tuned, other}) == 3


@pytest.mark.parametrize("value", ["nan", "-1", "inf"])
def test_check_refuses_a_tolerance_that_is_not_a_finite_non_negative_number(capsys, value):
    code, _, err = _run(capsys, "check", "edge", "--against", "x.json", "--tolerance", value)
    assert code == 2 and "expected a number in [0, 1e+06]" in err


def test_a_progress_bar_on_a_terminal_draws_nothing_from_the_global_generator():
    """What is computed does not depend on where the progress goes: bar, plain lines, or none."""
    import torch
    from torch.utils.data import DataLoader

    from saliency_bench.harness.progress import progress

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    draws = []
    for stream, enabled in ((Terminal(), True), (io.StringIO(), True), (io.StringIO(), False)):
        torch.manual_seed(0)
        loader = DataLoader(list(range(100)), batch_size=32)
        draws.append([float(torch.rand(1)) for _ in progress(loader, len(loader), "x", enabled=enabled, stream=stream)])
    assert draws[0] == draws[1] == draws[2]


def test_a_board_may_gain_checks_and_rows_but_never_lose_them(tmp_path):
    from saliency_bench.board.publish import board_conflict

    board = {"config": {"seed": 0}, "methods": {"edge": {}}, "checks": {"pointing_game": {}}}
    (tmp_path / "leaderboard.json").write_text(json.dumps(board))
    assert board_conflict(tmp_path, ["edge", "random"], ["pointing_game", "emprt"], {"seed": 0}) is None
    assert "check(s) this run does not compute (pointing_game)" in board_conflict(tmp_path, ["edge"], ["emprt"])
    assert "row(s) this run does not compute" in board_conflict(tmp_path, ["random"], ["pointing_game"])
    assert "another configuration" in board_conflict(tmp_path, ["edge"], ["pointing_game"], {"seed": 1})
