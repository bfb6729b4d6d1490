"""Check parameters: each built-in check declares every parameter once (default, type, range); the harness refuses
what a check cannot use."""
from types import SimpleNamespace

import pytest

from saliency_bench.checks.class_sensitivity import ClassSensitivity
from saliency_bench.checks.base import Check
from saliency_bench.checks.params import Param, validate
from saliency_bench.checks.pointing import PointingGame, RestrictedPointingGame
from saliency_bench.checks.randomization import CascadingRandomization
from saliency_bench.errors import UserError
from saliency_bench.checks.params import check_parameters

BUILT_IN = [PointingGame(), RestrictedPointingGame(), ClassSensitivity(), CascadingRandomization()]


def _suite(input_size: int = 96):
    model = SimpleNamespace(input_size=input_size, randomization_order=["classifier", "features.0"])
    return SimpleNamespace(model=model, dataset=SimpleNamespace(), num_images=10, seed=0)


class Plain(Check):
    """A third-party check declaring two parameters without a range: types are converted, non-finite refused."""

    name = "plain"
    parameters = {"scale": Param(float, 1.0), "level": Param(int, 3)}


@pytest.mark.parametrize("check", BUILT_IN, ids=lambda c: c.name)
def test_every_default_parameter_is_declared_and_valid(check):
    params = check.default_params(_suite())
    assert set(params) == set(check.parameters)  # one declaration per parameter, each with its default
    assert all(spec.help for spec in check.parameters.values())  # each documented in one line
    assert check_parameters(check, _suite(), {})["images"] == 10  # the defaults pass, images added


@pytest.mark.parametrize("check, key, value, message", [
    ("pointing_game", "tolerance", "nan", "parameter pointing_game.tolerance must be a finite number >= 0, got nan"),
    ("pointing_game", "tolerance", "inf", "parameter pointing_game.tolerance must be a finite number >= 0, got inf"),
    ("pointing_game", "tolerance", "1e999", "must be a finite number >= 0, got inf"),
    ("pointing_game", "tolerance", "-5", "parameter pointing_game.tolerance must be a finite number >= 0, got -5.0"),
    ("pointing_game", "seed", "-3", "parameter pointing_game.seed must be an integer in [0, 4294967295], got -3"),
    ("pointing_game", "tie_rule", "foo",
     "parameter pointing_game.tie_rule must be one of plateau_centre, first_index, got 'foo'"),
    ("pointing_game", "min_classes", "0", "parameter pointing_game.min_classes must be an integer in [1, 10000], got 0"),
    ("pointing_game", "ci_level", "1", "parameter pointing_game.ci_level must be a finite number in (0, 1), got 1.0"),
    ("pointing_game", "ci_level", "0", "must be a finite number in (0, 1), got 0.0"),
    ("pointing_game", "ci_level", "nan", "must be a finite number in (0, 1), got nan"),
    ("restricted_pointing_game", "bootstrap_samples", "0", "bootstrap_samples must be an integer in [1, 1000000], got 0"),
    ("class_sensitivity", "bootstrap_samples", "1e25", "bootstrap_samples must be an integer in [1, 1000000], got '1e25'"),
    ("class_sensitivity", "bootstrap_samples", "10000000000000000000000000", "must be an integer in [1, 1000000]"),
    ("restricted_pointing_game", "images", "0", "parameter restricted_pointing_game.images must be an integer >= 1"),
    ("randomization", "images", "1e30", "parameter randomization.images must be an integer >= 1, got '1e30'"),
    ("randomization", "images", "16", "randomization.images must be an integer in [1, 10] (the run's images, --limit), got 16"),
    ("class_sensitivity", "hog_cell", "0", "parameter class_sensitivity.hog_cell must be an integer >= 1, got 0"),
    ("class_sensitivity", "hog_block", "0", "hog_block must be an integer >= 1, got 0"),
    ("class_sensitivity", "hog_orientations", "-1", "hog_orientations must be an integer in [1, 360], got -1"),
    ("class_sensitivity", "seed", "1.5", "parameter class_sensitivity.seed must be an integer in [0, 4294967295], got '1.5'"),
    ("randomization", "init_std", "nan", "parameter randomization.init_std must be a finite number in (0, 1e+06], got nan"),
    ("randomization", "init_std", "0", "parameter randomization.init_std must be a finite number in (0, 1e+06], got 0.0"),
    ("randomization", "init_bias", "-inf", "parameter randomization.init_bias must be a finite number in [-1e+06, 1e+06], got -inf"),
    ("randomization", "ssim_window", "8", "parameter randomization.ssim_window must be an odd integer >= 3, got 8"),
    ("randomization", "ssim_window", "1", "must be an odd integer >= 3, got 1"),
    ("randomization", "draws", "0", "parameter randomization.draws must be an integer in [1, 1000000], got 0"),
    ("randomization", "init", "xavier", "parameter randomization.init must be one of layer_std, fixed, got 'xavier'"),
    ("randomization", "layers", "a,b", "cannot be set from the command line"),
    ("randomization", "order", "sideways", "parameter randomization.order must be one of top_down, bottom_up, got 'sideways'"),
    ("randomization", "mode", "all", "parameter randomization.mode must be one of cascading, independent, got 'all'"),
    ("randomization", "hog_orientations", "0", "hog_orientations must be an integer in [1, 360]"),
])
def test_values_a_check_cannot_use_are_one_line_user_errors(check, key, value, message):
    found = next(c for c in BUILT_IN if c.name == check)
    with pytest.raises(UserError) as error:
        check_parameters(found, _suite(), {key: value})
    assert message in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("check, key, value, message", [
    ("pointing_game", "tolerance", "50", "must be a finite number in [0, 45.255] (the diagonal of the 32 px maps"),
    ("class_sensitivity", "hog_cell", "11",
     "must be an integer in [1, 10] (HOG blocks of 3 cells must fit the 32 px maps), got 11"),
    ("randomization", "ssim_window", "33",
     "must be an odd integer in [3, 31] (the SSIM window must fit the 32 px maps)"),
])
def test_bounds_derived_from_the_model(check, key, value, message):
    found = next(c for c in BUILT_IN if c.name == check)
    with pytest.raises(UserError) as error:
        check_parameters(found, _suite(32), {key: value})
    assert message in str(error.value)
    check_parameters(found, _suite(96), {key: value})  # the same value fits a larger input


def test_cell_and_block_that_do_not_fit_together_name_the_one_set():
    with pytest.raises(UserError, match=r"hog_block must be an integer in \[1, 16\] \(HOG blocks of cells of 2 px "
                                        r"must fit the 32 px maps\), got 17"):
        check_parameters(ClassSensitivity(), _suite(32), {"hog_block": "17"})  # hog_cell 2 is the default
    with pytest.raises(UserError, match=r"hog_cell must be an integer in \[1, 10\] .*got 40"):
        check_parameters(ClassSensitivity(), _suite(32), {"hog_cell": "40"})
    with pytest.raises(UserError, match=r"hog_cell must be an integer in \[1, 2\] .*got 8"):
        check_parameters(ClassSensitivity(), _suite(32), {"hog_cell": "8", "hog_block": "12"})


def test_valid_overrides_are_converted_and_kept():
    params = check_parameters(CascadingRandomization(), _suite(), {
        "init": "fixed", "init_std": "0.5", "draws": "1", "ssim_window": "5", "ci_level": "0.9", "images": "7"})
    assert (params["init"], params["init_std"], params["draws"], params["ssim_window"]) == ("fixed", 0.5, 1, 5)
    assert params["images"] == 7 and check_parameters(CascadingRandomization(), _suite(), {})["images"] == 10


def test_a_parameter_without_range_gets_type_conversion_only():
    params = check_parameters(Plain(), _suite(), {"scale": "-3", "level": "-7"})
    assert params["scale"] == -3.0 and params["level"] == -7  # no range is declared for these
    assert check_parameters(Plain(), _suite(), {}) == {"scale": 1.0, "level": 3, "images": 10}
    with pytest.raises(UserError, match=r"parameter plain\.scale must be a finite number, got nan"):
        check_parameters(Plain(), _suite(), {"scale": "nan"})  # NaN/inf are refused for every float parameter
    with pytest.raises(UserError, match=r"check 'plain' has no parameter 'ci_level' \(has: images, level, scale\)"):
        check_parameters(Plain(), _suite(), {"ci_level": "2"})
    with pytest.raises(UserError, match=r"plain\.images must be an integer >= 1, got 0"):
        check_parameters(Plain(), _suite(), {"images": "0"})


def test_replayed_typed_values_are_validated_too():
    """``check`` replays a board's recorded parameters, already typed: they are held to the same schema."""
    with pytest.raises(UserError, match=r"pointing_game\.tolerance must be a finite number >= 0, got nan"):
        check_parameters(PointingGame(), _suite(), {"tolerance": float("nan")})
    with pytest.raises(UserError, match=r"pointing_game\.min_classes must be an integer in \[1, 10000\], got 0"):
        check_parameters(PointingGame(), _suite(), {"min_classes": 0})


def test_odd_characters_stay_on_one_line():
    with pytest.raises(UserError) as error:
        check_parameters(PointingGame(), _suite(), {"min_classes": "1\n2"})
    assert "\n" not in str(error.value) and r"'1\n2'" in str(error.value)
    with pytest.raises(UserError) as error:
        check_parameters(PointingGame(), _suite(), {"no\nkey": "1"})
    assert "\n" not in str(error.value)


def test_param_describes_and_accepts():
    assert Param(float, minimum=0.0).describe() == "a finite number >= 0"
    assert Param(int, minimum=3, odd=True).describe() == "an odd integer >= 3"
    assert Param(float, minimum=0.0, maximum=1.0, min_inclusive=False, max_inclusive=False).describe() == \
        "a finite number in (0, 1)"
    assert Param(str, choices=("a", "b")).describe() == "one of a, b"
    assert not Param(int).accepts(True) and not Param(float).accepts(True)  # a bool is not a number here
    assert Param(float).accepts(3) and not Param(int).accepts(3.0)
    assert Param(float, finite=False).accepts(float("inf"))
    assert not Param(int, odd=True).accepts(4) and Param(int, odd=True).accepts(-3)


def test_validate_without_suite_skips_model_bounds():
    schema = {"w": Param(int, minimum=3, maximum=lambda params, suite: 5)}
    validate("c", {"w": 99}, schema)  # no suite: only the fixed range
    with pytest.raises(UserError, match=r"parameter c\.w must be an integer in \[3, 5\], got 99"):
        validate("c", {"w": 99}, schema, _suite())


def test_convert_takes_the_parameters_type():
    assert Param(float).convert("c", "k", "2") == 2.0 and Param(int).convert("c", "k", "2") == 2
    assert Param(bool).convert("c", "k", "true") is True and Param(str).convert("c", "k", "y") == "y"
    assert Param(float).convert("c", "k", 3) == 3 and Param(int).convert("c", "k", 4) == 4  # replayed, typed
    with pytest.raises(UserError, match=r"c\.k must be an integer, got '1e999'"):
        Param(int).convert("c", "k", "1e999")
    with pytest.raises(UserError, match=r"c\.k must be an integer, got '1111111111"):
        Param(int).convert("c", "k", "1" * 5000)  # no quadratic int parsing of a huge string
    with pytest.raises(UserError, match=r"c\.k is a list and cannot be set from the command line"):
        Param(list, settable=False).convert("c", "k", "a,b")
