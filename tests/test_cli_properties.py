"""Property: whatever `run` is given, it exits 0, 1 or 2; a user error (2) is one line on stderr; never a traceback.

Generated `--param` values (valid, out of range, NaN, words, odd characters) and `--out` folders (fresh, an
existing file, a path under a file) against the fake plugins: a 32 px model and a one-image run of the healthy
`edge` method, so that every example is cheap. `edge` never fails by itself, so a check that *raises* on a
parameter the validation let through shows up as "check '...' raised" and fails the property.
"""
import re
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from saliency_bench.cli import main
from fakes import Captured

KEYS = {
    "pointing_game": ["tolerance", "tie_rule", "min_classes", "bootstrap_samples", "ci_level", "seed", "images"],
    "class_sensitivity": ["hog_cell", "hog_block", "hog_orientations", "bootstrap_samples", "ci_level", "seed"],
    "randomization": ["order", "init", "init_std", "init_bias", "draws", "hog_cell", "ssim_window", "ci_level",
                      "seed", "images"],
    "mean_map": ["scale"],
}
WORDS = ["nan", "inf", "-inf", "1e999", "-0", "", "true", "fixed", "layer_std", "xavier", "plateau_centre",
         "first_index", "foo", "0.5", "1.5", "0x10", "1_0", " 3 ", "a\nb", "é", "3.0"]


@st.composite
def param_values(draw) -> str:
    return draw(st.one_of(
        st.integers(min_value=-5, max_value=40).map(str),
        st.floats(min_value=-2.0, max_value=60.0, allow_nan=False).map(repr),
        st.sampled_from(WORDS),
        st.text(max_size=6),
    ))


@st.composite
def run_arguments(draw) -> tuple[str, list[str], str]:
    check = draw(st.sampled_from(sorted(KEYS)))
    params = []
    for _ in range(draw(st.integers(min_value=0, max_value=2))):
        key = draw(st.one_of(st.sampled_from(KEYS[check]), st.just("no_such_key")))
        params += ["--param", f"{check}.{key}={draw(param_values())}"]
    out = draw(st.sampled_from(["fresh", "fresh", "fresh", "file", "under_file"]))
    return check, params, out


@pytest.fixture(scope="module")
def fake_plugins():
    """The fake model, dataset and check (tests/fakes.py), registered once for the whole module."""
    from fakes import fake_plugins_registered

    from saliency_bench.plugins import get_plugin_manager

    with fake_plugins_registered(get_plugin_manager(), "-properties") as pm:
        yield pm


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("properties")


@settings(max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(arguments=run_arguments())
def test_run_exits_0_1_or_2_and_user_errors_are_one_line(fake_plugins, scratch, arguments):
    check, params, out_kind = arguments
    folder = Path(tempfile.mkdtemp(dir=scratch))
    try:
        (folder / "file").write_text("not a folder")
        out = {"fresh": folder / "out", "file": folder / "file", "under_file": folder / "file" / "sub"}[out_kind]
        argv = ["run", "-m", "edge", "--model", "fake_vgg", "--checks", check, "--limit", "1", "--no-progress",
                "--no-speed", "--out", str(out), *params]
        capture = Captured()
        with capture:
            code = main(argv)
        err = "\n".join(line for line in capture.err.splitlines() if not line.startswith("warning: plugin "))
        assert code in (0, 1, 2), (argv, code, err)
        assert "Traceback" not in err and "Traceback" not in capture.out, (argv, err)
        assert "internal error" not in err, (argv, err)
        assert not re.search(r"check '\w+' raised", err), (argv, err)  # a check crashed on an accepted value
        if code == 2:
            assert len(err.strip().splitlines()) == 1, (argv, err)
            assert err.startswith("saliency-bench: error: "), (argv, err)
        if out_kind != "fresh":
            assert code == 2 and "--out" in err, (argv, err)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


